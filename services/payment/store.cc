#include "services/payment/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::payment {
namespace {

constexpr char kColumns[] =
    "id::text, tenant, party_id::text, party_kind, submission_id, amount_minor, currency, description, state, "
    "(extract(epoch FROM created_at) * 1000000)::bigint, request_fingerprint";

v1::PaymentState ParseState(const std::string& s) {
  if (s == "started") return v1::PAYMENT_STATE_STARTED;
  if (s == "submitted") return v1::PAYMENT_STATE_SUBMITTED;
  if (s == "success") return v1::PAYMENT_STATE_SUCCESS;
  if (s == "failed") return v1::PAYMENT_STATE_FAILED;
  if (s == "cancelled") return v1::PAYMENT_STATE_CANCELLED;
  if (s == "error") return v1::PAYMENT_STATE_ERROR;
  return v1::PAYMENT_STATE_CREATED;
}

v1::Payment ToPayment(const pqxx::row& r) {
  v1::Payment p;
  p.set_id(r[0].as<std::string>());
  p.mutable_tenant()->set_key(r[1].as<std::string>());
  p.mutable_party()->set_id(r[2].as<std::string>());
  p.mutable_party()->set_kind(r[3].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON
                                                                 : common::v1::PARTY_KIND_ORGANISATION);
  p.set_submission_id(r[4].as<std::string>());
  p.mutable_amount()->set_amount_minor(r[5].as<int64_t>());
  p.mutable_amount()->set_currency(r[6].as<std::string>());
  p.set_description(r[7].as<std::string>());
  p.set_state(ParseState(r[8].as<std::string>()));
  *p.mutable_created_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[9].as<int64_t>());
  return p;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  conn.prepare("payment_create",
               std::string("INSERT INTO payments (tenant, party_id, party_kind, submission_id, amount_minor, currency, "
                           "description, idempotency_key, request_fingerprint) "
                           "VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9) "
                           "ON CONFLICT (tenant, idempotency_key) DO NOTHING RETURNING ") +
                   kColumns);
  conn.prepare("payment_by_idempotency_key",
               std::string("SELECT ") + kColumns + " FROM payments WHERE tenant = $1 AND idempotency_key = $2");
  conn.prepare("payment_get", std::string("SELECT ") + kColumns + " FROM payments WHERE tenant = $1 AND id = $2::uuid");
}

absl::StatusOr<v1::Payment> Store::CreatePayment(const NewPayment& p) {
  v1::Payment out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("payment_create", p.tenant, p.party_id, p.party_kind, p.submission_id, p.amount_minor,
                                p.currency, p.description, p.idempotency_key, p.fingerprint);
    if (res.empty()) {
      // The key exists (a concurrent duplicate has committed by now: ON CONFLICT waited for it).
      res = tx.exec_prepared("payment_by_idempotency_key", p.tenant, p.idempotency_key);
      if (res.empty()) return absl::AbortedError("concurrent request with the same idempotency key, retry");
      if (res[0][10].as<std::string>() != p.fingerprint) {
        return absl::FailedPreconditionError("idempotency_key: already used for a different request");
      }
    }
    out = ToPayment(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Payment> Store::GetPayment(const std::string& tenant, const std::string& id) {
  v1::Payment out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("payment_get", tenant, id);
    if (res.empty()) return absl::NotFoundError("payment not found");
    out = ToPayment(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace stadtportal::payment

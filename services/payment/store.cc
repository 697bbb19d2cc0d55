#include "services/payment/store.h"

#include "libs/db/row.h"

namespace stadtportal::payment {
namespace {

constexpr char kColumns[] =
    "id::text AS id, tenant, party_id::text AS party_id, party_kind, submission_id, amount_minor, currency, "
    "description, state, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, request_fingerprint, "
    "reference, provider, provider_ref, next_url, finished, reason, refunded_minor, "
    "(extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us";

// The columns of a refund as ToRefund reads them (`r` refunds, `p` its payment).
constexpr char kRefundColumns[] =
    "r.id::text AS id, r.payment_id::text AS payment_id, r.amount_minor, p.currency, r.state, r.reason, "
    "(extract(epoch FROM r.created_at) * 1000000)::bigint AS created_us";

v1::PaymentState ParseState(const std::string& s) {
  if (s == "started") return v1::PAYMENT_STATE_STARTED;
  if (s == "submitted") return v1::PAYMENT_STATE_SUBMITTED;
  if (s == "success") return v1::PAYMENT_STATE_SUCCESS;
  if (s == "failed") return v1::PAYMENT_STATE_FAILED;
  if (s == "cancelled") return v1::PAYMENT_STATE_CANCELLED;
  if (s == "error") return v1::PAYMENT_STATE_ERROR;
  return v1::PAYMENT_STATE_CREATED;
}

PaymentRow ToRow(const pqxx::row& r) {
  PaymentRow row;
  auto& p = row.payment;
  p.set_id(r["id"].as<std::string>());
  p.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  p.mutable_party()->set_id(r["party_id"].as<std::string>());
  p.mutable_party()->set_kind(r["party_kind"].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON
                                                                            : common::v1::PARTY_KIND_ORGANISATION);
  p.set_submission_id(r["submission_id"].as<std::string>());
  p.mutable_amount()->set_amount_minor(r["amount_minor"].as<int64_t>());
  p.mutable_amount()->set_currency(r["currency"].as<std::string>());
  p.set_description(r["description"].as<std::string>());
  row.state = r["state"].as<std::string>();
  p.set_state(ParseState(row.state));
  *p.mutable_created_at() = db::Micros(r["created_us"]);
  row.fingerprint = r["request_fingerprint"].as<std::string>();
  p.set_reference(r["reference"].as<std::string>());
  p.set_provider(r["provider"].as<std::string>());
  p.set_provider_reference(r["provider_ref"].as<std::string>());
  p.set_next_url(r["next_url"].as<std::string>());
  p.set_finished(r["finished"].as<bool>());
  p.set_reason(r["reason"].as<std::string>());
  const int64_t refunded = r["refunded_minor"].as<int64_t>();
  *p.mutable_updated_at() = db::Micros(r["updated_us"]);
  if (row.state == "success" && p.reason() != "duplicate_refunded") {
    p.set_refund_amount_available(p.amount().amount_minor() - refunded);
  }
  return row;
}

v1::Refund ToRefund(const pqxx::row& r) {
  v1::Refund f;
  f.set_id(r["id"].as<std::string>());
  f.set_payment_id(r["payment_id"].as<std::string>());
  f.mutable_amount()->set_amount_minor(r["amount_minor"].as<int64_t>());
  f.mutable_amount()->set_currency(r["currency"].as<std::string>());
  f.set_state(r["state"].as<std::string>());
  f.set_reason(r["reason"].as<std::string>());
  *f.mutable_created_at() = db::Micros(r["created_us"]);
  return f;
}

// Adds history and refunds; the available refund amount also excludes pending refunds.
PaymentRow Complete(pqxx::work& tx, PaymentRow row) {
  auto& p = row.payment;
  for (const auto& e : tx.exec_prepared("payment_events", p.id())) {
    auto* ev = p.add_events();
    ev->set_state(e["state"].as<std::string>());
    ev->set_reason(e["reason"].as<std::string>());
    ev->set_source(e["source"].as<std::string>());
    *ev->mutable_at() = db::Micros(e["at_us"]);
  }
  for (const auto& r : tx.exec_prepared("payment_refunds", p.id())) *p.add_refunds() = ToRefund(r);
  if (p.refund_amount_available() > 0) {
    p.set_refund_amount_available(p.refund_amount_available() - Store::PendingRefunds(tx, p.id()));
  }
  return row;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  const std::string cols = kColumns;
  const std::string refund_cols = kRefundColumns;
  conn.prepare("payment_insert",
               "INSERT INTO payments (tenant, party_id, party_kind, submission_id, amount_minor, currency, description,"
               " reference, provider, idempotency_key, request_fingerprint)"
               " VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
               " ON CONFLICT (tenant, party_id, idempotency_key) DO NOTHING RETURNING " +
                   cols);
  conn.prepare("payment_by_key",
               "SELECT " + cols + " FROM payments WHERE tenant = $1 AND party_id = $2::uuid AND idempotency_key = $3");
  conn.prepare("payment_lock", "SELECT " + cols + " FROM payments WHERE tenant = $1 AND id = $2::uuid FOR UPDATE");
  conn.prepare("payment_lock_by_ref",
               "SELECT " + cols + " FROM payments WHERE provider = $1 AND provider_ref = $2 FOR UPDATE");
  conn.prepare("payment_get", "SELECT " + cols + " FROM payments WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("payment_events",
               "SELECT state, reason, source, (extract(epoch FROM at) * 1000000)::bigint AS at_us FROM payment_events"
               " WHERE payment_id = $1::uuid ORDER BY seq");
  conn.prepare("payment_refunds", "SELECT " + refund_cols +
                                      " FROM refunds r JOIN payments p ON p.id = r.payment_id"
                                      " WHERE r.payment_id = $1::uuid ORDER BY r.created_at, r.id");
  conn.prepare("payment_has_success",
               "SELECT 1 FROM payments WHERE tenant = $1 AND submission_id = $2 AND state = 'success'"
               " AND reason <> 'duplicate_refunded'");
  conn.prepare("payment_lock_submission",
               "SELECT pg_advisory_xact_lock(hashtext('stadtportal.payment.submission'), hashtext($1 || '/' || $2))");
  conn.prepare("payment_set_started",
               "UPDATE payments SET state = 'started', provider_ref = $2, next_url = $3, updated_at = now()"
               " WHERE id = $1::uuid");
  conn.prepare("payment_set_state",
               "UPDATE payments SET state = $2, reason = $3,"
               " finished = $2 IN ('success', 'failed', 'cancelled', 'error'),"
               " next_url = CASE WHEN $2 IN ('success', 'failed', 'cancelled', 'error') THEN '' ELSE next_url END,"
               " updated_at = now() WHERE id = $1::uuid");
  conn.prepare("payment_add_event",
               "INSERT INTO payment_events (payment_id, state, reason, source, detail)"
               " VALUES ($1::uuid, $2, $3, $4, $5::jsonb)");
  conn.prepare("payment_record_webhook",
               "INSERT INTO webhook_events (provider, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
               " RETURNING event_id");
  conn.prepare("payment_unfinished",
               "SELECT tenant, id::text AS id FROM payments WHERE NOT finished"
               " AND updated_at <= now() - make_interval(secs => $1) ORDER BY updated_at LIMIT $2");
  conn.prepare("payment_age",
               "SELECT extract(epoch FROM now() - created_at)::bigint AS age_s FROM payments WHERE id = $1::uuid");
  conn.prepare("payment_pending_refunds",
               "SELECT coalesce(sum(amount_minor), 0)::bigint AS pending FROM refunds WHERE payment_id = $1::uuid"
               " AND state = 'submitted'");
  conn.prepare("payment_insert_refund",
               "INSERT INTO refunds (payment_id, amount_minor, state, reason, requested_by)"
               " VALUES ($1::uuid, $2, 'submitted', $3, $4)"
               " RETURNING id::text AS id, payment_id::text AS payment_id, amount_minor, $5::text AS currency, state,"
               " reason, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us");
  conn.prepare("payment_settle_refund",
               "UPDATE refunds SET state = $2, provider_ref = $3, reason = $4, updated_at = now()"
               " WHERE id = $1::uuid AND state = 'submitted' RETURNING id");
  conn.prepare("payment_has_automatic_refund",
               "SELECT 1 FROM refunds WHERE payment_id = $1::uuid AND requested_by = 'system'");
  conn.prepare("payment_refunds_in_doubt",
               "SELECT DISTINCT p.tenant, p.id::text AS id FROM refunds r JOIN payments p ON p.id = r.payment_id"
               " WHERE r.state = 'submitted' AND r.created_at <= now() - make_interval(secs => $1) LIMIT $2");
  conn.prepare("payment_submitted_refunds",
               "SELECT " + refund_cols +
                   " FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.payment_id = $1::uuid"
                   " AND r.state = 'submitted' AND r.created_at <= now() - make_interval(secs => $2)"
                   " ORDER BY r.created_at, r.id");
  conn.prepare("payment_add_refunded",
               "UPDATE payments SET refunded_minor = refunded_minor + $2, updated_at = now() WHERE id = $1::uuid");
  // A day's figures per provider (UTC day of creation for payments and refunds).
  conn.prepare("payment_report",
               "WITH p AS (SELECT * FROM payments WHERE tenant = $1 AND created_at >= $2::date"
               "   AND created_at < $2::date + 1),"
               " r AS (SELECT p2.provider, r.amount_minor FROM refunds r JOIN payments p2 ON p2.id = r.payment_id"
               "   WHERE p2.tenant = $1 AND r.state = 'success' AND r.created_at >= $2::date"
               "   AND r.created_at < $2::date + 1),"
               " providers AS (SELECT provider FROM p UNION SELECT provider FROM r)"
               " SELECT pr.provider,"
               "  (SELECT count(*) FROM p WHERE p.provider = pr.provider AND state = 'success') AS successes,"
               "  (SELECT coalesce(sum(amount_minor), 0) FROM p WHERE p.provider = pr.provider AND state = 'success')"
               "   AS success_minor,"
               "  (SELECT count(*) FROM r WHERE r.provider = pr.provider) AS refunds,"
               "  (SELECT coalesce(sum(amount_minor), 0) FROM r WHERE r.provider = pr.provider) AS refund_minor,"
               "  (SELECT count(*) FROM p WHERE p.provider = pr.provider AND NOT finished) AS open,"
               "  (SELECT count(*) FROM p WHERE p.provider = pr.provider AND state IN ('failed', 'cancelled', 'error'))"
               "   AS failed"
               " FROM providers pr ORDER BY pr.provider");
}

std::optional<std::pair<PaymentRow, bool>> Store::Insert(pqxx::work& tx, const NewPayment& p) {
  auto res = tx.exec_prepared("payment_insert", p.tenant, p.party_id, p.party_kind, p.submission_id, p.amount_minor,
                              p.currency, p.description, p.reference, p.provider, p.idempotency_key, p.fingerprint);
  if (!res.empty()) return std::make_pair(ToRow(res[0]), true);
  // The key exists: ON CONFLICT waited for a concurrent insert of it to commit.
  res = tx.exec_prepared("payment_by_key", p.tenant, p.party_id, p.idempotency_key);
  if (res.empty()) return std::nullopt;
  return std::make_pair(Complete(tx, ToRow(res[0])), false);
}

std::optional<PaymentRow> Store::Lock(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  auto res = tx.exec_prepared("payment_lock", tenant, id);
  if (res.empty()) return std::nullopt;
  return Complete(tx, ToRow(res[0]));
}

std::optional<PaymentRow> Store::LockByProviderRef(pqxx::work& tx, const std::string& provider,
                                                   const std::string& provider_ref) {
  auto res = tx.exec_prepared("payment_lock_by_ref", provider, provider_ref);
  if (res.empty()) return std::nullopt;
  return Complete(tx, ToRow(res[0]));
}

std::optional<PaymentRow> Store::Get(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  auto res = tx.exec_prepared("payment_get", tenant, id);
  if (res.empty()) return std::nullopt;
  return Complete(tx, ToRow(res[0]));
}

bool Store::HasSuccess(pqxx::work& tx, const std::string& tenant, const std::string& submission_id) {
  return !tx.exec_prepared("payment_has_success", tenant, submission_id).empty();
}

void Store::LockSubmission(pqxx::work& tx, const std::string& tenant, const std::string& submission_id) {
  tx.exec_prepared("payment_lock_submission", tenant, submission_id);
}

void Store::SetStarted(pqxx::work& tx, const std::string& id, const std::string& provider_ref,
                       const std::string& next_url) {
  tx.exec_prepared("payment_set_started", id, provider_ref, next_url);
}

void Store::SetState(pqxx::work& tx, const std::string& id, const std::string& state, const std::string& reason) {
  tx.exec_prepared("payment_set_state", id, state, reason);
}

void Store::AddEvent(pqxx::work& tx, const std::string& id, const std::string& state, const std::string& reason,
                     const std::string& source, const nlohmann::json& detail) {
  tx.exec_prepared("payment_add_event", id, state, reason, source, detail.dump());
}

bool Store::RecordWebhook(pqxx::work& tx, const std::string& provider, const std::string& event_id) {
  return !tx.exec_prepared("payment_record_webhook", provider, event_id).empty();
}

std::vector<OpenPayment> Store::Unfinished(pqxx::work& tx, int64_t older_than_seconds, int limit) {
  std::vector<OpenPayment> out;
  for (const auto& r : tx.exec_prepared("payment_unfinished", older_than_seconds, limit)) {
    out.push_back({r["tenant"].as<std::string>(), r["id"].as<std::string>()});
  }
  return out;
}

int64_t Store::AgeSeconds(pqxx::work& tx, const std::string& id) {
  return tx.exec_prepared("payment_age", id)[0]["age_s"].as<int64_t>();
}

int64_t Store::PendingRefunds(pqxx::work& tx, const std::string& payment_id) {
  return tx.exec_prepared("payment_pending_refunds", payment_id)[0]["pending"].as<int64_t>();
}

v1::Refund Store::InsertRefund(pqxx::work& tx, const std::string& payment_id, int64_t amount_minor,
                               const std::string& currency, const std::string& reason,
                               const std::string& requested_by) {
  return ToRefund(
      tx.exec_prepared("payment_insert_refund", payment_id, amount_minor, reason, requested_by, currency)[0]);
}

bool Store::SettleRefund(pqxx::work& tx, const std::string& refund_id, const std::string& state,
                         const std::string& provider_ref, const std::string& reason) {
  return !tx.exec_prepared("payment_settle_refund", refund_id, state, provider_ref, reason).empty();
}

bool Store::HasAutomaticRefund(pqxx::work& tx, const std::string& payment_id) {
  return !tx.exec_prepared("payment_has_automatic_refund", payment_id).empty();
}

std::vector<RefundInDoubt> Store::RefundsInDoubt(pqxx::work& tx, int64_t older_than_seconds, int limit) {
  std::vector<RefundInDoubt> out;
  for (const auto& r : tx.exec_prepared("payment_refunds_in_doubt", older_than_seconds, limit)) {
    out.push_back({r["tenant"].as<std::string>(), r["id"].as<std::string>()});
  }
  return out;
}

std::vector<v1::Refund> Store::SubmittedRefunds(pqxx::work& tx, const std::string& payment_id,
                                                int64_t older_than_seconds) {
  std::vector<v1::Refund> out;
  for (const auto& r : tx.exec_prepared("payment_submitted_refunds", payment_id, older_than_seconds)) {
    out.push_back(ToRefund(r));
  }
  return out;
}

void Store::AddRefunded(pqxx::work& tx, const std::string& payment_id, int64_t amount_minor) {
  tx.exec_prepared("payment_add_refunded", payment_id, amount_minor);
}

v1::Report Store::Report(pqxx::work& tx, const std::string& tenant, const std::string& day) {
  v1::Report out;
  out.set_day(day);
  for (const auto& r : tx.exec_prepared("payment_report", tenant, day)) {
    auto* p = out.add_providers();
    p->set_provider(r["provider"].as<std::string>());
    p->set_successes(r["successes"].as<int>());
    p->set_success_amount_minor(r["success_minor"].as<int64_t>());
    p->set_refunds(r["refunds"].as<int>());
    p->set_refund_amount_minor(r["refund_minor"].as<int64_t>());
    p->set_open(r["open"].as<int>());
    p->set_failed(r["failed"].as<int>());
  }
  return out;
}

}  // namespace stadtportal::payment

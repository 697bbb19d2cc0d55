#include "services/accounts/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::accounts {
namespace {

constexpr char kColumns[] =
    "id::text, tenant, kind, display_name, coalesce(identity_account_id::text, ''), "
    "(extract(epoch FROM created_at) * 1000000)::bigint";

v1::Party ToParty(const pqxx::row& r) {
  v1::Party p;
  p.set_id(r[0].as<std::string>());
  p.mutable_tenant()->set_key(r[1].as<std::string>());
  p.set_kind(r[2].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON : common::v1::PARTY_KIND_ORGANISATION);
  p.set_display_name(r[3].as<std::string>());
  p.set_identity_account_id(r[4].as<std::string>());
  *p.mutable_created_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  return p;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  conn.prepare("accounts_create_party",
               std::string("INSERT INTO parties (tenant, kind, display_name, identity_account_id) "
                           "VALUES ($1, $2, $3, nullif($4, '')::uuid) RETURNING ") +
                   kColumns);
  conn.prepare("accounts_get_party",
               std::string("SELECT ") + kColumns + " FROM parties WHERE tenant = $1 AND id = $2::uuid");
}

absl::StatusOr<v1::Party> Store::CreateParty(const NewParty& p) {
  v1::Party out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    out = ToParty(tx.exec_prepared1("accounts_create_party", p.tenant, p.kind, p.display_name, p.identity_account_id));
    return absl::OkStatus();
  });
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError("this identity account already has a person party");
  }
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Party> Store::GetParty(const std::string& tenant, const std::string& id) {
  v1::Party out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("accounts_get_party", tenant, id);
    if (res.empty()) return absl::NotFoundError("party not found");
    out = ToParty(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace stadtportal::accounts

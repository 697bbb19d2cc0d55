#include "services/identity/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::identity {
namespace {

constexpr char kColumns[] =
    "id::text, tenant, email, display_name, language, state, (extract(epoch FROM created_at) * 1000000)::bigint";

v1::Account ToAccount(const pqxx::row& r) {
  v1::Account a;
  a.set_id(r[0].as<std::string>());
  a.mutable_tenant()->set_key(r[1].as<std::string>());
  a.set_email(r[2].as<std::string>());
  a.set_display_name(r[3].as<std::string>());
  a.set_language(r[4].as<std::string>() == "en" ? v1::LANGUAGE_EN : v1::LANGUAGE_DE);
  const auto state = r[5].as<std::string>();
  a.set_state(state == "active"   ? v1::ACCOUNT_STATE_ACTIVE
              : state == "locked" ? v1::ACCOUNT_STATE_LOCKED
                                  : v1::ACCOUNT_STATE_PENDING_VERIFICATION);
  *a.mutable_created_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[6].as<int64_t>());
  return a;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  conn.prepare("identity_create_account",
               std::string("INSERT INTO accounts (tenant, email, email_normalized, display_name, language) "
                           "VALUES ($1, $2, $3, $4, $5) RETURNING ") +
                   kColumns);
  conn.prepare("identity_get_account",
               std::string("SELECT ") + kColumns + " FROM accounts WHERE tenant = $1 AND id = $2::uuid");
}

absl::StatusOr<v1::Account> Store::CreateAccount(const NewAccount& a) {
  v1::Account out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto r =
        tx.exec_prepared1("identity_create_account", a.tenant, a.email, a.email_normalized, a.display_name, a.language);
    out = ToAccount(r);
    return absl::OkStatus();
  });
  if (s.code() == absl::StatusCode::kAlreadyExists)
    return absl::AlreadyExistsError("an account with this e-mail exists");
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::Account> Store::GetAccount(const std::string& tenant, const std::string& id) {
  v1::Account out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("identity_get_account", tenant, id);
    if (res.empty()) return absl::NotFoundError("account not found");
    out = ToAccount(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace stadtportal::identity

#include "services/identity/store.h"

#include <google/protobuf/util/time_util.h>

#include "libs/api/api.h"
#include "libs/db/row.h"
#include "libs/events/events.h"
#include "services/identity/clients.h"
#include "services/identity/partners.h"
#include "services/identity/provider/provider.h"

#include "absl/strings/str_join.h"
#include "libs/auth/roles.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/identity/federation/providers.h"

namespace stadtportal::identity {
namespace {

constexpr char kColumns[] =
    "id::text AS id, tenant, coalesce(email, '') AS email, display_name, language, state, "
    "(extract(epoch FROM created_at) * 1000000)::bigint AS created_at, array_to_string(roles, ',') AS roles, "
    "coalesce(password_hash, '') AS password_hash, email_verified_at IS NOT NULL AS verified";

v1::Account ToAccount(const pqxx::row& r) {
  v1::Account a;
  a.set_id(r["id"].as<std::string>());
  a.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  a.set_email(r["email"].as<std::string>());
  a.set_display_name(r["display_name"].as<std::string>());
  a.set_language(r["language"].as<std::string>() == "en" ? v1::LANGUAGE_EN : v1::LANGUAGE_DE);
  const auto state = r["state"].as<std::string>();
  a.set_state(state == "active"   ? v1::ACCOUNT_STATE_ACTIVE
              : state == "locked" ? v1::ACCOUNT_STATE_LOCKED
                                  : v1::ACCOUNT_STATE_PENDING_VERIFICATION);
  *a.mutable_created_at() = db::Micros(r["created_at"]);
  const auto roles = r["roles"].as<std::string>();
  size_t start = 0;
  while (start < roles.size()) {
    size_t comma = roles.find(',', start);
    if (comma == std::string::npos) comma = roles.size();
    a.add_roles(roles.substr(start, comma - start));
    start = comma + 1;
  }
  return a;
}

Credentials ToCredentials(const pqxx::row& r) {
  Credentials c;
  c.account = ToAccount(r);
  c.password_hash = r["password_hash"].as<std::string>();
  c.verified = r["verified"].as<bool>();
  return c;
}

v1::AuditEntry ToAuditEntry(const pqxx::row& r) {
  v1::AuditEntry e;
  e.set_id(r["id"].as<int64_t>());
  *e.mutable_at() = db::Micros(r["at"]);
  e.set_service(r["service"].as<std::string>());
  e.set_actor(r["actor"].as<std::string>());
  e.set_session_ref(r["session_ref"].as<std::string>());
  e.set_action(r["action"].as<std::string>());
  e.set_targets_json(r["targets"].as<std::string>());
  e.set_outcome(r["outcome"].as<std::string>());
  e.set_request_id(r["request_id"].as<std::string>());
  return e;
}

pqxx::binarystring Bytes(const std::string& s) { return pqxx::binarystring(s); }

// An administrator's look at a person's account, for the person's access log: the
// reason the administrator gave is its purpose.
audit::Access AdminAccess(const std::string& tenant, const std::string& account_id, const std::string& admin_id,
                          std::string action, const std::string& reason) {
  audit::Access a;
  a.tenant = tenant;
  a.party_id = account_id;  // A person's party id is their account id.
  a.accessor_kind = "administrator";
  a.accessor_id = admin_id;
  a.accessor_name = "administrator";
  a.resource = "account";
  a.action = std::move(action);
  a.purpose = reason;
  return a;
}

// provider.link_changed: the citizen file shows each provider linked and unlinked, at the
// transaction's time.
void PublishProviderLink(pqxx::work& tx, const std::string& tenant, const std::string& account_id,
                         const std::string& provider, const std::string& state) {
  events::v1::ProviderLinkChanged e;
  e.set_tenant(tenant);
  e.set_account_id(account_id);
  e.set_provider(provider);
  e.set_state(state);
  *e.mutable_occurred_at() = events::TransactionTime(tx);
  events::Publish(tx, account_id, e);
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  Clients::Prepare(conn);
  PartnerClients::Prepare(conn);
  provider::OpenIdProvider::Prepare(conn);
  conn.prepare("identity_create_account",
               std::string("INSERT INTO accounts (tenant, email, email_normalized, display_name, language, "
                           "password_hash) VALUES ($1, $2, $3, $4, $5, $6)"
                           " ON CONFLICT ON CONSTRAINT accounts_email_unique DO NOTHING RETURNING ") +
                   kColumns);
  conn.prepare("identity_get_account",
               std::string("SELECT ") + kColumns + " FROM accounts WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("identity_find_by_email",
               std::string("SELECT ") + kColumns + " FROM accounts WHERE tenant = $1 AND email_normalized = $2");
  conn.prepare("identity_insert_token",
               "INSERT INTO email_tokens (token_hash, tenant, account_id, purpose, expires_at) "
               "VALUES ($1, $2, $3::uuid, $4, now() + make_interval(secs => $5))");
  conn.prepare("identity_consume_token",
               "UPDATE email_tokens SET used_at = now() WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL "
               "AND expires_at > now() RETURNING account_id::text AS account_id");
  conn.prepare("identity_revoke_reset_tokens",
               "UPDATE email_tokens SET used_at = now() WHERE account_id = $1::uuid AND purpose = 'reset_password' "
               "AND used_at IS NULL");
  conn.prepare("identity_mark_verified",
               "UPDATE accounts SET email_verified_at = coalesce(email_verified_at, now()), state = 'active' "
               "WHERE id = $1::uuid AND state <> 'locked' RETURNING tenant, email");
  conn.prepare("identity_set_password", "UPDATE accounts SET password_hash = $2 WHERE id = $1::uuid");
  conn.prepare("identity_find_accounts",
               std::string("SELECT ") + kColumns +
                   " FROM accounts WHERE tenant = $1 AND (strpos(email_normalized, lower($2)) > 0 OR "
                   "strpos(lower(display_name), lower($2)) > 0) ORDER BY email_normalized LIMIT 50");
  conn.prepare(
      "identity_set_locked",
      std::string(
          "UPDATE accounts SET state = CASE WHEN $3 THEN 'locked' WHEN email_verified_at IS NULL AND NOT EXISTS "
          "(SELECT 1 FROM federated_identities f WHERE f.account_id = accounts.id) "
          "THEN 'pending_verification' ELSE 'active' END WHERE tenant = $1 AND id = $2::uuid RETURNING ") +
          kColumns);
  conn.prepare("identity_log_access",
               "INSERT INTO admin_access_log (tenant, admin_account_id, action, target_account_id, reason) "
               "VALUES ($1, $2::uuid, $3, $4::uuid, $5)");
  conn.prepare("identity_federated_find",
               "SELECT account_id::text AS account_id FROM federated_identities "
               "WHERE tenant = $1 AND provider = $2 AND subject = $3 FOR UPDATE");
  conn.prepare("identity_federated_seen",
               "UPDATE federated_identities SET level = $4, last_login_at = now() "
               "WHERE tenant = $1 AND provider = $2 AND subject = $3");
  conn.prepare("identity_federated_link",
               "INSERT INTO federated_identities (tenant, provider, subject, account_id, level) "
               "VALUES ($1, $2, $3, $4::uuid, $5) ON CONFLICT DO NOTHING");
  conn.prepare("identity_create_federated_account",
               std::string("INSERT INTO accounts (tenant, display_name, language, state) "
                           "VALUES ($1, $2, 'de', 'active') RETURNING ") +
                   kColumns);
  conn.prepare("identity_federated_list",
               "SELECT provider, level, (extract(epoch FROM linked_at) * 1000000)::bigint AS linked_at, "
               "(extract(epoch FROM last_login_at) * 1000000)::bigint AS last_login_at FROM federated_identities "
               "WHERE tenant = $1 AND account_id = $2::uuid ORDER BY provider");
  conn.prepare("identity_federated_unlink",
               "DELETE FROM federated_identities f WHERE tenant = $1 AND account_id = $2::uuid AND provider = $3 "
               "RETURNING (SELECT count(*) FROM federated_identities o WHERE o.account_id = f.account_id "
               "AND o.provider <> f.provider) AS others, "
               "(SELECT password_hash IS NOT NULL FROM accounts a WHERE a.id = f.account_id) AS has_password");
  conn.prepare("identity_start_totp",
               "INSERT INTO totp_factors (account_id, tenant, secret) VALUES ($1::uuid, $2, $3) "
               "ON CONFLICT (account_id) DO UPDATE SET secret = excluded.secret, last_step = 0, created_at = now() "
               "WHERE totp_factors.confirmed_at IS NULL RETURNING account_id");
  conn.prepare("identity_get_totp",
               "SELECT secret, confirmed_at IS NOT NULL AS confirmed FROM totp_factors WHERE account_id = $1::uuid");
  conn.prepare("identity_set_enrolment_code",
               "INSERT INTO totp_enrolment_codes (account_id, code_hash, expires_at) "
               "VALUES ($1::uuid, $2, now() + make_interval(secs => $3)) ON CONFLICT (account_id) "
               "DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at");
  conn.prepare("identity_check_enrolment_code",
               "SELECT 1 FROM totp_enrolment_codes WHERE account_id = $1::uuid AND code_hash = $2 "
               "AND expires_at > now()");
  conn.prepare("identity_drop_enrolment_code", "DELETE FROM totp_enrolment_codes WHERE account_id = $1::uuid");
  conn.prepare("identity_use_totp_step",
               "UPDATE totp_factors SET last_step = $2, confirmed_at = coalesce(confirmed_at, now()) "
               "WHERE account_id = $1::uuid AND last_step < $2 AND (confirmed_at IS NULL) = $3 RETURNING tenant");
  conn.prepare("identity_insert_audit",
               "INSERT INTO audit_log (tenant, service, actor, session_ref, action, targets, outcome, request_id) "
               "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)");
  conn.prepare("identity_list_audit",
               "SELECT id, (extract(epoch FROM at) * 1000000)::bigint AS at, service, actor, session_ref, action, "
               "targets::text AS targets, outcome, request_id FROM audit_log WHERE tenant = $1 AND ($2 = 0 OR id < $2) "
               "AND ($3 = '' OR actor = $3) AND ($4 = '' OR action = $4) ORDER BY id DESC LIMIT $5");
  conn.prepare("identity_set_role",
               std::string("UPDATE accounts SET roles = CASE WHEN $4 THEN array_append(array_remove(roles, $3), $3) "
                           "ELSE array_remove(roles, $3) END WHERE tenant = $1 AND email_normalized = $2 RETURNING ") +
                   kColumns);
  conn.prepare("identity_list_admins", std::string("SELECT ") + kColumns +
                                           " FROM accounts WHERE tenant = $1 AND EXISTS (SELECT 1 FROM unnest(roles) r "
                                           "WHERE r LIKE '%-admin' OR r = '" +
                                           auth::kKpiReader + "') ORDER BY email_normalized");
  conn.prepare("identity_reset_totp",
               "DELETE FROM totp_factors t USING accounts a WHERE t.account_id = a.id AND a.tenant = $1 "
               "AND a.email_normalized = $2");
  mail::Outbox::Prepare(conn);
  PreparePersonalData(conn);
}

absl::Status Store::CreateAccount(const NewAccount& a, const std::string& token_hash, std::chrono::seconds token_ttl,
                                  const std::function<mail::Mail(const v1::Account&)>& mail) {
  return pool_.Transact([&](pqxx::work& tx) {
    auto created = tx.exec_prepared("identity_create_account", a.tenant, a.email, a.email_normalized, a.display_name,
                                    a.language, a.password_hash);
    if (created.empty()) return absl::AlreadyExistsError("an account with this e-mail exists");
    auto account = ToAccount(created[0]);
    tx.exec_prepared("identity_insert_token", Bytes(token_hash), a.tenant, account.id(), "verify_email",
                     static_cast<double>(token_ttl.count()));
    mail::Outbox::Enqueue(tx, a.tenant, mail(account));
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Account> Store::GetAccount(const std::string& tenant, const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::Account> {
    auto res = tx.exec_prepared("identity_get_account", tenant, id);
    if (res.empty()) return absl::NotFoundError("account not found");
    return ToAccount(res[0]);
  });
}

namespace {

absl::StatusOr<Credentials> FindCredentials(db::Pool& pool, const char* statement, const std::string& tenant,
                                            const std::string& key) {
  return pool.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<Credentials> {
    auto res = tx.exec_prepared(statement, tenant, key);
    if (res.empty()) return absl::NotFoundError("account not found");
    return ToCredentials(res[0]);
  });
}

}  // namespace

absl::StatusOr<Credentials> Store::FindByEmail(const std::string& tenant, const std::string& email_normalized) {
  return FindCredentials(pool_, "identity_find_by_email", tenant, email_normalized);
}

absl::StatusOr<Credentials> Store::FindById(const std::string& tenant, const std::string& id) {
  return FindCredentials(pool_, "identity_get_account", tenant, id);
}

absl::Status Store::IssueToken(const v1::Account& account, const std::string& purpose, const std::string& token_hash,
                               std::chrono::seconds ttl, const mail::Mail& mail) {
  return pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("identity_insert_token", Bytes(token_hash), account.tenant().key(), account.id(), purpose,
                     static_cast<double>(ttl.count()));
    mail::Outbox::Enqueue(tx, account.tenant().key(), mail);
    return absl::OkStatus();
  });
}

absl::Status Store::QueueMail(const std::string& tenant, const mail::Mail& mail) {
  return pool_.Transact([&](pqxx::work& tx) {
    mail::Outbox::Enqueue(tx, tenant, mail);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> Store::ConsumeToken(
    const std::string& token_hash, const std::string& purpose,
    const std::function<absl::Status(pqxx::work&, const std::string&)>& then) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
    auto res = tx.exec_prepared("identity_consume_token", Bytes(token_hash), purpose);
    if (res.empty()) return status::FieldError("token", "invalid_token");
    std::string account_id = res[0]["account_id"].as<std::string>();
    if (auto s = then(tx, account_id); !s.ok()) return s;
    return account_id;
  });
}

absl::StatusOr<std::vector<v1::Account>> Store::FindAccounts(const std::string& tenant, const std::string& query,
                                                             const std::string& admin_id, const std::string& reason) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::vector<v1::Account>> {
    std::vector<v1::Account> out;
    for (const auto& r : tx.exec_prepared("identity_find_accounts", tenant, query)) {
      out.push_back(ToAccount(r));
      tx.exec_prepared("identity_log_access", tenant, admin_id, "find", out.back().id(), reason);
      audit::RecordAccess(tx, AdminAccess(tenant, out.back().id(), admin_id, "lookup", reason));
    }
    return out;
  });
}

absl::StatusOr<v1::Account> Store::SetLocked(const std::string& tenant, const std::string& account_id, bool locked,
                                             const std::string& admin_id, const std::string& reason,
                                             const audit::Entry& audit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Account> {
    auto res = tx.exec_prepared("identity_set_locked", tenant, account_id, locked);
    if (res.empty()) return absl::NotFoundError("account not found");
    tx.exec_prepared("identity_log_access", tenant, admin_id, locked ? "lock" : "unlock", account_id, reason);
    // The answer shows the account too: on the person's access log like a look-up.
    audit::RecordAccess(tx, AdminAccess(tenant, account_id, admin_id, locked ? "lock" : "unlock", reason));
    InsertAudit(tx, "identity", audit);
    return ToAccount(res[0]);
  });
}

absl::Status Store::MarkVerified(pqxx::work& tx, const std::string& account_id) {
  auto res = tx.exec_prepared("identity_mark_verified", account_id);
  // Other services learn the verified address (messaging sends notifications to it).
  if (!res.empty()) {
    events::v1::AccountVerified e;
    e.set_tenant(res[0]["tenant"].as<std::string>());
    e.set_account_id(account_id);
    e.set_email(res[0]["email"].as<std::string>());
    events::Publish(tx, account_id, e);
  }
  return absl::OkStatus();
}

absl::Status Store::SetPasswordHash(pqxx::work& tx, const std::string& account_id, const std::string& hash) {
  tx.exec_prepared("identity_set_password", account_id, hash);
  return absl::OkStatus();
}

absl::Status Store::SetPasswordHash(const std::string& account_id, const std::string& hash) {
  return pool_.Transact([&](pqxx::work& tx) { return SetPasswordHash(tx, account_id, hash); });
}

void Store::RevokeResetTokens(pqxx::work& tx, const std::string& account_id) {
  tx.exec_prepared("identity_revoke_reset_tokens", account_id);
}

absl::Status Store::ReplacePassword(const std::string& account_id, const std::string& hash) {
  return pool_.Transact([&](pqxx::work& tx) {
    RevokeResetTokens(tx, account_id);
    return SetPasswordHash(tx, account_id, hash);
  });
}

absl::Status Store::SetEnrolmentCode(const std::string& account_id, const std::string& code_hash,
                                     std::chrono::seconds valid) {
  return pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("identity_set_enrolment_code", account_id, Bytes(code_hash), static_cast<int64_t>(valid.count()));
    return absl::OkStatus();
  });
}

absl::Status Store::StartTotp(const std::string& tenant, const std::string& account_id, const std::string& secret,
                              const std::string& code_hash) {
  return pool_.Transact([&](pqxx::work& tx) {
    if (tx.exec_prepared("identity_check_enrolment_code", account_id, Bytes(code_hash)).empty()) {
      return absl::PermissionDeniedError("enrolment_code: invalid_code");
    }
    if (tx.exec_prepared("identity_start_totp", account_id, tenant, Bytes(secret)).empty()) {
      return status::FieldConflict("totp", "already_enrolled");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<TotpFactor> Store::GetTotp(const std::string& account_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<TotpFactor> {
    auto res = tx.exec_prepared("identity_get_totp", account_id);
    if (res.empty()) return absl::NotFoundError("no second factor enrolled");
    TotpFactor out;
    out.secret = pqxx::binarystring(res[0]["secret"]).str();
    out.confirmed = res[0]["confirmed"].as<bool>();
    return out;
  });
}

absl::StatusOr<bool> Store::TotpConfirmed(const std::string& account_id) {
  auto f = GetTotp(account_id);
  if (f.status().code() == absl::StatusCode::kNotFound) return false;
  if (!f.ok()) return f.status();
  return f->confirmed;
}

absl::Status Store::UseTotpStep(const std::string& account_id, int64_t step, bool confirm, const audit::Entry& audit) {
  return pool_.Transact([&](pqxx::work& tx) {
    if (tx.exec_prepared("identity_use_totp_step", account_id, step, confirm).empty()) {
      return status::FieldError("code", "invalid_code");
    }
    if (confirm) {
      tx.exec_prepared("identity_drop_enrolment_code", account_id);  // Used up.
      InsertAudit(tx, "identity", audit);
    }
    return absl::OkStatus();
  });
}

void Store::InsertAudit(pqxx::work& tx, const std::string& service, const audit::Entry& e) {
  tx.exec_prepared("identity_insert_audit", e.tenant, service, e.actor, e.session_ref, e.action, e.targets.dump(),
                   e.outcome, e.request_id);
}

absl::StatusOr<std::vector<v1::AuditEntry>> Store::ListAudit(const std::string& tenant, int64_t before, int limit,
                                                             const std::string& actor, const std::string& action) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::AuditEntry>> {
    std::vector<v1::AuditEntry> out;
    for (const auto& r : tx.exec_prepared("identity_list_audit", tenant, before, actor, action, limit)) {
      out.push_back(ToAuditEntry(r));
    }
    return out;
  });
}

absl::StatusOr<v1::Account> Store::SetRole(const std::string& tenant, const std::string& email_normalized,
                                           const std::string& role, bool grant, audit::Entry audit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Account> {
    auto res = tx.exec_prepared("identity_set_role", tenant, email_normalized, role, grant);
    if (res.empty()) return absl::NotFoundError("no account with this e-mail address");
    v1::Account out = ToAccount(res[0]);
    audit.targets["account_id"] = out.id();
    InsertAudit(tx, "identity", audit);
    return out;
  });
}

absl::StatusOr<std::vector<v1::Account>> Store::ListAdmins(const std::string& tenant) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::Account>> {
    std::vector<v1::Account> out;
    for (const auto& r : tx.exec_prepared("identity_list_admins", tenant)) out.push_back(ToAccount(r));
    return out;
  });
}

absl::StatusOr<v1::Account> Store::ResetTotp(const std::string& tenant, const std::string& email_normalized,
                                             audit::Entry audit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Account> {
    auto res = tx.exec_prepared("identity_find_by_email", tenant, email_normalized);
    if (res.empty()) return absl::NotFoundError("no account with this e-mail address");
    v1::Account out = ToAccount(res[0]);
    tx.exec_prepared("identity_reset_totp", tenant, email_normalized);
    audit.targets["account_id"] = out.id();
    InsertAudit(tx, "identity", audit);
    return out;
  });
}

absl::StatusOr<FederatedAccount> Store::RecordFederatedLogin(const std::string& tenant,
                                                             const federation::Identity& identity,
                                                             const std::string& link_to) {
  const std::string level = federation::LevelName(identity.level);
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<FederatedAccount> {
    FederatedAccount out;
    auto found = tx.exec_prepared("identity_federated_find", tenant, identity.provider, identity.subject);
    if (!found.empty()) {
      const auto account_id = found[0]["account_id"].as<std::string>();
      if (!link_to.empty() && account_id != link_to) {
        return status::FieldConflict("provider", "linked_to_another_account");
      }
      tx.exec_prepared("identity_federated_seen", tenant, identity.provider, identity.subject, level);
      out.account = ToAccount(tx.exec_prepared1("identity_get_account", tenant, account_id));
      out.outcome = link_to.empty() ? "login" : "step_up";
    } else if (!link_to.empty()) {
      auto account = tx.exec_prepared("identity_get_account", tenant, link_to);
      if (account.empty()) return absl::UnauthenticatedError("session unknown or expired");
      out.account = ToAccount(account[0]);
      if (tx.exec_prepared0("identity_federated_link", tenant, identity.provider, identity.subject, link_to, level)
              .affected_rows() == 0) {
        return status::FieldConflict("provider", "another_person_linked");
      }
      out.outcome = "linked";
    } else {
      std::vector<std::string> name;
      for (const char* part : {"given_name", "family_name"}) {
        auto it = identity.attributes.find(part);
        if (it != identity.attributes.end() && !it->second.empty()) name.push_back(it->second);
      }
      // The name the provider asserted, if it is a fit display name.
      std::string display_name = absl::StrJoin(name, " ");
      if (!api::ValidateText(display_name, "display_name", 100).ok()) display_name.clear();
      out.account = ToAccount(tx.exec_prepared1("identity_create_federated_account", tenant, display_name));
      tx.exec_prepared0("identity_federated_link", tenant, identity.provider, identity.subject, out.account.id(),
                        level);
      out.outcome = "created";
    }
    if (out.account.state() == v1::ACCOUNT_STATE_LOCKED) return absl::PermissionDeniedError("account: locked");
    if (out.outcome == "linked" || out.outcome == "created") {
      PublishProviderLink(tx, tenant, out.account.id(), identity.provider, "linked");
    }
    // The profile takes what the provider vouched for (accounts consumes it).
    events::v1::AccountIdentified e;
    e.set_tenant(tenant);
    e.set_account_id(out.account.id());
    e.set_provider(identity.provider);
    e.set_assurance_level(level);
    for (const auto& [field, value] : identity.attributes) (*e.mutable_attributes())[field] = value;
    *e.mutable_identified_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    events::Publish(tx, out.account.id(), e);
    return out;
  });
}

absl::StatusOr<std::vector<v1::LinkedProvider>> Store::ListLinkedProviders(const std::string& tenant,
                                                                           const std::string& account_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::LinkedProvider>> {
    std::vector<v1::LinkedProvider> out;
    for (const auto& r : tx.exec_prepared("identity_federated_list", tenant, account_id)) {
      v1::LinkedProvider p;
      p.set_provider(r["provider"].as<std::string>());
      p.set_level(federation::LevelOf(r["level"].as<std::string>()));
      *p.mutable_linked_at() = db::Micros(r["linked_at"]);
      *p.mutable_last_login_at() = db::Micros(r["last_login_at"]);
      out.push_back(std::move(p));
    }
    return out;
  });
}

absl::Status Store::UnlinkProvider(const std::string& tenant, const std::string& account_id,
                                   const std::string& provider) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    auto res = tx.exec_prepared("identity_federated_unlink", tenant, account_id, provider);
    if (res.empty()) return absl::NotFoundError("provider not linked");
    // Never the last way in: rolled back.
    if (res[0]["others"].as<int64_t>() == 0 && !res[0]["has_password"].as<bool>()) {
      return status::FieldConflict("provider", "last_login_method");
    }
    PublishProviderLink(tx, tenant, account_id, provider, "unlinked");
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::identity

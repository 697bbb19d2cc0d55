// The person's own data held by identity (docs/data-protection.md, "Export and erasure";
// ADR 0026): the export's identity section, the records kept after an erasure, and the
// erasure of the account, which starts every other service's erasure with its event.
#include <algorithm>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/app/retention.h"
#include "libs/db/row.h"
#include "libs/events/events.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"
#include "services/identity/federation/providers.h"
#include "services/identity/service.h"
#include "services/identity/store.h"

namespace stadtportal::identity {
namespace {

using google::protobuf::util::TimeUtil;

// Records of each kind in the export at most (an account has far fewer).
constexpr int kExportLimit = 10000;
// An erasure needs a log-in at most this old.
constexpr int64_t kRecentLoginSeconds = 10 * 60;

// A time column selected as microseconds: RFC 3339 in UTC, or null.
nlohmann::json Time(const pqxx::field& f) {
  if (f.is_null()) return nullptr;
  return TimeUtil::ToString(db::Micros(f));
}

nlohmann::json Seconds(int64_t unix_seconds) {
  return unix_seconds > 0 ? nlohmann::json(TimeUtil::ToString(TimeUtil::SecondsToTimestamp(unix_seconds)))
                          : nlohmann::json(nullptr);
}

std::string Micros(const char* column) {
  return std::string("(extract(epoch FROM ") + column + ") * 1000000)::bigint AS " + column;
}

}  // namespace

void Store::PreparePersonalData(pqxx::connection& conn) {
  conn.prepare("identity_export_account",
               "SELECT id::text AS id, coalesce(email, '') AS email, display_name, language, state, "
               "array_to_json(roles)::text AS roles, password_hash IS NOT NULL AS password_set, " +
                   Micros("created_at") + ", " + Micros("email_verified_at") +
                   " FROM accounts WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("identity_export_providers",
               "SELECT provider, subject, level, " + Micros("linked_at") + ", " + Micros("last_login_at") +
                   " FROM federated_identities WHERE tenant = $1 AND account_id = $2::uuid ORDER BY provider");
  conn.prepare("identity_export_totp",
               "SELECT " + Micros("confirmed_at") + " FROM totp_factors WHERE tenant = $1 AND account_id = $2::uuid");
  conn.prepare("identity_export_portals",
               "SELECT c.client_id::text AS client_id, p.name, array_to_json(c.scopes)::text AS scopes, " +
                   Micros("consented_at") +
                   " FROM op_consents c JOIN partner_clients p ON p.id = c.client_id "
                   "WHERE c.tenant = $1 AND c.account_id = $2::uuid ORDER BY c.consented_at, c.client_id");
  conn.prepare("identity_export_audit", "SELECT " + Micros("at") +
                                            ", service, action, outcome, targets::text AS targets FROM audit_log "
                                            "WHERE tenant = $1 AND actor = $2 ORDER BY id LIMIT $3");
  conn.prepare("identity_export_admin_access",
               "SELECT " + Micros("at") +
                   ", action, reason FROM admin_access_log WHERE tenant = $1 AND target_account_id = $2::uuid "
                   "ORDER BY id LIMIT $3");

  // The erasure, in one transaction; the audit log's guard lets it through.
  conn.prepare("identity_erase_begin", "SELECT set_config('stadtportal.erasure', 'on', true)");
  conn.prepare("identity_erase_lock",
               "SELECT coalesce(email, '') AS email, coalesce(email_normalized, '') AS email_normalized "
               "FROM accounts WHERE tenant = $1 AND id = $2::uuid FOR UPDATE");
  conn.prepare("identity_erase_consents", "DELETE FROM op_consents WHERE tenant = $1 AND account_id = $2::uuid");
  conn.prepare("identity_erase_mails",
               "DELETE FROM mail_outbox WHERE tenant = $1 AND lower(btrim(recipient)) = lower(btrim($2))");
  conn.prepare("identity_erase_own_audit", "DELETE FROM audit_log WHERE tenant = $1 AND actor = $2");
  // Others' entries about the person keep who did what, when, without naming them.
  conn.prepare(
      "identity_erase_audit_targets",
      "UPDATE audit_log SET targets = '{\"erased\": true}'::jsonb "
      "WHERE tenant = $1 AND jsonb_path_exists(targets, '$.** ? (@ == $v)', jsonb_build_object('v', $2::text))");
  conn.prepare(
      "identity_erase_admin_access",
      "UPDATE admin_access_log SET target_account_id = NULL WHERE tenant = $1 AND target_account_id = $2::uuid");
  // Tokens, second factor, enrolment codes and federated links go with it (ON DELETE CASCADE).
  conn.prepare("identity_erase_account", "DELETE FROM accounts WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("identity_erase_tombstone",
               "INSERT INTO erased_accounts (tombstone) VALUES ($1) ON CONFLICT (tombstone) DO NOTHING");
}

absl::StatusOr<nlohmann::json> Store::ExportAccount(const std::string& tenant, const std::string& account_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<nlohmann::json> {
    auto account = tx.exec_prepared("identity_export_account", tenant, account_id);
    if (account.empty()) return absl::NotFoundError("account not found");
    const auto& a = account[0];
    const nlohmann::json roles = nlohmann::json::parse(a["roles"].as<std::string>());
    nlohmann::json out = {
        {"account",
         {{"id", a["id"].as<std::string>()},
          {"email", a["email"].as<std::string>().empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(a["email"].as<std::string>())},
          {"email_verified_at", Time(a["email_verified_at"])},
          {"display_name", a["display_name"].as<std::string>()},
          {"language", a["language"].as<std::string>()},
          {"state", a["state"].as<std::string>()},
          {"locked", a["state"].as<std::string>() == "locked"},
          {"roles", roles},
          {"password", {{"set", a["password_set"].as<bool>()}}},
          {"created_at", Time(a["created_at"])}}}};

    nlohmann::json providers = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("identity_export_providers", tenant, account_id)) {
      providers.push_back({{"provider", r["provider"].as<std::string>()},
                           {"subject", r["subject"].as<std::string>()},
                           {"assurance_level", r["level"].as<std::string>()},
                           {"linked_at", Time(r["linked_at"])},
                           {"last_login_at", Time(r["last_login_at"])}});
    }
    out["linked_providers"] = std::move(providers);

    auto totp = tx.exec_prepared("identity_export_totp", tenant, account_id);
    const bool enrolled = !totp.empty() && !totp[0]["confirmed_at"].is_null();
    out["second_factor"] = {{"enrolled", enrolled},
                            {"enrolled_at", enrolled ? Time(totp[0]["confirmed_at"]) : nlohmann::json(nullptr)}};

    nlohmann::json portals = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("identity_export_portals", tenant, account_id)) {
      portals.push_back({{"client_id", r["client_id"].as<std::string>()},
                         {"name", r["name"].as<std::string>()},
                         {"scopes", nlohmann::json::parse(r["scopes"].as<std::string>())},
                         {"consented_at", Time(r["consented_at"])}});
    }
    out["connected_portals"] = std::move(portals);

    nlohmann::json audit = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("identity_export_audit", tenant, account_id, kExportLimit)) {
      audit.push_back({{"at", Time(r["at"])},
                       {"service", r["service"].as<std::string>()},
                       {"action", r["action"].as<std::string>()},
                       {"outcome", r["outcome"].as<std::string>()},
                       {"targets", nlohmann::json::parse(r["targets"].as<std::string>())}});
    }
    out["audit_log"] = std::move(audit);

    nlohmann::json lookups = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("identity_export_admin_access", tenant, account_id, kExportLimit)) {
      lookups.push_back({{"at", Time(r["at"])},
                         {"action", r["action"].as<std::string>()},
                         {"reason", r["reason"].as<std::string>()}});
    }
    out["administrator_lookups"] = std::move(lookups);
    return out;
  });
}

absl::StatusOr<ErasedAccount> Store::EraseAccount(
    const std::string& tenant, const std::string& account_id,
    const std::function<mail::Mail(const std::string& email, const google::protobuf::Timestamp& at)>& notice) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<ErasedAccount> {
    auto found = tx.exec_prepared("identity_erase_lock", tenant, account_id);
    if (found.empty()) return absl::NotFoundError("account not found");
    const std::string email = found[0]["email"].as<std::string>();
    const std::string normalized = found[0]["email_normalized"].as<std::string>();
    tx.exec_prepared("identity_erase_begin");
    ErasedAccount out;
    out.rows += tx.exec_prepared0("identity_erase_consents", tenant, account_id).affected_rows();
    std::vector<std::string> named = {account_id};
    for (const auto& address : {email, normalized}) {
      if (address.empty() || std::find(named.begin(), named.end(), address) != named.end()) continue;
      named.push_back(address);
      out.rows += tx.exec_prepared0("identity_erase_mails", tenant, address).affected_rows();
    }
    out.rows += tx.exec_prepared0("identity_erase_own_audit", tenant, account_id).affected_rows();
    for (const auto& value : named) {
      out.rows += tx.exec_prepared0("identity_erase_audit_targets", tenant, value).affected_rows();
    }
    out.rows += tx.exec_prepared0("identity_erase_admin_access", tenant, account_id).affected_rows();
    out.rows += tx.exec_prepared0("identity_erase_account", tenant, account_id).affected_rows();
    tx.exec_prepared0("identity_erase_tombstone", privacy::Tombstone(tenant, account_id));
    out.rows += events::ErasePublished(tx, named);

    out.requested_at = events::TransactionTime(tx);
    events::v1::PartyErasureRequested e;
    e.set_tenant(tenant);
    e.set_account_id(account_id);
    e.set_party_id(account_id);  // A person's party id is their account id.
    *e.mutable_requested_at() = out.requested_at;
    events::Publish(tx, account_id, e);
    if (!email.empty()) mail::Outbox::Enqueue(tx, tenant, notice(email, out.requested_at));
    return out;
  });
}

grpc::Status Service::ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                         common::v1::PersonalData* resp) {
  return grpcx::Handle(ctx, "ExportPersonalData", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    auto section = store_->ExportAccount(caller.tenant, *party);
    if (!section.ok()) return section.status();
    auto sessions = sessions_.ListOf(*party);
    if (!sessions.ok()) return sessions.status();
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : *sessions) {
      list.push_back(
          {{"created_at", Seconds(s.created)},
           {"authenticated_at", Seconds(s.authenticated)},
           {"last_used_at", Seconds(s.last_used)},
           {"expires_at", Seconds(s.expires)},
           {"method", s.method},
           {"assurance_level", federation::LevelName(s.level)},
           {"acting_for_party", s.acting_party.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.acting_party)}});
    }
    (*section)["sessions"] = std::move(list);
    resp->set_service("identity");
    resp->set_json(section->dump());
    return absl::OkStatus();
  });
}

grpc::Status Service::ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                          common::v1::RetainedRecords*) {
  return grpcx::Handle(ctx, "ListRetainedRecords", [&](const auth::Caller& caller) -> absl::Status {
    // Nothing of an account is kept by a retention rule; the erasure request itself is
    // named by RequestErasure.
    return privacy::OwnPerson(caller).status();
  });
}

grpc::Status Service::RequestErasure(grpc::ServerContext* ctx, const v1::RequestErasureRequest* req,
                                     v1::RequestErasureResponse* resp) {
  return grpcx::Handle(ctx, "RequestErasure", [&](const auth::Caller& caller) -> absl::Status {
    return grpcx::Respond(resp, Erase(caller, *req));
  });
}

absl::StatusOr<v1::RequestErasureResponse> Service::Erase(const auth::Caller& caller,
                                                          const v1::RequestErasureRequest& req) {
  auto party = privacy::OwnPerson(caller);
  if (!party.ok()) return party.status();
  // The caller's own session, as it stands now.
  auto session = CheckedSession(sessions_.ResolveRef(caller.session_ref));
  if (!session.ok()) return session.status();
  if (session->account_id() != *party || session->tenant().key() != caller.tenant) {
    return absl::UnauthenticatedError("session unknown or expired");
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (TimeUtil::TimestampToSeconds(session->authenticated_at()) < now - kRecentLoginSeconds) {
    return absl::FailedPreconditionError("log in again: the last log-in was more than 10 minutes ago");
  }
  auto enrolled = store_->TotpConfirmed(*party);
  if (!enrolled.ok()) return enrolled.status();
  if (*enrolled && session->second_factor() != v1::SECOND_FACTOR_PASSED) {
    return absl::FailedPreconditionError("log in again: pass the second factor (POST /api/v1/auth/totp/verify)");
  }
  auto account = store_->FindById(caller.tenant, *party);
  if (!account.ok()) return account.status();
  // Administrators' accountability stays: an operator revokes the role first.
  if (account->account.roles_size() > 0) {
    return status::FieldConflict("account", "administrative_role", "an operator revokes the role first");
  }
  const std::string typed = absl::AsciiStrToLower(absl::StripAsciiWhitespace(req.confirm()));
  const std::string email = absl::AsciiStrToLower(absl::StripAsciiWhitespace(account->account.email()));
  if (email.empty() || typed != email) {
    return status::MalformedField("confirm", "mismatch", "type your e-mail address");
  }

  // Deactivated at once: its sessions and its partner portals' grants end first (a
  // failure here changes nothing in the database; the person asks again).
  if (auto s = EndAllSessions(*party); !s.ok()) return s;
  const std::string language = account->account.language() == v1::LANGUAGE_EN ? "en" : "de";
  auto erased =
      store_->EraseAccount(caller.tenant, *party, [&](const std::string& to, const google::protobuf::Timestamp& at) {
        const std::string when =
            absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::FromUnixSeconds(at.seconds()), absl::UTCTimeZone());
        return ErasureNoticeMail(language, to, when, options_.public_url);
      });
  if (!erased.ok()) return erased.status();
  MailsQueued();
  app::CountRetention("account", "erased");
  log::Info("account erased", {{"account_id", *party}, {"rows", erased->rows}});

  v1::RequestErasureResponse out;
  out.set_account_id(*party);
  *out.mutable_requested_at() = erased->requested_at;
  auto* kept = out.add_retained();
  kept->set_service("identity");
  kept->set_kind("erasure_request");
  kept->set_id(*party);
  kept->set_rule("kept until every service applied the erasure (event window)");
  kept->set_legal_basis("Art. 17 (1), 19 GDPR");
  const absl::Time until = absl::FromUnixSeconds(erased->requested_at.seconds()) +
                           absl::FromChrono(std::chrono::duration_cast<std::chrono::seconds>(options_.event_retention));
  kept->set_until(absl::FormatTime("%Y-%m-%d", until, absl::UTCTimeZone()));
  return out;
}

}  // namespace stadtportal::identity

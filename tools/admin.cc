// stadtportal-admin: the operator command for what must work without an administrator
// (the first tenant admin) or without the API (a lost second factor). It talks to the
// identity schema directly, with the identity service's own configuration
// (STADTPORTAL_DATABASE_URL, STADTPORTAL_REDIS_URL, STADTPORTAL_TENANT, also as _FILE),
// so it runs beside `scripts/run` and inside the identity container (`kubectl exec`, a
// Job). Every change is written to the audit log in its own transaction.
//
//   stadtportal-admin [--by NAME] grant-role EMAIL ROLE      (prints an enrolment code)
//   stadtportal-admin [--by NAME] revoke-role EMAIL ROLE     (ends the account's sessions)
//   stadtportal-admin [--by NAME] reset-totp EMAIL           (ends the account's sessions,
//                                                             prints an enrolment code)
//   stadtportal-admin list-admins
//   stadtportal-admin audit-log [COUNT]
//
// Exit codes: 0 done, 1 failed (e.g. no such account), 2 configuration error, 64 usage.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "libs/api/api.h"
#include "libs/app/app.h"
#include "libs/auth/caller.h"
#include "libs/auth/roles.h"
#include "libs/auth/tokens.h"
#include "libs/db/pool.h"
#include "libs/redis/client.h"
#include "services/identity/sessions.h"
#include "services/identity/store.h"

namespace {

using namespace stadtportal;

constexpr char kUsage[] =
    "usage: stadtportal-admin [--by NAME] grant-role EMAIL ROLE\n"
    "       stadtportal-admin [--by NAME] revoke-role EMAIL ROLE\n"
    "       stadtportal-admin [--by NAME] reset-totp EMAIL\n"
    "       stadtportal-admin list-admins\n"
    "       stadtportal-admin audit-log [COUNT]\n"
    "roles: %s\n";

int Usage() {
  std::fprintf(stderr, kUsage, absl::StrJoin(auth::GrantableRoles(), ", ").c_str());
  return 64;
}

int Failed(const absl::Status& s) {
  std::fprintf(stderr, "stadtportal-admin: %s\n", std::string(s.message()).c_str());
  return 1;
}

const char* State(identity::v1::AccountState s) {
  switch (s) {
    case identity::v1::ACCOUNT_STATE_ACTIVE: return "active";
    case identity::v1::ACCOUNT_STATE_LOCKED: return "locked";
    default: return "pending_verification";
  }
}

// How long an enrolment code printed for an account stays valid.
constexpr std::chrono::seconds kEnrolmentCodeValid{7 * 24 * 3600};

// A name for the audit log: 1 to 64 of A-Z a-z 0-9 . _ @ -.
bool IsOperatorName(const std::string& name) {
  static const std::regex kName("^[A-Za-z0-9._@-]{1,64}$");
  return std::regex_match(name, kName);
}

// Who ran the command, for the audit log: --by, else the login name (if it is a valid
// name), else "operator".
std::string Operator(const std::string& by) {
  std::string name = by;
  if (name.empty()) {
    const char* user = std::getenv("USER");
    name = user != nullptr && IsOperatorName(user) ? user : "operator";
  }
  return "operator:" + name;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string by;
  if (args.size() >= 2 && args[0] == "--by") {
    by = args[1];
    args.erase(args.begin(), args.begin() + 2);
    if (!IsOperatorName(by)) {
      std::fprintf(stderr, "stadtportal-admin: --by: 1 to 64 of A-Z a-z 0-9 . _ @ -\n");
      return 64;
    }
  }
  if (args.empty()) return Usage();
  const std::string command = args[0];
  const bool changes_role = command == "grant-role" || command == "revoke-role";
  if (!(changes_role && args.size() == 3) && !(command == "reset-totp" && args.size() == 2) &&
      !(command == "list-admins" && args.size() == 1) && !(command == "audit-log" && args.size() <= 2)) {
    return Usage();
  }

  return app::Main("admin", [&](const config::Env& env) -> int {
    const std::string tenant = env.TenantKey("STADTPORTAL_TENANT", config::kDefaultTenant);
    auto pool_options = db::PoolOptions::FromEnv(env, "identity");
    pool_options.size = 1;
    // Sessions end on revocations; read before anything changes, so a missing setting
    // stops the command first.
    std::unique_ptr<redis::Client> redis;
    if (changes_role || command == "reset-totp") redis = std::make_unique<redis::Client>(redis::Options::FromEnv(env));
    db::Pool pool(pool_options, identity::Store::Prepare);
    identity::Store store(pool);

    audit::Entry entry;
    entry.tenant = tenant;
    entry.actor = Operator(by);

    if (changes_role || command == "reset-totp") {
      auto email = api::NormalizeEmail(args[1], "EMAIL");
      if (!email.ok()) return Failed(email.status());
      absl::StatusOr<identity::v1::Account> account;
      if (changes_role) {
        const std::string& role = args[2];
        if (const auto& roles = auth::GrantableRoles(); std::find(roles.begin(), roles.end(), role) == roles.end()) {
          return Usage();
        }
        const bool grant = command == "grant-role";
        entry.action = grant ? "role.grant" : "role.revoke";
        entry.targets = {{"role", role}};
        account = store.SetRole(tenant, *email, role, grant, entry);
      } else {
        entry.action = "totp.reset";
        account = store.ResetTotp(tenant, *email, entry);
      }
      if (!account.ok()) return Failed(account.status());
      if (command != "grant-role") {
        // A privilege taken away ends every session that carries it.
        identity::SessionStore sessions(*redis, {});
        if (auto s = sessions.DeleteAllOf(account->id()); !s.ok()) return Failed(s);
      }
      std::printf("%s: %s (account %s), roles now: %s\n", command.c_str(), account->email().c_str(),
                  account->id().c_str(), absl::StrJoin(account->roles(), ",").c_str());
      if (command == "revoke-role") return 0;
      // Enrolling a second factor takes a code from here, handed over outside the platform
      // (not by e-mail): whoever has only the password cannot enrol in the person's place.
      auto enrolled = store.TotpConfirmed(account->id());
      if (!enrolled.ok()) return Failed(enrolled.status());
      if (!*enrolled) {
        const std::string code = auth::RandomToken(15);
        if (auto s = store.SetEnrolmentCode(account->id(), auth::Sha256(code), kEnrolmentCodeValid); !s.ok()) {
          return Failed(s);
        }
        std::printf("enrolment code: %s\n", code.c_str());
        std::printf(
            "Give it to the person yourself (valid 7 days, once). The role applies from the account's next "
            "request, once its session has passed the second factor (POST /api/v1/auth/totp/enrol with this "
            "code, then confirm).\n");
      }
      return 0;
    }

    if (command == "list-admins") {
      auto admins = store.ListAdmins(tenant);
      if (!admins.ok()) return Failed(admins.status());
      for (const auto& a : *admins) {
        auto totp = store.TotpConfirmed(a.id());
        std::printf("%s\t%s\t%s\t%s\tsecond factor: %s\n", a.email().c_str(), a.id().c_str(),
                    absl::StrJoin(a.roles(), ",").c_str(), State(a.state()),
                    !totp.ok() ? "unknown"
                    : *totp    ? "enrolled"
                               : "not enrolled");
      }
      return 0;
    }

    int count = 50;
    if (args.size() == 2 && (!absl::SimpleAtoi(args[1], &count) || count < 1 || count > 10000)) return Usage();
    auto entries = store.ListAudit(tenant, 0, count, "", "");
    if (!entries.ok()) return Failed(entries.status());
    for (const auto& e : *entries) {
      std::printf("%s\n", nlohmann::json{{"id", e.id()},
                                         {"at", google::protobuf::util::TimeUtil::ToString(e.at())},
                                         {"service", e.service()},
                                         {"actor", e.actor()},
                                         {"session_ref", e.session_ref()},
                                         {"action", e.action()},
                                         {"targets", nlohmann::json::parse(e.targets_json(), nullptr, false)},
                                         {"outcome", e.outcome()},
                                         {"request_id", e.request_id()}}
                              .dump()
                              .c_str());
    }
    return 0;
  });
}

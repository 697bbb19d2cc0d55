// stadtportal-identity: log-in accounts and sessions. Wiring only; the logic is in service.cc and store.cc.
#include <cstdio>
#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include "libs/app/app.h"
#include "libs/events/events.h"
#include "libs/privacy/privacy.h"
#include "services/identity/consumers.h"
#include "services/identity/federation/upstreams.h"
#include "services/identity/service.h"

namespace {

using namespace stadtportal;

constexpr char kPublishErasureUsage[] = "usage: stadtportal-identity publish-erasure --tenant TENANT --account ID\n";

// The operator command `stadtportal-identity publish-erasure --tenant T --account ID`:
// publishes party.erasure_requested again for an account already erased, for a service
// that was down longer than the event window (docs/operations.md, "An erasure a service
// missed"). The id is the one the person's erasure answer named; only an account whose
// erasure identity remembers (its tombstone in erased_accounts) — never a living account,
// an organisation's id or any other. Exit codes: 0 done, 1 failed, 2 configuration error,
// 64 usage, 65 not an erased account.
int PublishErasure(const std::vector<std::string>& args) {
  static const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  if (args.size() != 4 || args[0] != "--tenant" || args[2] != "--account") {
    std::fputs(kPublishErasureUsage, stderr);
    return 64;
  }
  const std::string& tenant = args[1];
  const std::string& account = args[3];
  if (!config::IsTenantKey(tenant) || !std::regex_match(account, kUuid)) {
    std::fputs("stadtportal-identity: --tenant takes an eight-digit municipality key, --account an account id\n",
               stderr);
    return 64;
  }
  return app::Main("identity", [&](const config::Env& env) -> int {
    auto pool_options = db::PoolOptions::FromEnv(env, "identity");
    pool_options.size = 1;
    db::Pool pool(pool_options, identity::Store::Prepare);
    bool erased = false;
    auto s = pool.Transact([&](pqxx::work& tx) {
      erased =
          !tx.exec_params("SELECT 1 FROM erased_accounts WHERE tombstone = $1", privacy::Tombstone(tenant, account))
               .empty();
      if (!erased) return absl::OkStatus();
      events::v1::PartyErasureRequested e;
      e.set_tenant(tenant);
      e.set_account_id(account);
      e.set_party_id(account);
      *e.mutable_requested_at() = events::TransactionTime(tx);
      events::Publish(tx, account, e);
      return absl::OkStatus();
    });
    if (!s.ok()) {
      std::fprintf(stderr, "stadtportal-identity: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    if (!erased) {
      std::fputs(
          "stadtportal-identity: not an erased account of this tenant (a living account is erased by its person, "
          "DELETE /api/v1/me)\n",
          stderr);
      return 65;
    }
    std::printf("published party.erasure_requested for %s of %s\n", account.c_str(), tenant.c_str());
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "publish-erasure") == 0) {
    return PublishErasure(std::vector<std::string>(argv + 2, argv + argc));
  }
  return app::RunService(argc, argv, {"identity", 50051, 9101}, [](app::ServiceContext& ctx) {
    auto options = identity::Options::FromEnv(ctx.env(), ctx.tenant());
    auto& db = ctx.Database(identity::Store::Prepare);
    auto store = std::make_shared<identity::Store>(db);
    auto relay =
        std::make_shared<mail::Relay>(std::make_shared<mail::Outbox>(db), mail::SmtpOptions::FromEnv(ctx.env()));
    auto event_relay =
        std::make_shared<events::Relay>(db, ctx.Redis(), "identity", events::EventRetention::FromEnv(ctx.env()));
    // Identity keeps the audit log of every service (docs/adr/0016-operators.md).
    auto audit =
        std::make_shared<events::Consumer>(db, redis::Options::FromEnv(ctx.env()), "identity", identity::Consumers());
    ctx.OnServing([relay, event_relay, audit] {
      relay->Start();
      event_relay->Start();
      audit->Start();
    });
    ctx.OnStopping([relay, event_relay, audit] {
      audit->Stop();
      event_relay->Stop();
      relay->Stop();
    });
    auto service = std::make_unique<identity::Service>(
        store, ctx.Redis(), options, relay.get(),
        std::make_shared<identity::Clients>(
            db, ctx.Redis(), std::chrono::seconds(ctx.env().Int("STADTPORTAL_CLIENT_TOKEN_TTL_S", 300, 30, 3600))),
        identity::federation::FederationFromEnv(ctx.env(), options.public_url, ctx.Redis()));
    // The OpenID Provider's key rotation and back-channel logout deliveries.
    if (auto* op = service->openid_provider(); op != nullptr) {
      ctx.OnServing([op] { op->StartJobs(); });
      ctx.OnStopping([op] { op->StopJobs(); });
    }
    ctx.AddService<identity::v1::IdentityService>(std::move(service));
  });
}

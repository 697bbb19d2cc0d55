// stadtportal-accounts: persons, organisations and memberships. Wiring only; the logic is in service.cc and store.cc.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/app/retention.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"
#include "services/accounts/consumers.h"
#include "services/accounts/file.h"
#include "services/accounts/reminders.h"
#include "services/accounts/service.h"

namespace {

using namespace stadtportal;

constexpr char kRebuildUsage[] = "usage: stadtportal-accounts rebuild-file [--tenant TENANT]\n";

// The operator command `stadtportal-accounts rebuild-file [--tenant T]`: recomputes the
// citizen file's items from its journal in one transaction (all tenants without
// --tenant) with the service's own configuration (STADTPORTAL_DATABASE_URL, also as
// _FILE), and prints the counts. Exit codes: 0 done, 1 failed, 2 configuration error,
// 64 usage.
int RebuildFile(const std::vector<std::string>& args) {
  std::string tenant;
  if (args.size() == 2 && args[0] == "--tenant") {
    tenant = args[1];
    if (!config::IsTenantKey(tenant)) {
      std::fprintf(stderr, "stadtportal-accounts: --tenant takes an eight-digit municipality key\n");
      return 64;
    }
  } else if (!args.empty()) {
    std::fputs(kRebuildUsage, stderr);
    return 64;
  }
  return app::Main("accounts", [&](const config::Env& env) -> int {
    auto pool_options = db::PoolOptions::FromEnv(env, "accounts");
    pool_options.size = 1;
    db::Pool pool(pool_options, accounts::Store::Prepare);
    auto counts = accounts::RebuildFile(pool, tenant);
    if (!counts.ok()) {
      std::fprintf(stderr, "stadtportal-accounts: %s\n", std::string(counts.status().message()).c_str());
      return 1;
    }
    std::printf("rebuilt the citizen file%s: %lld events, %lld items, %lld refused\n",
                tenant.empty() ? "" : (" of " + tenant).c_str(), static_cast<long long>(counts->events),
                static_cast<long long>(counts->items), static_cast<long long>(counts->refused));
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "rebuild-file") == 0) {
    return RebuildFile(std::vector<std::string>(argv + 2, argv + argc));
  }
  return app::RunService(argc, argv, {"accounts", 50052, 9102}, [](app::ServiceContext& ctx) {
    accounts::Options options;
    options.default_tenant = ctx.tenant();
    options.public_url = ctx.env().String("STADTPORTAL_PUBLIC_URL", options.public_url);
    // A bad file stops the start, naming what is wrong.
    options.document_types =
        std::make_shared<const accounts::DocumentTypes>(accounts::DocumentTypes::FromEnv(ctx.env()));
    const auto remind_every = ctx.env().Millis("STADTPORTAL_REMINDER_INTERVAL_MS", std::chrono::minutes(15));
    auto clock = app::ClockFromEnv(ctx.env());
    auto& db = ctx.Database(accounts::Store::Prepare);
    auto store = std::make_shared<accounts::Store>(db);
    auto relay =
        std::make_shared<mail::Relay>(std::make_shared<mail::Outbox>(db), mail::SmtpOptions::FromEnv(ctx.env()));
    auto event_relay =
        std::make_shared<events::Relay>(db, ctx.Redis(), "accounts", events::EventRetention::FromEnv(ctx.env()));
    // Verified addresses from identity: invitations are accepted only by their addressee.
    // And documents departments record on approval, the citizen file, erasures.
    auto verified = std::make_shared<events::Consumer>(db, redis::Options::FromEnv(ctx.env()), "accounts",
                                                       accounts::Consumers(options.document_types));
    // Reminders before documents expire, on every replica: each is claimed by one
    // (FOR UPDATE SKIP LOCKED) and sent once.
    auto job = std::make_shared<accounts::ReminderJob>(store, options.document_types, clock);
    auto reminders = std::make_shared<app::Periodic>("document-reminders", remind_every, [job] {
      auto sent = job->RunOnce();
      if (!sent.ok()) {
        log::Warn("document reminders failed", {{"error", std::string(sent.status().message())}});
      } else if (*sent > 0) {
        log::Info("document reminders sent", {{"count", std::to_string(*sent)}});
      }
    });
    // Documents twelve months past their expiry go, with their reminders.
    auto retention = app::RetentionPeriodic("document", app::RetentionInterval(ctx.env()), [store, clock] {
      return app::RunRetention(clock, "document", "deleted",
                               [store](absl::Time now, int limit) { return store->EndDocumentRetention(now, limit); });
    });
    ctx.OnServing([relay, event_relay, verified, reminders, retention] {
      relay->Start();
      event_relay->Start();
      verified->Start();
      reminders->Start();
      retention->Start();
    });
    ctx.OnStopping([relay, event_relay, verified, reminders, retention] {
      retention->Stop();
      reminders->Stop();
      verified->Stop();
      event_relay->Stop();
      relay->Stop();
    });
    // Switching the acting party has identity rotate the session, asked as the platform
    // service with accounts' own key (STADTPORTAL_ACCOUNTS_SIGNING_KEY).
    ctx.AddService<accounts::v1::AccountsService>(std::make_unique<accounts::Service>(
        store, options, relay.get(), grpcx::MakeChannel(ctx.env().Required("STADTPORTAL_IDENTITY_ADDR")),
        auth::Signer::FromEnv(ctx.env(), "accounts")));
  });
}

// stadtportal-accounts: persons, organisations and memberships. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/app/retention.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"
#include "services/accounts/consumers.h"
#include "services/accounts/reminders.h"
#include "services/accounts/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
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
    // And documents departments record on approval.
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

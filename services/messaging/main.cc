// stadtportal-messaging: the secure mailbox. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "libs/app/retention.h"
#include "libs/events/events.h"
#include "libs/mail/mail.h"
#include "services/messaging/consumers.h"
#include "services/messaging/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"messaging", 50055, 9105}, [](app::ServiceContext& ctx) {
    auto options = messaging::Options::FromEnv(ctx.env(), ctx.tenant());
    auto templates = messaging::Templates::Embedded();
    if (!templates.ok()) throw config::Error(std::string(templates.status().message()));
    auto& db = ctx.Database([](pqxx::connection& c) {
      messaging::Store::Prepare(c);
      mail::Outbox::Prepare(c);
    });
    auto store = std::make_shared<messaging::Store>(db);
    auto mails =
        std::make_shared<mail::Relay>(std::make_shared<mail::Outbox>(db), mail::SmtpOptions::FromEnv(ctx.env()));
    // Every message into a mailbox and every reply, for the citizen file (message.received).
    auto relay =
        std::make_shared<events::Relay>(db, ctx.Redis(), "messaging", events::EventRetention::FromEnv(ctx.env()));
    // Where notifications go: verified addresses from identity, preferences from accounts.
    // And reminders before documents expire from accounts; erasures from identity.
    auto contacts = std::make_shared<events::Consumer>(
        db, redis::Options::FromEnv(ctx.env()), "messaging",
        messaging::Consumers(std::make_shared<const messaging::Templates>(*templates), options));
    // Threads past retain_until go, with their messages and files.
    auto retention = app::RetentionPeriodic(
        "thread", app::RetentionInterval(ctx.env()), [store, clock = app::ClockFromEnv(ctx.env())] {
          return app::RunRetention(clock, "thread", "deleted",
                                   [store](absl::Time now, int limit) { return store->EndRetention(now, limit); });
        });
    ctx.OnServing([relay, mails, contacts, retention] {
      relay->Start();
      mails->Start();
      contacts->Start();
      retention->Start();
    });
    ctx.OnStopping([relay, mails, contacts, retention] {
      retention->Stop();
      contacts->Stop();
      mails->Stop();
      relay->Stop();
    });
    ctx.AddService<messaging::v1::MessagingService>(
        std::make_unique<messaging::Service>(store, *std::move(templates), options, mails.get()));
  });
}

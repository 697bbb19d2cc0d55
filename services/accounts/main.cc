// stadtportal-accounts: persons, organisations and memberships. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "services/accounts/consumers.h"
#include "services/accounts/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"accounts", 50052, 9102}, [](app::ServiceContext& ctx) {
    accounts::Options options;
    options.default_tenant = ctx.tenant();
    options.public_url = ctx.env().String("STADTPORTAL_PUBLIC_URL", options.public_url);
    auto& db = ctx.Database(accounts::Store::Prepare);
    auto store = std::make_shared<accounts::Store>(db);
    auto relay =
        std::make_shared<mail::Relay>(std::make_shared<mail::Outbox>(db), mail::SmtpOptions::FromEnv(ctx.env()));
    auto event_relay = std::make_shared<events::Relay>(db, ctx.Redis(), "accounts");
    // Verified addresses from identity: invitations are accepted only by their addressee.
    auto verified =
        std::make_shared<events::Consumer>(db, redis::Options::FromEnv(ctx.env()), "accounts", accounts::Consumers());
    ctx.OnServing([relay, event_relay, verified] {
      relay->Start();
      event_relay->Start();
      verified->Start();
    });
    ctx.OnStopping([relay, event_relay, verified] {
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

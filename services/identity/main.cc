// stadtportal-identity: log-in accounts and sessions. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "libs/events/events.h"
#include "services/identity/consumers.h"
#include "services/identity/federation/upstreams.h"
#include "services/identity/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
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

// stadtportal-payment: fees paid online. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/app/retention.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "services/payment/consumers.h"
#include "services/payment/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"payment", 50054, 9104}, [](app::ServiceContext& ctx) {
    const auto& env = ctx.env();
    auto options = payment::Options::FromEnv(env, ctx.tenant());
    auto providers = payment::ProvidersFromEnv(env);
    const auto reconcile_every = env.Millis("STADTPORTAL_PAYMENT_RECONCILE_INTERVAL_MS", std::chrono::minutes(1));
    const auto reconcile_after = std::chrono::seconds(env.Int("STADTPORTAL_PAYMENT_RECONCILE_AFTER_S", 300, 0, 86400));

    // Payment asks submission what a payment is for as the platform service, with its own
    // key (STADTPORTAL_PAYMENT_SIGNING_KEY), which services trust for nothing else.
    auto signer = auth::Signer::FromEnv(env, "payment");
    auto& db = ctx.Database(payment::Store::Prepare);
    auto store = std::make_shared<payment::Store>(db);
    auto service = std::make_unique<payment::Service>(
        store, providers, options, grpcx::MakeChannel(env.Required("STADTPORTAL_SUBMISSION_ADDR")), signer);
    auto* core = service.get();  // Owned by the server, which outlives the jobs.
    auto relay =
        std::make_shared<events::Relay>(db, ctx.Redis(), "payment", events::EventRetention::FromEnv(ctx.env()));
    // The erasure of a person (party.erasure_requested).
    auto consumer =
        std::make_shared<events::Consumer>(db, redis::Options::FromEnv(env), "payment", payment::Consumers());
    auto reconcile = std::make_shared<app::Periodic>("payment-reconciliation", reconcile_every,
                                                     [core, reconcile_after] { core->ReconcileNow(reconcile_after); });
    // Cash records ten years after the end of their year: anonymised.
    auto retention =
        app::RetentionPeriodic("payment", app::RetentionInterval(env), [store, clock = app::ClockFromEnv(env)] {
          return app::RunRetention(clock, "payment", "anonymised",
                                   [store](absl::Time now, int limit) { return store->EndRetention(now, limit); });
        });
    ctx.OnServing([relay, consumer, reconcile, retention] {
      relay->Start();
      consumer->Start();
      reconcile->Start();
      retention->Start();
    });
    ctx.OnStopping([relay, consumer, reconcile, retention] {
      retention->Stop();
      reconcile->Stop();
      consumer->Stop();
      relay->Stop();
    });
    ctx.AddService<payment::v1::PaymentService>(std::move(service));
  });
}

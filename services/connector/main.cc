// stadtportal-connector: delivery to the departments' systems. Wiring only; the logic is in
// service.cc (gRPC), delivery_worker.cc (push), consumers.cc (events) and store.cc.
#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/app/retention.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "services/connector/consumers.h"
#include "services/connector/delivery_worker.h"
#include "services/connector/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"connector", 50056, 9106}, [](app::ServiceContext& ctx) {
    const auto& env = ctx.env();
    auto options = connector::Options::FromEnv(env, ctx.tenant());
    // The connector calls submission and messaging as the platform service, with its own
    // key (STADTPORTAL_CONNECTOR_SIGNING_KEY), which services trust for nothing else.
    auto signer = auth::Signer::FromEnv(env, "connector");
    auto& db = ctx.Database(connector::Store::Prepare);
    auto store = std::make_shared<connector::Store>(db);
    auto service = std::make_unique<connector::Service>(
        store, options, grpcx::MakeChannel(env.Required("STADTPORTAL_SUBMISSION_ADDR")),
        grpcx::MakeChannel(env.Required("STADTPORTAL_MESSAGING_ADDR")), signer);
    auto* core = service.get();  // Owned by the server, which outlives the jobs.
    auto consumer =
        std::make_shared<events::Consumer>(db, redis::Options::FromEnv(env), "connector", connector::Consumers());
    auto relay =
        std::make_shared<events::Relay>(db, ctx.Redis(), "connector", events::EventRetention::FromEnv(ctx.env()));
    auto worker = std::make_shared<connector::DeliveryWorker>(
        store, options,
        [core](const std::string& tenant, const std::string& id) { return core->Snapshot(tenant, id); });
    // Snapshots of deliveries the department acknowledged, some days later: cleared.
    auto retention = app::RetentionPeriodic("delivery-snapshot", app::RetentionInterval(env),
                                            [store, clock = app::ClockFromEnv(env), days = options.snapshot_days] {
                                              return app::RunRetention(clock, "delivery_snapshot", "deleted",
                                                                       [store, days](absl::Time now, int limit) {
                                                                         return store->ClearSnapshots(now, days, limit);
                                                                       });
                                            });
    auto gauges = std::make_shared<app::Periodic>("delivery-gauges", std::chrono::seconds(5),
                                                  [worker] { worker->UpdateGauges(); });
    ctx.OnServing([consumer, relay, worker, gauges, retention] {
      consumer->Start();
      relay->Start();
      worker->Start();
      gauges->Start();
      retention->Start();
    });
    ctx.OnStopping([consumer, relay, worker, gauges, retention] {
      retention->Stop();
      worker->Stop();
      gauges->Stop();
      consumer->Stop();
      relay->Stop();
    });
    ctx.AddService<connector::v1::ConnectorService>(std::move(service));
  });
}

// stadtportal-connector: delivery to the departments' systems. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
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
    auto ready = std::make_shared<events::Consumer>(
        db, redis::Options::FromEnv(env), "connector", std::vector<std::string>{"submission.ready_for_delivery"},
        [](pqxx::work& tx, const events::Event& e) {
          const std::string tenant = e.payload.value("tenant", "");
          const std::string destination = e.payload.value("destination", "");
          connector::Store::AddDelivery(tx, tenant, e.key, destination, e.payload.value("party_id", ""),
                                        e.payload.value("reference", ""), e.payload.value("service_id", ""));
          if (!connector::Store::FindDestination(tx, tenant, destination)) {
            // Nowhere to deliver: an operator sees it among the dead letters at once.
            connector::Store::Reschedule(tx, e.key, 0, "unknown destination " + destination, true);
          }
          return absl::OkStatus();
        });
    auto relay = std::make_shared<events::Relay>(db, ctx.Redis(), "connector");
    auto worker = std::make_shared<app::Periodic>(
        "deliveries", env.Millis("STADTPORTAL_CONNECTOR_POLL_MS", std::chrono::milliseconds(200)),
        [core] { core->DeliverDue(); });
    auto gauges =
        std::make_shared<app::Periodic>("delivery-gauges", std::chrono::seconds(5), [core] { core->UpdateGauges(); });
    ctx.OnServing([ready, relay, worker, gauges] {
      ready->Start();
      relay->Start();
      worker->Start();
      gauges->Start();
    });
    ctx.OnStopping([ready, relay, worker, gauges] {
      worker->Stop();
      gauges->Stop();
      ready->Stop();
      relay->Stop();
    });
    ctx.AddService<connector::v1::ConnectorService>(std::move(service));
  });
}

// stadtportal-connector: delivery to back-office systems. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "services/connector/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"connector", 50056, 9106}, [](app::ServiceContext& ctx) {
    auto store = std::make_shared<connector::Store>(ctx.Database(connector::Store::Prepare));
    ctx.AddService<connector::v1::ConnectorService>(std::make_unique<connector::Service>(store, ctx.tenant()));
  });
}

// stadtportal-messaging: the secure mailbox. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "services/messaging/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"messaging", 50055, 9105}, [](app::ServiceContext& ctx) {
    auto store = std::make_shared<messaging::Store>(ctx.Database(messaging::Store::Prepare));
    ctx.AddService<messaging::v1::MessagingService>(std::make_unique<messaging::Service>(store, ctx.tenant()));
  });
}

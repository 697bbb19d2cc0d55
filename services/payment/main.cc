// stadtportal-payment: fees paid online. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "services/payment/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"payment", 50054, 9104}, [](app::ServiceContext& ctx) {
    auto store = std::make_shared<payment::Store>(ctx.Database(payment::Store::Prepare));
    ctx.AddService<payment::v1::PaymentService>(std::make_unique<payment::Service>(store, ctx.tenant()));
  });
}

// stadtportal-accounts: persons and organisations. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "services/accounts/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"accounts", 50052, 9102}, [](app::ServiceContext& ctx) {
    auto store = std::make_shared<accounts::Store>(ctx.Database(accounts::Store::Prepare));
    ctx.AddService<accounts::v1::AccountsService>(std::make_unique<accounts::Service>(store, ctx.tenant()));
  });
}

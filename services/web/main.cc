// stadtportal-web: the citizens' portal in the browser. Wiring only; the logic is in service.cc.
#include "libs/app/app.h"
#include "libs/grpc/server.h"
#include "libs/log/log.h"
#include "services/web/service.h"

int main() {
  using namespace stadtportal;
  return app::Main("web", [](const config::Env& env) -> int {
    auto options = web::Options::FromEnv(env);
    redis::Client redis(redis::Options::FromEnv(env));
    web::Service service(options, &redis);
    auto port = service.Start();
    if (!port.ok()) {
      log::Error("cannot start", {{"error", std::string(port.status().message())}});
      return 1;
    }
    grpcx::WaitForTerminationSignal();
    service.Shutdown();
    return 0;
  });
}

// stadtportal-gateway: the REST edge. Wiring only; the logic is in service.cc.
#include "libs/app/app.h"
#include "libs/grpc/server.h"
#include "libs/log/log.h"
#include "services/gateway/service.h"

int main() {
  using namespace stadtportal;
  return app::Main("gateway", [](const config::Env& env) -> int {
    auto options = gateway::Options::FromEnv(env);
    auto signer = auth::Signer::FromEnv(env);
    redis::Client redis(redis::Options::FromEnv(env));
    gateway::Service service(options, signer, &redis);
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

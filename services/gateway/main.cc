// stadtportal-gateway: the REST edge. Wiring only; the logic is in service.cc.
#include "libs/app/app.h"
#include "libs/grpc/server.h"
#include "libs/log/log.h"
#include "services/gateway/service.h"

int main() {
  using namespace stadtportal;
  return app::Main("gateway", [](const config::Env& env) -> int {
    gateway::Service service(gateway::Options::FromEnv(env));
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

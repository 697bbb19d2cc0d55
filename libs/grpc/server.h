#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/service_type.h>

#include "absl/status/status.h"
#include "libs/config/config.h"

namespace stadtportal::grpcx {

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 0;  // 0: pick a free port (tests).
  // Upper bound on threads serving calls (the synchronous server's ResourceQuota).
  int max_threads = 32;
  // Time granted to in-flight calls after SIGTERM before they are cancelled.
  std::chrono::milliseconds shutdown_grace{8000};
  // Time between going NOT_SERVING and refusing new calls, so load balancers notice.
  std::chrono::milliseconds shutdown_delay{0};
  // Connections are closed after this age, so clients spread load over new replicas.
  std::chrono::milliseconds max_connection_age{300000};
  // Largest request or response (attachments travel in one message).
  int max_message_bytes = 32 << 20;
  // Server reflection lists every method to anyone who can connect: off unless asked
  // for (local development and debugging).
  bool reflection = false;

  // STADTPORTAL_LISTEN_HOST, STADTPORTAL_GRPC_PORT, STADTPORTAL_GRPC_MAX_THREADS,
  // STADTPORTAL_SHUTDOWN_GRACE_MS, STADTPORTAL_SHUTDOWN_DELAY_MS, STADTPORTAL_GRPC_MAX_CONNECTION_AGE_MS,
  // STADTPORTAL_GRPC_MAX_MESSAGE_BYTES, STADTPORTAL_GRPC_REFLECTION.
  static ServerOptions FromEnv(const config::Env& env, uint16_t default_port);
};

// A gRPC server with what every stadtportal service needs: grpc.health.v1 (per service
// and overall), reflection when enabled, RED metrics, keepalive and connection-age limits, and a
// graceful shutdown (NOT_SERVING → stop accepting → drain in-flight calls → exit).
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Registers a service; `full_name` is the generated class's service_full_name().
  void AddService(std::unique_ptr<grpc::Service> service, std::string full_name);
  absl::Status Start();
  uint16_t port() const { return port_; }

  // Idempotent; returns when in-flight calls finished or the grace period ended.
  void Shutdown();
  void Wait();

 private:
  ServerOptions options_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::vector<std::string> names_;
  std::unique_ptr<grpc::Server> server_;
  uint16_t port_ = 0;
  bool shut_down_ = false;
};

// Blocks SIGTERM and SIGINT in the calling thread and every thread it creates later;
// call first in main, before any thread exists.
void BlockTerminationSignals();
// Waits for SIGTERM or SIGINT (blocked before) and returns its number.
int WaitForTerminationSignal();

}  // namespace stadtportal::grpcx

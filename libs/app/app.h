#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "libs/config/config.h"
#include "libs/db/pool.h"
#include "libs/grpc/server.h"
#include "libs/redis/client.h"

namespace stadtportal::app {

// The uniform start of every stadtportal binary: blocks SIGTERM/SIGINT (a dedicated
// wait handles them), reads STADTPORTAL_LOG_LEVEL and initialises JSON logging, runs
// `body`. A configuration error exits 2 with one line on stderr naming the variable;
// any other escaped exception exits 1 after one log line.
int Main(const std::string& service, const std::function<int(const config::Env&)>& body);

struct ServiceSpec {
  std::string name;  // "identity": also the PostgreSQL schema.
  uint16_t grpc_port;
  uint16_t admin_port;
};

// Handed to a service's wiring function: configuration, tenant, database and the server.
class ServiceContext {
 public:
  ServiceContext(const config::Env& env, ServiceSpec spec, grpcx::ServerOptions server_options);

  const config::Env& env() const { return env_; }
  // STADTPORTAL_TENANT: the municipality this deployment serves (default 09564000).
  const std::string& tenant() const { return tenant_; }
  // The service's connection pool (search_path = its schema), created on first use.
  db::Pool& Database(db::Prepare prepare);
  // The service's Redis client (STADTPORTAL_REDIS_URL), created on first use.
  redis::Client& Redis();
  grpcx::Server& server() { return server_; }

  // Work that needs the migrated schema and must finish before the first call is
  // served (e.g. publishing compiled-in data); an error stops the process (exit 1).
  void OnStarting(std::function<absl::Status()> step) { on_starting_.push_back(std::move(step)); }
  absl::Status Starting();
  // Background work: started once the server serves, stopped before it drains.
  void OnServing(std::function<void()> start) { on_serving_.push_back(std::move(start)); }
  void OnStopping(std::function<void()> stop) { on_stopping_.push_back(std::move(stop)); }
  void Serving();
  void Stopping();

  // Registers the implementation of the generated service `Generated`.
  template <typename Generated>
  void AddService(std::unique_ptr<grpc::Service> impl) {
    server_.AddService(std::move(impl), Generated::service_full_name());
  }

 private:
  const config::Env& env_;
  ServiceSpec spec_;
  std::string tenant_;
  std::unique_ptr<db::Pool> pool_;  // Declared before server_: outlives the services.
  std::unique_ptr<redis::Client> redis_;
  std::vector<std::function<absl::Status()>> on_starting_;
  std::vector<std::function<void()>> on_serving_;
  std::vector<std::function<void()>> on_stopping_;
  grpcx::Server server_;
};

// main() of a gRPC service: Main() plus migrations (STADTPORTAL_MIGRATE_ON_START, or
// only them with --migrate-only), metrics on STADTPORTAL_ADMIN_PORT, `wire` to create
// store and service, then serve until SIGTERM and drain.
int RunService(int argc, char** argv, const ServiceSpec& spec, const std::function<void(ServiceContext&)>& wire);

}  // namespace stadtportal::app

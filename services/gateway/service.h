#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "absl/status/statusor.h"
#include "libs/config/config.h"
#include "libs/http/server.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

namespace stadtportal::gateway {

// A downstream gRPC service the gateway routes to and watches for readiness.
struct Downstream {
  std::string name;          // "identity"
  std::string target;        // gRPC target, e.g. dns:///identity:50051
  std::string service_name;  // Fully qualified gRPC service, asked in health checks.
};

struct Options {
  http::ServerOptions http;
  std::vector<Downstream> downstreams;
  std::chrono::milliseconds grpc_deadline{3000};
  std::chrono::milliseconds ready_timeout{800};
  std::chrono::milliseconds shutdown_delay{0};

  // STADTPORTAL_{IDENTITY,ACCOUNTS,SUBMISSION,PAYMENT,MESSAGING,CONNECTOR}_ADDR (required),
  // STADTPORTAL_GRPC_DEADLINE_MS, STADTPORTAL_READY_TIMEOUT_MS, STADTPORTAL_SHUTDOWN_DELAY_MS
  // and the HTTP server options.
  static Options FromEnv(const config::Env& env);
};

// The REST edge: routes /api/v1 to the services over gRPC, answers /healthz, /readyz
// and /metrics, and maps every error to application/problem+json.
class Service {
 public:
  explicit Service(Options options);

  // Binds and serves on a background thread; returns the bound port.
  absl::StatusOr<uint16_t> Start();
  // /readyz turns 503 at once; after the shutdown delay the listener closes and
  // in-flight requests finish.
  void Shutdown();

  // "METHOD /path" of every route, for the OpenAPI contract test.
  std::vector<std::string> Routes() const { return router_.Routes(); }

 private:
  void AddRoutes();
  void Readyz(httplib::Response& res);
  void ListServices(const httplib::Request& req, httplib::Response& res);
  void GetService(const std::string& id, httplib::Response& res);

  Options options_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::unique_ptr<submission::v1::SubmissionService::Stub> submission_;
  http::Router router_;
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace stadtportal::gateway

#include "libs/grpc/server.h"

#include <pthread.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <thread>

#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::grpcx {
namespace {

namespace gx = grpc::experimental;

// Method label for metrics: the full method name if this binary knows it (bounded
// set), otherwise "unknown" so that clients cannot create label values at will.
std::string MethodLabel(const char* method) {
  std::string m = method != nullptr ? method : "";
  if (m.rfind("/grpc.health.v1.Health/", 0) == 0) return m;
  if (m.size() > 1 && m[0] == '/') {
    std::string dotted = absl::StrReplaceAll(m.substr(1), {{"/", "."}});
    if (google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(dotted) != nullptr) return m;
  }
  return "unknown";
}

metrics::Red& GrpcRed() {
  static metrics::Red red("grpc_server", "gRPC calls");
  return red;
}

std::string CodeLabel(grpc::StatusCode code) { return absl::StatusCodeToString(static_cast<absl::StatusCode>(code)); }

// Calls being handled, except health Watch streams (they last as long as the caller's
// channel): what a shutdown waits for before it ends the rest.
std::atomic<int> calls_in_flight{0};
constexpr char kHealthWatch[] = "/grpc.health.v1.Health/Watch";

class RedInterceptor : public gx::Interceptor {
 public:
  explicit RedInterceptor(gx::ServerRpcInfo* info)
      : method_(MethodLabel(info->method())),
        start_(std::chrono::steady_clock::now()),
        counted_(method_ != kHealthWatch) {
    GrpcRed().Started(method_);
    if (counted_) ++calls_in_flight;
  }

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      code_ = methods->GetSendStatus().error_code();
    }
    methods->Proceed();
  }

  ~RedInterceptor() override {
    if (counted_) --calls_in_flight;
    GrpcRed().Handled(method_, CodeLabel(code_), std::chrono::steady_clock::now() - start_);
  }

 private:
  std::string method_;
  std::chrono::steady_clock::time_point start_;
  bool counted_;
  // Stays CANCELLED if the call ends without a status being sent.
  grpc::StatusCode code_ = grpc::StatusCode::CANCELLED;
};

class RedInterceptorFactory : public gx::ServerInterceptorFactoryInterface {
 public:
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override { return new RedInterceptor(info); }
};

// Decides on server reflection for one builder. Linking grpc++_reflection registers
// its plugin for every builder in the process (a static initializer), so the option
// removes whatever plugin that added and adds one back only when reflection is wanted.
class ReflectionOption : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    const std::string name = grpc::reflection::ProtoServerReflectionPlugin().name();
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [&](const auto& p) { return p != nullptr && p->name() == name; }),
                   plugins->end());
    if (enabled_) plugins->push_back(std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
  }

 private:
  bool enabled_;
};

}  // namespace

ServerOptions ServerOptions::FromEnv(const config::Env& env, uint16_t default_port) {
  ServerOptions o;
  o.host = env.String("STADTPORTAL_LISTEN_HOST", o.host);
  o.port = env.Port("STADTPORTAL_GRPC_PORT", default_port);
  o.max_threads = static_cast<int>(env.Int("STADTPORTAL_GRPC_MAX_THREADS", o.max_threads, 2, 1024));
  o.shutdown_grace = env.Millis("STADTPORTAL_SHUTDOWN_GRACE_MS", o.shutdown_grace);
  o.shutdown_delay = env.Millis("STADTPORTAL_SHUTDOWN_DELAY_MS", o.shutdown_delay);
  o.max_connection_age = env.Millis("STADTPORTAL_GRPC_MAX_CONNECTION_AGE_MS", o.max_connection_age);
  o.max_message_bytes =
      static_cast<int>(env.Int("STADTPORTAL_GRPC_MAX_MESSAGE_BYTES", o.max_message_bytes, 1 << 20, 1 << 30));
  o.reflection = env.Bool("STADTPORTAL_GRPC_REFLECTION", o.reflection);
  return o;
}

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { Shutdown(); }

void Server::AddService(std::unique_ptr<grpc::Service> service, std::string full_name) {
  services_.push_back(std::move(service));
  names_.push_back(std::move(full_name));
}

absl::Status Server::Start() {
  GrpcRed();  // Register the metric families now, so /metrics shows them before the first call.
  grpc::EnableDefaultHealthCheckService(true);

  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(options_.reflection));
  int selected_port = 0;
  builder.AddListeningPort(absl::StrCat(options_.host, ":", options_.port), grpc::InsecureServerCredentials(),
                           &selected_port);
  grpc::ResourceQuota quota("stadtportal-server");
  quota.SetMaxThreads(options_.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // A thread that served a call waits for the next one instead of exiting: with only a
  // few pollers allowed, every call beyond them made and ended a thread of its own.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, options_.max_threads);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, static_cast<int>(options_.max_connection_age.count()));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  for (auto& s : services_) builder.RegisterService(s.get());

  std::vector<std::unique_ptr<gx::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RedInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  server_ = builder.BuildAndStart();
  if (server_ == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.host, ":", options_.port));
  }
  port_ = static_cast<uint16_t>(selected_port);
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const auto& n : names_) health->SetServingStatus(n, true);
  log::Info("grpc server listening", {{"port", port_}, {"services", names_}, {"reflection", options_.reflection}});
  return absl::OkStatus();
}

void Server::Shutdown() {
  if (server_ == nullptr || shut_down_) return;
  shut_down_ = true;
  log::Info("shutting down: not serving, draining in-flight calls",
            {{"grace_ms", options_.shutdown_grace.count()}, {"delay_ms", options_.shutdown_delay.count()}});
  // Health first, so that probes and load balancers stop sending new calls.
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(false);
  for (const auto& n : names_) health->SetServingStatus(n, false);
  if (options_.shutdown_delay.count() > 0) std::this_thread::sleep_for(options_.shutdown_delay);
  health->Shutdown();
  // Callers with health checking (every stadtportal channel) send nothing new by now.
  // Calls in flight finish (up to the grace period); health Watch streams never do on
  // their own, so the server is shut down only then, ending them at once.
  const auto until = std::chrono::steady_clock::now() + options_.shutdown_grace;
  while (calls_in_flight.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Refuses new calls; a call that arrived in the last moment gets a short while.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  log::Info("grpc server stopped");
}

void Server::Wait() {
  if (server_ != nullptr) server_->Wait();
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace stadtportal::grpcx

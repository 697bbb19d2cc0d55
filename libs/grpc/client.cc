#include "libs/grpc/client.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/auth/caller.h"
#include "libs/db/network_guard.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::grpcx {
namespace {

// gRPC's synchronous client handles socket events (a finished TCP connect, the server's
// first frames) only while some thread of the process polls: one waiting for its call,
// a server's own threads, or the library's backup poller, which runs every 5 s. A call
// fails at once while its channel is in TRANSIENT_FAILURE, so a process without a gRPC
// server (the gateway) left new connections to the backup poller: one connection every
// 5 s, a minute until all six services were reachable. This thread waits on an empty
// completion queue for the whole life of the process (never shut down; the process's
// exit ends it), so there is always a poller.
class ClientPoller {
 public:
  ClientPoller()
      : thread_([this] {
          void* tag = nullptr;
          bool ok = false;
          while (cq_.Next(&tag, &ok)) {
          }
        }) {}

 private:
  grpc::CompletionQueue cq_;
  std::thread thread_;
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  static ClientPoller* const poller = new ClientPoller();
  (void)poller;
  grpc::ChannelArguments args;
  // round_robin over every address, and client-side health checking: a replica that
  // reports NOT_SERVING (from SIGTERM on) gets no new calls while it drains, so calls
  // are not cut off when it stops.
  args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}],
                                "healthCheckConfig": {"serviceName": ""}})");
  // Quick reconnects to a restarted replica. GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is left
  // alone: gRPC takes it as the time a connection attempt may take, and at 100 ms a
  // busy machine cut every attempt short ("tcp handshaker shutdown") for a minute.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Attachments travel in one message (the servers accept the same).
  args.SetMaxReceiveMessageSize(32 << 20);
  args.SetMaxSendMessageSize(32 << 20);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<grpc::ClientContext> NewClientContext(std::chrono::milliseconds deadline,
                                                      const std::string& caller_token) {
  db::ExpectNoTransaction("grpc");
  auto ctx = std::make_unique<grpc::ClientContext>();
  auto add = [&ctx](const std::string& key, const std::string& value) {
    if (value.empty()) return;
    if (!IsLegalMetadata(key, value)) {
      // Never the value itself: it is what gRPC would choke on, and may be a secret.
      log::Error("metadata value left out: not legal in gRPC", {{"key", key}, {"bytes", value.size()}});
      return;
    }
    ctx->AddMetadata(key, value);
  };
  add(auth::kCallerMetadataKey, caller_token);
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  add(kRequestIdKey, log::CurrentRequestId());
  add(kTraceparentKey, log::CurrentTraceparent());
  return ctx;
}

bool IsLegalMetadata(std::string_view key, std::string_view value) {
  if (key.empty() || key.substr(0, 5) == "grpc-") return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  }
  if (key.size() >= 4 && key.substr(key.size() - 4) == "-bin") return true;
  for (char c : value) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         std::chrono::milliseconds deadline) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = NewClientContext(deadline);
  grpc::Status s = stub->Check(ctx.get(), req, &resp);
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("health check failed: ", s.error_message()));
  if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(
        absl::StrCat("not serving (", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()), ")"));
  }
  return absl::OkStatus();
}

}  // namespace stadtportal::grpcx

#include "libs/grpc/client.h"

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "libs/auth/caller.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::grpcx {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  // round_robin over every address, and client-side health checking: a replica that
  // reports NOT_SERVING (from SIGTERM on) gets no new calls while it drains, so calls
  // are not cut off when it stops.
  args.SetServiceConfigJSON(R"({"loadBalancingConfig": [{"round_robin": {}}],
                                "healthCheckConfig": {"serviceName": ""}})");
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
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
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!caller_token.empty()) ctx->AddMetadata(auth::kCallerMetadataKey, caller_token);
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!log::CurrentRequestId().empty()) ctx->AddMetadata(kRequestIdKey, log::CurrentRequestId());
  if (!log::CurrentTraceparent().empty()) ctx->AddMetadata(kTraceparentKey, log::CurrentTraceparent());
  return ctx;
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

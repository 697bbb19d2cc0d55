#include "libs/grpc/handler.h"

#include <atomic>

namespace stadtportal::grpcx {
namespace {

std::shared_ptr<const auth::Verifier> g_verifier;
thread_local auth::Caller t_test_caller;

}  // namespace

TestCaller::TestCaller(auth::Caller caller) : previous_(std::move(t_test_caller)) { t_test_caller = std::move(caller); }
TestCaller::~TestCaller() { t_test_caller = std::move(previous_); }

void SetCallerVerifier(std::shared_ptr<const auth::Verifier> verifier) {
  std::atomic_store(&g_verifier, std::move(verifier));
}

absl::StatusOr<auth::Caller> VerifiedCaller(const grpc::ServerContext& ctx) {
  auto verifier = std::atomic_load(&g_verifier);
  if (verifier == nullptr) return t_test_caller;
  return verifier->Verify(ClientMetadata(ctx, auth::kCallerMetadataKey));
}

std::string ClientMetadata(const grpc::ServerContext& ctx, const std::string& key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace stadtportal::grpcx

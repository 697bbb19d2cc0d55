#pragma once

#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "libs/auth/caller.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::grpcx {

inline constexpr char kRequestIdKey[] = "x-request-id";
inline constexpr char kTraceparentKey[] = "traceparent";

// Reads one metadata value sent by the client ("" if absent).
std::string ClientMetadata(const grpc::ServerContext& ctx, const std::string& key);

// Installs the verifier of caller tokens for this process (RunService does, from
// STADTPORTAL_CALLER_PUBLIC_KEYS and the other signing parts' keys, for the service's own
// audience). Without one — only in tests of a service class —
// calls run as an anonymous caller.
void SetCallerVerifier(std::shared_ptr<const auth::Verifier> verifier);
// Tests of a service class (no verifier installed) act as this caller on the current
// thread while the object lives. Ignored once a verifier is installed.
class TestCaller {
 public:
  explicit TestCaller(auth::Caller caller);
  ~TestCaller();

 private:
  auth::Caller previous_;
};

// The verified caller of this call, or UNAUTHENTICATED.
absl::StatusOr<auth::Caller> VerifiedCaller(const grpc::ServerContext& ctx);

// Copies a store result into the response, or passes its error on:
//   return grpcx::Respond(resp, store_->GetThing(tenant, id));
template <typename T, typename Response>
absl::Status Respond(Response* resp, absl::StatusOr<T> result) {
  if (!result.ok()) return result.status();
  *resp = std::move(*result);
  return absl::OkStatus();
}

// The edge of every RPC handler: verifies the caller token (an unsigned, forged or
// expired caller is rejected before any work), binds request id and traceparent to the
// log lines, runs `fn` — given the caller if it takes one — maps its absl::Status with
// the one status mapping, logs server-side errors, and turns exceptions into INTERNAL.
template <typename Fn>
grpc::Status Handle(grpc::ServerContext* ctx, const char* method, Fn&& fn) {
  // From other parts, checked all the same: a request id of the allowed form, a W3C
  // traceparent (anything else is replaced), before they reach a log line or an event.
  const std::string request_id = ClientMetadata(*ctx, kRequestIdKey);
  const std::string traceparent = log::NormalizeTraceparent(ClientMetadata(*ctx, kTraceparentKey));
  log::RequestScope scope(log::IsValidRequestId(request_id) ? request_id : log::NewRequestId(),
                          traceparent.empty() ? log::NewTraceparent() : traceparent);
  absl::Status s;
  try {
    auto caller = VerifiedCaller(*ctx);
    if (!caller.ok()) {
      s = caller.status();
    } else if constexpr (std::is_invocable_v<Fn, const auth::Caller&>) {
      s = fn(*caller);
    } else {
      s = fn();
    }
  } catch (const std::exception& e) {
    s = absl::InternalError(e.what());
  }
  log::Debug("rpc", {{"method", method}, {"code", absl::StatusCodeToString(s.code())}});
  if (s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnknown ||
      s.code() == absl::StatusCode::kDataLoss) {
    log::Error("request failed",
               {{"method", method}, {"code", absl::StatusCodeToString(s.code())}, {"error", std::string(s.message())}});
    return status::ToGrpc(absl::Status(s.code(), "internal error"));
  }
  return status::ToGrpc(s);
}

}  // namespace stadtportal::grpcx

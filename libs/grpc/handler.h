#pragma once

#include <exception>
#include <string>

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::grpcx {

inline constexpr char kRequestIdKey[] = "x-request-id";
inline constexpr char kTraceparentKey[] = "traceparent";

// Reads one metadata value sent by the client ("" if absent).
std::string ClientMetadata(const grpc::ServerContext& ctx, const std::string& key);

// The edge of every RPC handler: binds the caller's request id and traceparent to the
// log lines, runs `fn` (returning absl::Status), maps the result with the one status
// mapping, logs server-side errors, and turns escaped exceptions into INTERNAL.
template <typename Fn>
grpc::Status Handle(grpc::ServerContext* ctx, const char* method, Fn&& fn) {
  log::RequestScope scope(ClientMetadata(*ctx, kRequestIdKey), ClientMetadata(*ctx, kTraceparentKey));
  absl::Status s;
  try {
    s = fn();
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

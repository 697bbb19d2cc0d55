#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace stadtportal::grpcx {

// A channel to a service, created once and shared (channels are thread-safe).
// `target` is a gRPC name: "dns:///identity:50051" (headless Service in Kubernetes)
// or "ipv4:127.0.0.1:50051,127.0.0.1:50061" (local replicas). Calls are spread with
// round_robin over replicas that report SERVING (client-side health checking);
// reconnects back off from 100 ms to at most 1 s so a restarted replica is used again
// quickly. The first channel starts the process's client poller (see client.cc).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

// A client context with a deadline, carrying the current request id and traceparent,
// and the signed caller token when one is given. Each value is added only if gRPC
// accepts it (IsLegalMetadata); an illegal one is left out and logged, never sent, as
// gRPC would abort the process on it.
std::unique_ptr<grpc::ClientContext> NewClientContext(std::chrono::milliseconds deadline,
                                                      const std::string& caller_token = "");

// Whether gRPC takes `value` under `key` as metadata: a key of [0-9a-z_.-] (not
// starting with "grpc-"), and for keys not ending in "-bin" a value of printable
// ASCII (0x20–0x7E) only.
bool IsLegalMetadata(std::string_view key, std::string_view value);

// grpc.health.v1.Health/Check; `service` "" asks about the server as a whole.
// OK only when the answer is SERVING; otherwise UNAVAILABLE with the reason.
absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         std::chrono::milliseconds deadline);

}  // namespace stadtportal::grpcx

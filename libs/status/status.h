#pragma once

#include <string>

#include <grpcpp/support/status.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"

// The one mapping between absl::Status (domain and store code), grpc::Status (the
// gRPC edge of every service) and HTTP + application/problem+json (the gateway).
namespace stadtportal::status {

grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// The HTTP status for a canonical code (e.g. NOT_FOUND → 404, UNAVAILABLE → 503).
int HttpStatus(absl::StatusCode code);
// The canonical code for an HTTP status (used where the gateway itself rejects).
absl::StatusCode CodeForHttp(int http_status);

// An RFC 9457 problem document: {type, title, status, detail, request_id}.
// Server-side failures (every code answered with 5xx: internal, unavailable, deadline
// exceeded, …) never expose their message; the detail then is generic per code.
nlohmann::json Problem(const absl::Status& s, const std::string& request_id);

// A problem raised by the HTTP layer itself, with no canonical code of its own
// (405 method not allowed, 413 payload too large, 431 headers too large, …).
nlohmann::json HttpProblem(int http_status, const std::string& detail, const std::string& request_id);

inline constexpr char kProblemContentType[] = "application/problem+json";

}  // namespace stadtportal::status

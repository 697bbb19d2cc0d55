#pragma once

#include <string>
#include <vector>

#include <grpcpp/support/status.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// The one mapping between absl::Status (domain and store code), grpc::Status (the
// gRPC edge of every service) and HTTP + application/problem+json (the gateway).
namespace stadtportal::status {

// Field violations travel as a typed detail (stadtportal.common.v1.BadRequest) in the
// gRPC status details and come back as the same payload.
grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// One request field that failed validation: the field's path ("email",
// "address.postcode") and a stable snake_case code ("required", "invalid_email").
struct FieldViolation {
  std::string field;
  std::string code;
  bool operator==(const FieldViolation& o) const { return field == o.field && code == o.code; }
};

// INVALID_ARGUMENT listing the fields whose values are invalid (HTTP 422 with the errors
// listed). The message reads "field: code; …" unless `message` is given.
absl::Status InvalidFields(std::vector<FieldViolation> violations, absl::string_view message = {});
// INVALID_ARGUMENT for one field; the message reads "field: code", or "field: detail".
absl::Status FieldError(absl::string_view field, absl::string_view code, absl::string_view detail = {});
// INVALID_ARGUMENT for a malformed request (query or path syntax, a header): HTTP 400,
// still naming the offending parameter.
absl::Status MalformedField(absl::string_view field, absl::string_view code, absl::string_view detail = {});
// FAILED_PRECONDITION about a field ("role: last_owner"): HTTP 409 with the field listed.
absl::Status FieldConflict(absl::string_view field, absl::string_view code, absl::string_view detail = {});
// ABORTED because the client's precondition on a field no longer holds (a stale
// "version" from If-Match): HTTP 412 with {field, "stale"} listed. ABORTED without it
// (a concurrent request; retry) stays 409.
absl::Status Stale(absl::string_view field, absl::string_view detail = {});
// The field violations a status carries (none for statuses built otherwise).
std::vector<FieldViolation> FieldViolations(const absl::Status& s);

// The HTTP status for a canonical code (e.g. NOT_FOUND → 404, UNAVAILABLE → 503).
int HttpStatus(absl::StatusCode code);
// The HTTP status for a status: as for its code, except INVALID_ARGUMENT with field
// violations of a well-formed request → 422 (malformed requests stay 400), and ABORTED
// with a stale field → 412.
int HttpStatus(const absl::Status& s);
// The canonical code for an HTTP status (used where the gateway itself rejects).
absl::StatusCode CodeForHttp(int http_status);

// An RFC 9457 problem document: {type, title, status, detail, request_id}, and
// `errors` [{field, code}] when the status carries field violations. Server-side failures (every code answered with
// 5xx: internal, unavailable, deadline exceeded, …) never expose their message; the detail then is generic per code.
nlohmann::json Problem(const absl::Status& s, const std::string& request_id);

// A problem raised by the HTTP layer itself, with no canonical code of its own
// (405 method not allowed, 413 payload too large, 431 headers too large, …).
nlohmann::json HttpProblem(int http_status, const std::string& detail, const std::string& request_id);

inline constexpr char kProblemContentType[] = "application/problem+json";

}  // namespace stadtportal::status

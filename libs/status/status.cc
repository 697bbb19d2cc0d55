#include "libs/status/status.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "stadtportal/common/v1/errors.pb.h"

namespace stadtportal::status {
namespace {

using BadRequest = common::v1::BadRequest;

// The payload key of field violations on an absl::Status, and the type URL of the detail.
constexpr char kBadRequestUrl[] = "type.googleapis.com/stadtportal.common.v1.BadRequest";

std::optional<BadRequest> BadRequestOf(const absl::Status& s) {
  auto payload = s.GetPayload(kBadRequestUrl);
  if (!payload) return std::nullopt;
  BadRequest out;
  if (!out.ParseFromString(std::string(*payload))) return std::nullopt;
  return out;
}

absl::Status WithViolations(absl::StatusCode code, const std::vector<FieldViolation>& violations,
                            absl::string_view message, bool malformed) {
  BadRequest detail;
  detail.set_malformed(malformed);
  std::vector<std::string> parts;
  for (const auto& v : violations) {
    auto* out = detail.add_field_violations();
    out->set_field(v.field);
    out->set_code(v.code);
    parts.push_back(absl::StrCat(v.field, ": ", v.code));
  }
  absl::Status s(code, message.empty() ? absl::StrJoin(parts, "; ") : message);
  s.SetPayload(kBadRequestUrl, absl::Cord(detail.SerializeAsString()));
  return s;
}

std::string FieldMessage(absl::string_view field, absl::string_view code, absl::string_view detail) {
  if (field.empty()) return std::string(detail.empty() ? code : detail);
  return absl::StrCat(field, ": ", detail.empty() ? code : detail);
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  const auto code = static_cast<grpc::StatusCode>(s.code());
  auto payload = s.GetPayload(kBadRequestUrl);
  if (!payload) return grpc::Status(code, std::string(s.message()));
  common::v1::ErrorStatus details;
  details.set_code(static_cast<int>(s.code()));
  details.set_message(std::string(s.message()));
  auto* any = details.add_details();
  any->set_type_url(kBadRequestUrl);
  any->set_value(std::string(*payload));
  return grpc::Status(code, std::string(s.message()), details.SerializeAsString());
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  if (s.error_details().empty()) return out;
  common::v1::ErrorStatus details;
  if (!details.ParseFromString(s.error_details())) return out;
  for (const auto& any : details.details()) {
    BadRequest detail;
    if (any.type_url() == kBadRequestUrl && detail.ParseFromString(any.value())) {
      out.SetPayload(kBadRequestUrl, absl::Cord(any.value()));
    }
  }
  return out;
}

absl::Status InvalidFields(std::vector<FieldViolation> violations, absl::string_view message) {
  return WithViolations(absl::StatusCode::kInvalidArgument, violations, message, false);
}

absl::Status FieldError(absl::string_view field, absl::string_view code, absl::string_view detail) {
  return WithViolations(absl::StatusCode::kInvalidArgument, {{std::string(field), std::string(code)}},
                        FieldMessage(field, code, detail), false);
}

absl::Status MalformedField(absl::string_view field, absl::string_view code, absl::string_view detail) {
  return WithViolations(absl::StatusCode::kInvalidArgument, {{std::string(field), std::string(code)}},
                        FieldMessage(field, code, detail), true);
}

absl::Status FieldConflict(absl::string_view field, absl::string_view code, absl::string_view detail) {
  return WithViolations(absl::StatusCode::kFailedPrecondition, {{std::string(field), std::string(code)}},
                        FieldMessage(field, code, detail), false);
}

absl::Status Stale(absl::string_view field, absl::string_view detail) {
  return WithViolations(absl::StatusCode::kAborted, {{std::string(field), "stale"}},
                        FieldMessage(field, "stale", detail), false);
}

std::vector<FieldViolation> FieldViolations(const absl::Status& s) {
  std::vector<FieldViolation> out;
  if (auto detail = BadRequestOf(s)) {
    for (const auto& v : detail->field_violations()) out.push_back({v.field(), v.code()});
  }
  return out;
}

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists: return 409;
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    default: return 500;
  }
}

int HttpStatus(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    auto detail = BadRequestOf(s);
    if (detail && !detail->malformed() && detail->field_violations_size() > 0) return 422;
  }
  if (s.code() == absl::StatusCode::kAborted && BadRequestOf(s)) return 412;
  return HttpStatus(s.code());
}

absl::StatusCode CodeForHttp(int http_status) {
  switch (http_status) {
    case 400: return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 405: return absl::StatusCode::kUnimplemented;
    case 409: return absl::StatusCode::kAlreadyExists;
    case 413: return absl::StatusCode::kOutOfRange;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 503: return absl::StatusCode::kUnavailable;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default: return http_status >= 500 ? absl::StatusCode::kInternal : absl::StatusCode::kInvalidArgument;
  }
}

namespace {

// The detail of a server-side failure: never its message, which may carry what an
// upstream said (a provider's answer body, a health check's transport error, SQL).
std::string ServerSideDetail(absl::StatusCode c) {
  switch (c) {
    case absl::StatusCode::kUnavailable: return "the service is unavailable for the moment; retry later";
    case absl::StatusCode::kDeadlineExceeded: return "the service did not answer in time; retry later";
    case absl::StatusCode::kUnimplemented: return "not implemented";
    default: return "an internal error occurred; quote the request id";
  }
}

}  // namespace

nlohmann::json Problem(const absl::Status& s, const std::string& request_id) {
  const int http_status = HttpStatus(s);
  // "NOT_FOUND" → "not-found": a stable, documented problem type per code.
  std::string slug = http_status == 422   ? "unprocessable-content"
                     : http_status == 412 ? "precondition-failed"
                                          : absl::AsciiStrToLower(absl::StatusCodeToString(s.code()));
  slug = absl::StrReplaceAll(slug, {{"_", "-"}});
  std::string title = absl::StrReplaceAll(slug, {{"-", " "}});  // "not found" → "Not found"
  title[0] = absl::ascii_toupper(title[0]);
  nlohmann::json p = {
      {"type", "urn:stadtportal:problem:" + slug},
      {"title", title},
      {"status", http_status},
      {"detail", http_status >= 500 ? ServerSideDetail(s.code()) : std::string(s.message())},
  };
  if (!request_id.empty()) p["request_id"] = request_id;
  if (http_status < 500) {
    auto violations = FieldViolations(s);
    if (!violations.empty()) {
      p["errors"] = nlohmann::json::array();
      for (const auto& v : violations) p["errors"].push_back({{"field", v.field}, {"code", v.code}});
    }
  }
  return p;
}

nlohmann::json HttpProblem(int http_status, const std::string& detail, const std::string& request_id) {
  std::string title;
  switch (http_status) {
    case 400: title = "Bad request"; break;
    case 405: title = "Method not allowed"; break;
    case 408: title = "Request timeout"; break;
    case 413: title = "Payload too large"; break;
    case 414: title = "URI too long"; break;
    case 415: title = "Unsupported media type"; break;
    case 428: title = "Precondition required"; break;
    case 431: title = "Request header fields too large"; break;
    default: return Problem(absl::Status(CodeForHttp(http_status), detail), request_id);
  }
  std::string slug = absl::AsciiStrToLower(absl::StrReplaceAll(title, {{" ", "-"}}));
  nlohmann::json p = {
      {"type", "urn:stadtportal:problem:" + slug}, {"title", title}, {"status", http_status}, {"detail", detail}};
  if (!request_id.empty()) p["request_id"] = request_id;
  return p;
}

}  // namespace stadtportal::status

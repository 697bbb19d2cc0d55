#include "libs/status/status.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace stadtportal::status {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
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
  // "NOT_FOUND" → "not-found": a stable, documented problem type per code.
  std::string slug = absl::AsciiStrToLower(absl::StatusCodeToString(s.code()));
  slug = absl::StrReplaceAll(slug, {{"_", "-"}});
  std::string title = absl::StrReplaceAll(slug, {{"-", " "}});  // "not found" → "Not found"
  title[0] = absl::ascii_toupper(title[0]);
  nlohmann::json p = {
      {"type", "urn:stadtportal:problem:" + slug},
      {"title", title},
      {"status", HttpStatus(s.code())},
      {"detail", HttpStatus(s.code()) >= 500 ? ServerSideDetail(s.code()) : std::string(s.message())},
  };
  if (!request_id.empty()) p["request_id"] = request_id;
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

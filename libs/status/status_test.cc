#include "libs/status/status.h"

#include <catch2/catch.hpp>

namespace stadtportal::status {

TEST_CASE("canonical codes map to HTTP statuses", "[unit]") {
  CHECK(HttpStatus(absl::StatusCode::kInvalidArgument) == 400);
  CHECK(HttpStatus(absl::StatusCode::kUnauthenticated) == 401);
  CHECK(HttpStatus(absl::StatusCode::kPermissionDenied) == 403);
  CHECK(HttpStatus(absl::StatusCode::kNotFound) == 404);
  CHECK(HttpStatus(absl::StatusCode::kAlreadyExists) == 409);
  CHECK(HttpStatus(absl::StatusCode::kResourceExhausted) == 429);
  CHECK(HttpStatus(absl::StatusCode::kInternal) == 500);
  CHECK(HttpStatus(absl::StatusCode::kUnavailable) == 503);
  CHECK(HttpStatus(absl::StatusCode::kDeadlineExceeded) == 504);
}

TEST_CASE("absl and gRPC statuses convert both ways without loss", "[unit]") {
  for (int c = 0; c <= 16; ++c) {
    absl::Status s(static_cast<absl::StatusCode>(c), c == 0 ? "" : "message");
    absl::Status back = FromGrpc(ToGrpc(s));
    CHECK(back.code() == s.code());
    CHECK(back.message() == s.message());
  }
}

TEST_CASE("problem documents follow RFC 9457 and hide internal details", "[unit]") {
  auto p = Problem(absl::NotFoundError("online service not found"), "req-1");
  CHECK(p["type"] == "urn:stadtportal:problem:not-found");
  CHECK(p["title"] == "Not found");
  CHECK(p["status"] == 404);
  CHECK(p["detail"] == "online service not found");
  CHECK(p["request_id"] == "req-1");

  auto internal = Problem(absl::InternalError("pqxx: relation secret_table does not exist"), "req-2");
  CHECK(internal["status"] == 500);
  CHECK(internal["detail"].get<std::string>().find("secret_table") == std::string::npos);
}

TEST_CASE("no server-side failure passes its message (an upstream's text) into a problem", "[unit]") {
  const std::string upstream = R"(paypal create order: HTTP 500 {"debug_id":"8a1b","details":"secret"})";
  for (auto code : {absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnknown,
                    absl::StatusCode::kDataLoss, absl::StatusCode::kUnimplemented, absl::StatusCode::kInternal}) {
    auto p = Problem(absl::Status(code, upstream), "req-3");
    INFO(absl::StatusCodeToString(code));
    CHECK(p["status"].get<int>() >= 500);
    CHECK(p.dump().find("paypal") == std::string::npos);
    CHECK(p.dump().find("secret") == std::string::npos);
    CHECK_FALSE(p["detail"].get<std::string>().empty());
  }
  // Client errors keep their detail: it tells the client what to change.
  CHECK(Problem(absl::InvalidArgumentError("email: invalid_email"), "r")["detail"] == "email: invalid_email");
}

}  // namespace stadtportal::status

namespace stadtportal::status {

TEST_CASE("problems of the HTTP layer carry their own status and title", "[unit]") {
  auto p = HttpProblem(405, "method DELETE is not allowed here", "r");
  CHECK(p["status"] == 405);
  CHECK(p["title"] == "Method not allowed");
  CHECK(p["type"] == "urn:stadtportal:problem:method-not-allowed");
  CHECK(HttpProblem(413, "too large", "r")["status"] == 413);
  CHECK(HttpProblem(404, "nothing", "r")["status"] == 404);
}

}  // namespace stadtportal::status

namespace stadtportal::status {

TEST_CASE("field violations travel through gRPC as typed details", "[unit]") {
  absl::Status s = InvalidFields({{"email", "invalid_email"}, {"address.postcode", "required"}});
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() == "email: invalid_email; address.postcode: required");
  grpc::Status wire = ToGrpc(s);
  CHECK_FALSE(wire.error_details().empty());
  absl::Status back = FromGrpc(wire);
  CHECK(back.code() == absl::StatusCode::kInvalidArgument);
  CHECK(back.message() == s.message());
  CHECK(FieldViolations(back) ==
        std::vector<FieldViolation>{{"email", "invalid_email"}, {"address.postcode", "required"}});

  // A detail sentence stays in the message; the code is what clients branch on.
  absl::Status one = FromGrpc(ToGrpc(FieldError("secret", "invalid", "32 to 200 characters")));
  CHECK(one.message() == "secret: 32 to 200 characters");
  CHECK(FieldViolations(one) == std::vector<FieldViolation>{{"secret", "invalid"}});

  // Statuses built otherwise carry none, and garbage details are ignored.
  CHECK(FieldViolations(FromGrpc(ToGrpc(absl::InvalidArgumentError("email: invalid")))).empty());
  CHECK(FieldViolations(FromGrpc(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "x", "\xff\x01garbage"))).empty());
}

TEST_CASE("malformed requests answer 400, invalid field values 422, both listing the fields", "[unit]") {
  auto invalid = Problem(FieldError("email", "invalid_email"), "r");
  CHECK(invalid["status"] == 422);
  CHECK(invalid["type"] == "urn:stadtportal:problem:unprocessable-content");
  CHECK(invalid["title"] == "Unprocessable content");
  CHECK(invalid["errors"] == nlohmann::json::array({{{"field", "email"}, {"code", "invalid_email"}}}));

  auto malformed = Problem(FromGrpc(ToGrpc(MalformedField("page_size", "invalid"))), "r");
  CHECK(malformed["status"] == 400);
  CHECK(malformed["type"] == "urn:stadtportal:problem:invalid-argument");
  CHECK(malformed["errors"] == nlohmann::json::array({{{"field", "page_size"}, {"code", "invalid"}}}));

  auto conflict = Problem(FromGrpc(ToGrpc(FieldConflict("role", "last_owner"))), "r");
  CHECK(conflict["status"] == 409);
  CHECK(conflict["detail"] == "role: last_owner");
  CHECK(conflict["errors"] == nlohmann::json::array({{{"field", "role"}, {"code", "last_owner"}}}));

  // Without violations: 400, no list.
  auto plain = Problem(absl::InvalidArgumentError("the body must be application/json"), "r");
  CHECK(plain["status"] == 400);
  CHECK_FALSE(plain.contains("errors"));
}

}  // namespace stadtportal::status

namespace stadtportal::status {

TEST_CASE("a stale version is a failed precondition (412); a concurrent request stays 409", "[unit]") {
  auto stale = Problem(FromGrpc(ToGrpc(Stale("version", "the draft changed; current version 4"))), "r");
  CHECK(stale["status"] == 412);
  CHECK(stale["type"] == "urn:stadtportal:problem:precondition-failed");
  CHECK(stale["title"] == "Precondition failed");
  CHECK(stale["detail"] == "version: the draft changed; current version 4");
  CHECK(stale["errors"] == nlohmann::json::array({{{"field", "version"}, {"code", "stale"}}}));
  CHECK(Problem(absl::AbortedError("concurrent request; retry"), "r")["status"] == 409);
}

}  // namespace stadtportal::status

#include "libs/api/idempotency.h"

#include <catch2/catch.hpp>

#include "libs/status/status.h"

namespace api = stadtportal::api;

TEST_CASE("an idempotency key is 8 to 255 printable ASCII characters without spaces", "[idempotency]") {
  CHECK(api::ValidateIdempotencyKey("abcdefgh").ok());
  CHECK(api::ValidateIdempotencyKey(std::string(255, 'k')).ok());
  CHECK(api::ValidateIdempotencyKey("!~#$%&'()*+,-./:;<=>?@[]^_`{|}").ok());
  for (const std::string& bad : {std::string(""), std::string("abcdefg"), std::string(256, 'k'),
                                 std::string("abcd efgh"), std::string("abcdefgh\n"), std::string("abcdefgh\x7f"),
                                 std::string("abcdefg\xc3\xa4"), std::string("abcd\0efgh", 9)}) {
    const auto s = api::ValidateIdempotencyKey(bad);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    const auto fields = stadtportal::status::FieldViolations(s);
    REQUIRE(fields.size() == 1);
    CHECK(fields[0].field == "idempotency_key");
    CHECK(fields[0].code == "invalid");
  }
}

TEST_CASE("a key seen with the same request is a repeat, with another one it is reused", "[idempotency]") {
  CHECK(api::ClassifyKeyUse(std::nullopt, "draft-1") == api::KeyUse::kFirst);
  CHECK(api::ClassifyKeyUse(std::string("draft-1"), "draft-1") == api::KeyUse::kRepeat);
  CHECK(api::ClassifyKeyUse(std::string("draft-1"), "draft-2") == api::KeyUse::kReused);
  // An empty fingerprint stored with a key is still a fingerprint, not "new".
  CHECK(api::ClassifyKeyUse(std::string(""), "draft-1") == api::KeyUse::kReused);

  CHECK(api::CheckRepeat("draft-1", "draft-1").ok());
  const auto reused = api::CheckRepeat("draft-1", "draft-2");
  CHECK(reused.code() == absl::StatusCode::kInvalidArgument);
  const auto fields = stadtportal::status::FieldViolations(reused);
  REQUIRE(fields.size() == 1);
  CHECK(fields[0].field == "idempotency_key");
  CHECK(fields[0].code == "reused");
}

#include "libs/auth/totp.h"

#include <catch2/catch.hpp>

namespace stadtportal::auth {

// RFC 6238 Appendix B, SHA-1 column: the 20-byte ASCII seed "12345678901234567890",
// 8-digit codes; a 6-digit code is the same truncation modulo 10^6.
TEST_CASE("TOTP codes match RFC 6238 Appendix B (SHA-1)", "[unit]") {
  const std::string seed = "12345678901234567890";
  const std::pair<int64_t, std::string> vectors[] = {
      {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
      {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
  };
  for (const auto& [time, code] : vectors) {
    INFO("T = " << time);
    CHECK(TotpCode(seed, TotpStep(time), 8) == code);
    CHECK(TotpCode(seed, TotpStep(time)) == code.substr(2));
  }
}

TEST_CASE("TOTP accepts the current step and one step either side, nothing else", "[unit]") {
  const std::string seed = "12345678901234567890";
  const int64_t now = TotpStep(1111111111);
  CHECK(TotpMatch(seed, TotpCode(seed, now), now) == now);
  CHECK(TotpMatch(seed, TotpCode(seed, now - 1), now) == now - 1);
  CHECK(TotpMatch(seed, TotpCode(seed, now + 1), now) == now + 1);
  CHECK_FALSE(TotpMatch(seed, TotpCode(seed, now - 2), now).has_value());
  CHECK_FALSE(TotpMatch(seed, TotpCode(seed, now + 2), now).has_value());
  CHECK_FALSE(TotpMatch(seed, "", now).has_value());
  CHECK_FALSE(TotpMatch(seed, "12345", now).has_value());
  CHECK_FALSE(TotpMatch(seed, "1234567", now).has_value());
  CHECK_FALSE(TotpMatch(seed, "12a456", now).has_value());
  CHECK_FALSE(TotpMatch("another secret", TotpCode(seed, now), now).has_value());
}

TEST_CASE("TOTP secrets are 20 random bytes, shown as base32 in an otpauth URI", "[unit]") {
  // RFC 4648 section 10 test vectors (without padding).
  CHECK(Base32("") == "");
  CHECK(Base32("f") == "MY");
  CHECK(Base32("fo") == "MZXQ");
  CHECK(Base32("foob") == "MZXW6YQ");
  CHECK(Base32("foobar") == "MZXW6YTBOI");
  CHECK(FromBase32("MZXW6YTBOI") == "foobar");
  CHECK(FromBase32("mzxw6ytboi======") == "foobar");
  CHECK_FALSE(FromBase32("MZXW6YTBO1").has_value());
  const std::string a = NewTotpSecret(), b = NewTotpSecret();
  CHECK(FromBase32(Base32(a)) == a);
  CHECK(a.size() == 20);
  CHECK(a != b);
  CHECK(OtpauthUri("stadtportal Nürnberg", "anna@example.de", "12345678901234567890") ==
        "otpauth://totp/stadtportal%20N%C3%BCrnberg:anna%40example.de?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        "&issuer=stadtportal%20N%C3%BCrnberg&algorithm=SHA1&digits=6&period=30");
}

}  // namespace stadtportal::auth

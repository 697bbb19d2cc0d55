#include "libs/auth/caller.h"

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"

namespace stadtportal::auth {
namespace {

Caller Anna() {
  Caller c;
  c.account_id = "11111111-1111-4111-8111-111111111111";
  c.tenant = "09564000";
  c.assurance = "low";
  c.roles = {"tenant-admin"};
  c.session_ref = "abc";
  return c;
}

}  // namespace

TEST_CASE("caller tokens round-trip and carry every field", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(60));
  REQUIRE(signer.ok());
  auto verifier = Verifier::FromKeys(signer->PublicKey());
  REQUIRE(verifier.ok());
  auto c = Anna();
  c.acting_party = "22222222-2222-4222-8222-222222222222";
  auto back = verifier->Verify(signer->Sign(c));
  REQUIRE(back.ok());
  CHECK(back->account_id == c.account_id);
  CHECK(back->acting_party == c.acting_party);
  CHECK(back->roles == c.roles);
  CHECK(back->assurance == "low");
}

TEST_CASE("forged, tampered, expired and unknown-key tokens are rejected", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(60));
  auto other = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(60));  // Same kid, other key.
  auto unknown = Signer::FromKey(NewSigningKey("k9"), std::chrono::seconds(60));
  auto verifier = Verifier::FromKeys(signer->PublicKey());
  const std::string token = signer->Sign(Anna());
  CHECK(verifier->Verify(other->Sign(Anna())).status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(verifier->Verify(unknown->Sign(Anna())).status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(verifier->Verify("").status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(verifier->Verify("a.b.c").status().code() == absl::StatusCode::kUnauthenticated);
  std::string tampered = token;
  tampered[token.find('.') + 5] ^= 1;
  CHECK(verifier->Verify(tampered).status().code() == absl::StatusCode::kUnauthenticated);
  auto expired = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(-60));
  auto trusting = Verifier::FromKeys(expired->PublicKey());
  CHECK(trusting->Verify(expired->Sign(Anna())).status().message() == "caller token expired");
}

TEST_CASE("headers and claims of unexpected types are refused, never thrown on", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(60));
  REQUIRE(signer.ok());
  auto verifier = Verifier::FromKeys(signer->PublicKey());
  REQUIRE(verifier.ok());
  const std::string sig = absl::WebSafeBase64Escape(std::string(64, '\0'));
  // A number where a string is expected.
  for (const std::string header : {R"({"alg":1,"kid":"k1"})", R"({"alg":"EdDSA","kid":["k1"]})", R"({"alg":null})"}) {
    INFO(header);
    const std::string token = absl::WebSafeBase64Escape(header) + "." + absl::WebSafeBase64Escape("{}") + "." + sig;
    auto v = verifier->Verify(token);
    CHECK(v.status().code() == absl::StatusCode::kUnauthenticated);
    CHECK(VerifyEdDsa(token, PublicKeyBytes(*signer)).status().code() == absl::StatusCode::kUnauthenticated);
  }
  // Signed claims with times at the edges: refused (or expired), without undefined behaviour.
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  nlohmann::json claims = {{"iss", "stadtportal-gateway"},
                           {"aud", "stadtportal-services"},
                           {"iat", now},
                           {"exp", now + 60},
                           {"sub", "a"},
                           {"act", ""},
                           {"ten", "09564000"},
                           {"acr", "low"},
                           {"roles", nlohmann::json::array()},
                           {"sid", "s"}};
  REQUIRE(verifier->Verify(signer->SignClaims(claims)).ok());
  for (const nlohmann::json& exp : {nlohmann::json(1e300), nlohmann::json(-1e300), nlohmann::json("soon"),
                                    nlohmann::json(std::numeric_limits<int64_t>::min())}) {
    INFO(exp.dump());
    claims["exp"] = exp;
    CHECK(verifier->Verify(signer->SignClaims(claims)).status().code() == absl::StatusCode::kUnauthenticated);
  }
  claims["exp"] = now + 60;
  claims["iat"] = std::numeric_limits<int64_t>::max();
  CHECK(verifier->Verify(signer->SignClaims(claims)).status().code() == absl::StatusCode::kUnauthenticated);
}

TEST_CASE("key rotation: both keys are trusted during the switch", "[unit]") {
  auto old_key = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(60));
  auto new_key = Signer::FromKey(NewSigningKey("k2"), std::chrono::seconds(60));
  auto both = Verifier::FromKeys(old_key->PublicKey() + "," + new_key->PublicKey());
  REQUIRE(both.ok());
  CHECK(both->Verify(old_key->Sign(Anna())).ok());
  CHECK(both->Verify(new_key->Sign(Anna())).ok());
  CHECK_FALSE(Verifier::FromKeys("k1:notbase64!").ok());
}

TEST_CASE("data is scoped to the acting organisation, else to the person", "[unit]") {
  auto c = Anna();
  CHECK(*ScopeParty(c) == c.account_id);
  c.acting_party = "22222222-2222-4222-8222-222222222222";
  CHECK(*ScopeParty(c) == c.acting_party);
  CHECK(ScopeParty(Caller{}).status().code() == absl::StatusCode::kUnauthenticated);
}

}  // namespace stadtportal::auth

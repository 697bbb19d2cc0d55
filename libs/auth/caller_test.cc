#include "libs/auth/caller.h"

#include <sodium.h>

#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "libs/auth/roles.h"

namespace stadtportal::auth {
namespace {

using std::chrono::seconds;

Caller Anna() {
  Caller c;
  c.account_id = "11111111-1111-4111-8111-111111111111";
  c.tenant = "09564000";
  c.assurance = "low";
  c.roles = {"tenant-admin"};
  c.session_ref = "abc";
  return c;
}

// What the connector may assert: itself, as a platform service.
Caller ConnectorItself() {
  Caller c;
  c.account_id = "connector";
  c.tenant = "09564000";
  c.roles = {"service"};
  return c;
}

// A JWT with any header and claims, signed with the Ed25519 seed of `key` ("kid:base64").
std::string SignRaw(const std::string& key, const nlohmann::json& header, const nlohmann::json& claims) {
  std::string seed;
  REQUIRE(absl::Base64Unescape(key.substr(key.find(':') + 1), &seed));
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(seed.data()));
  const std::string input = absl::WebSafeBase64Escape(header.dump()) + "." + absl::WebSafeBase64Escape(claims.dump());
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(input.data()), input.size(), sk);
  return input + "." + absl::WebSafeBase64Escape(std::string(reinterpret_cast<char*>(sig), sizeof(sig)));
}

nlohmann::json Claims(const Caller& c, const std::string& iss, const std::string& aud, int64_t lifetime = 60) {
  const int64_t now = std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return {{"iss", iss},          {"aud", aud},
          {"iat", now},          {"exp", now + lifetime},
          {"sub", c.account_id}, {"act", c.acting_party},
          {"ten", c.tenant},     {"acr", c.assurance},
          {"roles", c.roles},    {"sid", c.session_ref}};
}

absl::StatusCode Code(const absl::StatusOr<Caller>& r) { return r.status().code(); }

constexpr auto kUnauthenticated = absl::StatusCode::kUnauthenticated;

}  // namespace

TEST_CASE("caller tokens round-trip and carry every field", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), seconds(60));
  REQUIRE(signer.ok());
  auto verifier = Verifier::FromKeys(signer->PublicKey(), "submission");
  REQUIRE(verifier.ok());
  auto c = Anna();
  c.acting_party = "22222222-2222-4222-8222-222222222222";
  auto back = verifier->Verify(signer->Sign(c, "submission"));
  REQUIRE(back.ok());
  CHECK(back->account_id == c.account_id);
  CHECK(back->acting_party == c.acting_party);
  CHECK(back->roles == c.roles);
  CHECK(back->assurance == "low");
}

TEST_CASE("forged, tampered, expired and unknown-key tokens are rejected", "[unit]") {
  const std::string key = NewSigningKey("k1");
  auto signer = Signer::FromKey(key, seconds(60));
  auto other = Signer::FromKey(NewSigningKey("k1"), seconds(60));  // Same kid, other key.
  auto unknown = Signer::FromKey(NewSigningKey("k9"), seconds(60));
  auto verifier = Verifier::FromKeys(signer->PublicKey(), "submission");
  const std::string token = signer->Sign(Anna(), "submission");
  REQUIRE(verifier->Verify(token).ok());
  CHECK(Code(verifier->Verify(other->Sign(Anna(), "submission"))) == kUnauthenticated);
  CHECK(verifier->Verify(unknown->Sign(Anna(), "submission")).status().message() ==
        "caller token signed by an unknown key");
  CHECK(Code(verifier->Verify("")) == kUnauthenticated);
  CHECK(Code(verifier->Verify("a.b.c")) == kUnauthenticated);
  std::string tampered = token;
  tampered[token.find('.') + 5] ^= 1;
  CHECK(Code(verifier->Verify(tampered)) == kUnauthenticated);
  auto expired = Signer::FromKey(NewSigningKey("k1"), seconds(-60));
  auto trusting = Verifier::FromKeys(expired->PublicKey(), "submission");
  CHECK(trusting->Verify(expired->Sign(Anna(), "submission")).status().message() == "caller token expired");

  // Claims changed after signing (a citizen made administrator): the signature breaks.
  const std::string header = token.substr(0, token.find('.'));
  const std::string signature = token.substr(token.rfind('.') + 1);
  auto claims = Claims(Anna(), "stadtportal-gateway", "stadtportal-submission");
  claims["sub"] = "33333333-3333-4333-8333-333333333333";
  CHECK(
      verifier->Verify(header + "." + absl::WebSafeBase64Escape(claims.dump()) + "." + signature).status().message() ==
      "caller token has a bad signature");

  // Algorithm confusion: "none" without a signature, and other algorithms even when the
  // bytes carry a valid Ed25519 signature.
  const std::string unsigned_token =
      absl::WebSafeBase64Escape(R"({"alg":"none","kid":"k1"})") + "." + absl::WebSafeBase64Escape(claims.dump()) + ".";
  CHECK(Code(verifier->Verify(unsigned_token)) == kUnauthenticated);
  for (const char* alg : {"none", "HS256", "RS256", "ES256", "eddsa"}) {
    INFO(alg);
    CHECK(verifier
              ->Verify(SignRaw(key, {{"alg", alg}, {"typ", "JWT"}, {"kid", "k1"}},
                               Claims(Anna(), "stadtportal-gateway", "stadtportal-submission")))
              .status()
              .message() == "caller token uses an unexpected algorithm");
  }
  CHECK(Code(verifier->Verify(SignRaw(key, {{"typ", "JWT"}, {"kid", "k1"}},
                                      Claims(Anna(), "stadtportal-gateway", "stadtportal-submission")))) ==
        kUnauthenticated);
  CHECK(Code(verifier->Verify(SignRaw(key, {{"alg", "EdDSA"}, {"kid", 7}},
                                      Claims(Anna(), "stadtportal-gateway", "stadtportal-submission")))) ==
        kUnauthenticated);
  // Validly signed, but a lifetime no signer issues.
  CHECK(verifier
            ->Verify(SignRaw(key, {{"alg", "EdDSA"}, {"kid", "k1"}},
                             Claims(Anna(), "stadtportal-gateway", "stadtportal-submission", 86400)))
            .status()
            .message() == "caller token lives too long");
  // Validly signed with the right claims: accepted (the helper itself is sound).
  CHECK(verifier
            ->Verify(SignRaw(key, {{"alg", "EdDSA"}, {"kid", "k1"}},
                             Claims(Anna(), "stadtportal-gateway", "stadtportal-submission")))
            .ok());
}

TEST_CASE("a verified token is kept: tampered bytes never match it, expiry is checked at every use", "[unit]") {
  const std::string key = NewSigningKey("k1");
  auto signer = Signer::FromKey(key, seconds(60));
  auto verifier = Verifier::FromKeys(signer->PublicKey(), "submission");
  const std::string token = signer->Sign(Anna(), "submission");
  REQUIRE(verifier->Verify(token).ok());
  CHECK(verifier->cached_tokens() == 1);
  REQUIRE(verifier->Verify(token).ok());
  CHECK(verifier->Verify(token)->account_id == Anna().account_id);
  CHECK(verifier->cached_tokens() == 1);
  // Bytes changed all over (header, claims, signature): refused, and a refusal is never
  // kept, so it is refused again. (The last character of a part may carry unused bits.)
  for (size_t i = 0; i + 1 < token.size(); i += 7) {
    if (token[i + 1] == '.') continue;
    std::string tampered = token;
    tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
    INFO(i);
    CHECK(Code(verifier->Verify(tampered)) == kUnauthenticated);
    CHECK(Code(verifier->Verify(tampered)) == kUnauthenticated);
  }
  CHECK(verifier->cached_tokens() == 1);
  // A copy keeps nothing of the original's.
  Verifier copy = *verifier;
  CHECK(copy.cached_tokens() == 0);

  // Accepted in its last second (expired, within the tolerated clock difference), kept,
  // and refused once that second is over although it is kept.
  const int64_t now = std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto claims = Claims(Anna(), "stadtportal-gateway", "stadtportal-submission");
  claims["iat"] = now - 15;
  claims["exp"] = now - 5;
  const std::string ending = SignRaw(key, {{"alg", "EdDSA"}, {"kid", "k1"}}, claims);
  auto last = verifier->Verify(ending);
  if (std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count() == now) {
    REQUIRE(last.ok());
    CHECK(verifier->cached_tokens() == 2);
  }
  std::this_thread::sleep_until(std::chrono::system_clock::time_point(seconds(now + 1)) +
                                std::chrono::milliseconds(10));
  CHECK(verifier->Verify(ending).status().message() == "caller token expired");
}

TEST_CASE("a signer hands a caller's token out again for a quarter of its lifetime", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), seconds(60));
  auto verifier = Verifier::FromKeys(signer->PublicKey(), "submission");
  const std::string token = signer->Sign(Anna(), "submission");
  CHECK(signer->Sign(Anna(), "submission") == token);
  CHECK(signer->cached_tokens() == 1);
  // Another audience, another caller, another role: each its own token.
  CHECK(signer->Sign(Anna(), "payment") != token);
  auto other = Anna();
  other.roles = {};
  CHECK(signer->Sign(other, "submission") != token);
  other = Anna();
  other.acting_party = "22222222-2222-4222-8222-222222222222";
  const std::string acting = signer->Sign(other, "submission");
  CHECK(acting != token);
  CHECK(verifier->Verify(acting)->acting_party == other.acting_party);
  CHECK(verifier->Verify(token)->acting_party.empty());
  CHECK(signer->cached_tokens() == 4);
  // A token handed out again is good for at least three quarters of the lifetime.
  std::string payload;
  REQUIRE(
      absl::WebSafeBase64Unescape(token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1), &payload));
  const int64_t now = std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(nlohmann::json::parse(payload)["exp"].get<int64_t>() - now >= 45);
}

TEST_CASE("signed and verified tokens kept stay within their bound", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), seconds(60));
  auto verifier = Verifier::FromKeys(signer->PublicKey(), "submission");
  REQUIRE(Signer::kCachedTokens == Verifier::kCachedTokens);
  auto c = Anna();
  std::string first;
  for (size_t i = 0; i < Signer::kCachedTokens + 20; ++i) {
    c.account_id = absl::StrFormat("00000000-0000-4000-8000-%012d", i);
    const std::string token = signer->Sign(c, "submission");
    if (i == 0) first = token;
    REQUIRE(verifier->Verify(token).ok());
  }
  CHECK(signer->cached_tokens() == Signer::kCachedTokens);
  CHECK(verifier->cached_tokens() == Verifier::kCachedTokens);
  // The oldest went first: the first token is verified anew (and still accepted).
  CHECK(verifier->Verify(first).ok());
  CHECK(verifier->cached_tokens() == Verifier::kCachedTokens);
}

TEST_CASE("a token is accepted only by the service it names as audience", "[unit]") {
  auto gateway = Signer::FromKey(NewSigningKey("g1"), seconds(60));
  auto submission = Verifier::FromKeys(gateway->PublicKey(), "submission");
  auto payment = Verifier::FromKeys(gateway->PublicKey(), "payment");
  REQUIRE(submission.ok());
  REQUIRE(payment.ok());
  const std::string for_submission = gateway->Sign(Anna(), "submission");
  CHECK(submission->Verify(for_submission).ok());
  // The submission service replays the caller's token to payment: refused.
  CHECK(payment->Verify(for_submission).status().message() == "caller token is for another service");
  CHECK(payment->Verify(gateway->Sign(Anna(), "payment")).ok());
  // The former shared audience is no service's.
  const std::string key = NewSigningKey("g2");
  auto shared = Verifier::FromKeys(Signer::FromKey(key, seconds(60))->PublicKey(), "payment");
  CHECK(Code(shared->Verify(SignRaw(key, {{"alg", "EdDSA"}, {"kid", "g2"}},
                                    Claims(Anna(), "stadtportal-gateway", "stadtportal-services")))) ==
        kUnauthenticated);
  CHECK_FALSE(Verifier::FromKeys(gateway->PublicKey(), "").ok());
}

TEST_CASE("the connector's key is trusted only for the connector itself as a platform service", "[unit]") {
  const std::string connector_key = NewSigningKey("c1");
  auto gateway = Signer::FromKey(NewSigningKey("g1"), seconds(60));
  auto connector = Signer::FromKey(connector_key, seconds(60), "connector");
  REQUIRE(connector.ok());
  auto verifier = Verifier::FromKeys(gateway->PublicKey(), "submission");
  REQUIRE(verifier->TrustServiceKeys("connector", connector->PublicKey()).ok());

  auto itself = verifier->Verify(connector->Sign(ConnectorItself(), "submission"));
  REQUIRE(itself.ok());
  CHECK(itself->roles == std::vector<std::string>{"service"});

  // A citizen, an administrator, an organisation acted for, a back office, or any extra
  // role: all refused under the connector's key.
  const auto refused = [&](const Caller& c) {
    return verifier->Verify(connector->Sign(c, "submission")).status().message() ==
           "caller token asserts a caller its signer may not";
  };
  CHECK(refused(Anna()));
  Caller citizen = Anna();
  citizen.roles = {};
  CHECK(refused(citizen));
  citizen.roles = {"service"};  // A citizen's subject with the service role.
  CHECK(refused(citizen));
  Caller admin = ConnectorItself();
  admin.roles = {"service", "tenant-admin"};
  CHECK(refused(admin));
  Caller acting = ConnectorItself();
  acting.acting_party = "22222222-2222-4222-8222-222222222222";
  CHECK(refused(acting));
  Caller department = ConnectorItself();
  department.roles = {"department", "destination:standesamt"};
  CHECK(refused(department));
  Caller with_session = ConnectorItself();
  with_session.session_ref = "abc";
  CHECK(refused(with_session));
  Caller anonymous = ConnectorItself();
  anonymous.account_id = "";
  anonymous.roles = {};
  CHECK(refused(anonymous));

  // The connector's key claiming to be the gateway (its iss) is still the connector's.
  CHECK(verifier
            ->Verify(SignRaw(connector_key, {{"alg", "EdDSA"}, {"kid", "c1"}},
                             Claims(Anna(), "stadtportal-gateway", "stadtportal-submission")))
            .status()
            .message() == "caller token has the wrong issuer");
  // Nor does the gateway's key speak for platform services.
  CHECK(verifier->Verify(gateway->Sign(ConnectorItself(), "submission")).status().message() ==
        "caller token asserts a role its signer may not");
  CHECK(verifier->Verify(gateway->Sign(Anna(), "submission")).ok());

  // Without the connector's keys configured, its tokens are unknown.
  auto gateway_only = Verifier::FromKeys(gateway->PublicKey(), "submission");
  CHECK(gateway_only->Verify(connector->Sign(ConnectorItself(), "submission")).status().message() ==
        "caller token signed by an unknown key");
  // One kid, one part; only known parts.
  auto clash = Verifier::FromKeys(gateway->PublicKey(), "submission");
  auto same_kid = Signer::FromKey(NewSigningKey("g1"), seconds(60), "connector");
  CHECK_FALSE(clash->TrustServiceKeys("connector", same_kid->PublicKey()).ok());
  CHECK_FALSE(clash->TrustServiceKeys("gateway", connector->PublicKey()).ok());
  CHECK_FALSE(clash->TrustServiceKeys("messaging", connector->PublicKey()).ok());
  CHECK_FALSE(Signer::FromKey(NewSigningKey("x"), seconds(60), "messaging").ok());

  // The payment service signs for itself too, under a key of its own: never as the connector.
  auto payment = Signer::FromKey(NewSigningKey("p1"), seconds(60), "payment");
  REQUIRE(payment.ok());
  REQUIRE(verifier->TrustServiceKeys("payment", payment->PublicKey()).ok());
  Caller payment_itself = ConnectorItself();
  payment_itself.account_id = "payment";
  CHECK(verifier->Verify(payment->Sign(payment_itself, "submission")).ok());
  auto self = verifier->Verify(payment->SignSelf("09564000", "submission"));
  REQUIRE(self.ok());
  CHECK(self->account_id == "payment");
  CHECK(self->tenant == "09564000");
  CHECK(self->roles == std::vector<std::string>{"service"});
  CHECK(verifier->Verify(payment->Sign(ConnectorItself(), "submission")).status().message() ==
        "caller token asserts a caller its signer may not");
  CHECK(verifier->Verify(connector->Sign(payment_itself, "submission")).status().message() ==
        "caller token asserts a caller its signer may not");
}

TEST_CASE("a partner portal is named only by the gateway, for the person themself", "[unit]") {
  const std::string gateway_key = NewSigningKey("g1"), connector_key = NewSigningKey("c1");
  auto gateway = Signer::FromKey(gateway_key, seconds(60));
  auto connector = Signer::FromKey(connector_key, seconds(60), "connector");
  auto verifier = Verifier::FromKeys(gateway->PublicKey(), "submission");
  REQUIRE(verifier->TrustServiceKeys("connector", connector->PublicKey()).ok());
  Caller partner = Anna();
  partner.roles = {};
  partner.session_ref = "partner:jti-1";
  partner.partner_id = "33333333-3333-4333-8333-333333333333";
  partner.partner_name = "Bürgerportal Plus";
  partner.partner_scope = "submissions:read";

  auto back = verifier->Verify(gateway->Sign(partner, "submission"));
  REQUIRE(back.ok());
  CHECK(back->partner());
  CHECK(back->partner_id == partner.partner_id);
  CHECK(back->partner_name == "Bürgerportal Plus");
  CHECK(back->partner_scope == "submissions:read");
  // The person's own token is no partner's, and another partner's is another token.
  Caller person = partner;
  person.partner_id = person.partner_name = person.partner_scope = "";
  auto own = verifier->Verify(gateway->Sign(person, "submission"));
  REQUIRE(own.ok());
  CHECK_FALSE(own->partner());
  CHECK(own->partner_name.empty());
  Caller other = partner;
  other.partner_id = "44444444-4444-4444-8444-444444444444";
  CHECK(gateway->Sign(other, "submission") != gateway->Sign(partner, "submission"));
  CHECK(verifier->Verify(gateway->Sign(other, "submission"))->partner_id == other.partner_id);

  // Never with a role or for an organisation, even signed by the gateway.
  const auto refused = [&](const Caller& c) {
    return verifier->Verify(gateway->Sign(c, "submission")).status().message() ==
           "caller token asserts a partner its signer may not";
  };
  Caller with_role = partner;
  with_role.roles = {"tenant-admin"};
  CHECK(refused(with_role));
  Caller department = partner;
  department.roles = {"department", "destination:standesamt"};
  CHECK(refused(department));
  Caller acting = partner;
  acting.acting_party = "22222222-2222-4222-8222-222222222222";
  CHECK(refused(acting));

  // Another part's key may not name a partner: not for itself, not for anyone.
  auto self = ConnectorItself();
  self.partner_id = partner.partner_id;
  CHECK_FALSE(verifier->Verify(connector->Sign(self, "submission")).ok());
  auto raw = Claims(ConnectorItself(), "stadtportal-connector", "stadtportal-submission");
  raw["ptn"] = {{"id", partner.partner_id}, {"name", ""}, {"scope", "submissions:read"}};
  CHECK(verifier->Verify(SignRaw(connector_key, {{"alg", "EdDSA"}, {"kid", "c1"}}, raw)).status().message() ==
        "caller token asserts a partner its signer may not");

  // Malformed partner claims are refused, never thrown on.
  auto claims = Claims(person, "stadtportal-gateway", "stadtportal-submission");
  for (const nlohmann::json& ptn :
       {nlohmann::json("33333333"), nlohmann::json::array(), nlohmann::json{{"id", partner.partner_id}},
        nlohmann::json{{"id", 7}, {"name", ""}, {"scope", ""}}, nlohmann::json{{"id", ""}, {"name", ""}, {"scope", ""}},
        nlohmann::json{{"id", std::string(kMaxPartnerClaim + 1, 'a')}, {"name", ""}, {"scope", ""}},
        nlohmann::json{{"id", "a"}, {"name", std::string(kMaxPartnerClaim + 1, 'n')}, {"scope", ""}}}) {
    INFO(ptn.dump());
    claims["ptn"] = ptn;
    CHECK(verifier->Verify(SignRaw(gateway_key, {{"alg", "EdDSA"}, {"kid", "g1"}}, claims)).status().code() ==
          kUnauthenticated);
  }
  claims["ptn"] = {{"id", partner.partner_id}, {"name", "P"}, {"scope", "mailbox:read"}};
  auto raw_ok = verifier->Verify(SignRaw(gateway_key, {{"alg", "EdDSA"}, {"kid", "g1"}}, claims));
  REQUIRE(raw_ok.ok());
  CHECK(raw_ok->partner_scope == "mailbox:read");
}

TEST_CASE("headers and claims of unexpected types are refused, never thrown on", "[unit]") {
  auto signer = Signer::FromKey(NewSigningKey("k1"), std::chrono::seconds(60));
  REQUIRE(signer.ok());
  auto verifier = Verifier::FromKeys(signer->PublicKey(), "submission");
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
                           {"aud", "stadtportal-submission"},
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
  auto old_key = Signer::FromKey(NewSigningKey("k1"), seconds(60));
  auto new_key = Signer::FromKey(NewSigningKey("k2"), seconds(60));
  auto both = Verifier::FromKeys(old_key->PublicKey() + "," + new_key->PublicKey(), "messaging");
  REQUIRE(both.ok());
  CHECK(both->Verify(old_key->Sign(Anna(), "messaging")).ok());
  CHECK(both->Verify(new_key->Sign(Anna(), "messaging")).ok());
  CHECK_FALSE(Verifier::FromKeys("k1:notbase64!", "messaging").ok());
  // The connector's keys rotate the same way, on their own.
  auto c1 = Signer::FromKey(NewSigningKey("c1"), seconds(60), "connector");
  auto c2 = Signer::FromKey(NewSigningKey("c2"), seconds(60), "connector");
  REQUIRE(both->TrustServiceKeys("connector", c1->PublicKey() + "," + c2->PublicKey()).ok());
  CHECK(both->Verify(c1->Sign(ConnectorItself(), "messaging")).ok());
  CHECK(both->Verify(c2->Sign(ConnectorItself(), "messaging")).ok());
}

TEST_CASE("verifiers and signers come from the settings of each part", "[unit]") {
  auto gateway = Signer::FromKey(NewSigningKey("g1"), seconds(60));
  const std::string connector_key = NewSigningKey("c1");
  auto connector = Signer::FromKey(connector_key, seconds(60), "connector");
  config::Env env({{"STADTPORTAL_CALLER_PUBLIC_KEYS", gateway->PublicKey()},
                   {"STADTPORTAL_CONNECTOR_PUBLIC_KEYS", connector->PublicKey()},
                   {"STADTPORTAL_CONNECTOR_SIGNING_KEY", connector_key}});
  auto verifier = Verifier::FromEnv(env, "messaging");
  CHECK(verifier.Verify(connector->Sign(ConnectorItself(), "messaging")).ok());
  CHECK(verifier.Verify(gateway->Sign(Anna(), "messaging")).ok());
  auto from_env = Signer::FromEnv(env, "connector");
  CHECK(from_env.issuer() == "connector");
  CHECK(verifier.Verify(from_env.Sign(ConnectorItself(), "messaging")).ok());
  // The connector never falls back to the gateway's setting.
  config::Env gateway_key_only({{"STADTPORTAL_CALLER_SIGNING_KEY", NewSigningKey("g1")}});
  CHECK_THROWS_AS(Signer::FromEnv(gateway_key_only, "connector"), config::Error);
  config::Env clash({{"STADTPORTAL_CALLER_PUBLIC_KEYS", gateway->PublicKey()},
                     {"STADTPORTAL_CONNECTOR_PUBLIC_KEYS", gateway->PublicKey()}});
  CHECK_THROWS_AS(Verifier::FromEnv(clash, "messaging"), config::Error);
}

TEST_CASE("data is scoped to the acting organisation, else to the person", "[unit]") {
  auto c = Anna();
  CHECK(*ScopeParty(c) == c.account_id);
  c.acting_party = "22222222-2222-4222-8222-222222222222";
  CHECK(*ScopeParty(c) == c.acting_party);
  CHECK(ScopeParty(Caller{}).status().code() == absl::StatusCode::kUnauthenticated);
}

TEST_CASE("a call meant for one platform service is refused to every other caller", "[unit]") {
  Caller connector;
  connector.account_id = "connector";
  connector.roles = {"service"};
  Caller payment = connector;
  payment.account_id = "payment";
  Caller pretender;  // Names the connector but is no platform service.
  pretender.account_id = "connector";
  pretender.roles = {"tenant-admin"};
  CHECK(RequireService(connector, "connector").ok());
  CHECK(RequireService(payment, "connector").code() == absl::StatusCode::kPermissionDenied);
  CHECK(RequireService(pretender, "connector").code() == absl::StatusCode::kPermissionDenied);
  CHECK(RequireService(payment, "payment").ok());
  CHECK(IsService(connector, "connector"));
  CHECK_FALSE(IsService(connector, "payment"));
}

TEST_CASE("granted roles are administrative: a session acts with them only after the second factor", "[unit]") {
  for (const auto& role : GrantableRoles()) CHECK(IsAdminRole(role));
  CHECK(IsAdminRole(kKpiReader));
  CHECK(IsAdminRole("payment-admin"));
  CHECK_FALSE(IsAdminRole("department"));
  CHECK_FALSE(IsAdminRole("destination:standesamt"));
  CHECK_FALSE(IsAdminRole("service"));
  CHECK_FALSE(IsAdminRole("kpi-readers"));
}

}  // namespace stadtportal::auth

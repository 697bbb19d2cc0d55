#include "libs/auth/caller.h"

#include <sodium.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/roles.h"

namespace stadtportal::auth {
namespace {

// A string member of a JSON object from outside, "" when absent or of another type
// (json::value would throw on a number).
std::string StringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Tolerated clock difference between gateway and service hosts.
constexpr int64_t kLeewaySeconds = 5;
// No signer issues tokens living longer (STADTPORTAL_CALLER_TOKEN_LIFETIME_S ≤ 600).
constexpr int64_t kMaxLifetimeSeconds = 600;
constexpr char kServiceRole[] = "service";

bool IsServiceIssuer(const std::string& part) {
  const auto& issuers = ServiceIssuers();
  return std::find(issuers.begin(), issuers.end(), part) != issuers.end();
}

void InitSodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialise");
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

absl::StatusOr<std::pair<std::string, std::string>> SplitKey(const std::string& key, size_t bytes) {
  std::vector<std::string> parts = absl::StrSplit(key, absl::MaxSplits(':', 1));
  std::string raw;
  if (parts.size() != 2 || parts[0].empty() || !absl::Base64Unescape(parts[1], &raw) || raw.size() != bytes) {
    return absl::InvalidArgumentError(absl::StrCat("expected kid:base64 of ", bytes, " bytes"));
  }
  return std::make_pair(parts[0], raw);
}

}  // namespace

std::string PartUri(const std::string& part) { return "stadtportal-" + part; }

absl::StatusOr<Signer> Signer::FromKey(const std::string& key, std::chrono::seconds lifetime,
                                       const std::string& issuer) {
  InitSodium();
  if (issuer != kGateway && !IsServiceIssuer(issuer)) return absl::InvalidArgumentError("unknown issuer " + issuer);
  auto split = SplitKey(key, crypto_sign_SEEDBYTES);
  if (!split.ok()) return split.status();
  Signer s;
  s.kid_ = split->first;
  s.issuer_ = issuer;
  s.secret_.resize(crypto_sign_SECRETKEYBYTES);
  s.public_.resize(crypto_sign_PUBLICKEYBYTES);
  crypto_sign_seed_keypair(reinterpret_cast<unsigned char*>(s.public_.data()),
                           reinterpret_cast<unsigned char*>(s.secret_.data()),
                           reinterpret_cast<const unsigned char*>(split->second.data()));
  s.lifetime_ = lifetime;
  return s;
}

std::string Signer::SigningKeySetting(const std::string& issuer) {
  return issuer == kGateway ? "STADTPORTAL_CALLER_SIGNING_KEY"
                            : "STADTPORTAL_" + absl::AsciiStrToUpper(issuer) + "_SIGNING_KEY";
}

std::string Signer::PublicKeysSetting(const std::string& issuer) {
  return issuer == kGateway ? "STADTPORTAL_CALLER_PUBLIC_KEYS"
                            : "STADTPORTAL_" + absl::AsciiStrToUpper(issuer) + "_PUBLIC_KEYS";
}

Signer Signer::FromEnv(const config::Env& env, const std::string& issuer) {
  auto lifetime = std::chrono::seconds(env.Int("STADTPORTAL_CALLER_TOKEN_LIFETIME_S", 60, 5, kMaxLifetimeSeconds));
  const std::string setting = SigningKeySetting(issuer);
  auto s = FromKey(env.Secret(setting), lifetime, issuer);
  if (!s.ok()) throw config::Error(absl::StrCat(setting, ": ", s.status().message()));
  return *s;
}

std::string Signer::PublicKey() const { return kid_ + ":" + absl::Base64Escape(public_); }

std::string Signer::Sign(const Caller& c, const std::string& audience) const {
  const int64_t now = NowSeconds();
  nlohmann::json claims = {{"iss", PartUri(issuer_)}, {"aud", PartUri(audience)}, {"sub", c.account_id},
                           {"act", c.acting_party},   {"ten", c.tenant},          {"acr", c.assurance},
                           {"roles", c.roles},        {"sid", c.session_ref}};
  // Only on a partner portal's calls, so every other token stays as it was.
  if (c.partner()) claims["ptn"] = {{"id", c.partner_id}, {"name", c.partner_name}, {"scope", c.partner_scope}};
  const std::string key = claims.dump();
  if (auto token = signed_.Get(key, now)) return *std::move(token);
  claims["iat"] = now;
  claims["exp"] = now + lifetime_.count();
  std::string token = SignClaims(claims);
  signed_.Put(key, token, now + lifetime_.count() / 4);
  return token;
}

std::string Signer::SignSelf(const std::string& tenant, const std::string& audience) const {
  Caller self;
  self.account_id = issuer_;
  self.tenant = tenant;
  self.roles = {"service"};
  return Sign(self, audience);
}

std::string Signer::SignClaims(const nlohmann::json& payload) const {
  nlohmann::json header = {{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", kid_}};
  const std::string signing_input =
      absl::WebSafeBase64Escape(header.dump()) + "." + absl::WebSafeBase64Escape(payload.dump());
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
                       reinterpret_cast<const unsigned char*>(secret_.data()));
  return signing_input + "." + absl::WebSafeBase64Escape(std::string(reinterpret_cast<char*>(sig), sizeof(sig)));
}

absl::Status Verifier::AddKeys(const std::string& issuer, const std::string& keys) {
  for (absl::string_view k : absl::StrSplit(keys, ',', absl::SkipEmpty())) {
    auto split = SplitKey(std::string(k), crypto_sign_PUBLICKEYBYTES);
    if (!split.ok()) return split.status();
    // One kid, one key: a kid of another part's key would make its tokens ambiguous.
    if (!keys_.emplace(split->first, Key{split->second, issuer}).second) {
      return absl::InvalidArgumentError(absl::StrCat("kid ", split->first, " is given twice"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Verifier> Verifier::FromKeys(const std::string& gateway_keys, const std::string& audience) {
  InitSodium();
  Verifier v;
  if (audience.empty()) return absl::InvalidArgumentError("no audience given");
  v.audience_ = PartUri(audience);
  if (auto s = v.AddKeys(kGateway, gateway_keys); !s.ok()) return s;
  if (v.keys_.empty()) return absl::InvalidArgumentError("no key given");
  return v;
}

absl::Status Verifier::TrustServiceKeys(const std::string& issuer, const std::string& keys) {
  if (!IsServiceIssuer(issuer)) return absl::InvalidArgumentError("unknown issuer " + issuer);
  return AddKeys(issuer, keys);
}

Verifier Verifier::FromEnv(const config::Env& env, const std::string& audience) {
  const std::string gateway = Signer::PublicKeysSetting(kGateway);
  auto v = FromKeys(env.Required(gateway), audience);
  if (!v.ok()) throw config::Error(absl::StrCat(gateway, ": ", v.status().message()));
  for (const auto& issuer : ServiceIssuers()) {
    const std::string setting = Signer::PublicKeysSetting(issuer);
    if (auto s = v->TrustServiceKeys(issuer, env.String(setting, "")); !s.ok()) {
      throw config::Error(absl::StrCat(setting, ": ", s.message()));
    }
  }
  return *v;
}

absl::StatusOr<Caller> Verifier::Verify(const std::string& token) const {
  const int64_t now = NowSeconds();
  if (auto caller = verified_.Get(token, now)) return *std::move(caller);
  int64_t accepted_until = 0;
  auto caller = VerifyAnew(token, now, &accepted_until);
  if (caller.ok()) verified_.Put(token, *caller, accepted_until);
  return caller;
}

absl::StatusOr<Caller> Verifier::VerifyAnew(const std::string& token, int64_t now, int64_t* accepted_until) const {
  const auto bad = [](const char* why) { return absl::UnauthenticatedError(absl::StrCat("caller token ", why)); };
  if (token.empty()) return bad("missing");
  if (token.size() > 8192) return bad("too large");
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return bad("malformed");
  std::string header_raw, payload_raw, sig;
  if (!absl::WebSafeBase64Unescape(parts[0], &header_raw) || !absl::WebSafeBase64Unescape(parts[1], &payload_raw) ||
      !absl::WebSafeBase64Unescape(parts[2], &sig) || sig.size() != crypto_sign_BYTES) {
    return bad("malformed");
  }
  nlohmann::json header = nlohmann::json::parse(header_raw, nullptr, false);
  nlohmann::json payload = nlohmann::json::parse(payload_raw, nullptr, false);
  if (!header.is_object() || !payload.is_object()) return bad("malformed");
  try {
    if (!header.contains("alg") || header.at("alg") != "EdDSA") return bad("uses an unexpected algorithm");
    if (!header.contains("kid") || !header.at("kid").is_string()) return bad("signed by an unknown key");
    auto key = keys_.find(header.at("kid").get<std::string>());
    if (key == keys_.end()) return bad("signed by an unknown key");
    const std::string signing_input = parts[0] + "." + parts[1];
    if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                    reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
                                    reinterpret_cast<const unsigned char*>(key->second.public_key.data())) != 0) {
      return bad("has a bad signature");
    }
    // The key decides who signed: a token naming another part as issuer is not its own.
    if (payload.at("iss") != PartUri(key->second.issuer)) return bad("has the wrong issuer");
    if (payload.at("aud") != audience_) return bad("is for another service");
    // Whole seconds only (a float would be converted with undefined behaviour at the
    // edges), compared without overflow.
    if (!payload.at("exp").is_number_integer() || !payload.at("iat").is_number_integer()) return bad("malformed");
    const int64_t exp = payload.at("exp").get<int64_t>(), iat = payload.at("iat").get<int64_t>();
    if (exp < now - kLeewaySeconds) return bad("expired");
    if (iat > now + kLeewaySeconds) return bad("not yet valid");
    if (iat < exp - kMaxLifetimeSeconds) return bad("lives too long");
    Caller c;
    c.account_id = payload.at("sub").get<std::string>();
    c.acting_party = payload.at("act").get<std::string>();
    c.tenant = payload.at("ten").get<std::string>();
    c.assurance = payload.at("acr").get<std::string>();
    c.roles = payload.at("roles").get<std::vector<std::string>>();
    c.session_ref = payload.at("sid").get<std::string>();
    if (!config::IsTenantKey(c.tenant)) return bad("names no valid tenant");
    if (auto partner = payload.find("ptn"); partner != payload.end()) {
      if (!partner->is_object()) return bad("malformed");
      c.partner_id = partner->at("id").get<std::string>();
      c.partner_name = partner->at("name").get<std::string>();
      c.partner_scope = partner->at("scope").get<std::string>();
      if (c.partner_id.empty() || c.partner_id.size() > kMaxPartnerClaim || c.partner_name.size() > kMaxPartnerClaim ||
          c.partner_scope.size() > kMaxPartnerClaim) {
        return bad("malformed");
      }
      // A partner portal reads for the person themself, never for an organisation or
      // with a role; and only the gateway, which checked its access token, names it.
      if (key->second.issuer != kGateway || c.anonymous() || !c.acting_party.empty() || !c.roles.empty()) {
        return bad("asserts a partner its signer may not");
      }
    }
    if (key->second.issuer == kGateway) {
      // Platform parts are not the gateway's to assert.
      if (HasRole(c, kServiceRole)) return bad("asserts a role its signer may not");
    } else if (c.roles != std::vector<std::string>{kServiceRole} || c.account_id != key->second.issuer ||
               !c.acting_party.empty() || !c.assurance.empty() || !c.session_ref.empty()) {
      // Another part speaks only for itself, as a platform service.
      return bad("asserts a caller its signer may not");
    }
    // Refused as expired from the second after this one on.
    *accepted_until = exp + kLeewaySeconds;
    return c;
  } catch (const std::exception&) {
    return bad("malformed");
  }
}

absl::StatusOr<nlohmann::json> VerifyEdDsa(const std::string& token, const std::string& public_key) {
  InitSodium();
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  std::string header_raw, payload_raw, sig;
  if (token.size() > 8192 || parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[0], &header_raw) ||
      !absl::WebSafeBase64Unescape(parts[1], &payload_raw) || !absl::WebSafeBase64Unescape(parts[2], &sig) ||
      sig.size() != crypto_sign_BYTES || public_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return absl::UnauthenticatedError("assertion malformed");
  }
  const auto header = nlohmann::json::parse(header_raw, nullptr, false);
  const auto payload = nlohmann::json::parse(payload_raw, nullptr, false);
  if (!header.is_object() || !payload.is_object() || StringField(header, "alg") != "EdDSA") {
    return absl::UnauthenticatedError("assertion malformed or not EdDSA");
  }
  const std::string signing_input = parts[0] + "." + parts[1];
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                  reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
                                  reinterpret_cast<const unsigned char*>(public_key.data())) != 0) {
    return absl::UnauthenticatedError("assertion has a bad signature");
  }
  return payload;
}

std::string PublicKeyBytes(const Signer& signer) {
  std::string raw;
  const std::string key = signer.PublicKey();
  (void)absl::Base64Unescape(key.substr(key.find(':') + 1), &raw);
  return raw;
}

bool HasRole(const Caller& caller, const std::string& role) {
  return std::find(caller.roles.begin(), caller.roles.end(), role) != caller.roles.end();
}

absl::Status RequireRole(const Caller& caller, const std::string& role) {
  if (HasRole(caller, role)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("the ", role, " role is required"));
}

bool IsService(const Caller& caller, std::string_view part) {
  return HasRole(caller, kServiceRole) && caller.account_id == part;
}

absl::Status RequireService(const Caller& caller, std::string_view part) {
  if (IsService(caller, part)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("only the ", std::string(part), " service may call this"));
}

std::string DestinationOf(const Caller& caller) {
  constexpr std::string_view kPrefix = "destination:";
  for (const auto& r : caller.roles) {
    if (r.size() > kPrefix.size() && r.compare(0, kPrefix.size(), kPrefix) == 0) return r.substr(kPrefix.size());
  }
  return "";
}

bool IsAdminRole(const std::string& role) {
  const auto& granted = GrantableRoles();
  return absl::EndsWith(role, "-admin") || std::find(granted.begin(), granted.end(), role) != granted.end();
}

absl::StatusOr<std::string> ScopeParty(const Caller& caller) {
  if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
  return caller.acting_party.empty() ? caller.account_id : caller.acting_party;
}

std::string NewSigningKey(const std::string& kid) {
  InitSodium();
  unsigned char seed[crypto_sign_SEEDBYTES];
  randombytes_buf(seed, sizeof(seed));
  return kid + ":" + absl::Base64Escape(std::string(reinterpret_cast<char*>(seed), sizeof(seed)));
}

}  // namespace stadtportal::auth

#include "services/identity/federation/oidc.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/api/text.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "libs/net/url.h"
#include "services/identity/federation/fetch.h"
#include "services/identity/federation/jose.h"

namespace stadtportal::identity::federation {
namespace {

using fetch::AllowedScheme;
using fetch::Form;
using fetch::JsonObject;
using fetch::WithQuery;
using jose::Base64Url;
using jose::ConstantTimeEqual;
using jose::NumericDate;
using jose::Pkey;
using jose::Sign;
using jose::Text;

using HttpAnswer = fetch::Answer;

// One request with the relying party's limits.
absl::StatusOr<HttpAnswer> Fetch(const std::string& url, const std::vector<std::string>& headers,
                                 const std::string* form, const OidcRelyingParty::Options& options) {
  fetch::Limits limits;
  limits.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(options.http_timeout);
  limits.max_bytes = options.max_document_bytes;
  return fetch::Fetch(url, headers, form, limits);
}

// An OAuth error code from an answer, when it looks like one (it goes into a log line).
std::string OAuthError(const HttpAnswer& answer) {
  const auto j = JsonObject(answer);
  const std::string error = j ? Text(*j, "error") : "";
  const bool plain = !error.empty() && error.size() <= 64 &&
                     std::all_of(error.begin(), error.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
  return plain ? error : "";
}

}  // namespace

bool EndpointAllowed(const std::string& issuer, const std::string& endpoint) {
  const std::string scheme = AllowedScheme(endpoint);
  return !scheme.empty() && scheme == AllowedScheme(issuer);
}

bool SameState(const std::string& a, const std::string& b) { return !a.empty() && ConstantTimeEqual(a, b); }

absl::StatusOr<nlohmann::json> VerifyIdToken(const std::string& jwt, const nlohmann::json& jwks,
                                             const IdTokenExpectations& expected, absl::Time now) {
  auto jws = jose::VerifyCompact(jwt, jwks, {"RS256", "PS256", "ES256"}, kMaxIdTokenBytes);
  if (!jws.ok()) return Refused(std::string(jws.status().message()));
  nlohmann::json claims = std::move(jws->claims);
  if (!ConstantTimeEqual(Text(claims, "iss"), expected.issuer) || expected.issuer.empty()) return Refused("issuer");
  const auto aud = claims.find("aud");
  std::vector<std::string> audiences;
  if (aud != claims.end() && aud->is_string()) audiences.push_back(aud->get<std::string>());
  if (aud != claims.end() && aud->is_array()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return Refused("audience");
      audiences.push_back(a.get<std::string>());
    }
  }
  if (expected.client_id.empty() ||
      std::find(audiences.begin(), audiences.end(), expected.client_id) == audiences.end()) {
    return Refused("audience");
  }
  if ((audiences.size() > 1 || claims.contains("azp")) && Text(claims, "azp") != expected.client_id) {
    return Refused("azp");
  }
  const int64_t t = absl::ToUnixSeconds(now);
  const int64_t skew = expected.skew.count();
  const auto exp = NumericDate(claims, "exp");
  const auto iat = NumericDate(claims, "iat");
  if (!exp || !iat) return Refused("malformed");
  if (t > *exp + skew) return Refused("expired");
  if (*iat > t + skew) return Refused("not_yet_valid");
  if (claims.contains("nbf")) {
    const auto nbf = NumericDate(claims, "nbf");
    if (!nbf) return Refused("malformed");
    if (*nbf > t + skew) return Refused("not_yet_valid");
  }
  if (expected.nonce.empty() || !ConstantTimeEqual(Text(claims, "nonce"), expected.nonce)) return Refused("nonce");
  const std::string sub = Text(claims, "sub");
  if (sub.empty() || sub.size() > 255 || !api::IsPlainText(sub)) return Refused("malformed");
  return claims;
}

// ---------------------------------------------------------------------------------------
// The relying party

struct OidcRelyingParty::Metadata {
  std::string authorization_endpoint, token_endpoint, userinfo_endpoint, end_session_endpoint, jwks_uri;
  nlohmann::json jwks;
  absl::Time fetched;
};

struct OidcRelyingParty::Key {
  Pkey pkey;
  std::string alg;  // RS256 or ES256.
};

namespace {

// A JSON object fetched with GET (the discovery document, the key set).
absl::StatusOr<nlohmann::json> FetchJson(const std::string& url, const OidcRelyingParty::Options& options,
                                         const std::string& what) {
  auto answer = Fetch(url, {}, nullptr, options);
  if (!answer.ok()) return absl::UnavailableError(absl::StrCat(what, ": ", answer.status().message()));
  if (answer->status != 200) return absl::UnavailableError(absl::StrCat(what, ": HTTP ", answer->status));
  auto j = JsonObject(*answer);
  if (!j) return absl::UnavailableError(absl::StrCat(what, ": not a JSON object"));
  return *std::move(j);
}

}  // namespace

OidcRelyingParty::OidcRelyingParty(Provider provider, Options options)
    : provider_(std::move(provider)), options_(std::move(options)) {}

OidcRelyingParty::~OidcRelyingParty() = default;

absl::StatusOr<std::unique_ptr<OidcRelyingParty>> OidcRelyingParty::Create(const Provider& provider, Options options) {
  const auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("provider ", provider.id, ": ", what));
  };
  if (provider.kind != Provider::Kind::kOidc) return invalid("not an OpenID Connect provider");
  if (AllowedScheme(provider.oidc.issuer).empty()) return invalid("issuer must be https (http only on loopback)");
  if (AllowedScheme(options.redirect_uri).empty()) return invalid("redirect_uri must be https (http only on loopback)");
  if (options.skew < std::chrono::seconds(0) || options.skew > std::chrono::seconds(300)) {
    return invalid("skew must be 0 to 300 seconds");
  }
  if (options.http_timeout <= std::chrono::seconds(0) || options.max_document_bytes < 1024) {
    return invalid("http_timeout and max_document_bytes must be positive");
  }
  std::unique_ptr<Key> key;
  if (!options.private_key_file.empty()) {
    FILE* f = fopen(options.private_key_file.c_str(), "r");
    if (f == nullptr) return invalid("private key file cannot be read");
    EVP_PKEY* pkey = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    fclose(f);
    if (pkey == nullptr) return invalid("private key file holds no PEM private key");
    key = std::make_unique<Key>();
    key->pkey.reset(pkey);
    if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= 2048) {
      key->alg = "RS256";
    } else if (char curve[64] = {0};
               EVP_PKEY_is_a(pkey, "EC") &&
               EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve), nullptr) == 1 &&
               std::string(curve) == "prime256v1") {
      key->alg = "ES256";
    } else {
      return invalid("private key must be RSA (2048 bits or more) or EC P-256");
    }
  } else if (options.client_secret.empty()) {
    return invalid("neither a client secret nor a private key");
  }
  std::unique_ptr<OidcRelyingParty> rp(new OidcRelyingParty(provider, std::move(options)));
  rp->key_ = std::move(key);
  return rp;
}

size_t OidcRelyingParty::jwks_fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jwks_fetches_;
}

absl::StatusOr<std::shared_ptr<const OidcRelyingParty::Metadata>> OidcRelyingParty::CurrentMetadata() {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = absl::Now();
  if (metadata_ && now - metadata_->fetched < absl::FromChrono(options_.metadata_ttl)) return metadata_;
  // A provider that just failed is not asked again at once: callers do not queue up
  // behind one slow fetch after another.
  if (now - last_failure_ < absl::FromChrono(kRetryAfterFailure)) {
    if (metadata_) return metadata_;
    return absl::UnavailableError("discovery: failed a moment ago");
  }
  const auto fetch = [&]() -> absl::StatusOr<std::shared_ptr<const Metadata>> {
    const std::string issuer = provider_.oidc.issuer;
    const std::string base = absl::EndsWith(issuer, "/") ? issuer.substr(0, issuer.size() - 1) : issuer;
    auto d = FetchJson(base + "/.well-known/openid-configuration", options_, "discovery");
    if (!d.ok()) return d.status();
    // The document must be the issuer's own (OpenID Connect Discovery §4.3).
    if (Text(*d, "issuer") != issuer) return absl::UnavailableError("discovery: another issuer");
    auto m = std::make_shared<Metadata>();
    m->authorization_endpoint = Text(*d, "authorization_endpoint");
    m->token_endpoint = Text(*d, "token_endpoint");
    m->jwks_uri = Text(*d, "jwks_uri");
    m->userinfo_endpoint = Text(*d, "userinfo_endpoint");
    m->end_session_endpoint = Text(*d, "end_session_endpoint");
    for (const std::string* url : {&m->authorization_endpoint, &m->token_endpoint, &m->jwks_uri}) {
      if (!EndpointAllowed(issuer, *url)) {
        return absl::UnavailableError("discovery: an endpoint is missing or not of the issuer's scheme");
      }
    }
    for (const std::string* url : {&m->userinfo_endpoint, &m->end_session_endpoint}) {
      if (!url->empty() && !EndpointAllowed(issuer, *url)) {
        return absl::UnavailableError("discovery: an endpoint is not of the issuer's scheme");
      }
    }
    const auto methods = d->find("code_challenge_methods_supported");
    if (methods != d->end() &&
        (!methods->is_array() || std::find(methods->begin(), methods->end(), "S256") == methods->end())) {
      return absl::UnavailableError("discovery: the provider does not support PKCE S256");
    }
    auto jwks = FetchJson(m->jwks_uri, options_, "jwks");
    ++jwks_fetches_;
    if (!jwks.ok()) return jwks.status();
    if (!jwks->contains("keys") || !(*jwks)["keys"].is_array()) return absl::UnavailableError("jwks: no keys");
    m->jwks = *std::move(jwks);
    m->fetched = now;
    return m;
  };
  auto fresh = fetch();
  if (!fresh.ok()) {
    last_failure_ = now;
    log::Warn("federation: provider metadata not fetched",
              {{"provider", provider_.id}, {"error", std::string(fresh.status().message())}});
    if (metadata_) return metadata_;  // Keep using what we had until it answers again.
    return fresh.status();
  }
  metadata_ = *fresh;
  return metadata_;
}

std::shared_ptr<const OidcRelyingParty::Metadata> OidcRelyingParty::RefetchJwks(std::shared_ptr<const Metadata> seen) {
  std::lock_guard<std::mutex> lock(mu_);
  if (metadata_ != seen) return metadata_;  // Another call fetched meanwhile.
  const absl::Time now = absl::Now();
  if (now - last_jwks_refetch_ < absl::FromChrono(kJwksRefetchInterval)) return metadata_;
  last_jwks_refetch_ = now;
  auto jwks = FetchJson(seen->jwks_uri, options_, "jwks");
  ++jwks_fetches_;
  if (!jwks.ok() || !jwks->contains("keys") || !(*jwks)["keys"].is_array()) {
    log::Warn("federation: provider keys not fetched", {{"provider", provider_.id}});
    return metadata_;
  }
  auto m = std::make_shared<Metadata>(*seen);
  m->jwks = *std::move(jwks);
  metadata_ = m;
  return metadata_;
}

absl::Status OidcRelyingParty::Refuse(const std::string& reason) {
  CountRefusal(provider_.id, reason);
  log::Warn("federation: upstream answer refused", {{"provider", provider_.id}, {"reason", reason}});
  return Refused(reason);
}

absl::StatusOr<OidcRequest> OidcRelyingParty::Start(Level minimum) {
  // The acr to ask for: the configured one if it is enough, else the lowest that is.
  std::string acr;
  if (!provider_.oidc.requested_acr.empty() && Reaches(provider_.levels.at(provider_.oidc.requested_acr), minimum)) {
    acr = provider_.oidc.requested_acr;
  } else if (minimum != v1::ASSURANCE_LEVEL_UNSPECIFIED || !provider_.oidc.requested_acr.empty()) {
    Level best = v1::ASSURANCE_LEVEL_UNSPECIFIED;
    for (const auto& [asserted, level] : provider_.levels) {
      if (Reaches(level, minimum) && (best == v1::ASSURANCE_LEVEL_UNSPECIFIED || level < best)) {
        best = level;
        acr = asserted;
      }
    }
    if (acr.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("provider ", provider_.id, " cannot assert ", v1::AssuranceLevel_Name(minimum)));
    }
  }
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) {
    return absl::UnavailableError(absl::StrCat("federation: provider ", provider_.id, " unreachable"));
  }
  OidcRequest r;
  r.state = auth::RandomToken(32);
  r.nonce = auth::RandomToken(32);
  r.code_verifier = auth::RandomToken(32);  // 43 characters of base64url (RFC 7636 §4.1).
  r.minimum = minimum;
  std::vector<std::pair<std::string, std::string>> q = {
      {"response_type", "code"},
      {"client_id", provider_.oidc.client_id},
      {"redirect_uri", options_.redirect_uri},
      {"scope", absl::StrJoin(provider_.oidc.scopes, " ")},
      {"state", r.state},
      {"nonce", r.nonce},
      {"code_challenge", Base64Url(auth::Sha256(r.code_verifier))},
      {"code_challenge_method", "S256"},
  };
  if (!acr.empty()) {
    q.emplace_back("acr_values", acr);
    // Every table value reaching the minimum is acceptable.
    nlohmann::json values = nlohmann::json::array();
    for (const auto& [asserted, level] : provider_.levels) {
      if (Reaches(level, minimum)) values.push_back(asserted);
    }
    q.emplace_back("claims", nlohmann::json{{"id_token", {{"acr", {{"essential", true}, {"values", values}}}}}}.dump());
  }
  r.redirect_url = WithQuery((*metadata)->authorization_endpoint, Form(q));
  return r;
}

absl::StatusOr<std::string> OidcRelyingParty::ClientAssertion() const {
  const int64_t t = absl::ToUnixSeconds(absl::Now());
  const nlohmann::json header = {{"alg", key_->alg}, {"typ", "JWT"}};
  // aud is the issuer identifier (draft-ietf-oauth-rfc7523bis: never an endpoint a
  // malicious provider could name).
  const nlohmann::json claims = {{"iss", provider_.oidc.client_id},
                                 {"sub", provider_.oidc.client_id},
                                 {"aud", provider_.oidc.issuer},
                                 {"jti", auth::RandomToken(16)},
                                 {"iat", t},
                                 {"exp", t + 60}};
  const std::string input = absl::StrCat(Base64Url(header.dump()), ".", Base64Url(claims.dump()));
  const std::string sig = Sign(key_->pkey.get(), key_->alg, input);
  if (sig.empty()) return absl::InternalError("client assertion not signed");
  return absl::StrCat(input, ".", Base64Url(sig));
}

absl::StatusOr<nlohmann::json> OidcRelyingParty::CheckIdToken(const std::string& id_token, const std::string& nonce,
                                                              absl::Time now) {
  auto claims = CheckIdTokenUncounted(id_token, nonce, now);
  if (!claims.ok()) {
    const std::string reason = RefusalReason(claims.status());
    return Refuse(reason.empty() ? "upstream" : reason);
  }
  return claims;
}

absl::StatusOr<nlohmann::json> OidcRelyingParty::CheckIdTokenUncounted(const std::string& id_token,
                                                                       const std::string& nonce, absl::Time now) {
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) return Refused("upstream");
  const IdTokenExpectations expected{provider_.oidc.issuer, provider_.oidc.client_id, nonce, options_.skew};
  auto claims = VerifyIdToken(id_token, (*metadata)->jwks, expected, now);
  if (RefusalReason(claims.status()) != "kid") return claims;
  // A kid we do not know: the provider may have rotated its keys. Fetch them once more
  // (at most every kJwksRefetchInterval) and try again.
  auto refreshed = RefetchJwks(*metadata);
  if (refreshed == *metadata) return claims;
  return VerifyIdToken(id_token, refreshed->jwks, expected, now);
}

absl::StatusOr<Identity> OidcRelyingParty::Finish(const std::string& code, const OidcRequest& started, absl::Time now) {
  auto identity = FinishUncounted(code, started, now);
  if (!identity.ok()) {
    const std::string reason = RefusalReason(identity.status());
    return Refuse(reason.empty() ? "upstream" : reason);
  }
  return identity;
}

absl::StatusOr<Identity> OidcRelyingParty::FinishUncounted(const std::string& code, const OidcRequest& started,
                                                           absl::Time now) {
  const auto upstream = [&](const std::string& what) {
    log::Warn("federation: provider request failed", {{"provider", provider_.id}, {"error", what}});
    return Refused("upstream");
  };
  // The code is the provider's, the browser brought it: printable, bounded.
  if (code.empty() || code.size() > 2048 ||
      !std::all_of(code.begin(), code.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return Refused("malformed");
  }
  // Start always makes a verifier and a nonce; without them nothing binds the code to
  // this browser's request.
  if (started.code_verifier.size() < 43 || started.code_verifier.size() > 128) return Refused("code");
  if (started.nonce.empty()) return Refused("nonce");
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) return upstream(std::string(metadata.status().message()));

  std::vector<std::pair<std::string, std::string>> fields = {{"grant_type", "authorization_code"},
                                                             {"code", code},
                                                             {"redirect_uri", options_.redirect_uri},
                                                             {"code_verifier", started.code_verifier}};
  std::vector<std::string> headers = {"Content-Type: application/x-www-form-urlencoded"};
  if (key_) {
    auto assertion = ClientAssertion();
    if (!assertion.ok()) return upstream(std::string(assertion.status().message()));
    fields.emplace_back("client_id", provider_.oidc.client_id);
    fields.emplace_back("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    fields.emplace_back("client_assertion", *assertion);
  } else {
    // client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
    headers.push_back(absl::StrCat("Authorization: Basic ",
                                   absl::Base64Escape(absl::StrCat(net::PercentEncode(provider_.oidc.client_id), ":",
                                                                   net::PercentEncode(options_.client_secret)))));
  }
  const std::string body = Form(fields);
  auto answer = Fetch((*metadata)->token_endpoint, headers, &body, options_);
  if (!answer.ok()) return upstream(absl::StrCat("token endpoint: ", answer.status().message()));
  if (answer->status == 400 || answer->status == 401) {
    // invalid_grant (code unknown, used, expired, for another client or redirect URI,
    // verifier wrong), invalid_client, …: the code got us nothing.
    log::Info("federation: token endpoint refused the code",
              {{"provider", provider_.id}, {"status", answer->status}, {"error", OAuthError(*answer)}});
    return Refused("code");
  }
  if (answer->status != 200) return upstream(absl::StrCat("token endpoint: HTTP ", answer->status));
  const auto tokens = JsonObject(*answer);
  if (!tokens) return Refused("malformed");
  const std::string id_token = Text(*tokens, "id_token");
  const std::string access_token = Text(*tokens, "access_token");
  if (id_token.empty() || access_token.empty() || access_token.size() > 8192 || !api::IsPlainText(access_token) ||
      !absl::EqualsIgnoreCase(Text(*tokens, "token_type"), "bearer")) {
    return Refused("malformed");
  }
  auto claims = CheckIdTokenUncounted(id_token, started.nonce, now);
  if (!claims.ok()) return claims.status();
  const std::string sub = Text(*claims, "sub");

  // Userinfo: the same person, and the claims (they override the ID token's).
  nlohmann::json person = *claims;
  if (!(*metadata)->userinfo_endpoint.empty()) {
    auto info = Fetch((*metadata)->userinfo_endpoint, {absl::StrCat("Authorization: Bearer ", access_token)}, nullptr,
                      options_);
    if (!info.ok()) return upstream(absl::StrCat("userinfo: ", info.status().message()));
    if (info->status != 200) return upstream(absl::StrCat("userinfo: HTTP ", info->status));
    const auto j = JsonObject(*info);
    if (!j) return Refused("malformed");
    if (!ConstantTimeEqual(Text(*j, "sub"), sub)) return Refused("subject");
    for (const auto& [name, value] : j->items()) person[name] = value;
  }

  Identity out;
  out.provider = provider_.id;
  out.subject = sub;
  out.asserted = Text(*claims, "acr");
  if (out.asserted.empty() || out.asserted.size() > 512) return Refused("level_unknown");
  auto level = AssertedLevel(provider_, out.asserted);
  if (!level.ok()) return Refused("level_unknown");
  if (!Reaches(*level, started.minimum)) return Refused("level_below");
  out.level = *level;

  for (const auto& [claim, field] : provider_.oidc.claims) {
    const nlohmann::json* value = nullptr;
    if (absl::StartsWith(claim, "address.")) {
      const auto address = person.find("address");
      if (address == person.end() || !address->is_object()) continue;
      const auto member = address->find(claim.substr(8));
      if (member != address->end()) value = &*member;
    } else {
      const auto it = person.find(claim);
      if (it != person.end()) value = &*it;
    }
    if (value == nullptr || value->is_null()) continue;
    if (!value->is_string() || value->get<std::string>().size() > 1024 ||
        !api::IsPlainText(value->get<std::string>())) {
      return Refused("malformed");
    }
    // An e-mail address counts as verified only when the provider says it verified it.
    if (claim == "email" && person.value("email_verified", nlohmann::json(false)) != nlohmann::json(true)) continue;
    if (value->get<std::string>().empty()) continue;
    out.attributes[field] = value->get<std::string>();
  }
  out.logout_hint = id_token;
  out.valid_until = absl::FromUnixSeconds(*NumericDate(*claims, "exp"));
  return out;
}

absl::StatusOr<std::string> OidcRelyingParty::LogoutUrl(const Identity& identity,
                                                        const std::string& post_logout_redirect_uri) {
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) {
    return absl::UnavailableError(absl::StrCat("federation: provider ", provider_.id, " unreachable"));
  }
  if ((*metadata)->end_session_endpoint.empty()) {
    return absl::NotFoundError(absl::StrCat("provider ", provider_.id, " offers no log-out"));
  }
  std::vector<std::pair<std::string, std::string>> q;
  if (!identity.logout_hint.empty()) q.emplace_back("id_token_hint", identity.logout_hint);
  q.emplace_back("client_id", provider_.oidc.client_id);
  if (!post_logout_redirect_uri.empty()) q.emplace_back("post_logout_redirect_uri", post_logout_redirect_uri);
  return WithQuery((*metadata)->end_session_endpoint, Form(q));
}

bool IsUsablePublicJwk(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return false;
  const std::string kty = Text(jwk, "kty");
  return jose::PublicKey(jwk, kty == "RSA" ? "RS256" : kty == "EC" ? "ES256" : "") != nullptr;
}

}  // namespace stadtportal::identity::federation

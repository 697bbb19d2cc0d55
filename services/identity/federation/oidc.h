#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/identity/federation/federation.h"
#include "services/identity/federation/providers.h"

// The OpenID Connect relying party for one upstream provider (docs/federation.md): the
// authorization code flow with PKCE S256, state and nonce; discovery and JWKS fetched
// lazily and cached; the ID token checked by the book (algorithm allow-list, signature
// with the key of its kid, exact issuer, audience, azp, times, nonce); userinfo of the
// same subject; the asserted acr mapped by the provider's own table. Every refused
// answer is Refused(<reason>) (federation.h), counted and logged without tokens or codes.
namespace stadtportal::identity::federation {

// Kept by the log-in flow between Start and Finish, on the server side only.
struct OidcRequest {
  std::string redirect_url;                 // The authorization URL to send the browser to.
  std::string state, nonce, code_verifier;  // Fresh random, 256 bit each, base64url.
  Level minimum = v1::ASSURANCE_LEVEL_UNSPECIFIED;
};

// Whether two state or relay values are equal and not empty, in time independent of where
// they differ (also the log-in flow's relay value, flows.cc).
bool SameState(const std::string& a, const std::string& b);

// Whether an endpoint a discovery document names may be used for `issuer`: fetchable
// (https, or http on loopback) and with the issuer's own scheme, so an https provider
// cannot point us at plain-http addresses (loopback services included).
bool EndpointAllowed(const std::string& issuer, const std::string& endpoint);

// What an ID token must say to be ours.
struct IdTokenExpectations {
  std::string issuer;     // Compared exactly.
  std::string client_id;  // In `aud`; `azp` when several audiences or an azp.
  std::string nonce;      // The one sent with the authorization request; never empty.
  std::chrono::seconds skew{60};
};

// The largest ID token (compact JWS) accepted, in bytes.
inline constexpr size_t kMaxIdTokenBytes = 16 * 1024;

// Checks a compact JWS ID token against the provider's key set `jwks` and returns its
// claims. Refused(…) with: malformed (not a JWS, not JSON, no sub), alg (not RS256,
// PS256 or ES256: never none, never HMAC), kid (no key of that kid in `jwks` fitting the
// algorithm), bad_signature, issuer, audience, azp, expired (exp + skew before now),
// not_yet_valid (iat or nbf after now + skew), nonce. Neither counts nor logs (the
// relying party does).
absl::StatusOr<nlohmann::json> VerifyIdToken(const std::string& jwt, const nlohmann::json& jwks,
                                             const IdTokenExpectations& expected, absl::Time now);

// Whether `jwk` is a public signing key we can verify with: RSA of 2048 bits or more, or
// EC P-256 with its point on the curve (the checks VerifyIdToken applies to a provider's
// keys; used for the key sets partner portals register).
bool IsUsablePublicJwk(const nlohmann::json& jwk);

class OidcRelyingParty {
 public:
  struct Options {
    std::string redirect_uri;      // <public>/api/v1/auth/oidc/<provider>/callback
    std::string client_secret;     // client_secret_basic (the caller reads the provider's env variable).
    std::string private_key_file;  // PEM (RSA 2048+ or EC P-256): private_key_jwt instead of the secret.
    std::chrono::seconds skew{60};
    std::chrono::seconds http_timeout{5};
    size_t max_document_bytes = 256 * 1024;
    std::chrono::seconds metadata_ttl{3600};  // Discovery and JWKS cache.
  };

  // An unknown kid fetches the JWKS again at most this often (a key rotation is picked
  // up at once; tokens with made-up kids cannot make us hammer the provider).
  static constexpr std::chrono::seconds kJwksRefetchInterval{60};
  // After a failed discovery or JWKS fetch the provider is not asked again for this long
  // (what was fetched before stays in use meanwhile).
  static constexpr std::chrono::seconds kRetryAfterFailure{5};

  // Checks the settings and loads the private key; no network here: discovery happens
  // lazily and is cached. INVALID_ARGUMENT on a non-OIDC provider, a redirect URI that
  // is not https (http only on loopback), neither a secret nor a key, an unreadable key.
  static absl::StatusOr<std::unique_ptr<OidcRelyingParty>> Create(const Provider& provider, Options options);
  ~OidcRelyingParty();
  OidcRelyingParty(const OidcRelyingParty&) = delete;
  OidcRelyingParty& operator=(const OidcRelyingParty&) = delete;

  // A new authorization request: code flow, PKCE S256, state, nonce, the provider's
  // scopes, acr_values for `minimum` (the provider's requested_acr if it maps to at least
  // `minimum`, else the lowest table value that reaches `minimum`) and the essential acr
  // claim request. FAILED_PRECONDITION when no table value reaches `minimum`, UNAVAILABLE
  // when the discovery document cannot be had.
  absl::StatusOr<OidcRequest> Start(Level minimum);

  // Exchanges `code` at the token endpoint (verifier, exact redirect_uri, client
  // authentication), checks the ID token (VerifyIdToken; an unknown kid fetches the JWKS
  // once more, rate-limited), fetches userinfo of the same subject, maps acr and claims.
  // Every failure is Refused(<reason>) and counted: code (the token endpoint refused the
  // code), subject, level_unknown, level_below, upstream (unreachable, too big, too slow,
  // error answer), malformed, and VerifyIdToken's reasons.
  absl::StatusOr<Identity> Finish(const std::string& code, const OidcRequest& started, absl::Time now);

  // The ID token check of Finish on its own (with this provider's issuer, client id,
  // cached JWKS and refetch on an unknown kid), refusals counted.
  absl::StatusOr<nlohmann::json> CheckIdToken(const std::string& id_token, const std::string& nonce, absl::Time now);

  // RP-initiated log-out: the end_session_endpoint with id_token_hint and
  // post_logout_redirect_uri (and client_id). NOT_FOUND when the provider has none.
  absl::StatusOr<std::string> LogoutUrl(const Identity& identity, const std::string& post_logout_redirect_uri);

  // How often the JWKS was fetched (tests: the refetch on an unknown kid).
  size_t jwks_fetches() const;

 private:
  struct Metadata;
  struct Key;
  OidcRelyingParty(Provider provider, Options options);

  // The cached discovery document and JWKS; refreshed after metadata_ttl.
  absl::StatusOr<std::shared_ptr<const Metadata>> CurrentMetadata();
  // Fetches the JWKS again unless that happened within kJwksRefetchInterval; the
  // metadata to use from now on.
  std::shared_ptr<const Metadata> RefetchJwks(std::shared_ptr<const Metadata> seen);
  absl::StatusOr<nlohmann::json> CheckIdTokenUncounted(const std::string& id_token, const std::string& nonce,
                                                       absl::Time now);
  absl::StatusOr<Identity> FinishUncounted(const std::string& code, const OidcRequest& started, absl::Time now);
  absl::Status Refuse(const std::string& reason);
  // The client_assertion of private_key_jwt for the token endpoint.
  absl::StatusOr<std::string> ClientAssertion() const;

  const Provider provider_;
  const Options options_;
  std::unique_ptr<Key> key_;  // private_key_jwt only.

  mutable std::mutex mu_;  // Guards the members below; held across a metadata fetch.
  std::shared_ptr<const Metadata> metadata_;
  absl::Time last_jwks_refetch_ = absl::InfinitePast();
  absl::Time last_failure_ = absl::InfinitePast();
  size_t jwks_fetches_ = 0;
};

}  // namespace stadtportal::identity::federation

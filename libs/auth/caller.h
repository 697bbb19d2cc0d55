#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/auth/token_cache.h"
#include "libs/config/config.h"

// The caller of a service call: resolved once by the gateway from the session and
// passed to services as a short-lived signed token (a JWT signed with Ed25519, "EdDSA"
// as in RFC 8037) in the gRPC metadata "x-stadtportal-caller".
namespace stadtportal::auth {

inline constexpr char kCallerMetadataKey[] = "x-stadtportal-caller";

struct Caller {
  std::string account_id;    // "" for anonymous callers (register, log-in, catalogue).
  std::string acting_party;  // The party acted for; "" until accounts resolves it.
  std::string tenant;        // Municipality key.
  std::string assurance;     // "low" | "substantial" | "high" | "" for anonymous.
  std::vector<std::string> roles;
  std::string session_ref;  // A hash of the session (never the session id itself).
  // A partner portal reading for the person with a delegated access token of our OpenID
  // Provider: its client id, its registered name and the scope the gateway let the call
  // in with. Only the gateway asserts them, and only for the person themself (no acting
  // party, no role); "" for every other caller.
  std::string partner_id;
  std::string partner_name;
  std::string partner_scope;

  bool anonymous() const { return account_id.empty(); }
  bool partner() const { return !partner_id.empty(); }
};

// Bounds of the partner claims (client id, name, scope) in a caller token.
inline constexpr size_t kMaxPartnerClaim = 200;

// The party whose data a call reads and writes: the organisation the caller acts for,
// else the caller's own person party (whose id is the identity account id).
// UNAUTHENTICATED for anonymous callers. Every service scopes its data with this.
absl::StatusOr<std::string> ScopeParty(const Caller& caller);

// Whether the caller's token carries `role` (tenant-admin, department, service, …).
bool HasRole(const Caller& caller, const std::string& role);
// PERMISSION_DENIED "the <role> role is required" unless the caller has it.
absl::Status RequireRole(const Caller& caller, const std::string& role);
// PERMISSION_DENIED unless the caller is the platform service `part` ("connector",
// "payment"; one of ServiceIssuers()) speaking for itself: a call meant for one part is
// refused to every other part's key.
absl::Status RequireService(const Caller& caller, std::string_view part);
// Whether the caller is the platform service `part`.
bool IsService(const Caller& caller, std::string_view part);
// The delivery destination a back-office (department) caller is bound to: its
// "destination:<id>" role; "" when it has none.
std::string DestinationOf(const Caller& caller);

// Roles an account can be granted (by the operator command); each is administrative.
inline const std::vector<std::string> kAccountRoles = {"tenant-admin"};
// Administrative roles ("tenant-admin", any "<part>-admin"): sessions act with them only
// after passing the second factor (the gateway leaves them out of the caller token before).
bool IsAdminRole(const std::string& role);

// The part that signs the tokens of citizens, administrators and back offices.
inline constexpr char kGateway[] = "gateway";
// The part names of tokens signed by platform parts other than the gateway, each with
// its own key and only for itself as a `service` caller (see Verifier).
inline const std::vector<std::string>& ServiceIssuers() {
  static const std::vector<std::string> kIssuers = {"connector", "payment", "accounts"};
  return kIssuers;
}

// "stadtportal-<part>": a token's `iss` (the part that signed it) and `aud` (the service
// it is for, e.g. "stadtportal-submission").
std::string PartUri(const std::string& part);

// Signs caller tokens. Each signing part has its own Ed25519 key (an Ed25519 seed).
class Signer {
 public:
  // `key` is "kid:base64(32-byte seed)"; `issuer` the part that signs ("gateway",
  // "connector").
  static absl::StatusOr<Signer> FromKey(const std::string& key, std::chrono::seconds lifetime,
                                        const std::string& issuer = kGateway);
  // The gateway's key from STADTPORTAL_CALLER_SIGNING_KEY, another part's from
  // STADTPORTAL_<PART>_SIGNING_KEY (or _FILE); STADTPORTAL_CALLER_TOKEN_LIFETIME_S.
  static Signer FromEnv(const config::Env& env, const std::string& issuer = kGateway);
  // The setting holding `issuer`'s signing key, and the one holding its public keys.
  static std::string SigningKeySetting(const std::string& issuer);
  static std::string PublicKeysSetting(const std::string& issuer);
  // A caller token for calls to the service `audience` ("submission", …): only that
  // service accepts it. The token signed for the same caller and audience during the
  // first quarter of its lifetime is handed out again (at most kCachedTokens kept), so
  // a caller's requests are not each signed anew.
  std::string Sign(const Caller& caller, const std::string& audience) const;
  static constexpr size_t kCachedTokens = 4096;
  // How many signed tokens are kept now (tests).
  size_t cached_tokens() const { return signed_.size(); }
  // A service issuer's token for calls to `audience`: the only caller its key may assert,
  // itself (subject = its part name) as the platform `service` role, for `tenant`.
  std::string SignSelf(const std::string& tenant, const std::string& audience) const;
  // A JWT (EdDSA) over any claims, e.g. an OAuth 2.0 client assertion (RFC 7523).
  std::string SignClaims(const nlohmann::json& claims) const;
  const std::string& kid() const { return kid_; }
  const std::string& issuer() const { return issuer_; }
  std::chrono::seconds lifetime() const { return lifetime_; }
  // "kid:base64(public key)", for the services' STADTPORTAL_<PART>_PUBLIC_KEYS.
  std::string PublicKey() const;

 private:
  std::string kid_;
  std::string issuer_ = kGateway;
  std::string secret_;  // 64-byte libsodium secret key.
  std::string public_;  // 32 bytes.
  std::chrono::seconds lifetime_{60};
  mutable TokenCache<std::string> signed_{kCachedTokens};  // Claims without times → token.
};

// Verifies caller tokens (every service). Several public keys per signing part may be
// trusted at once, which is how keys are rotated. A key is trusted only for what its
// part may assert: the gateway's for any caller except the `service` role; another
// part's only for itself as a `service` caller (subject = its part name, no acting
// party, no other role) — so the connector, which talks to the outside, cannot mint a
// citizen's or an administrator's token. A token is accepted only by the service it
// names as audience.
class Verifier {
 public:
  // Trusts the gateway's keys "kid:base64(public key)[,kid:base64…]" for tokens to the
  // service `audience` ("submission", …).
  static absl::StatusOr<Verifier> FromKeys(const std::string& gateway_keys, const std::string& audience);
  // Also trusts `keys` of the part `issuer` (one of ServiceIssuers()) for its own
  // service tokens. INVALID_ARGUMENT on a malformed list or a kid trusted already.
  absl::Status TrustServiceKeys(const std::string& issuer, const std::string& keys);
  // STADTPORTAL_CALLER_PUBLIC_KEYS (the gateway's, required) and
  // STADTPORTAL_<PART>_PUBLIC_KEYS of every service issuer (optional), for `audience`.
  static Verifier FromEnv(const config::Env& env, const std::string& audience);
  // UNAUTHENTICATED when the token is missing, malformed, signed by an unknown key,
  // badly signed, for another service, expired, not yet valid, or asserts what its
  // signer may not. A token accepted before (the exact same bytes, at most
  // kCachedTokens kept) is not verified again until it expires; a refused one always is.
  absl::StatusOr<Caller> Verify(const std::string& token) const;
  static constexpr size_t kCachedTokens = 4096;
  // How many verified tokens are kept now (tests).
  size_t cached_tokens() const { return verified_.size(); }

 private:
  struct Key {
    std::string public_key;  // 32 bytes.
    std::string issuer;      // The part holding the signing key.
  };
  absl::Status AddKeys(const std::string& issuer, const std::string& keys);
  absl::StatusOr<Caller> VerifyAnew(const std::string& token, int64_t now, int64_t* accepted_until) const;
  std::string audience_;             // "stadtportal-<service>"
  std::map<std::string, Key> keys_;  // kid → key.
  // Token → its caller.
  mutable TokenCache<Caller> verified_{kCachedTokens};
};

// Verifies a JWT signed with EdDSA by the 32-byte `public_key`; returns its claims
// (the caller checks them). UNAUTHENTICATED otherwise.
absl::StatusOr<nlohmann::json> VerifyEdDsa(const std::string& token, const std::string& public_key);
// The 32 raw bytes of a signer's public key.
std::string PublicKeyBytes(const Signer& signer);

// A new "kid:base64(seed)" signing key (for operators and tests).
std::string NewSigningKey(const std::string& kid);

}  // namespace stadtportal::auth

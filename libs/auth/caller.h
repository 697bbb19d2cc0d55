#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
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

  bool anonymous() const { return account_id.empty(); }
};

// The party whose data a call reads and writes: the organisation the caller acts for,
// else the caller's own person party (whose id is the identity account id).
// UNAUTHENTICATED for anonymous callers. Every service scopes its data with this.
absl::StatusOr<std::string> ScopeParty(const Caller& caller);

// Whether the caller's token carries `role` (tenant-admin, department, service, …).
bool HasRole(const Caller& caller, const std::string& role);
// PERMISSION_DENIED "the <role> role is required" unless the caller has it.
absl::Status RequireRole(const Caller& caller, const std::string& role);
// The delivery destination a back-office (department) caller is bound to: its
// "destination:<id>" role; "" when it has none.
std::string DestinationOf(const Caller& caller);

// Signs caller tokens (the gateway). The key is an Ed25519 seed.
class Signer {
 public:
  // `key` is "kid:base64(32-byte seed)".
  static absl::StatusOr<Signer> FromKey(const std::string& key, std::chrono::seconds lifetime);
  // STADTPORTAL_CALLER_SIGNING_KEY (or _FILE).
  static Signer FromEnv(const config::Env& env);
  std::string Sign(const Caller& caller) const;
  // A JWT (EdDSA) over any claims, e.g. an OAuth 2.0 client assertion (RFC 7523).
  std::string SignClaims(const nlohmann::json& claims) const;
  const std::string& kid() const { return kid_; }
  std::chrono::seconds lifetime() const { return lifetime_; }
  // "kid:base64(public key)", for the services' STADTPORTAL_CALLER_PUBLIC_KEYS.
  std::string PublicKey() const;

 private:
  std::string kid_;
  std::string secret_;  // 64-byte libsodium secret key.
  std::string public_;  // 32 bytes.
  std::chrono::seconds lifetime_{60};
};

// Verifies caller tokens (every service). Several public keys may be trusted at once,
// which is how keys are rotated.
class Verifier {
 public:
  // `keys` is "kid:base64(public key)[,kid:base64…]".
  static absl::StatusOr<Verifier> FromKeys(const std::string& keys);
  // STADTPORTAL_CALLER_PUBLIC_KEYS.
  static Verifier FromEnv(const config::Env& env);
  // UNAUTHENTICATED when the token is missing, malformed, signed by an unknown key,
  // badly signed, expired or not yet valid.
  absl::StatusOr<Caller> Verify(const std::string& token) const;

 private:
  std::map<std::string, std::string> keys_;  // kid → 32-byte public key.
};

// Verifies a JWT signed with EdDSA by the 32-byte `public_key`; returns its claims
// (the caller checks them). UNAUTHENTICATED otherwise.
absl::StatusOr<nlohmann::json> VerifyEdDsa(const std::string& token, const std::string& public_key);
// The 32 raw bytes of a signer's public key.
std::string PublicKeyBytes(const Signer& signer);

// A new "kid:base64(seed)" signing key (for operators and tests).
std::string NewSigningKey(const std::string& kid);

}  // namespace stadtportal::auth

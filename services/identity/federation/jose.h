#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/auth/tokens.h"

// JOSE pieces shared by the OpenID Connect relying party (oidc.h) and the OpenID Provider
// for partner portals (provider/): base64url, JWK to key, JWS signatures (RS256, PS256,
// ES256; never none, never HMAC) and the compact JWS check with a key set.
namespace stadtportal::identity::jose {

// Strict base64url without padding (RFC 7515 §2); false on anything else.
bool Base64UrlDecode(absl::string_view in, std::string* out);
std::string Base64Url(absl::string_view data);

using auth::ConstantTimeEqual;

// A string member of a JSON object, "" when missing or not a string.
std::string Text(const nlohmann::json& object, const char* name);

// The numeric date claim `name` in seconds, when it is one.
std::optional<int64_t> NumericDate(const nlohmann::json& claims, const char* name);

// RS256, PS256 or ES256.
bool IsAllowedAlg(const std::string& alg);

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// The public key of a JWK fitting `alg`: RSA (2048 bits or more) for RS256/PS256, EC
// P-256 (point on the curve) for ES256; null otherwise.
Pkey PublicKey(const nlohmann::json& jwk, const std::string& alg);
// Whether `signature` (JWS form: R || S for ES256) over `input` is valid under `key`.
bool VerifySignature(EVP_PKEY* key, const std::string& alg, const std::string& input, std::string signature);
// A signature over `input` with `key` in JWS form; "" on failure.
std::string Sign(EVP_PKEY* key, const std::string& alg, const std::string& input);

// header.claims.signature, signed with `key` for header["alg"]; "" on failure.
std::string SignCompact(EVP_PKEY* key, const nlohmann::json& header, const nlohmann::json& claims);

struct Jws {
  nlohmann::json header;
  nlohmann::json claims;
};

// Checks a compact JWS against the key set `jwks` (an object with `keys`) and returns its
// header and claims (a JSON object). INVALID_ARGUMENT with the message one of:
// malformed (not a JWS of at most `max_bytes`, not JSON, a crit header), alg (not in
// `algs`, which never hold none or an HMAC), kid (no single key of the token's kid fitting
// the algorithm; a token without kid: the set's only fitting key), bad_signature.
// Times and claims are the caller's to check.
absl::StatusOr<Jws> VerifyCompact(const std::string& jwt, const nlohmann::json& jwks,
                                  const std::vector<std::string>& algs, size_t max_bytes);

// The claims of a compact JWS, not verified (to learn who claims to have signed it
// before its key is looked up); nullopt when it is not one.
std::optional<nlohmann::json> UnverifiedClaims(const std::string& jwt, size_t max_bytes);

}  // namespace stadtportal::identity::jose

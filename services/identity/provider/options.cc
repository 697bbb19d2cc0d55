#include "services/identity/provider/options.h"

#include <sodium.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/identity/federation/fetch.h"

namespace stadtportal::identity::provider {

std::string ProviderOptions::Endpoint(const std::string& path) const { return issuer + path; }

std::chrono::seconds ProviderOptions::LongestToken() const {
  return std::max({access_token, id_token, kLogoutTokenLifetime});
}

ProviderOptions ProviderOptions::FromEnv(const config::Env& env) {
  ProviderOptions o;
  o.issuer = env.String("STADTPORTAL_OP_ISSUER", "");
  if (o.issuer.empty()) return o;
  // The issuer is an https URL without query, fragment or trailing slash (http only on
  // loopback, for development).
  if (fetch::AllowedScheme(o.issuer).empty() || absl::EndsWith(o.issuer, "/") ||
      o.issuer.find_first_of("?#") != std::string::npos || o.issuer.size() > 200) {
    throw config::Error("STADTPORTAL_OP_ISSUER: an https URL without query, fragment or trailing slash");
  }
  std::string secret;
  const std::string encoded = env.Secret("STADTPORTAL_OP_SECRET");
  if ((!absl::Base64Unescape(encoded, &secret) && !absl::WebSafeBase64Unescape(encoded, &secret)) ||
      secret.size() != 32) {
    throw config::Error("STADTPORTAL_OP_SECRET: must be 32 bytes, base64");
  }
  o.secret = secret;
  o.api_audience = env.String("STADTPORTAL_OP_API_AUDIENCE", o.issuer + "/api/v1");
  if (o.api_audience.empty() || o.api_audience.size() > 200) {
    throw config::Error("STADTPORTAL_OP_API_AUDIENCE: 1 to 200 characters");
  }
  o.access_token = std::chrono::seconds(env.Int("STADTPORTAL_OP_ACCESS_TOKEN_S", 300, 30, 3600));
  o.id_token = std::chrono::seconds(env.Int("STADTPORTAL_OP_ID_TOKEN_S", 300, 30, 3600));
  o.grant = std::chrono::seconds(env.Int("STADTPORTAL_OP_GRANT_S", 43200, 300, 30 * 86400));
  o.key_rotation = std::chrono::seconds(env.Int("STADTPORTAL_OP_KEY_ROTATION_S", 2592000, 3600, 365 * 86400));
  o.key_publish_ahead = std::chrono::seconds(env.Int("STADTPORTAL_OP_KEY_PUBLISH_AHEAD_S", 86400, 300, 30 * 86400));
  if (o.key_publish_ahead >= o.key_rotation) {
    throw config::Error("STADTPORTAL_OP_KEY_PUBLISH_AHEAD_S: must be below STADTPORTAL_OP_KEY_ROTATION_S");
  }
  auto allowed = net::ParseNetworks(env.String("STADTPORTAL_OP_ALLOWED_NETWORKS", ""));
  if (!allowed.ok()) throw config::Error("STADTPORTAL_OP_ALLOWED_NETWORKS: " + std::string(allowed.status().message()));
  o.partner_egress.allowed = *std::move(allowed);
  o.partner_egress.allow_http = env.Bool("STADTPORTAL_ALLOW_TEST_PROVIDERS", false);
  return o;
}

std::string DeriveKey(const std::string& secret, uint64_t purpose) {
  static const bool ready = sodium_init() >= 0;
  (void)ready;
  std::string out(32, '\0');
  if (secret.size() != crypto_kdf_KEYBYTES ||
      crypto_kdf_derive_from_key(reinterpret_cast<unsigned char*>(out.data()), out.size(), purpose, "stadtop_",
                                 reinterpret_cast<const unsigned char*>(secret.data())) != 0) {
    return "";
  }
  return out;
}

}  // namespace stadtportal::identity::provider

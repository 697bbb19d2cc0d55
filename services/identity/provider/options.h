#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/config/config.h"
#include "libs/net/egress.h"

namespace stadtportal::identity::provider {

// The OpenID Provider's configuration (docs/openid-provider.md "Configuration").
struct ProviderOptions {
  // STADTPORTAL_OP_ISSUER; empty: the deployment has no OpenID Provider.
  std::string issuer;
  // STADTPORTAL_OP_SECRET (or _FILE): 32 bytes (base64 in the variable), the master key of
  // the key encryption and the pairwise subjects.
  std::string secret;
  // STADTPORTAL_OP_API_AUDIENCE: `aud` of access tokens (issuer + "/api/v1").
  std::string api_audience;
  std::chrono::seconds access_token{300};         // STADTPORTAL_OP_ACCESS_TOKEN_S
  std::chrono::seconds id_token{300};             // STADTPORTAL_OP_ID_TOKEN_S
  std::chrono::seconds grant{43200};              // STADTPORTAL_OP_GRANT_S
  std::chrono::seconds key_rotation{2592000};     // STADTPORTAL_OP_KEY_ROTATION_S
  std::chrono::seconds key_publish_ahead{86400};  // STADTPORTAL_OP_KEY_PUBLISH_AHEAD_S
  // Where requests to partner portals (their key sets, back-channel log-out) may go: public
  // addresses, and the non-public networks of STADTPORTAL_OP_ALLOWED_NETWORKS; http:// only
  // in test deployments (STADTPORTAL_ALLOW_TEST_PROVIDERS=true) and only to allowed networks.
  net::EgressPolicy partner_egress;
  // The clock of key rotation, token times and expiry checks (tests move it).
  std::function<absl::Time()> clock = [] { return absl::Now(); };

  bool enabled() const { return !issuer.empty(); }
  // An endpoint under the issuer, e.g. Endpoint("/api/v1/oidc/token").
  std::string Endpoint(const std::string& path) const;
  // How long the longest token we sign lives (a retired key stays published that long).
  std::chrono::seconds LongestToken() const;

  // config::Error naming the variable for a bad value; STADTPORTAL_OP_SECRET is required
  // with the issuer.
  static ProviderOptions FromEnv(const config::Env& env);
};

// The lifetime of logout tokens.
inline constexpr std::chrono::seconds kLogoutTokenLifetime{120};

}  // namespace stadtportal::identity::provider

namespace stadtportal::identity::provider {

// A 32-byte key derived from the provider secret for one purpose (libsodium crypto_kdf).
inline constexpr uint64_t kKeySealing = 1;
inline constexpr uint64_t kPairwiseSubjects = 2;
std::string DeriveKey(const std::string& secret, uint64_t purpose);

}  // namespace stadtportal::identity::provider

#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/db/pool.h"
#include "services/identity/provider/options.h"

namespace stadtportal::identity::provider {

// The OpenID Provider's signing keys (RS256, RSA 2048) in identity.op_signing_keys, the
// private part sealed (libsodium secretbox) under a key derived from the provider secret.
// At any time (the options' clock): the current key (the newest whose active_from has
// passed) signs; the next one is published ahead of use; retired ones stay published
// until every token they signed has expired.
class SigningKeys {
 public:
  SigningKeys(db::Pool& pool, const ProviderOptions& options);
  ~SigningKeys();
  static void Prepare(pqxx::connection& conn);

  // One run of the rotation job at `now` (every minute on every replica; one at a time
  // by a PostgreSQL advisory lock): a first key if there is none, the next key once the
  // current one is within the publish-ahead time of its rotation, retired keys deleted
  // once no token they signed can still be valid.
  absl::Status Rotate(absl::Time now);

  // A compact JWS (RS256) of `claims` with the current key; `typ` goes into the header
  // when not empty. Runs the rotation first when there is no key yet.
  absl::StatusOr<std::string> Sign(const nlohmann::json& claims, const std::string& typ);
  // The JWK Set published now.
  absl::StatusOr<nlohmann::json> Jwks();
  // The keys a token of ours may be verified with now (the published ones); `kid`
  // unknown to the cache loads the keys again (at most every second).
  absl::StatusOr<nlohmann::json> VerificationKeys(const std::string& kid);

 private:
  struct Key;
  // The keys from the database, cached for a few seconds (`force`: now).
  absl::StatusOr<std::shared_ptr<const std::vector<std::shared_ptr<const Key>>>> Keys(bool force);
  nlohmann::json Published(const std::vector<std::shared_ptr<const Key>>& keys, absl::Time now) const;

  db::Pool& pool_;
  const ProviderOptions& options_;
  std::string seal_key_;  // Derived from the provider secret.
  std::mutex mu_;
  std::shared_ptr<const std::vector<std::shared_ptr<const Key>>> cached_;
  absl::Time loaded_ = absl::InfinitePast();  // Real time of the last load.
};

}  // namespace stadtportal::identity::provider

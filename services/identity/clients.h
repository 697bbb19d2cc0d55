#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "libs/db/pool.h"
#include "libs/redis/client.h"
#include "stadtportal/identity/v1/identity.pb.h"

namespace stadtportal::identity {

// Back-office clients (OAuth 2.0 client credentials): registration, token issue with a
// client secret or a private_key_jwt assertion, and token resolution. Tokens are random
// (256 bit), kept in Redis under their SHA-256 for `ttl`.
class Clients {
 public:
  Clients(db::Pool& pool, redis::Client& redis, std::chrono::seconds ttl) : pool_(pool), redis_(redis), ttl_(ttl) {}
  static void Prepare(pqxx::connection& conn);

  absl::StatusOr<v1::CreateClientResponse> Create(const std::string& tenant, const v1::CreateClientRequest& req,
                                                  const std::string& created_by);
  absl::StatusOr<v1::ClientToken> Issue(const v1::IssueClientTokenRequest& req);
  absl::StatusOr<v1::ClientInfo> Resolve(const std::string& access_token);

 private:
  db::Pool& pool_;
  redis::Client& redis_;
  std::chrono::seconds ttl_;
};

}  // namespace stadtportal::identity

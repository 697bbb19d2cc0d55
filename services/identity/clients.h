#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "libs/redis/client.h"
#include "stadtportal/identity/v1/identity.pb.h"

namespace stadtportal::identity {

// Back-office clients (OAuth 2.0 client credentials): registration, token issue with a
// client secret or a private_key_jwt assertion, and token resolution. Tokens are random
// (256 bit), kept in Redis under their SHA-256 for `ttl`, and listed per client so that
// disabling a client or rotating its secret ends them at once.
class Clients {
 public:
  Clients(db::Pool& pool, redis::Client& redis, std::chrono::seconds ttl) : pool_(pool), redis_(redis), ttl_(ttl) {}
  static void Prepare(pqxx::connection& conn);

  // Each change is recorded in the audit log with `audit` (the client's ids added).
  absl::StatusOr<v1::CreateClientResponse> Create(const std::string& tenant, const v1::CreateClientRequest& req,
                                                  const std::string& created_by, audit::Entry audit);
  // NOT_FOUND for a client of another tenant or none.
  absl::StatusOr<v1::BackofficeClient> SetDisabled(const std::string& tenant, const std::string& client_id,
                                                   bool disabled, audit::Entry audit);
  // A new secret (returned once); the old one and every token stop working at once.
  // FAILED_PRECONDITION for private_key_jwt clients (they rotate their key instead).
  absl::StatusOr<v1::CreateClientResponse> RotateSecret(const std::string& tenant, const std::string& client_id,
                                                        audit::Entry audit);
  absl::StatusOr<v1::ClientToken> Issue(const v1::IssueClientTokenRequest& req);
  absl::StatusOr<v1::ClientInfo> Resolve(const std::string& access_token);

  static constexpr char kTokenPrefix[] = "sp:client-token:";

 private:
  // Ends every token issued to the client.
  absl::Status RevokeTokens(const std::string& client_id);

  db::Pool& pool_;
  redis::Client& redis_;
  std::chrono::seconds ttl_;
};

}  // namespace stadtportal::identity

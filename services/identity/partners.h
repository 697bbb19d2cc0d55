#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "stadtportal/identity/v1/identity.pb.h"

namespace stadtportal::identity {

// The scopes a partner portal may be registered for; `openid` is required.
inline const std::vector<std::string> kPartnerScopes = {"openid",           "profile",      "email",       "address",
                                                        "submissions:read", "drafts:write", "mailbox:read"};

// Limits of a registration.
inline constexpr size_t kMaxPartnerUris = 10;
inline constexpr size_t kMaxPartnerUriBytes = 512;
inline constexpr size_t kMaxPartnerKeys = 10;
inline constexpr size_t kMaxPartnerJwksBytes = 32 * 1024;

// Why a redirect URI is refused ("" when it may be registered): absolute https (http only
// for 127.0.0.1 and localhost), printable ASCII, no fragment ("fragment"), no user info
// ("user_info"), no wildcard ("wildcard"), at most kMaxPartnerUriBytes ("too_long"),
// "not_https", else "invalid".
std::string RedirectUriProblem(const std::string& uri);
// The same for URIs we call ourselves (back-channel logout, JWKS): https only (a
// development deployment may allow back-channel URIs on loopback: PartnerClients).
std::string HttpsUriProblem(const std::string& uri);
// Why a JWK Set is refused ("" when it may be registered): "invalid" (not a JSON object
// with `keys`), "too_large", "too_many_keys", "no_keys", "private_key" (a private
// member such as d, p, q, or a symmetric key), "kid" (missing, too long or repeated),
// "weak_key" (an RSA key below 2048 bits, another curve than P-256, not a usable key);
// "invalid" also for a `use` other than sig or an `alg` the key is not for.
std::string JwksProblem(const std::string& jwks_json);

// A partner portal with what its authentication is checked against.
struct RegisteredPartner {
  v1::PartnerClient client;
  std::string secret_hash;  // Hex SHA-256 of the secret (client_secret_basic), else "".
};

// Partner portals (Portalverbund): the relying parties of the OpenID Provider to come,
// registered by tenant admins. Only registration here; secrets are kept as SHA-256.
class PartnerClients {
 public:
  // `loopback_backchannel`: back-channel log-out URIs may be http on loopback (development
  // and test deployments only).
  explicit PartnerClients(db::Pool& pool, bool loopback_backchannel = false)
      : pool_(pool), loopback_backchannel_(loopback_backchannel) {}
  static void Prepare(pqxx::connection& conn);

  // Each change is recorded in the audit log with `audit` (the client's id added).
  absl::StatusOr<v1::PartnerClientCredentials> Create(const std::string& tenant,
                                                      const v1::CreatePartnerClientRequest& req,
                                                      const std::string& created_by, audit::Entry audit);
  // By id; `after` the last client id of the previous page.
  absl::StatusOr<std::vector<v1::PartnerClient>> List(const std::string& tenant, const std::string& after, int limit);
  // NOT_FOUND for a client of another tenant or none.
  absl::StatusOr<v1::PartnerClient> Get(const std::string& tenant, const std::string& client_id);
  // The same with the secret's hash, for the OpenID Provider (disabled ones too).
  absl::StatusOr<RegisteredPartner> Find(const std::string& tenant, const std::string& client_id);
  absl::StatusOr<v1::PartnerClient> SetDisabled(const std::string& tenant, const std::string& client_id, bool disabled,
                                                audit::Entry audit);
  absl::StatusOr<v1::PartnerClientCredentials> RotateCredentials(const std::string& tenant,
                                                                 const v1::RotatePartnerClientCredentialsRequest& req,
                                                                 audit::Entry audit);

 private:
  db::Pool& pool_;
  bool loopback_backchannel_;
};

}  // namespace stadtportal::identity

#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/app/periodic.h"
#include "libs/db/pool.h"
#include "libs/redis/client.h"
#include "services/identity/partners.h"
#include "services/identity/provider/keys.h"
#include "services/identity/provider/options.h"
#include "services/identity/store.h"
#include "stadtportal/identity/v1/identity.pb.h"

// The OpenID Provider for partner portals (docs/openid-provider.md): the protocol logic
// behind the identity RPCs of the same name. Sessions, log-in and the decision which
// session is the browser's stay with the service (service.cc); this class checks
// requests, keeps pending authorizations, codes, grants and refresh tokens in Redis,
// consents and back-channel deliveries in PostgreSQL, and signs with SigningKeys.
//
// OAuth errors are statuses whose message starts with the error code
// ("invalid_grant: code already used"): INVALID_ARGUMENT for invalid_request,
// invalid_grant, unsupported_grant_type, invalid_scope; UNAUTHENTICATED for
// invalid_client and invalid_token.
namespace stadtportal::identity::provider {

// An authorization request while the person interacts (Redis, 10 minutes, under the
// SHA-256 of its id).
struct Pending {
  std::string id;  // Secret; only the browser holds it.
  std::string csrf;
  std::string tenant, client_id, client_name, redirect_uri, state, nonce, code_challenge, ui_locale, login_hint;
  std::vector<std::string> scopes;
  bool prompt_login = false, prompt_consent = false, prompt_none = false;
  int64_t max_age = -1;
  v1::AssuranceLevel minimum = v1::ASSURANCE_LEVEL_UNSPECIFIED;
  int64_t created = 0;     // Unix seconds.
  bool consented = false;  // Consent given in this authorization.
  // prompt=login: the session the request came with and its authentication time; it
  // counts again only once authenticated anew (a log-in or step-up since).
  std::string stale_sid;
  int64_t stale_auth_time = -1;
  std::string account_id;  // Whose consent was asked.

  nlohmann::json ToJson() const;
  static std::optional<Pending> FromJson(const nlohmann::json& j);
};

// The OAuth error of a status made here ("" for others).
std::string OAuthErrorOf(const absl::Status& status);

class OpenIdProvider {
 public:
  // Whether some upstream provider can give `level` (a step-up is possible).
  using StepUpPossible = std::function<bool(v1::AssuranceLevel)>;

  OpenIdProvider(ProviderOptions options, std::string default_tenant, db::Pool& pool, redis::Client& redis,
                 std::shared_ptr<Store> store, StepUpPossible step_up);
  ~OpenIdProvider();
  static void Prepare(pqxx::connection& conn);

  const ProviderOptions& options() const { return options_; }
  SigningKeys& keys() { return keys_; }

  v1::JsonDocument Discovery() const;
  absl::StatusOr<v1::JsonDocument> Jwks();

  // The authorization request checked and decided with the browser's session (checked
  // by the service; nullopt: none).
  absl::StatusOr<v1::AuthorizeResponse> Authorize(const v1::AuthorizeRequest& req,
                                                  const std::optional<v1::Session>& session);
  // The pending authorization of `pending_id` if `csrf` is its token; otherwise
  // `refused` holds the error to show (expired, invalid_request) and nullopt is returned.
  // Without `csrf_required` (a plain continue, e.g. back from a step-up: it changes
  // nothing but what the browser's own pending authorization leads to) an empty token is
  // accepted; a wrong one never is.
  absl::StatusOr<std::optional<Pending>> OpenPending(const std::string& pending_id, const std::string& csrf,
                                                     bool csrf_required, v1::AuthorizeResponse* refused);
  // Goes on with `pending` and the browser's session now, after `decision`.
  absl::StatusOr<v1::AuthorizeResponse> Continue(Pending pending, const std::optional<v1::Session>& session,
                                                 v1::ContinueAuthorizationRequest::Decision decision);
  // The log-in page again, saying why ("credentials", "throttled").
  v1::AuthorizeResponse LoginAgain(const Pending& pending, const std::string& problem, int retry_after_seconds) const;

  absl::StatusOr<v1::TokenResponse> ExchangeToken(const v1::TokenRequest& req);
  absl::StatusOr<v1::AccessTokenInfo> ResolveAccessToken(const std::string& access_token);
  absl::StatusOr<v1::IntrospectTokenResponse> Introspect(const v1::IntrospectTokenRequest& req);

  // RP-initiated log-out: the hint checked (our signature, expired allowed); the result
  // says where to redirect and which sid the hint names ("" when none).
  struct EndSessionResult {
    std::string redirect_uri;
    std::string sid;
    std::string client_id;
  };
  absl::StatusOr<EndSessionResult> EndSession(const google::protobuf::Map<std::string, std::string>& params);

  // Grants end: of a session (its sid), of an account, of an account with one client.
  // Clients with a back-channel logout URI get a logout token (one per client and
  // session), except `except_client`.
  absl::Status EndSessionGrants(const std::string& sid, const std::string& except_client = "");
  absl::Status EndAccountGrants(const std::string& account_id);

  // Connected portals of an account, and withdrawing consent (its grants end).
  absl::StatusOr<v1::ListConnectedPortalsResponse> ConnectedPortals(const std::string& tenant,
                                                                    const std::string& account_id);
  absl::Status RevokeConnectedPortal(const std::string& tenant, const std::string& account_id,
                                     const std::string& client_id);

  // One run of the back-channel delivery job: up to `batch` due deliveries (claimed for
  // 30 s, each attempt at most 5 s); how many were attempted.
  absl::StatusOr<int> DeliverBackchannelLogouts(int batch = 5);

  // The jobs: key rotation every minute, back-channel deliveries every second.
  void StartJobs();
  void StopJobs();

  // The pairwise subject of `account_id` for the client (tests).
  std::string Subject(const v1::PartnerClient& client, const std::string& account_id) const;

 private:
  struct Grant;
  absl::StatusOr<v1::AuthorizeResponse> Decide(Pending& pending, const std::optional<v1::Session>& session);
  absl::StatusOr<v1::AuthorizeResponse> ErrorRedirect(Pending& pending, const std::string& error,
                                                      const std::string& description);
  absl::Status SavePending(Pending& pending);
  absl::Status DropPending(const Pending& pending);
  v1::AuthorizeResponse Interaction(const Pending& pending, v1::Interaction::Kind kind) const;
  absl::StatusOr<std::string> IssueCode(const Pending& pending, const v1::Session& session);

  absl::StatusOr<RegisteredPartner> AuthenticateClient(const google::protobuf::Map<std::string, std::string>& params,
                                                       const std::string& authorization);
  absl::StatusOr<nlohmann::json> ClientKeys(const v1::PartnerClient& client, bool refetch);
  absl::StatusOr<v1::TokenResponse> Issue(const RegisteredPartner& client, const Grant& grant, const std::string& gid,
                                          const std::string& nonce, const std::vector<std::string>& scopes,
                                          const std::string& grant_type);
  absl::StatusOr<std::optional<Grant>> LoadGrant(const std::string& gid);
  // Ends the grant; returns what it was (nullopt when gone already).
  absl::StatusOr<std::optional<Grant>> RevokeGrant(const std::string& gid);
  absl::Status RevokeGrants(const std::vector<std::string>& gids, const std::string& except_client, bool notify);
  absl::Status EnqueueLogout(const std::string& tenant, const std::string& client_id, const std::string& account_id,
                             const std::string& sid);
  // The access token's claims when it is one of ours, valid now and its grant alive.
  absl::StatusOr<v1::AccessTokenInfo> CheckAccessToken(const std::string& access_token);
  absl::StatusOr<std::vector<std::string>> ConsentedScopes(const std::string& account_id, const std::string& client_id);

  ProviderOptions options_;
  std::string tenant_;
  db::Pool& pool_;
  redis::Client& redis_;
  std::shared_ptr<Store> store_;
  PartnerClients partners_;
  StepUpPossible step_up_;
  SigningKeys keys_;
  std::string pairwise_key_;

  std::mutex jwks_mu_;
  struct CachedJwks {
    nlohmann::json jwks;
    absl::Time fetched;
  };
  std::map<std::string, CachedJwks> client_jwks_;    // By jwks_uri.
  std::map<std::string, absl::Time> jwks_attempts_;  // By jwks_uri: the last fetch begun.

  std::unique_ptr<app::Periodic> rotation_job_;
  std::unique_ptr<app::Periodic> backchannel_job_;
};

}  // namespace stadtportal::identity::provider

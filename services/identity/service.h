#pragma once

#include <memory>
#include <optional>
#include <string>

#include "libs/config/config.h"
#include "libs/http/rate_limit.h"
#include "libs/mail/mail.h"
#include "libs/redis/client.h"
#include "services/identity/clients.h"
#include "services/identity/federation/flows.h"
#include "services/identity/mails.h"
#include "services/identity/partners.h"
#include "services/identity/password.h"
#include "services/identity/provider/provider.h"
#include "services/identity/sessions.h"
#include "services/identity/store.h"
#include "stadtportal/identity/v1/identity.grpc.pb.h"

namespace stadtportal::identity {

struct Options {
  std::string default_tenant = "09564000";
  // Where the portal's pages are; links in mails point there.
  std::string public_url = "http://127.0.0.1:8080";
  // Where the links of the account mails (verify-email, password-reset/confirm, the
  // reset link of "already registered") point: the web portal's pages
  // (STADTPORTAL_PORTAL_URL; default public_url, where an ingress routes / to the portal).
  std::string portal_url = "http://127.0.0.1:8080";
  HashParams hash;
  SessionOptions sessions;
  ThrottleOptions throttle;
  std::chrono::seconds verify_token_ttl{24 * 60 * 60};
  std::chrono::seconds reset_token_ttl{60 * 60};
  // Mails from register and password reset to one address (STADTPORTAL_MAIL_PER_ADDRESS,
  // "5/3600"): beyond it the request gets the usual answer and no mail is sent.
  http::Rate mail_per_address{5, std::chrono::seconds(3600)};
  // The issuer name authenticator apps show next to the code (STADTPORTAL_PORTAL_NAME).
  std::string portal_name = "stadtportal";
  // Second-factor codes tried per account (STADTPORTAL_TOTP_RATE, "5/300").
  http::Rate totp_rate{5, std::chrono::seconds(300)};
  // The OpenID Provider for partner portals (STADTPORTAL_OP_*); disabled without issuer.
  provider::ProviderOptions op;
  // A development or test deployment (STADTPORTAL_ALLOW_TEST_PROVIDERS=true): partners'
  // back-channel log-out URIs may be http on loopback, as their redirect URIs may.
  bool loopback_backchannel = false;
  // How long an erasure's event is kept (STADTPORTAL_EVENT_RETENTION_DAYS, 30): the
  // window in which every service applies it; the erasure request is kept that long.
  std::chrono::hours event_retention{24 * 30};

  static Options FromEnv(const config::Env& env, const std::string& tenant);
};

// gRPC edge of the identity service: validates requests, calls the store, maps errors.
class Service final : public v1::IdentityService::Service {
 public:
  // `relay` (may be null) is woken after mails were queued.
  // `federation` (may be null: local accounts only) holds the upstream providers.
  Service(std::shared_ptr<Store> store, redis::Client& redis, Options options, mail::Relay* relay = nullptr,
          std::shared_ptr<Clients> clients = nullptr, std::shared_ptr<federation::Federation> federation = nullptr);

  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req, v1::RegisterResponse* resp) override;
  grpc::Status VerifyEmail(grpc::ServerContext* ctx, const v1::VerifyEmailRequest* req,
                           v1::VerifyEmailResponse* resp) override;
  grpc::Status Login(grpc::ServerContext* ctx, const v1::LoginRequest* req, v1::LoginResponse* resp) override;
  grpc::Status ResolveSession(grpc::ServerContext* ctx, const v1::ResolveSessionRequest* req,
                              v1::Session* resp) override;
  grpc::Status Logout(grpc::ServerContext* ctx, const v1::LogoutRequest* req, v1::LogoutResponse* resp) override;
  grpc::Status LogoutAll(grpc::ServerContext* ctx, const v1::LogoutRequest* req, v1::LogoutResponse* resp) override;
  grpc::Status ChangePassword(grpc::ServerContext* ctx, const v1::ChangePasswordRequest* req,
                              v1::LoginResponse* resp) override;
  grpc::Status RequestPasswordReset(grpc::ServerContext* ctx, const v1::RequestPasswordResetRequest* req,
                                    v1::RequestPasswordResetResponse* resp) override;
  grpc::Status ConfirmPasswordReset(grpc::ServerContext* ctx, const v1::ConfirmPasswordResetRequest* req,
                                    v1::ConfirmPasswordResetResponse* resp) override;
  grpc::Status SetActingParty(grpc::ServerContext* ctx, const v1::SetActingPartyRequest* req,
                              v1::LoginResponse* resp) override;
  grpc::Status GetAccount(grpc::ServerContext* ctx, const v1::GetAccountRequest* req, v1::Account* resp) override;
  grpc::Status FindAccounts(grpc::ServerContext* ctx, const v1::FindAccountsRequest* req,
                            v1::FindAccountsResponse* resp) override;
  grpc::Status SetAccountLocked(grpc::ServerContext* ctx, const v1::SetAccountLockedRequest* req,
                                v1::Account* resp) override;
  grpc::Status CreateClient(grpc::ServerContext* ctx, const v1::CreateClientRequest* req,
                            v1::CreateClientResponse* resp) override;
  grpc::Status IssueClientToken(grpc::ServerContext* ctx, const v1::IssueClientTokenRequest* req,
                                v1::ClientToken* resp) override;
  grpc::Status ResolveClientToken(grpc::ServerContext* ctx, const v1::ResolveClientTokenRequest* req,
                                  v1::ClientInfo* resp) override;
  grpc::Status SetClientDisabled(grpc::ServerContext* ctx, const v1::SetClientDisabledRequest* req,
                                 v1::BackofficeClient* resp) override;
  grpc::Status RotateClientSecret(grpc::ServerContext* ctx, const v1::RotateClientSecretRequest* req,
                                  v1::CreateClientResponse* resp) override;
  grpc::Status CreatePartnerClient(grpc::ServerContext* ctx, const v1::CreatePartnerClientRequest* req,
                                   v1::PartnerClientCredentials* resp) override;
  grpc::Status ListPartnerClients(grpc::ServerContext* ctx, const v1::ListPartnerClientsRequest* req,
                                  v1::ListPartnerClientsResponse* resp) override;
  grpc::Status GetPartnerClient(grpc::ServerContext* ctx, const v1::GetPartnerClientRequest* req,
                                v1::PartnerClient* resp) override;
  grpc::Status SetPartnerClientDisabled(grpc::ServerContext* ctx, const v1::SetPartnerClientDisabledRequest* req,
                                        v1::PartnerClient* resp) override;
  grpc::Status RotatePartnerClientCredentials(grpc::ServerContext* ctx,
                                              const v1::RotatePartnerClientCredentialsRequest* req,
                                              v1::PartnerClientCredentials* resp) override;
  grpc::Status EnrolTotp(grpc::ServerContext* ctx, const v1::EnrolTotpRequest* req,
                         v1::EnrolTotpResponse* resp) override;
  grpc::Status ConfirmTotp(grpc::ServerContext* ctx, const v1::TotpCodeRequest* req, v1::Session* resp) override;
  grpc::Status VerifyTotp(grpc::ServerContext* ctx, const v1::TotpCodeRequest* req, v1::Session* resp) override;
  grpc::Status ListAuditLog(grpc::ServerContext* ctx, const v1::ListAuditLogRequest* req,
                            v1::ListAuditLogResponse* resp) override;
  grpc::Status ListProviders(grpc::ServerContext* ctx, const v1::ListProvidersRequest* req,
                             v1::ListProvidersResponse* resp) override;
  grpc::Status GetSamlMetadata(grpc::ServerContext* ctx, const v1::GetSamlMetadataRequest* req,
                               v1::SamlMetadata* resp) override;
  grpc::Status StartFederatedLogin(grpc::ServerContext* ctx, const v1::StartFederatedLoginRequest* req,
                                   v1::StartFederatedLoginResponse* resp) override;
  grpc::Status FinishFederatedLogin(grpc::ServerContext* ctx, const v1::FinishFederatedLoginRequest* req,
                                    v1::FinishFederatedLoginResponse* resp) override;
  grpc::Status ListLinkedProviders(grpc::ServerContext* ctx, const v1::ListLinkedProvidersRequest* req,
                                   v1::ListLinkedProvidersResponse* resp) override;
  grpc::Status UnlinkProvider(grpc::ServerContext* ctx, const v1::UnlinkProviderRequest* req,
                              v1::ListLinkedProvidersResponse* resp) override;

  // The OpenID Provider (provider/service_rpcs.cc).
  grpc::Status GetOpenIdConfiguration(grpc::ServerContext* ctx, const v1::GetOpenIdConfigurationRequest* req,
                                      v1::JsonDocument* resp) override;
  grpc::Status GetProviderJwks(grpc::ServerContext* ctx, const v1::GetProviderJwksRequest* req,
                               v1::JsonDocument* resp) override;
  grpc::Status Authorize(grpc::ServerContext* ctx, const v1::AuthorizeRequest* req,
                         v1::AuthorizeResponse* resp) override;
  grpc::Status ContinueAuthorization(grpc::ServerContext* ctx, const v1::ContinueAuthorizationRequest* req,
                                     v1::AuthorizeResponse* resp) override;
  grpc::Status ExchangeToken(grpc::ServerContext* ctx, const v1::TokenRequest* req, v1::TokenResponse* resp) override;
  grpc::Status ResolveAccessToken(grpc::ServerContext* ctx, const v1::ResolveAccessTokenRequest* req,
                                  v1::AccessTokenInfo* resp) override;
  grpc::Status IntrospectToken(grpc::ServerContext* ctx, const v1::IntrospectTokenRequest* req,
                               v1::IntrospectTokenResponse* resp) override;
  grpc::Status EndSession(grpc::ServerContext* ctx, const v1::EndSessionRequest* req,
                          v1::EndSessionResponse* resp) override;
  grpc::Status ListConnectedPortals(grpc::ServerContext* ctx, const v1::ListConnectedPortalsRequest* req,
                                    v1::ListConnectedPortalsResponse* resp) override;
  grpc::Status RevokeConnectedPortal(grpc::ServerContext* ctx, const v1::RevokeConnectedPortalRequest* req,
                                     v1::ListConnectedPortalsResponse* resp) override;

  // The person's own data (personal_data.cc): the export, the records kept after an
  // erasure, and the erasure.
  grpc::Status ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                  common::v1::PersonalData* resp) override;
  grpc::Status ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                   common::v1::RetainedRecords* resp) override;
  grpc::Status RequestErasure(grpc::ServerContext* ctx, const v1::RequestErasureRequest* req,
                              v1::RequestErasureResponse* resp) override;

  // The OpenID Provider, null when not configured (main starts its jobs).
  provider::OpenIdProvider* openid_provider() { return op_.get(); }

 private:
  // A new session of the account, at `level` reached by `method`.
  // It ends at `until` (Unix seconds) when given and earlier than the absolute lifetime.
  absl::StatusOr<v1::LoginResponse> NewSession(const v1::Account& account,
                                               v1::AssuranceLevel level = v1::ASSURANCE_LEVEL_LOW,
                                               const std::string& method = "password", int64_t until = 0);
  // The federation; NOT_FOUND "provider not found" when the deployment has no upstream
  // providers (as for an unknown one).
  absl::StatusOr<federation::Federation*> Upstreams();
  // The providers linked to the session's account, into `resp`.
  absl::Status ListLinked(const v1::Session& session, v1::ListLinkedProvidersResponse* resp);
  // The session behind `session_id` with its account's current roles, read from the
  // database at every resolution: a lock or a role change applies to the next request.
  // A locked or vanished account ends the session (UNAUTHENTICATED).
  absl::StatusOr<v1::Session> CurrentSession(const std::string& session_id);
  // The same for a session just resolved (by id or by reference).
  absl::StatusOr<v1::Session> CheckedSession(absl::StatusOr<v1::Session> session);
  // A code for the session's own account: confirms the enrolment (`confirm`) or passes
  // the confirmed factor; the session is marked as having passed it.
  // Takes one of the account's attempts in `bucket` ("totp": codes, "totp-enrolment":
  // enrolment codes), STADTPORTAL_TOTP_RATE each.
  absl::Status TakeTotpAttempt(const std::string& bucket, const std::string& account_id);
  absl::StatusOr<v1::Session> CheckTotp(const auth::Caller& caller, const v1::TotpCodeRequest& req, bool confirm);
  std::string Link(const std::string& page, const std::string& token) const;
  // The Login RPC's checks and throttling: a new session for right credentials.
  absl::StatusOr<v1::LoginResponse> PasswordLogin(grpc::ServerContext* ctx, const v1::LoginRequest& req);
  // A session ends (by its id or reference; an unknown one is no error): the partner
  // portals' grants of its sid end with it (back-channel log-out).
  absl::Status EndSessionById(const std::string& session_id);
  absl::Status EndSessionByRef(const std::string& session_ref);
  // Every session of the account ends, and every grant of it at partner portals.
  absl::Status EndAllSessions(const std::string& account_id);
  // The OpenID Provider, or FAILED_PRECONDITION "openid provider not configured".
  absl::StatusOr<provider::OpenIdProvider*> Op();
  // The browser's session when it has a valid one (nullopt otherwise).
  absl::StatusOr<std::optional<v1::Session>> BrowserSession(const std::string& session_id);
  void MailsQueued();
  // Whether another register or reset mail may go to this address now (a token bucket
  // per tenant and address in Redis, shared by all replicas).
  absl::StatusOr<bool> MayMail(const std::string& tenant, const std::string& email);
  // RequestErasure's checks and the erasure.
  absl::StatusOr<v1::RequestErasureResponse> Erase(const auth::Caller& caller, const v1::RequestErasureRequest& req);

  std::shared_ptr<Store> store_;
  Options options_;
  PasswordPolicy policy_;
  PasswordHasher hasher_;
  SessionStore sessions_;
  LoginThrottle throttle_;
  http::RateLimiter mail_limiter_;
  http::RateLimiter totp_limiter_;
  mail::Relay* relay_;
  std::shared_ptr<Clients> clients_;
  PartnerClients partners_;
  std::shared_ptr<federation::Federation> federation_;
  std::unique_ptr<provider::OpenIdProvider> op_;
};

}  // namespace stadtportal::identity

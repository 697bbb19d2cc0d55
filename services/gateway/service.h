#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <type_traits>

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "absl/status/statusor.h"
#include "libs/app/periodic.h"
#include "libs/auth/caller.h"
#include "libs/config/config.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "libs/http/client_address.h"
#include "libs/http/json_body.h"
#include "libs/http/rate_limit.h"
#include "libs/http/server.h"
#include "libs/metrics/metrics.h"
#include "libs/redis/client.h"
#include "libs/status/status.h"
#include "services/gateway/catalogue_cache.h"
#include "stadtportal/accounts/v1/accounts.grpc.pb.h"
#include "stadtportal/connector/v1/connector.grpc.pb.h"
#include "stadtportal/identity/v1/identity.grpc.pb.h"
#include "stadtportal/messaging/v1/messaging.grpc.pb.h"
#include "stadtportal/payment/v1/payment.grpc.pb.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

namespace stadtportal::gateway {

// A downstream gRPC service the gateway routes to and watches for readiness.
struct Downstream {
  std::string name;          // "identity"
  std::string target;        // gRPC target, e.g. dns:///identity:50051
  std::string service_name;  // Fully qualified gRPC service, asked in health checks.
};

struct Options {
  http::ServerOptions http;
  // /metrics is served on its own port, never on the public HTTP port.
  uint16_t admin_port = 9100;
  http::EdgeOptions edge;
  std::vector<Downstream> downstreams;
  std::string tenant = config::kDefaultTenant;
  std::chrono::milliseconds grpc_deadline{3000};
  std::chrono::milliseconds ready_timeout{800};
  std::chrono::milliseconds shutdown_delay{0};
  // The token endpoint's own URL: the audience back-office client assertions must name
  // (STADTPORTAL_OAUTH_TOKEN_URL).
  std::string token_url = "http://127.0.0.1:8080/api/v1/oauth/token";
  // Proxies (the ingress) whose X-Forwarded-For names the client; none by default.
  http::TrustedProxies trusted_proxies;
  // Per client (http::ClientAddress); the auth group covers log-in, registration and resets.
  http::Rate auth_rate{20, std::chrono::seconds(60)};
  http::Rate default_rate{300, std::chrono::seconds(60)};
  // Where the event streams are (the catalogue cache learns of new form versions there);
  // none: no catalogue cache.
  std::optional<redis::Options> events_redis;
  // The GDPR export (GET /api/v1/me/export): exports running at once on this replica
  // (STADTPORTAL_EXPORT_CONCURRENCY, 2), each service's deadline for its section or one
  // file (STADTPORTAL_EXPORT_DEADLINE_MS, 10 s); the erasure's listing of retained records
  // (STADTPORTAL_RETAINED_DEADLINE_MS, 2 s).
  int export_concurrency = 2;
  std::chrono::milliseconds export_deadline{10000};
  // How long one ZIP may take to stream, however slowly it is read
  // (STADTPORTAL_EXPORT_STREAM_SECONDS, 15 minutes): then it is cut off.
  std::chrono::seconds export_stream{15 * 60};
  std::chrono::milliseconds retained_deadline{2000};

  // STADTPORTAL_{IDENTITY,ACCOUNTS,SUBMISSION,PAYMENT,MESSAGING,CONNECTOR}_ADDR (required),
  // STADTPORTAL_TENANT, STADTPORTAL_GRPC_DEADLINE_MS, STADTPORTAL_READY_TIMEOUT_MS,
  // STADTPORTAL_SHUTDOWN_DELAY_MS, STADTPORTAL_RATE_LIMIT_AUTH, STADTPORTAL_RATE_LIMIT_DEFAULT,
  // STADTPORTAL_ADMIN_PORT, STADTPORTAL_TRUSTED_PROXIES,
  // and the HTTP server and edge options.
  static Options FromEnv(const config::Env& env);
};

// The caller of a request after its session was resolved.
struct Authenticated {
  std::string session_id;
  identity::v1::Session session;
  auth::Caller caller;
  const auth::Signer* signer = nullptr;
  std::string department;  // Back-office callers: the department the client acts for.
  // Partner portals' callers (an access token of our OpenID Provider): what it grants.
  std::optional<identity::v1::AccessTokenInfo> partner;

  // The caller's signed token for calls to `service` ("submission", …), the only service
  // that accepts it; signed on first use (most requests call one service).
  const std::string& Token(const std::string& service) const {
    auto& token = tokens_[service];
    if (token.empty()) token = signer->Sign(caller, service);
    return token;
  }

 private:
  mutable std::map<std::string, std::string> tokens_;
};

// Who may call a route. The route table resolves the caller before the handler runs;
// a refused caller gets the problem and the handler never runs.
enum class Who {
  kAnyone,  // No caller needed (catalogue, log-in, the payer's return, webhooks, probes).
  // A session (bearer token, or cookie + CSRF token for unsafe methods). One acting for an
  // organisation is checked against the current memberships (403 once the person left).
  kSession,
  // A session whose acting party is not checked: the routes that show and switch it.
  kSessionAnyParty,
  // A session for administration: one with an administrative role that has not passed
  // the second factor gets 403 "second factor required" (sessions without such a role
  // pass on; the services refuse them).
  kAdmin,
  // A back office's access token (OAuth 2.0 client credentials).
  kBackoffice,
  // A partner portal's access token of our OpenID Provider with the route's scope only
  // (userinfo); sessions are no caller here.
  kPartner,
};

// One route of the REST API.
struct Route {
  std::string method;
  std::string path;  // Template, e.g. "/api/v1/drafts/{id}".
  Who who = Who::kAnyone;
  // Rate-limit group, per client: "auth" (log-in, registration, resets), "default", or ""
  // for none (probes, provider webhooks). Checked before the caller is resolved.
  std::string limit = "default";
  size_t max_body = 0;  // A body limit of its own (0: the JSON routes' limit).
  bool upload = false;  // Takes files: the upload limit and slots (http::EdgeOptions).
  // Who::kSession routes a partner portal may call on the person's behalf with an access
  // token of our OpenID Provider: the scope the token needs ("submissions:read", …);
  // "" for none (partner tokens get 403 insufficient_scope).
  std::string scope = "";
};

using Req = const httplib::Request&;
using Res = httplib::Response&;
using P = const http::Params&;

// The REST edge: routes /api/v1 to the services over gRPC, answers /healthz and /readyz
// (and /metrics on the admin port), resolves sessions (bearer token or cookie + CSRF token), limits rates,
// and maps every error to application/problem+json.
class Service {
 public:
  // `redis` may be null: then no rate limits apply (tests of the routing only).
  Service(Options options, auth::Signer signer, redis::Client* redis);

  // Binds and serves on a background thread; returns the bound port.
  absl::StatusOr<uint16_t> Start();
  // The port /metrics is served on (after Start).
  uint16_t admin_port() const { return admin_ != nullptr ? admin_->port() : 0; }
  // /readyz turns 503 at once; after the shutdown delay the listener closes and
  // in-flight requests finish.
  void Shutdown();

  // "METHOD /path" of every route, for the OpenAPI contract test.
  std::vector<std::string> Routes() const { return router_.Routes(); }

  // The route table: each route states who may call it (`route.who`), its rate-limit
  // group and body limit; the handler gets the resolved caller. The constructor adds the
  // API's routes; more may be added before Start.
  using CallerHandler = std::function<void(Req, Res, P, const Authenticated&)>;
  using AnonymousHandler = std::function<void(Req, Res, P)>;
  void Add(const Route& route, CallerHandler handler);
  void Add(const Route& route, AnonymousHandler handler);  // Who::kAnyone only.

  static constexpr char kSessionCookie[] = "__Host-stadtportal_session";
  // The log-in flow with an upstream provider: only the browser that began it finishes it.
  static constexpr char kFederationCookie[] = "__Host-stadtportal_federation";
  // A pending authorization of the OpenID Provider (its log-in, step-up or consent page):
  // only the browser that began it goes on with it.
  static constexpr char kAuthorizeCookie[] = "__Host-stadtportal_authorize";
  // A SAML response (signed, encrypted, form-encoded base64).
  static constexpr size_t kMaxSamlResponseBody = 512 * 1024;
  // Bodies larger than the JSON routes' default (STADTPORTAL_HTTP_MAX_BODY_BYTES, 64 KiB):
  // a draft's answers, and a form definition an administrator publishes.
  static constexpr size_t kMaxDraftBody = 256 * 1024;
  static constexpr size_t kMaxFormDefinitionBody = 1 << 20;

 private:
  template <typename Stub, typename In, typename Out>
  using Rpc = grpc::Status (Stub::*)(grpc::ClientContext*, const In&, Out*);

  void AddRoutes();
  void AddAuthRoutes();
  void AddAccountsRoutes();
  void AddDocumentRoutes();
  void AddSubmissionRoutes();
  void AddPaymentRoutes();
  void AddMailboxRoutes();
  void AddBackofficeRoutes();
  void AddOperatorRoutes();
  void AddFederationRoutes();
  // The OpenID Provider's endpoints for partner portals (openid.cc).
  void AddOpenIdRoutes();
  // The person's own data: the export and the erasure (personal_data.cc).
  void AddPersonalDataRoutes();
  // An authorization's next step as the browser gets it: a 303 to the client, the page
  // of the interaction (with the pending authorization's cookie), or the error page.
  // `form_origin` is the client's redirect URI origin the page's forms may lead to.
  void AnswerAuthorization(Req req, Res res, const identity::v1::AuthorizeResponse& out, std::string form_origin);
  // ContinueAuthorization with the browser's pending authorization and session.
  void ContinueAuthorization(Req req, Res res, identity::v1::ContinueAuthorizationRequest in);
  // A token-endpoint-style failure: RFC 6749 5.2 JSON for OAuth errors, else the problem.
  void FailOAuth(Req req, Res res, const absl::Status& s);
  // Userinfo: the claims of the access token's scopes.
  void UserInfo(Req req, Res res, const Authenticated& a);
  // Begins a log-in at `provider` (step-up or linking with `session_id`): a 303 to it
  // (`redirect`) or its URL as JSON, with the flow cookie.
  void StartFederatedLogin(Req req, Res res, const std::string& provider, const std::string& minimum_level,
                           const std::string& return_to, const std::string& session_id, bool redirect);
  // The provider's answer, as the browser brought it: a session and a 303 to where the
  // flow began, or the problem (with "reason" for a refused answer).
  void FinishFederatedLogin(Req req, Res res, const std::string& provider, const std::string& relay_state,
                            const std::string& saml_response, const std::string& code, const std::string& error);
  // The session id a request names (Bearer token or cookie), unresolved; "" for none.
  static std::string SessionOf(Req req);
  // The same, only if it is a live session of this tenant ("" otherwise, no problem written).
  std::string LiveSessionOf(Req req);
  // The value of the request's cookie `name` ("" for none).
  static std::string CookieOf(Req req, const std::string& name);
  // The flow id of the browser's log-in with an upstream provider (its cookie).
  static std::string FlowOf(Req req);
  // The providers that can give `level`, with where to begin the step-up (for 403s).
  nlohmann::json StepUpProviders(const std::string& level);
  // Installs `handler` behind the route's rate limit and body limit.
  void Register(const Route& route, AnonymousHandler handler);
  // The caller of a request as `who` asks; on failure writes the problem and returns nullopt.
  std::optional<Authenticated> Resolve(Req req, Res res, Who who, const std::string& scope);
  // Whether a request carries credentials at all (a Bearer token or the session cookie),
  // checked before anything is asked of identity.
  static bool NamesCaller(Req req);
  // Resolves the request's session (Who::kSession, or kSessionAnyParty without the
  // membership check). Administrative roles go into the caller token only once the
  // session has passed the second factor.
  std::optional<Authenticated> Authenticate(Req req, Res res, bool acting_party_checked);
  // A partner portal's access token (a JWT of our OpenID Provider) on a Who::kSession
  // route that declares `scope`: the person acting as themself at the token's level,
  // without roles. 401 invalid_token when unresolvable, 403 insufficient_scope without
  // the route's scope.
  std::optional<Authenticated> AuthenticatePartner(Req req, Res res, const std::string& token,
                                                   const std::string& scope);
  // Whether a Bearer value is shaped as a JWT (three base64url parts), not a session id.
  static bool IsJwt(const std::string& token);
  // Authenticate for Who::kAdmin.
  std::optional<Authenticated> AuthenticateAdmin(Req req, Res res);
  // Resolves a back office's access token (Who::kBackoffice).
  std::optional<Authenticated> AuthenticateClient(Req req, Res res);
  // The client of a request (through trusted proxies only).
  std::string Client(Req req) const { return http::ClientAddress(req, options_.trusted_proxies); }
  // Whether the client is within the rate of `group`; if not, writes 429.
  bool WithinRate(Req req, Res res, const std::string& group);
  // The same per account (sessions and partner tokens alike), so that one account cannot
  // spread its load over many addresses.
  bool WithinAccountRate(Req req, Res res, const std::string& account_id);

  void Readyz(Res res);
  void ListServices(Req req, Res res);
  void GetService(Req req, const std::string& id, Res res);
  // A catalogue answer with its ETag, or 304 when the request's If-None-Match names it.
  static void WriteCatalogue(Req req, Res res, const CatalogueCache::Entry& entry);
  // A form version was published: every cached catalogue answer goes.
  void DropCatalogue();
  // Whether the catalogue caches may serve: their events are being read.
  bool CatalogueLive() const;
  // Reports the views answered from the catalogue cache to the submission service,
  // which counts them with its own (funnel "viewed").
  void ReportViews();

  // The anonymous caller's token for calls to `service`.
  std::string AnonymousToken(const std::string& service) const;
  // The service a stub calls, the audience of the caller tokens sent to it.
  static const char* Part(const identity::v1::IdentityService::Stub&) { return "identity"; }
  static const char* Part(const accounts::v1::AccountsService::Stub&) { return "accounts"; }
  static const char* Part(const submission::v1::SubmissionService::Stub&) { return "submission"; }
  static const char* Part(const payment::v1::PaymentService::Stub&) { return "payment"; }
  static const char* Part(const messaging::v1::MessagingService::Stub&) { return "messaging"; }
  static const char* Part(const connector::v1::ConnectorService::Stub&) { return "connector"; }
  // Calls `rpc` of `stub` with the caller token `token`, within the gRPC deadline.
  template <typename Stub, typename In, typename Out>
  absl::Status Invoke(const std::string& token, Stub& stub, Rpc<Stub, In, Out> rpc, const std::type_identity_t<In>& in,
                      Out* out) const {
    auto ctx = grpcx::NewClientContext(options_.grpc_deadline, token);
    return status::FromGrpc((stub.*rpc)(ctx.get(), in, out));
  }
  // The same within `deadline` instead of the gRPC deadline.
  template <typename Stub, typename In, typename Out>
  absl::Status InvokeWithin(std::chrono::milliseconds deadline, const std::string& token, Stub& stub,
                            Rpc<Stub, In, Out> rpc, const std::type_identity_t<In>& in, Out* out) const {
    auto ctx = grpcx::NewClientContext(deadline, token);
    return status::FromGrpc((stub.*rpc)(ctx.get(), in, out));
  }
  // A route's call to a service as the caller `a`: on failure writes the problem (Fail)
  // and returns false.
  template <typename Stub, typename In, typename Out>
  bool Call(Req req, Res res, const Authenticated& a, Stub& stub, Rpc<Stub, In, Out> rpc,
            const std::type_identity_t<In>& in, Out* out) {
    return Succeeded(req, res, Invoke(a.Token(Part(stub)), stub, rpc, in, out));
  }
  // The same as the anonymous caller.
  template <typename Stub, typename In, typename Out>
  bool Call(Req req, Res res, Stub& stub, Rpc<Stub, In, Out> rpc, const std::type_identity_t<In>& in, Out* out) {
    return Succeeded(req, res, Invoke(AnonymousToken(Part(stub)), stub, rpc, in, out));
  }
  // s.ok(); else writes the problem.
  bool Succeeded(Req req, Res res, const absl::Status& s) {
    if (!s.ok()) Fail(req, res, s);
    return s.ok();
  }
  // Writes `s` as the one problem document (status::Problem: 400, 422 with the field
  // errors in the request's language, 412 for a stale version, …), with Retry-After on
  // throttling and the required level on assurance refusals.
  void Fail(Req req, Res res, const absl::Status& s, const nlohmann::json& extra = nlohmann::json::object());
  // Parses the JSON body (at most `max_bytes`, 0: the JSON routes' limit); on failure
  // writes the problem and returns nullopt.
  std::optional<nlohmann::json> Body(Req req, Res res, const std::map<std::string, http::FieldSpec>& fields,
                                     size_t max_bytes = 0);
  // page_size and page_token query parameters; a malformed page size is refused.
  static absl::Status ParsePageParams(Req req, common::v1::PageRequest* page);
  // Sets the session cookie of `login` and returns its document (token, expiry,
  // assurance level, CSRF token).
  static nlohmann::json StartSession(Res res, const identity::v1::LoginResponse& login);

  Options options_;
  auth::Signer signer_;
  std::unique_ptr<http::RateLimiter> limiter_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::unique_ptr<identity::v1::IdentityService::Stub> identity_;
  std::unique_ptr<accounts::v1::AccountsService::Stub> accounts_;
  std::unique_ptr<submission::v1::SubmissionService::Stub> submission_;
  std::unique_ptr<payment::v1::PaymentService::Stub> payment_;
  std::unique_ptr<messaging::v1::MessagingService::Stub> messaging_;
  std::unique_ptr<connector::v1::ConnectorService::Stub> connector_;
  http::Router router_;
  http::Server server_;
  std::unique_ptr<metrics::AdminServer> admin_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  // Online services by id, and first pages of the list by query; before the reader of
  // their events, which calls into them until it is stopped.
  CatalogueCache catalogue_;
  CatalogueCache catalogue_pages_;
  std::unique_ptr<events::Broadcast> catalogue_events_;
  std::mutex views_mu_;
  std::map<std::string, int64_t> views_;  // Service id → views answered from the cache.
  app::Periodic views_job_;
  std::atomic<int> exports_running_{0};  // GDPR exports being assembled or streamed.
  std::mutex exports_mu_;
  std::set<std::string> exports_by_account_;  // One running export per account.
};

}  // namespace stadtportal::gateway

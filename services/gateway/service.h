#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include "absl/status/statusor.h"
#include "libs/auth/caller.h"
#include "libs/config/config.h"
#include "libs/http/client_address.h"
#include "libs/http/json_body.h"
#include "libs/http/rate_limit.h"
#include "libs/http/server.h"
#include "libs/metrics/metrics.h"
#include "libs/redis/client.h"
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

  static constexpr char kSessionCookie[] = "__Host-stadtportal_session";
  // Bodies larger than the JSON routes' default (STADTPORTAL_HTTP_MAX_BODY_BYTES, 64 KiB):
  // a draft's answers, and a form definition an administrator publishes.
  static constexpr size_t kMaxDraftBody = 256 * 1024;
  static constexpr size_t kMaxFormDefinitionBody = 1 << 20;

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&, const http::Params&)>;
  void AddRoutes();
  void AddAuthRoutes();
  void AddAccountsRoutes();
  void AddSubmissionRoutes();
  void AddPaymentRoutes();
  void AddMailboxRoutes();
  void AddBackofficeRoutes();
  void AddOperatorRoutes();
  // Resolves a back office's access token (OAuth 2.0 client credentials); on failure
  // writes the problem and returns nullopt.
  std::optional<Authenticated> AuthenticateClient(const httplib::Request& req, httplib::Response& res);
  // The client of a request (through trusted proxies only).
  std::string Client(const httplib::Request& req) const { return http::ClientAddress(req, options_.trusted_proxies); }
  // Wraps a handler with the rate limit of its group, per client.
  Handler Limited(const std::string& group, Handler handler);

  void Readyz(httplib::Response& res);
  void ListServices(const httplib::Request& req, httplib::Response& res);
  void GetService(const httplib::Request& req, const std::string& id, httplib::Response& res);

  // Resolves the request's session; on failure writes the problem and returns nullopt.
  // A session acting for an organisation is checked against the current memberships
  // (403 once the person left or was removed), except where `acting_party_checked` is
  // false: the routes that show the acting party and switch back. Administrative roles go
  // into the caller token only once the session has passed the second factor.
  // Whether a request carries credentials at all (a Bearer token or the session cookie),
  // checked before anything is asked of identity.
  static bool NamesCaller(const httplib::Request& req);
  std::optional<Authenticated> Authenticate(const httplib::Request& req, httplib::Response& res,
                                            bool acting_party_checked = true);
  // Authenticate for administrative routes: a session with an administrative role that
  // has not passed the second factor gets 403 "second factor required" (enrol first when
  // the account has none). Sessions without such a role pass on (services refuse them).
  std::optional<Authenticated> AuthenticateAdmin(const httplib::Request& req, httplib::Response& res);
  // The anonymous caller's token for calls to `service`.
  std::string AnonymousToken(const std::string& service) const;
  // Writes `s` as the one problem document (status::Problem: 400, 422 with the field
  // errors in the request's language, 412 for a stale version, …), with Retry-After on
  // throttling and the required level on assurance refusals.
  void Fail(const httplib::Request& req, httplib::Response& res, const absl::Status& s,
            const nlohmann::json& extra = nlohmann::json::object());
  // Parses the JSON body (at most `max_bytes`, 0: the JSON routes' limit); on failure
  // writes the problem and returns nullopt.
  std::optional<nlohmann::json> Body(const httplib::Request& req, httplib::Response& res,
                                     const std::map<std::string, http::FieldSpec>& fields, size_t max_bytes = 0);
  // page_size and page_token query parameters; a malformed page size is refused.
  static absl::Status ParsePageParams(const httplib::Request& req, common::v1::PageRequest* page);
  void WriteSession(httplib::Response& res, const identity::v1::LoginResponse& login);

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
  // The anonymous caller token for a service is the same for every anonymous request:
  // signed once per half lifetime instead of per request.
  struct CachedToken {
    std::string token;
    std::chrono::steady_clock::time_point until;
  };
  mutable std::mutex anonymous_mu_;
  mutable std::map<std::string, CachedToken> anonymous_tokens_;
};

}  // namespace stadtportal::gateway

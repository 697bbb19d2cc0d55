#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "libs/auth/caller.h"
#include "libs/testing/testing.h"

namespace stadtportal::e2e {

inline const std::vector<std::string> kServices = {"identity", "accounts",  "submission",
                                                   "payment",  "messaging", "connector"};

// One running process of a service, on its own gRPC and admin ports.
struct Instance {
  std::string service;
  uint16_t grpc_port;
  uint16_t admin_port;
  std::unique_ptr<testing::Process> process;
};

// The whole platform as processes on loopback: six services (some with several
// replicas) against the test PostgreSQL and Redis, and the gateway in front.
class Stack {
 public:
  // `gateway_env` overrides the gateway's environment (e.g. rate limits).
  explicit Stack(std::map<std::string, int> replicas = {}, std::map<std::string, std::string> gateway_env = {});
  ~Stack();

  // Starts (again) the given instance on its ports; `env` adds to or overrides its environment.
  void Start(Instance& i, const std::map<std::string, std::string>& env = {});
  // Once the instance serves, stops it with SIGTERM and starts it again with `env`;
  // false (with its log) if it did not serve or did not exit cleanly within 10 s.
  bool Restart(Instance& i, const std::map<std::string, std::string>& env = {});
  // Sets (empty value: removes) a variable of a service's environment for its next Start.
  void SetEnv(const std::string& service, const std::string& name, const std::string& value);
  std::vector<Instance>& instances() { return instances_; }
  Instance& instance(const std::string& service, int replica = 0);
  uint16_t gateway_port() const { return gateway_port_; }
  // The OpenID Provider's issuer (identity's STADTPORTAL_OP_ISSUER): the gateway's origin.
  std::string issuer() const { return "http://127.0.0.1:" + std::to_string(gateway_port_); }
  // The gateway's /metrics port.
  uint16_t gateway_admin_port() const { return gateway_admin_port_; }
  // The testpay simulator the payment service uses.
  uint16_t testpay_port() const { return testpay_port_; }
  testing::Process& gateway() { return *gateway_; }
  httplib::Client Http() const;
  // Waits until GET /readyz answers 200.
  bool WaitReady(std::chrono::milliseconds timeout);
  std::map<std::string, std::string> BaseEnv() const;
  // What Start gives a replica of `service` besides its ports: BaseEnv, its own database
  // role, and the addresses and keys it calls other services with.
  std::map<std::string, std::string> ServiceEnv(const std::string& service) const;
  // The Maildir the stack's SMTP server (aiosmtpd) delivers into.
  const std::string& maildir() const { return maildir_; }
  // The bodies of all mails to `to` delivered so far.
  std::vector<std::string> MailsTo(const std::string& to) const;
  // Stops and starts the SMTP server (same port, same Maildir).
  void StopSmtp();
  void StartSmtp();
  // A caller token for `service` as the gateway would sign it (for calling services
  // directly).
  std::string SignCaller(const auth::Caller& caller, const std::string& service) const;
  // The connector's signing key ("kid:base64 seed"), as the connector gets it.
  const std::string& connector_key() const { return connector_key_; }
  // The payment service's signing key, as payment gets it.
  const std::string& payment_key() const { return payment_key_; }
  // All log output of all processes so far.
  std::string AllLogs() const;

 private:
  std::string dir_;
  std::string maildir_;
  std::string signing_key_;
  std::string public_keys_;
  std::string connector_key_;
  std::string connector_public_keys_;
  std::string payment_key_;
  std::string payment_public_keys_;
  std::string accounts_key_;
  std::string accounts_public_keys_;
  std::string op_secret_;  // STADTPORTAL_OP_SECRET of identity's OpenID Provider.
  uint16_t smtp_port_ = 0;
  std::unique_ptr<testing::Process> smtp_;
  std::vector<Instance> instances_;
  std::map<std::string, std::string> addresses_;  // STADTPORTAL_<SVC>_ADDR
  std::map<std::string, std::map<std::string, std::string>> service_env_;
  uint16_t gateway_port_ = 0;
  uint16_t gateway_admin_port_ = 0;
  uint16_t testpay_port_ = 0;
  std::unique_ptr<testing::Process> testpay_;
  std::unique_ptr<testing::Process> gateway_;
};

std::string BinaryPath(const std::string& service);

// The Redis database of the platform under test: one of its own, emptied when a Stack
// starts (stacks run one at a time), so no throttle, session or stream of an earlier
// test reaches the next, and the integration tests' database 0 is left alone.
std::string StackRedisUrl();

inline constexpr char kTestpayKey[] = "e2e-testpay-key";
inline constexpr char kTestpaySecret[] = "e2e-testpay-webhook-secret";

// REST helpers shared by the e2e tests.
inline constexpr char kPassword[] = "Nürnberger Christkindlesmarkt";
std::string UniqueEmail();
httplib::Result PostJson(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                         httplib::Headers headers = {});
httplib::Headers Bearer(const nlohmann::json& login);
// Makes the pull destination `destination` and a back-office client for it (as the tenant
// admin `admin`) and returns that client's access token (client credentials).
std::string BackofficeToken(httplib::Client& c, const nlohmann::json& admin, const std::string& destination,
                            const std::string& department);
// The same for a bare token (a back office's, a partner portal's, a session id).
httplib::Headers BearerToken(const std::string& token);
// Answers of the seeded dog-tax registration form that pass its checks.
extern const nlohmann::json kDogTax;
// The token of the newest mail to `to` whose link contains `link_part`.
std::string MailedToken(Stack& stack, const std::string& to, const std::string& link_part);
// Registers `email`, verifies it by the mailed link and logs in; returns the log-in answer.
nlohmann::json Onboard(Stack& stack, httplib::Client& c, const std::string& email,
                       const std::string& display_name = "Anna Muster");
// Logs in again: a second session of the same account.
nlohmann::json Login(httplib::Client& c, const std::string& email);
// A company in Nürnberg founded by `owner`; returns its party id.
std::string CreateOrganisation(httplib::Client& c, const nlohmann::json& owner,
                               const std::string& name = "Bäckerei Schmidt GmbH");
// Accepts, as `login`, the newest invitation mailed to `mail`. Accounts learns of the
// verified address from identity's event, refusing (403) until then: retried up to 10 s.
httplib::Result AcceptInvitation(Stack& stack, httplib::Client& c, const nlohmann::json& login,
                                 const std::string& mail);
// A new account with the tenant-admin role (granted by operators in the database), logged in.
nlohmann::json Admin(Stack& stack, httplib::Client& c);
// The HTTP status of an answer, 0 when there was none.
int Status(const httplib::Result& r);
// Valid answers of the certificate order (two birth certificates, a fee of 24 €).
nlohmann::json CertificateAnswers();
// A submitted certificate order awaiting its fee; returns the submission.
nlohmann::json SubmitCertificate(httplib::Client& c, const nlohmann::json& login);
// Starts, fills and submits an application without a fee (201 required); returns the submission id.
std::string Apply(httplib::Client& c, const nlohmann::json& login, const std::string& service,
                  const nlohmann::json& data);
// Starts the payment of a submission's fee (201 required); returns the payment.
nlohmann::json StartPayment(httplib::Client& c, const nlohmann::json& login, const std::string& submission,
                            const std::string& idempotency_key);

// The payer on testpay's page: chooses `outcome` ("success", "decline", "cancel");
// returns where the browser is sent (the 303's Location).
std::string PayAtProvider(Stack& stack, const nlohmann::json& payment, const std::string& outcome);
// The status of the submission `id` as `login` sees it; "" when it cannot.
std::string SubmissionStatus(httplib::Client& c, const nlohmann::json& login, const std::string& id);

}  // namespace stadtportal::e2e

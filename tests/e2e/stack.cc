#include "tests/e2e/stack.h"

#include "tests/e2e/operators.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <csignal>
#include <regex>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "libs/auth/caller.h"
#include "libs/auth/totp.h"
#include "libs/grpc/client.h"
#include "libs/redis/client.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"

namespace stadtportal::e2e {

std::string BinaryPath(const std::string& service) {
  return std::string(STADTPORTAL_BIN_DIR) + "/stadtportal-" + service;
}

std::string StackRedisUrl() { return testing::RedisUrl() + "/1"; }

Stack::Stack(std::map<std::string, int> replicas, std::map<std::string, std::string> gateway_env) {
  {
    redis::Client redis(*redis::Options::FromUrl(StackRedisUrl()));
    REQUIRE(redis.Command({"FLUSHDB"}).ok());
  }
  dir_ = testing::TempDir();
  signing_key_ = auth::NewSigningKey("e2e");
  public_keys_ = auth::Signer::FromKey(signing_key_, std::chrono::seconds(60))->PublicKey();
  // The connector has a key of its own.
  connector_key_ = auth::NewSigningKey("e2e-connector");
  connector_public_keys_ = auth::Signer::FromKey(connector_key_, std::chrono::seconds(60), "connector")->PublicKey();
  // So has the payment service.
  payment_key_ = auth::NewSigningKey("e2e-payment");
  payment_public_keys_ = auth::Signer::FromKey(payment_key_, std::chrono::seconds(60), "payment")->PublicKey();
  // And accounts.
  accounts_key_ = auth::NewSigningKey("e2e-accounts");
  accounts_public_keys_ = auth::Signer::FromKey(accounts_key_, std::chrono::seconds(60), "accounts")->PublicKey();
  {
    // The OpenID Provider's secret (key encryption, pairwise subjects): 32 random bytes,
    // one per test run, since the stacks of a run share identity's signing keys in the
    // database (sealed with it).
    const std::string path = testing::TempDir() + "/e2e-op-secret";
    std::ifstream in(path);
    std::getline(in, op_secret_);
    if (op_secret_.empty()) {
      std::random_device random;
      std::string bytes(32, '\0');
      for (auto& b : bytes) b = static_cast<char>(random() & 0xff);
      const std::string mine = absl::Base64Escape(bytes);
      const std::string part = path + "." + std::to_string(getpid());
      std::ofstream(part) << mine << "\n";
      // The first stack's secret wins (a link never replaces an existing file).
      if (link(part.c_str(), path.c_str()) != 0 && errno != EEXIST) FAIL("cannot keep the OP secret in " << path);
      std::remove(part.c_str());
      std::ifstream again(path);
      std::getline(again, op_secret_);
    }
    REQUIRE(op_secret_.size() == 44);
  }
  smtp_port_ = testing::FreePort();
  gateway_port_ = testing::FreePort();
  maildir_ = dir_ + "/maildir-" + std::to_string(smtp_port_);
  StartSmtp();
  gateway_admin_port_ = testing::FreePort();
  testpay_port_ = testing::FreePort();
  testpay_ = std::make_unique<testing::Process>(
      BinaryPath("testpay"), std::vector<std::string>{},
      std::map<std::string, std::string>{{"STADTPORTAL_TESTPAY_PORT", std::to_string(testpay_port_)},
                                         {"STADTPORTAL_TESTPAY_API_KEY", kTestpayKey},
                                         {"STADTPORTAL_TESTPAY_WEBHOOK_SECRET", kTestpaySecret}},
      dir_ + "/testpay-" + std::to_string(testpay_port_) + ".log");
  std::map<std::string, std::string> env = BaseEnv();
  for (const auto& svc : kServices) {
    const int n = replicas.count(svc) ? replicas[svc] : 1;
    std::vector<std::string> targets;
    for (int r = 0; r < n; ++r) {
      Instance i{svc, testing::FreePort(), testing::FreePort(), nullptr};
      targets.push_back("127.0.0.1:" + std::to_string(i.grpc_port));
      instances_.push_back(std::move(i));
    }
    env["STADTPORTAL_" + absl::AsciiStrToUpper(svc) + "_ADDR"] = "ipv4:" + absl::StrJoin(targets, ",");
    addresses_["STADTPORTAL_" + absl::AsciiStrToUpper(svc) + "_ADDR"] = "ipv4:" + absl::StrJoin(targets, ",");
  }
  for (auto& i : instances_) Start(i);
  env["STADTPORTAL_HTTP_PORT"] = std::to_string(gateway_port_);
  env["STADTPORTAL_ADMIN_PORT"] = std::to_string(gateway_admin_port_);
  env["STADTPORTAL_READY_TIMEOUT_MS"] = "500";
  env["STADTPORTAL_CALLER_SIGNING_KEY"] = signing_key_;
  env["STADTPORTAL_HSTS_MAX_AGE_S"] = "31536000";
  env["STADTPORTAL_OAUTH_TOKEN_URL"] = "http://127.0.0.1:" + std::to_string(gateway_port_) + "/api/v1/oauth/token";
  // All tests share 127.0.0.1 and Redis: generous limits unless a test sets its own.
  env["STADTPORTAL_RATE_LIMIT_AUTH"] = "10000/60";
  env["STADTPORTAL_RATE_LIMIT_DEFAULT"] = "10000/60";
  for (const auto& [k, v] : gateway_env) env[k] = v;
  gateway_ = std::make_unique<testing::Process>(BinaryPath("gateway"), std::vector<std::string>{}, env,
                                                dir_ + "/gateway-" + std::to_string(gateway_port_) + ".log");
}

Stack::~Stack() = default;

void Stack::StartSmtp() {
  smtp_ = std::make_unique<testing::Process>(
      "/usr/bin/python3",
      std::vector<std::string>{"-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(smtp_port_), "-c",
                               "aiosmtpd.handlers.Mailbox", maildir_},
      std::map<std::string, std::string>{}, maildir_ + ".log");
}

void Stack::StopSmtp() {
  smtp_->Signal(SIGTERM);
  smtp_->Wait(std::chrono::seconds(5));
  smtp_.reset();
}

std::string Stack::SignCaller(const auth::Caller& caller, const std::string& service) const {
  return auth::Signer::FromKey(signing_key_, std::chrono::seconds(60))->Sign(caller, service);
}

std::map<std::string, std::string> Stack::BaseEnv() const {
  return {{"STADTPORTAL_REDIS_URL", StackRedisUrl()},
          {"STADTPORTAL_LISTEN_HOST", "127.0.0.1"},
          {"STADTPORTAL_LOG_LEVEL", "debug"},
          // A call across the network inside a database transaction ends the service.
          {"STADTPORTAL_STRICT_TRANSACTIONS", "true"},
          {"STADTPORTAL_SHUTDOWN_GRACE_MS", "5000"},
          // As in Kubernetes: callers see NOT_SERVING before the server refuses calls.
          {"STADTPORTAL_SHUTDOWN_DELAY_MS", "300"},
          {"STADTPORTAL_CALLER_PUBLIC_KEYS", public_keys_},
          {"STADTPORTAL_CONNECTOR_PUBLIC_KEYS", connector_public_keys_},
          {"STADTPORTAL_PAYMENT_PUBLIC_KEYS", payment_public_keys_},
          {"STADTPORTAL_ACCOUNTS_PUBLIC_KEYS", accounts_public_keys_},
          {"STADTPORTAL_SMTP_URL", "smtp://127.0.0.1:" + std::to_string(smtp_port_)},
          {"STADTPORTAL_MAIL_RETRY_MAX_S", "2"},
          {"STADTPORTAL_PUBLIC_URL", "https://portal.example"},
          {"STADTPORTAL_PAYMENT_CALLBACK_URL", "http://127.0.0.1:" + std::to_string(gateway_port_)},
          {"STADTPORTAL_TESTPAY_URL", "http://127.0.0.1:" + std::to_string(testpay_port_)},
          {"STADTPORTAL_ALLOW_TEST_PROVIDERS", "true"},
          {"STADTPORTAL_TESTPAY_API_KEY", kTestpayKey},
          {"STADTPORTAL_TESTPAY_WEBHOOK_SECRET", kTestpaySecret},
          // Cheap hashing keeps the tests fast; production uses the defaults.
          {"STADTPORTAL_ARGON2_OPSLIMIT", "1"},
          {"STADTPORTAL_ARGON2_MEMLIMIT_KIB", "8192"},
          // Tests try wrong and used codes on purpose; identity's own tests cover the default.
          {"STADTPORTAL_TOTP_RATE", "20/300"}};
}

std::vector<std::string> Stack::MailsTo(const std::string& to) const {
  std::vector<std::string> out;
  if (!std::filesystem::exists(maildir_ + "/new")) return out;
  for (const auto& entry : std::filesystem::directory_iterator(maildir_ + "/new")) {
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find("To: " + to + "\n") != std::string::npos ||
        ss.str().find("To: " + to + "\r\n") != std::string::npos) {
      out.push_back(ss.str());
    }
  }
  return out;
}

std::string Stack::AllLogs() const {
  std::string all;
  for (const auto& i : instances_) all += i.process->Output();
  all += gateway_->Output();
  all += testpay_->Output();
  return all;
}

std::map<std::string, std::string> Stack::ServiceEnv(const std::string& service) const {
  auto env = BaseEnv();
  // Each service as its own database role: its schema only.
  env["STADTPORTAL_DATABASE_URL"] = testing::ServiceDatabaseUrl(service);
  if (service == "connector") {
    // The connector calls submission and messaging as the platform service; quick
    // retries keep the delivery tests short.
    for (const auto& [k, v] : addresses_) env[k] = v;
    env["STADTPORTAL_CONNECTOR_SIGNING_KEY"] = connector_key_;
    env["STADTPORTAL_CONNECTOR_ALLOW_HTTP"] = "true";
    env["STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS"] = "127.0.0.1/32";
    env["STADTPORTAL_CONNECTOR_BACKOFF_BASE_MS"] = "100";
    env["STADTPORTAL_CONNECTOR_BACKOFF_MAX_MS"] = "400";
    env["STADTPORTAL_CONNECTOR_MAX_ATTEMPTS"] = "5";
    env["STADTPORTAL_CONNECTOR_BREAKER_THRESHOLD"] = "50";
    env["STADTPORTAL_CONNECTOR_POLL_MS"] = "50";
    // A delivery's lease is this plus 15 s: a connector killed mid-request resends soon.
    env["STADTPORTAL_CONNECTOR_HTTP_TIMEOUT_MS"] = "5000";
  }
  if (service == "payment") {
    // Payment asks submission what a payment is for, as the platform service.
    env["STADTPORTAL_SUBMISSION_ADDR"] = addresses_.at("STADTPORTAL_SUBMISSION_ADDR");
    env["STADTPORTAL_PAYMENT_SIGNING_KEY"] = payment_key_;
  }
  if (service == "identity") {
    // The OpenID Provider for partner portals, at the gateway's address.
    env["STADTPORTAL_OP_ISSUER"] = "http://127.0.0.1:" + std::to_string(gateway_port_);
    env["STADTPORTAL_OP_SECRET"] = op_secret_;
    // The partner portals of the tests (key sets, back-channel receivers) are on loopback.
    env["STADTPORTAL_OP_ALLOWED_NETWORKS"] = "127.0.0.1/32";
  }
  if (service == "accounts") {
    // Accounts has identity rotate a session when switching its acting party.
    env["STADTPORTAL_IDENTITY_ADDR"] = addresses_.at("STADTPORTAL_IDENTITY_ADDR");
    env["STADTPORTAL_ACCOUNTS_SIGNING_KEY"] = accounts_key_;
  }
  return env;
}

void Stack::Start(Instance& i, const std::map<std::string, std::string>& extra_env) {
  auto env = ServiceEnv(i.service);
  env["STADTPORTAL_GRPC_PORT"] = std::to_string(i.grpc_port);
  env["STADTPORTAL_ADMIN_PORT"] = std::to_string(i.admin_port);
  for (const auto& [k, v] : service_env_[i.service]) {
    if (v.empty()) {
      env.erase(k);
    } else {
      env[k] = v;
    }
  }
  for (const auto& [k, v] : extra_env) env[k] = v;
  i.process = std::make_unique<testing::Process>(BinaryPath(i.service), std::vector<std::string>{}, env,
                                                 dir_ + "/" + i.service + "-" + std::to_string(i.grpc_port) + ".log");
}

bool Stack::Restart(Instance& i, const std::map<std::string, std::string>& env) {
  // A signal before the process blocks it (early in start-up) would kill it outright.
  auto channel = grpcx::MakeChannel("ipv4:127.0.0.1:" + std::to_string(i.grpc_port));
  const bool serving = testing::Eventually(
      [&] { return grpcx::CheckHealth(channel, "", std::chrono::seconds(1)).ok(); }, std::chrono::seconds(60));
  i.process->Signal(SIGTERM);
  const int exit_code = i.process->Wait(std::chrono::seconds(10));
  if (!serving || exit_code != 0) {
    UNSCOPED_INFO(i.service << " did not " << (serving ? "exit cleanly" : "serve") << " (" << exit_code << "):\n"
                            << i.process->Output());
    return false;
  }
  Start(i, env);
  return true;
}

void Stack::SetEnv(const std::string& service, const std::string& name, const std::string& value) {
  service_env_[service][name] = value;
}

Instance& Stack::instance(const std::string& service, int replica) {
  for (auto& i : instances_) {
    if (i.service == service && replica-- == 0) return i;
  }
  throw std::out_of_range("no instance " + service);
}

httplib::Client Stack::Http() const {
  httplib::Client c("127.0.0.1", gateway_port_);
  c.set_connection_timeout(std::chrono::seconds(2));
  c.set_read_timeout(std::chrono::seconds(5));
  return c;
}

bool Stack::WaitReady(std::chrono::milliseconds timeout) {
  auto c = Http();
  std::string last;
  const bool ready = testing::Eventually(
      [&] {
        auto r = c.Get("/readyz");
        last = r ? r->body : "no answer";
        return r && r->status == 200;
      },
      timeout);
  // When a stack does not come up, the failure shows why.
  if (!ready) UNSCOPED_INFO("/readyz: " << last << "\nlogs:\n" << AllLogs());
  return ready;
}

std::string UniqueEmail() { return "citizen." + std::to_string(std::random_device{}()) + "@example.de"; }

httplib::Result PostJson(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                         httplib::Headers headers) {
  return c.Post(path.c_str(), headers, body.dump(), "application/json");
}

httplib::Headers Bearer(const nlohmann::json& login) { return BearerToken(login["token"].get<std::string>()); }

std::string BackofficeToken(httplib::Client& c, const nlohmann::json& admin, const std::string& destination,
                            const std::string& department) {
  REQUIRE(Status(c.Put(("/api/v1/admin/destinations/" + destination).c_str(), Bearer(admin),
                       nlohmann::json{{"name", department}, {"mode", "pull"}}.dump(), "application/json")) == 200);
  auto made = PostJson(c, "/api/v1/admin/backoffice-clients",
                       {{"destination", destination}, {"department", department}}, Bearer(admin));
  REQUIRE(Status(made) == 201);
  const auto client = nlohmann::json::parse(made->body);
  auto issued = c.Post("/api/v1/oauth/token",
                       {{"Authorization", "Basic " + absl::Base64Escape(client["client_id"].get<std::string>() + ":" +
                                                                        client["client_secret"].get<std::string>())}},
                       "grant_type=client_credentials", "application/x-www-form-urlencoded");
  REQUIRE(Status(issued) == 200);
  return nlohmann::json::parse(issued->body)["access_token"].get<std::string>();
}

httplib::Headers BearerToken(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

const nlohmann::json kDogTax = {
    {"dog_name", "Rex"},
    {"breed", "Dackel"},
    {"birth_date", "2024-03-01"},
    {"kept_since", "2024-05-01"},
    {"chip_number", "276098106543210"},
    {"given_name", "Anna"},
    {"family_name", "Muster"},
    {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}}};

std::string MailedToken(Stack& stack, const std::string& to, const std::string& link_part) {
  std::string token;
  const std::regex re(link_part + "\\?token=([A-Za-z0-9_-]+)");
  REQUIRE(testing::Eventually(
      [&] {
        for (const auto& mail : stack.MailsTo(to)) {
          std::smatch m;
          if (std::regex_search(mail, m, re)) token = m[1].str();
        }
        return !token.empty();
      },
      std::chrono::seconds(10)));
  return token;
}

nlohmann::json Onboard(Stack& stack, httplib::Client& c, const std::string& email, const std::string& display_name) {
  auto reg = PostJson(c, "/api/v1/auth/register",
                      {{"email", email}, {"password", kPassword}, {"display_name", display_name}, {"language", "en"}});
  REQUIRE(reg);
  REQUIRE(reg->status == 202);
  auto verify = PostJson(c, "/api/v1/auth/verify-email", {{"token", MailedToken(stack, email, "verify-email")}});
  REQUIRE(verify);
  REQUIRE(verify->status == 204);
  return Login(c, email);
}

std::string CreateOrganisation(httplib::Client& c, const nlohmann::json& owner, const std::string& name) {
  auto created = PostJson(c, "/api/v1/organisations",
                          {{"name", name},
                           {"legal_form", "company"},
                           {"address",
                            {{"street", "Hauptmarkt"},
                             {"house_number", "18"},
                             {"postcode", "90403"},
                             {"city", "Nürnberg"},
                             {"country", "DE"}}}},
                          Bearer(owner));
  INFO((created ? created->body : "no answer"));
  REQUIRE(Status(created) == 201);
  return nlohmann::json::parse(created->body)["id"].get<std::string>();
}

httplib::Result AcceptInvitation(Stack& stack, httplib::Client& c, const nlohmann::json& login,
                                 const std::string& mail) {
  const std::string token = MailedToken(stack, mail, "invitations");
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto accepted = PostJson(c, "/api/v1/invitations/accept", {{"token", token}}, Bearer(login));
    if (Status(accepted) != 403 || std::chrono::steady_clock::now() >= until) return accepted;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

nlohmann::json Login(httplib::Client& c, const std::string& email) {
  auto login = PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", kPassword}});
  REQUIRE(login);
  REQUIRE(login->status == 200);
  return nlohmann::json::parse(login->body);
}

namespace {

// Runs an operator command with `env` and waits for it (30 s at most).
int RunCommand(const std::string& binary, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env, std::string* output) {
  static int runs = 0;
  testing::Process p(
      BinaryPath(binary), args, env,
      testing::TempDir() + "/" + binary + "-" + std::to_string(::getpid()) + "-" + std::to_string(++runs) + ".log");
  const int code = p.Wait(std::chrono::seconds(30));
  if (output != nullptr) *output = p.Output();
  return code;
}

}  // namespace

int RunAdmin(const Stack& stack, const std::vector<std::string>& args, std::string* output) {
  auto env = stack.BaseEnv();
  // The operator command works on identity's data, as identity's database role.
  env["STADTPORTAL_DATABASE_URL"] = testing::ServiceDatabaseUrl("identity");
  return RunCommand("admin", args, env, output);
}

int RunServiceCommand(const Stack& stack, const std::string& service, const std::vector<std::string>& args,
                      std::string* output) {
  auto env = stack.BaseEnv();
  env["STADTPORTAL_DATABASE_URL"] = testing::ServiceDatabaseUrl(service);
  return RunCommand(service, args, env, output);
}

std::string TotpNow(const std::string& secret_base32, int64_t offset) {
  auto secret = auth::FromBase32(secret_base32);
  REQUIRE(secret.has_value());
  return auth::TotpCode(*secret, auth::TotpStep(std::time(nullptr)) + offset);
}

std::string EnrolmentCode(const std::string& admin_output) {
  static const std::regex code("enrolment code: ([A-Za-z0-9_-]+)");
  std::smatch m;
  return std::regex_search(admin_output, m, code) ? m[1].str() : "";
}

nlohmann::json AdminWithoutSecondFactor(Stack& stack, httplib::Client& c, std::string* email,
                                        std::string* enrolment_code) {
  const std::string mail = UniqueEmail();
  Onboard(stack, c, mail);
  std::string out;
  const int code = RunAdmin(stack, {"--by", "e2e", "grant-role", mail, "tenant-admin"}, &out);
  INFO(out);
  REQUIRE(code == 0);
  REQUIRE_FALSE(EnrolmentCode(out).empty());
  if (email != nullptr) *email = mail;
  if (enrolment_code != nullptr) *enrolment_code = EnrolmentCode(out);
  auto login = PostJson(c, "/api/v1/auth/login", {{"email", mail}, {"password", kPassword}});
  REQUIRE(Status(login) == 200);
  return nlohmann::json::parse(login->body);
}

std::string EnrolSecondFactor(httplib::Client& c, const nlohmann::json& login, const std::string& enrolment_code) {
  auto enrol = PostJson(c, "/api/v1/auth/totp/enrol", {{"enrolment_code", enrolment_code}}, Bearer(login));
  INFO((enrol ? enrol->body : "no answer"));
  REQUIRE(Status(enrol) == 201);
  const std::string secret = nlohmann::json::parse(enrol->body)["secret"];
  auto confirm = PostJson(c, "/api/v1/auth/totp/confirm", {{"code", TotpNow(secret)}}, Bearer(login));
  INFO((confirm ? confirm->body : "no answer"));
  REQUIRE(Status(confirm) == 200);
  return secret;
}

nlohmann::json Admin(Stack& stack, httplib::Client& c) {
  std::string enrolment_code;
  auto login = AdminWithoutSecondFactor(stack, c, nullptr, &enrolment_code);
  EnrolSecondFactor(c, login, enrolment_code);
  return login;
}

int Status(const httplib::Result& r) { return r ? r->status : 0; }

nlohmann::json CertificateAnswers() {
  return {{"certificate_type", "birth"},
          {"copies", 2},
          {"event_date", "1990-02-28"},
          {"person_name", "Anna Muster"},
          {"purpose", "pension"},
          {"given_name", "Anna"},
          {"family_name", "Muster"},
          {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
          {"email", "anna@example.org"}};
}

nlohmann::json SubmitCertificate(httplib::Client& c, const nlohmann::json& login) {
  auto created =
      PostJson(c, "/api/v1/services/civil-registry-certificate/drafts", nlohmann::json::object(), Bearer(login));
  REQUIRE(Status(created) == 201);
  const std::string id = nlohmann::json::parse(created->body)["id"];
  auto headers = Bearer(login);
  headers.emplace("If-Match", "\"1\"");
  REQUIRE(Status(c.Patch(("/api/v1/drafts/" + id).c_str(), headers,
                         nlohmann::json{{"data", CertificateAnswers()}}.dump(), "application/json")) == 200);
  auto submit_headers = Bearer(login);
  submit_headers.emplace("Idempotency-Key", "submit-" + id);
  auto submitted = c.Post(("/api/v1/drafts/" + id + "/submit").c_str(), submit_headers, "", "application/json");
  REQUIRE(Status(submitted) == 201);
  nlohmann::json s = nlohmann::json::parse(submitted->body);
  REQUIRE(s["status"] == "awaiting_payment");
  return s;
}

std::string Apply(httplib::Client& c, const nlohmann::json& login, const std::string& service,
                  const nlohmann::json& data) {
  auto created = PostJson(c, "/api/v1/services/" + service + "/drafts", nlohmann::json::object(), Bearer(login));
  REQUIRE(Status(created) == 201);
  const std::string id = nlohmann::json::parse(created->body)["id"];
  auto h = Bearer(login);
  h.emplace("If-Match", "\"1\"");
  REQUIRE(Status(c.Patch(("/api/v1/drafts/" + id).c_str(), h, nlohmann::json{{"data", data}}.dump(),
                         "application/json")) == 200);
  auto s = Bearer(login);
  s.emplace("Idempotency-Key", "submit-" + id);
  auto submitted = c.Post(("/api/v1/drafts/" + id + "/submit").c_str(), s, "", "application/json");
  INFO((submitted ? submitted->body : ""));
  REQUIRE(Status(submitted) == 201);
  return nlohmann::json::parse(submitted->body)["id"];
}

nlohmann::json StartPayment(httplib::Client& c, const nlohmann::json& login, const std::string& submission,
                            const std::string& idempotency_key) {
  auto headers = Bearer(login);
  headers.emplace("Idempotency-Key", idempotency_key);
  auto r = c.Post(("/api/v1/submissions/" + submission + "/payment").c_str(), headers, "", "application/json");
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 201);
  return nlohmann::json::parse(r->body);
}

std::string PayAtProvider(Stack& stack, const nlohmann::json& payment, const std::string& outcome) {
  httplib::Client provider("127.0.0.1", stack.testpay_port());
  const std::string url = payment["next_url"];
  const std::string path = url.substr(url.find("/pay/"));
  REQUIRE(Status(provider.Get(path.c_str())) == 200);
  auto r = provider.Post((path + "/" + outcome).c_str());
  REQUIRE(Status(r) == 303);
  return r->get_header_value("Location");
}

std::string SubmissionStatus(httplib::Client& c, const nlohmann::json& login, const std::string& id) {
  auto r = c.Get(("/api/v1/submissions/" + id).c_str(), Bearer(login));
  return r && r->status == 200 ? nlohmann::json::parse(r->body)["status"].get<std::string>() : "";
}

}  // namespace stadtportal::e2e

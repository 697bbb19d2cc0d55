// Log-in and the public API edge, over HTTP against the real binaries.
#include <csignal>
#include <random>
#include <regex>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "libs/auth/caller.h"
#include "libs/grpc/client.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

}  // namespace

TEST_CASE("register, mail, verify, log in, /me, log out", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string email = UniqueEmail();
  json login = Onboard(stack, c, email);
  CHECK(login["assurance_level"] == "low");
  CHECK(login["token"].get<std::string>().size() >= 43);

  auto me = c.Get("/api/v1/me", Bearer(login));
  REQUIRE(me);
  REQUIRE(me->status == 200);
  auto body = json::parse(me->body);
  CHECK(body["email"] == email);
  CHECK(body["assurance_level"] == "low");
  CHECK(body["auth_method"] == "password");
  CHECK(me->get_header_value("Cache-Control") == "no-store");
  CHECK(me->get_header_value("X-Content-Type-Options") == "nosniff");
  CHECK(me->get_header_value("Strict-Transport-Security").find("max-age=") == 0);

  auto out = c.Post("/api/v1/auth/logout", Bearer(login), "", "application/json");
  REQUIRE(out);
  CHECK(out->status == 204);
  auto after = c.Get("/api/v1/me", Bearer(login));
  REQUIRE(after);
  CHECK(after->status == 401);
  CHECK(after->get_header_value("Content-Type") == "application/problem+json");

  SECTION("log-out everywhere ends every session") {
    auto a = PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", kPassword}});
    auto b = PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", kPassword}});
    REQUIRE((a && b && a->status == 200 && b->status == 200));
    json ja = json::parse(a->body), jb = json::parse(b->body);
    CHECK(ja["token"] != jb["token"]);  // A new session id at every log-in.
    REQUIRE(c.Post("/api/v1/auth/logout-all", Bearer(ja), "", "application/json")->status == 204);
    CHECK(c.Get("/api/v1/me", Bearer(ja))->status == 401);
    CHECK(c.Get("/api/v1/me", Bearer(jb))->status == 401);
  }
}

TEST_CASE("wrong passwords are throttled and indistinguishable from unknown e-mails", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string email = UniqueEmail();
  Onboard(stack, c, email);

  auto wrong = PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", "falsches Passwort"}});
  auto unknown = PostJson(c, "/api/v1/auth/login", {{"email", "x" + email}, {"password", "falsches Passwort"}});
  REQUIRE((wrong && unknown));
  CHECK(wrong->status == 401);
  CHECK(unknown->status == wrong->status);
  json jw = json::parse(wrong->body), ju = json::parse(unknown->body);
  jw.erase("request_id");
  ju.erase("request_id");
  CHECK(jw == ju);

  for (int i = 0; i < 4; ++i) PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", "falsches Passwort"}});
  auto throttled = PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", kPassword}});
  REQUIRE(throttled);
  CHECK(throttled->status == 429);
  CHECK_FALSE(throttled->get_header_value("Retry-After").empty());
}

TEST_CASE(
    "behind a trusted proxy, 50 wrong passwords from one client delay and block only that client, never the account's "
    "owner",
    "[e2e]") {
  // The test client plays the ingress (trusted), naming each client in X-Forwarded-For.
  Stack stack({}, {{"STADTPORTAL_TRUSTED_PROXIES", "127.0.0.1/32, ::1"}});
  // A short cap, so the test need not wait the default minute.
  auto& identity = stack.instance("identity");
  REQUIRE(stack.Restart(identity, {{"STADTPORTAL_LOGIN_DELAY_MAX_MS", "2000"}}));
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string victim = UniqueEmail(), other = UniqueEmail();
  Onboard(stack, c, victim);
  Onboard(stack, c, other);
  auto login = [&](const std::string& client, const std::string& email, const std::string& password) {
    return PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", password}},
                    {{"X-Forwarded-For", "198.18.0.1, " + client}});  // Left of the client: ignored.
  };

  // The attacker tries 50 wrong passwords on the victim's account.
  const std::string attacker = "203.0.113.66";
  for (int i = 0; i < 50; ++i) {
    auto r = login(attacker, victim, "falsches Passwort " + std::to_string(i));
    REQUIRE(r);
    CHECK((r->status == 401 || r->status == 429));
  }
  // The victim, from elsewhere, is not slowed down at all: the delay is the attacker's.
  auto victim_login = login("198.51.100.7", victim, kPassword);
  REQUIRE(victim_login);
  CHECK(victim_login->status == 200);
  // The attacker, with the right password now, still waits (the delay of its failures).
  auto attacker_right = login(attacker, victim, kPassword);
  REQUIRE(attacker_right);
  CHECK(attacker_right->status == 429);

  // The attacker then sprays 50 accounts: that client is refused, for any account …
  for (int i = 0; i < 50; ++i) {
    auto r = login(attacker, "sprayed." + std::to_string(i) + "." + victim, "falsches Passwort");
    REQUIRE(r);
    CHECK((r->status == 401 || r->status == 429));
  }
  auto blocked = login(attacker, other, kPassword);
  REQUIRE(blocked);
  CHECK(blocked->status == 429);
  CHECK_FALSE(blocked->get_header_value("Retry-After").empty());
  // … while other clients (IPv4 and IPv6) log in to any account at once.
  CHECK(Status(login("2001:db8::c", other, kPassword)) == 200);
  CHECK(Status(login("198.51.100.7", victim, kPassword)) == 200);

  // An IPv6 client rotating addresses within its /64 counts as one client.
  for (int i = 0; i < 50; ++i) {
    auto r = login("2001:db8:0:66::" + std::to_string(i + 1), "rotated." + std::to_string(i) + "." + victim,
                   "falsches Passwort");
    REQUIRE(r);
    CHECK((r->status == 401 || r->status == 429));
  }
  CHECK(Status(login("2001:db8:0:66:ffff::1", other, kPassword)) == 429);
  CHECK(Status(login("2001:db8:0:67::1", other, kPassword)) == 200);
}

TEST_CASE("forged, expired, unknown and cookie-without-CSRF requests are refused", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json login = Onboard(stack, c, UniqueEmail());

  CHECK(c.Get("/api/v1/me")->status == 401);
  CHECK(c.Get("/api/v1/me", {{"Authorization", "Bearer forged-session-id"}})->status == 401);
  CHECK(c.Get("/api/v1/me", {{"Authorization", "Basic dXNlcjpwYXNz"}})->status == 401);

  // Browsers: the cookie alone authenticates reads, unsafe requests need the CSRF token.
  const std::string cookie = std::string("__Host-stadtportal_session=") + login["token"].get<std::string>();
  CHECK(c.Get("/api/v1/me", {{"Cookie", cookie}})->status == 200);
  auto no_csrf = c.Post("/api/v1/auth/logout", {{"Cookie", cookie}}, "", "application/json");
  REQUIRE(no_csrf);
  CHECK(no_csrf->status == 403);
  auto with_csrf = c.Post("/api/v1/auth/logout", {{"Cookie", cookie}, {"X-CSRF-Token", login["csrf_token"]}}, "",
                          "application/json");
  REQUIRE(with_csrf);
  CHECK(with_csrf->status == 204);

  // Services refuse calls without a valid caller token from the gateway.
  auto channel = grpcx::MakeChannel("ipv4:127.0.0.1:" + std::to_string(stack.instance("submission").grpc_port));
  auto stub = submission::v1::SubmissionService::NewStub(channel);
  submission::v1::ListOnlineServicesRequest req;
  submission::v1::ListOnlineServicesResponse resp;
  auto none = grpcx::NewClientContext(5s);
  CHECK(stub->ListOnlineServices(none.get(), req, &resp).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auth::Caller caller;
  caller.tenant = "09564000";
  auto forged =
      auth::Signer::FromKey(auth::NewSigningKey("e2e"), 60s)->Sign(caller, "submission");  // Same kid, other key.
  auto ctx = grpcx::NewClientContext(5s, forged);
  CHECK(stub->ListOnlineServices(ctx.get(), req, &resp).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("bad input gets 4xx problems, never 5xx, and the services stay healthy", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string path = "/api/v1/auth/login";
  struct Case {
    std::string name;
    std::string body;
    std::string type;
  };
  std::string deep(1000, '[');
  deep += std::string(1000, ']');
  std::vector<Case> cases = {
      {"malformed JSON", "{\"email\": ", "application/json"},
      {"wrong types", R"({"email": 42, "password": ["x"]})", "application/json"},
      {"unknown field", R"({"email": "a@b.de", "password": "0123456789x", "admin": true})", "application/json"},
      {"missing fields", "{}", "application/json"},
      {"not an object", "[1, 2, 3]", "application/json"},
      {"1000-deep nesting", deep, "application/json"},
      {"invalid UTF-8", "{\"email\": \"\xff\xfe@b.de\", \"password\": \"0123456789x\"}", "application/json"},
      {"wrong content type", "email=a@b.de", "application/x-www-form-urlencoded"},
      {"10 MB body", std::string(10 * 1024 * 1024, 'x'), "application/json"},
  };
  for (const auto& k : cases) {
    auto r = c.Post(path.c_str(), k.body, k.type.c_str());
    INFO(k.name);
    REQUIRE(r);
    CHECK(r->status >= 400);
    CHECK(r->status < 500);
    CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  }
  auto typed = c.Post(path.c_str(), {{"Accept-Language", "de-DE"}}, R"({"email": 42})", "application/json");
  auto problem = json::parse(typed->body);
  REQUIRE(problem["errors"].size() == 2);
  CHECK(problem["errors"][0]["field"] == "email");
  CHECK(problem["errors"][0]["message"] == "Hier wird ein Text erwartet.");

  auto huge_header = c.Get("/api/v1/services", {{"X-Filler", std::string(64 * 1024, 'a')}});
  if (huge_header) {
    CHECK(huge_header->status >= 400);
    CHECK(huge_header->status < 500);
  }
  CHECK(stack.WaitReady(5s));
}

TEST_CASE("auth routes are rate limited per client with RateLimit headers", "[e2e]") {
  // A bucket of its own (another period means another rate), small enough to empty.
  Stack stack({}, {{"STADTPORTAL_RATE_LIMIT_AUTH", "10/61"}});
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  int last_status = 0;
  httplib::Headers last_headers;
  for (int i = 0; i < 40 && last_status != 429; ++i) {
    auto r = PostJson(c, "/api/v1/auth/password-reset", {{"email", UniqueEmail()}});
    REQUIRE(r);
    last_status = r->status;
    last_headers = r->headers;
    if (last_status != 429) CHECK(last_status == 202);
  }
  CHECK(last_status == 429);
  CHECK(last_headers.count("Retry-After") == 1);
  CHECK(last_headers.find("RateLimit-Remaining")->second == "0");
}

TEST_CASE("no password, token or session id appears in any log line", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string email = UniqueEmail();
  json login = Onboard(stack, c, email);
  c.Get("/api/v1/me", Bearer(login));
  PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", "ein falsches Passwort"}});
  std::string verify_token;
  for (const auto& mail : stack.MailsTo(email)) {
    std::smatch m;
    if (std::regex_search(mail, m, std::regex("token=([A-Za-z0-9_-]+)"))) verify_token = m[1].str();
  }
  REQUIRE_FALSE(verify_token.empty());
  const std::string logs = stack.AllLogs();
  REQUIRE(logs.find("\"msg\":\"request\"") != std::string::npos);  // The logs are there…
  CHECK(logs.find(kPassword) == std::string::npos);                // …without secrets.
  CHECK(logs.find("ein falsches Passwort") == std::string::npos);
  CHECK(logs.find(login["token"].get<std::string>()) == std::string::npos);
  CHECK(logs.find(login["csrf_token"].get<std::string>()) == std::string::npos);
  CHECK(logs.find(verify_token) == std::string::npos);
}

TEST_CASE("a stopped service makes only its routes fail fast", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto& identity = stack.instance("identity");
  identity.process->Signal(SIGTERM);
  REQUIRE(identity.process->Wait(10s) == 0);
  auto c = stack.Http();
  const auto t0 = std::chrono::steady_clock::now();
  auto login = PostJson(c, "/api/v1/auth/login", {{"email", UniqueEmail()}, {"password", kPassword}});
  REQUIRE(login);
  CHECK((login->status == 503 || login->status == 504));
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
  auto catalogue = c.Get("/api/v1/services");
  REQUIRE(catalogue);
  CHECK(catalogue->status == 200);
  auto ready = c.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK(json::parse(ready->body)["detail"] == "not ready: identity");
}

}  // namespace stadtportal::e2e

#include <sodium.h>

#include "absl/strings/escaping.h"
#include "libs/redis/client.h"

namespace stadtportal::e2e {

// Sessions put into Redis the way identity stores them, to test what the gateway
// does with an expired one and with one of another municipality.
TEST_CASE("expired sessions and sessions of another tenant are refused", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json login = Onboard(stack, c, UniqueEmail());
  auto me = c.Get("/api/v1/me", Bearer(login));
  REQUIRE(me);
  const std::string account = json::parse(me->body)["account_id"];

  redis::Client redis(*redis::Options::FromUrl(StackRedisUrl()));
  auto plant = [&](const std::string& id, const std::string& tenant, int64_t absolute) {
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(hash, reinterpret_cast<const unsigned char*>(id.data()), id.size());
    const std::string key =
        "sp:session:" + absl::BytesToHexString(std::string(reinterpret_cast<char*>(hash), sizeof(hash)));
    REQUIRE(redis
                .Command({"HSET", key,   "account", account,    "tenant", tenant,
                          "acr",  "low", "amr",     "password", "roles",  "",
                          "csrf", "x",   "created", "0",        "abs",    std::to_string(absolute),
                          "act",  ""})
                .ok());
    REQUIRE(redis.Command({"EXPIRE", key, "600"}).ok());
  };
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  plant("planted-valid-session-0123456789abcdef", "09564000", now + 600);
  plant("planted-expired-session-0123456789abcd", "09564000", now - 1);
  plant("planted-munich-session-0123456789abcde", "09162000", now + 600);
  // The planted valid one proves the planting matches identity's format…
  CHECK(c.Get("/api/v1/me", {{"Authorization", "Bearer planted-valid-session-0123456789abcdef"}})->status == 200);
  // …so these are refused for being expired and for belonging to another municipality.
  CHECK(c.Get("/api/v1/me", {{"Authorization", "Bearer planted-expired-session-0123456789abcd"}})->status == 401);
  CHECK(c.Get("/api/v1/me", {{"Authorization", "Bearer planted-munich-session-0123456789abcde"}})->status == 401);
}

}  // namespace stadtportal::e2e

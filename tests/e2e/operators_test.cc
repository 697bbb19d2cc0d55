// Operators: the second factor on every administrative route, the audit log of every
// service, back-office clients disabled and rotated, and the operator command.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "libs/testing/openapi.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using nlohmann::json;

// Every administrative operation of the API: the /api/v1/admin/ routes and refunds.
std::vector<std::pair<std::string, std::string>> AdminOperations() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& op : testing::OpenApiOperations(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/openapi.yaml")) {
    const std::string method = op.substr(0, op.find(' '));
    const std::string path = op.substr(op.find(' ') + 1);
    if (!absl::StartsWith(path, "/api/v1/admin/") && path != "/api/v1/payments/{id}/refunds") continue;
    out.emplace_back(method, absl::StrReplaceAll(path, {{"{id}", "00000000-0000-4000-8000-000000000000"}}));
  }
  return out;
}

httplib::Result Call(httplib::Client& c, const std::string& method, const std::string& path, const json& login,
                     const json& body = json::object(), httplib::Headers extra = {}) {
  httplib::Headers h = login.is_null() ? httplib::Headers{} : Bearer(login);
  for (const auto& [k, v] : extra) h.emplace(k, v);
  const std::string b = body.dump();
  if (method == "GET") return c.Get(path.c_str(), h);
  if (method == "PUT") return c.Put(path.c_str(), h, b, "application/json");
  if (method == "PATCH") return c.Patch(path.c_str(), h, b, "application/json");
  if (method == "DELETE") return c.Delete(path.c_str(), h, b, "application/json");
  return c.Post(path.c_str(), h, b, "application/json");
}

// The "second factor required" problem's instruction ("enrol" or "verify"), "" otherwise.
std::string SecondFactorDemanded(const httplib::Result& r) {
  if (Status(r) != 403) return "";
  auto p = json::parse(r->body, nullptr, false);
  if (!p.is_object() || !absl::StartsWith(p.value("detail", ""), "second factor required")) return "";
  return p.value("second_factor", "?");
}

json Get(httplib::Client& c, const std::string& path, const json& login) {
  auto r = c.Get(path.c_str(), Bearer(login));
  INFO(path << ": " << (r ? r->body : "no answer"));
  REQUIRE(Status(r) == 200);
  return json::parse(r->body);
}

httplib::Result Token(httplib::Client& c, const std::string& client_id, const std::string& secret) {
  return c.Post("/api/v1/oauth/token",
                "grant_type=client_credentials&client_id=" + client_id + "&client_secret=" + secret,
                "application/x-www-form-urlencoded");
}

int BackofficeList(httplib::Client& c, const std::string& access_token) {
  return Status(c.Get("/api/v1/backoffice/submissions", {{"Authorization", "Bearer " + access_token}}));
}

}  // namespace

TEST_CASE("administrative routes need the second factor: enrol first, then a code per session", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
  auto c = stack.Http();
  const auto operations = AdminOperations();
  REQUIRE(operations.size() >= 12);

  // An admin with the password only: every administrative route asks for enrolment.
  std::string enrolment_code;
  auto admin = AdminWithoutSecondFactor(stack, c, nullptr, &enrolment_code);
  for (const auto& [method, path] : operations) {
    INFO(method << " " << path);
    CHECK(SecondFactorDemanded(Call(c, method, path, admin)) == "enrol");
  }
  CHECK(Status(c.Get("/api/v1/me", Bearer(admin))) == 200);  // The rest of the account works.

  // Whoever has only the password cannot enrol in the admin's place: the operator's code is needed.
  CHECK(Status(PostJson(c, "/api/v1/auth/totp/enrol", json::object(), Bearer(admin))) == 422);
  CHECK(Status(PostJson(c, "/api/v1/auth/totp/enrol", {{"enrolment_code", "guessed-code-1234567"}}, Bearer(admin))) ==
        403);
  const std::string secret = EnrolSecondFactor(c, admin, enrolment_code);
  CHECK(Status(c.Get("/api/v1/admin/audit-log", Bearer(admin))) == 200);

  // A new session must pass it again; wrong and used codes do not count.
  auto login =
      PostJson(c, "/api/v1/auth/login", {{"email", Get(c, "/api/v1/me", admin)["email"]}, {"password", kPassword}});
  REQUIRE(Status(login) == 200);
  auto second = json::parse(login->body);
  for (const auto& [method, path] : operations) {
    INFO(method << " " << path);
    CHECK(SecondFactorDemanded(Call(c, method, path, second)) == "verify");
  }
  auto wrong = PostJson(c, "/api/v1/auth/totp/verify", {{"code", TotpNow(secret, 7)}}, Bearer(second));
  CHECK(Status(wrong) == 422);
  auto malformed = PostJson(c, "/api/v1/auth/totp/verify", {{"code", "12 456\r\n"}}, Bearer(second));
  CHECK(Status(malformed) == 422);
  // The code that confirmed the enrolment (or the one just before) was used already.
  const bool reused_refused =
      Status(PostJson(c, "/api/v1/auth/totp/verify", {{"code", TotpNow(secret, 0)}}, Bearer(second))) == 422 ||
      Status(PostJson(c, "/api/v1/auth/totp/verify", {{"code", TotpNow(secret, -1)}}, Bearer(second))) == 422;
  CHECK(reused_refused);
  auto verified = PostJson(c, "/api/v1/auth/totp/verify", {{"code", TotpNow(secret, 1)}}, Bearer(second));
  INFO((verified ? verified->body : "no answer"));
  REQUIRE(Status(verified) == 200);
  CHECK(json::parse(verified->body)["second_factor"] == "passed");
  for (const auto& [method, path] : operations) {
    INFO(method << " " << path);
    auto r = Call(c, method, path, second);
    CHECK(SecondFactorDemanded(r) == "");
    CHECK(Status(r) < 500);
  }

  // Citizens are refused by the services as before, not asked for a second factor.
  auto citizen = Onboard(stack, c, UniqueEmail());
  auto refused = Call(c, "GET", "/api/v1/admin/audit-log", citizen);
  CHECK(Status(refused) == 403);
  CHECK(SecondFactorDemanded(refused) == "");
}

TEST_CASE("the audit log: who did what and when, with the request id", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
  auto c = stack.Http();
  auto admin = Admin(stack, c);
  const std::string account = Get(c, "/api/v1/me", admin)["account_id"];

  auto client = Call(c, "POST", "/api/v1/admin/backoffice-clients", admin,
                     {{"destination", "standesamt"}, {"department", "Standesamt"}}, {{"X-Request-Id", "audit-e2e-1"}});
  REQUIRE(Status(client) == 201);
  const std::string client_id = json::parse(client->body)["client_id"];
  REQUIRE(Status(Call(c, "POST", "/api/v1/admin/backoffice-clients/" + client_id + "/disable", admin, json::object(),
                      {{"X-Request-Id", "audit-e2e-2"}})) == 200);

  json created, disabled;
  const json log = Get(c, "/api/v1/admin/audit-log?actor=" + account, admin);
  for (const auto& e : log["items"]) {
    if (e["action"] == "backoffice_client.create") created = e;
    if (e["action"] == "backoffice_client.disable") disabled = e;
  }
  REQUIRE(!created.is_null());
  REQUIRE(!disabled.is_null());
  CHECK(created["service"] == "identity");
  CHECK(created["request_id"] == "audit-e2e-1");
  CHECK(created["targets"]["client_id"] == client_id);
  CHECK(created["targets"]["destination"] == "standesamt");
  CHECK(created["outcome"] == "succeeded");
  CHECK(created["session_ref"].get<std::string>().size() == 64);
  CHECK(disabled["request_id"] == "audit-e2e-2");
  CHECK(disabled["targets"]["client_id"] == client_id);
  CHECK(disabled["session_ref"] == created["session_ref"]);
  CHECK(disabled["id"].get<int64_t>() > created["id"].get<int64_t>());  // Newest first.

  // Other services' administrative actions reach the same log through their events.
  REQUIRE(Status(Call(c, "PUT", "/api/v1/admin/destinations/standesamt", admin,
                      {{"name", "Standesamt"}, {"mode", "pull"}}, {{"X-Request-Id", "audit-e2e-3"}})) == 200);
  REQUIRE(Status(Call(c, "POST", "/api/v1/admin/dead-letters/replay", admin, {{"destination", "standesamt"}},
                      {{"X-Request-Id", "audit-e2e-4"}})) == 200);
  json put, replayed;
  CHECK(testing::Eventually(
      [&] {
        // Bound first: a range over a member of a temporary would dangle.
        const json entries = Get(c, "/api/v1/admin/audit-log?actor=" + account, admin);
        for (const auto& e : entries["items"]) {
          if (e["action"] == "destination.put") put = e;
          if (e["action"] == "dead_letter.replay") replayed = e;
        }
        return !put.is_null() && !replayed.is_null();
      },
      std::chrono::seconds(10)));
  CHECK(put["service"] == "connector");
  CHECK(put["request_id"] == "audit-e2e-3");
  CHECK(put["targets"]["destination"] == "standesamt");
  CHECK(put["session_ref"] == created["session_ref"]);
  CHECK(replayed["service"] == "connector");
  CHECK(replayed["request_id"] == "audit-e2e-4");
  CHECK(replayed["targets"]["replayed"].is_number_integer());  // Dead letters of earlier tests count too.

  // The grant by the operator command is there too, and the log pages.
  auto grants = Get(c, "/api/v1/admin/audit-log?action=role.grant&page_size=1", admin);
  REQUIRE(grants["items"].size() == 1);
  CHECK(grants["items"][0]["actor"] == "operator:e2e");
  CHECK(grants["items"][0]["targets"]["role"] == "tenant-admin");
  if (grants.contains("next_page_token")) {
    auto next = Get(c,
                    "/api/v1/admin/audit-log?action=role.grant&page_size=1&page_token=" +
                        grants["next_page_token"].get<std::string>(),
                    admin);
    REQUIRE(next["items"].size() == 1);
    CHECK(next["items"][0]["id"].get<int64_t>() < grants["items"][0]["id"].get<int64_t>());
  }
  CHECK(Status(c.Get("/api/v1/admin/audit-log?action=DROP%20TABLE", Bearer(admin))) == 422);
}

TEST_CASE("back-office clients: disabled, their tokens fail on the next request; a rotated secret replaces the old",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
  auto c = stack.Http();
  auto admin = Admin(stack, c);
  auto created = Call(c, "POST", "/api/v1/admin/backoffice-clients", admin,
                      {{"destination", "standesamt"}, {"department", "Standesamt"}});
  REQUIRE(Status(created) == 201);
  const std::string id = json::parse(created->body)["client_id"];
  const std::string secret = json::parse(created->body)["client_secret"];
  auto token = Token(c, id, secret);
  REQUIRE(Status(token) == 200);
  const std::string access = json::parse(token->body)["access_token"];
  REQUIRE(BackofficeList(c, access) == 200);

  auto disabled = Call(c, "POST", "/api/v1/admin/backoffice-clients/" + id + "/disable", admin);
  REQUIRE(Status(disabled) == 200);
  CHECK(json::parse(disabled->body)["disabled"] == true);
  CHECK(BackofficeList(c, access) == 401);  // At once, not when the token expires.
  CHECK(Status(Token(c, id, secret)) == 401);

  REQUIRE(Status(Call(c, "POST", "/api/v1/admin/backoffice-clients/" + id + "/enable", admin)) == 200);
  auto again = Token(c, id, secret);
  REQUIRE(Status(again) == 200);
  const std::string access2 = json::parse(again->body)["access_token"];
  CHECK(BackofficeList(c, access2) == 200);

  auto rotated = Call(c, "POST", "/api/v1/admin/backoffice-clients/" + id + "/rotate-secret", admin);
  REQUIRE(Status(rotated) == 200);
  CHECK(rotated->get_header_value("Cache-Control") == "no-store");
  const std::string fresh = json::parse(rotated->body)["client_secret"];
  CHECK(fresh != secret);
  CHECK(BackofficeList(c, access2) == 401);
  CHECK(Status(Token(c, id, secret)) == 401);
  auto renewed = Token(c, id, fresh);
  REQUIRE(Status(renewed) == 200);
  CHECK(BackofficeList(c, json::parse(renewed->body)["access_token"]) == 200);

  CHECK(Status(Call(c, "POST", "/api/v1/admin/backoffice-clients/bo_unknown/disable", admin)) == 404);
  auto citizen = Onboard(stack, c, UniqueEmail());
  CHECK(Status(Call(c, "POST", "/api/v1/admin/backoffice-clients/" + id + "/disable", citizen)) == 403);
  CHECK(BackofficeList(c, json::parse(renewed->body)["access_token"]) == 200);
}

TEST_CASE("the operator command grants, lists and revokes roles and resets a lost second factor", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
  auto c = stack.Http();
  const std::string mail = UniqueEmail();
  auto citizen = Onboard(stack, c, mail);
  std::string out;
  CHECK(RunAdmin(stack, {"grant-role", "nobody." + mail, "tenant-admin"}, &out) == 1);
  CHECK(RunAdmin(stack, {"grant-role", mail, "superuser"}, &out) == 64);
  CHECK(RunAdmin(stack, {"--by", "bad name\n", "grant-role", mail, "tenant-admin"}, &out) == 64);
  CHECK(Get(c, "/api/v1/me", citizen)["roles"].empty());

  REQUIRE(RunAdmin(stack, {"--by", "e2e", "grant-role", mail, "tenant-admin"}, &out) == 0);
  const std::string first_code = EnrolmentCode(out);
  REQUIRE_FALSE(first_code.empty());
  REQUIRE(RunAdmin(stack, {"list-admins"}, &out) == 0);
  CHECK(out.find(mail) != std::string::npos);
  auto login = PostJson(c, "/api/v1/auth/login", {{"email", mail}, {"password", kPassword}});
  REQUIRE(Status(login) == 200);
  auto admin = json::parse(login->body);
  EnrolSecondFactor(c, admin, first_code);
  CHECK(Status(c.Get("/api/v1/admin/audit-log", Bearer(admin))) == 200);

  // A lost device: the factor goes, the sessions end, the account enrols again.
  REQUIRE(RunAdmin(stack, {"--by", "e2e", "reset-totp", mail}, &out) == 0);
  CHECK(Status(c.Get("/api/v1/me", Bearer(admin))) == 401);
  login = PostJson(c, "/api/v1/auth/login", {{"email", mail}, {"password", kPassword}});
  REQUIRE(Status(login) == 200);
  admin = json::parse(login->body);
  CHECK(SecondFactorDemanded(c.Get("/api/v1/admin/audit-log", Bearer(admin))) == "enrol");
  // The first code was used up; the reset printed a new one.
  CHECK(Status(PostJson(c, "/api/v1/auth/totp/enrol", {{"enrolment_code", first_code}}, Bearer(admin))) == 403);
  const std::string second_code = EnrolmentCode(out);
  REQUIRE_FALSE(second_code.empty());
  CHECK(second_code != first_code);
  EnrolSecondFactor(c, admin, second_code);
  CHECK(Status(c.Get("/api/v1/admin/audit-log", Bearer(admin))) == 200);

  // Revoked: the sessions end at once, and the next one has no role.
  REQUIRE(RunAdmin(stack, {"--by", "e2e", "revoke-role", mail, "tenant-admin"}, &out) == 0);
  CHECK(Status(c.Get("/api/v1/me", Bearer(admin))) == 401);
  login = PostJson(c, "/api/v1/auth/login", {{"email", mail}, {"password", kPassword}});
  REQUIRE(Status(login) == 200);
  CHECK(Get(c, "/api/v1/me", json::parse(login->body))["roles"].empty());

  REQUIRE(RunAdmin(stack, {"audit-log", "200"}, &out) == 0);
  int found = 0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    auto e = json::parse(line, nullptr, false);
    if (!e.is_object() || e.value("actor", "") != "operator:e2e") continue;
    const std::string action = e.value("action", "");
    if (action == "role.grant" || action == "totp.reset" || action == "role.revoke") ++found;
  }
  CHECK(found >= 3);
}

}  // namespace stadtportal::e2e

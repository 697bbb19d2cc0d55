// "Who read my data" through the whole platform: a department's back office fetching a
// submission, an administrator looking the person up with a reason, and a partner portal
// reading the person's submissions with a delegated token each land in the person's
// access log (GET /api/v1/me/access-log) with who, what and why, newest first; nobody
// else's log shows them; a look-up without a reason is refused and recorded nowhere.
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/partner_portal.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;

// The whole access log of `login`'s acting party, page by page (`page_size` each).
json AccessLog(httplib::Client& c, const json& login, int page_size = 100) {
  json items = json::array();
  std::string token;
  for (int page = 0; page < 20; ++page) {
    std::string path = "/api/v1/me/access-log?page_size=" + std::to_string(page_size);
    if (!token.empty()) path += "&page_token=" + token;
    auto r = c.Get(path.c_str(), Bearer(login));
    INFO((r ? r->body : "no answer"));
    REQUIRE(Status(r) == 200);
    const json body = json::parse(r->body);
    for (const auto& e : body["items"]) items.push_back(e);
    if (!body.contains("next_page_token")) break;
    token = body["next_page_token"];
  }
  return items;
}

}  // namespace

TEST_CASE("who read my data: a department, an administrator and a partner portal, each with its purpose", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const json admin = Admin(stack, c);
  const std::string anna_email = UniqueEmail();
  const json anna = Onboard(stack, c, anna_email);
  const json ben = Onboard(stack, c, UniqueEmail(), "Ben Beispiel");
  const std::string backoffice = BackofficeToken(c, admin, "stadtkaemmerei", "Stadtkämmerei");
  const Partner portal = Register(c, admin, "Bürgerportal Plus", {"openid", "submissions:read"}, "access-log");

  // Anna applies; nobody has read anything of hers yet.
  const std::string id = Apply(c, anna, "dog-tax-registration", kDogTax);
  CHECK(AccessLog(c, anna).empty());

  // 1. The department fetches the submission.
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(backoffice));
        return r && r->status == 200 && r->body.find(id) != std::string::npos;
      },
      15s));
  REQUIRE(Status(c.Get(("/api/v1/backoffice/submissions/" + id).c_str(), BearerToken(backoffice))) == 200);
  std::this_thread::sleep_for(20ms);  // Distinct times, so the order is the order of the reads.

  // 2. An administrator looks Anna up: never without a reason, and what is refused is
  //    recorded nowhere.
  for (const std::string reason : {"", "&reason=", "&reason=%20%20", "&reason=ticket%0A4711", "&reason=a%1Bb"}) {
    INFO(reason);
    auto refused = c.Get(("/api/v1/admin/accounts?q=" + anna_email + reason).c_str(), Bearer(admin));
    CHECK(Status(refused) == 400);
  }
  auto found = c.Get(("/api/v1/admin/accounts?q=" + anna_email + "&reason=ticket%204711%3A%20address%20check").c_str(),
                     Bearer(admin));
  INFO((found ? found->body : "no answer"));
  REQUIRE(Status(found) == 200);
  REQUIRE(json::parse(found->body)["items"].size() == 1);
  std::this_thread::sleep_for(20ms);

  // 3. A partner portal reads Anna's submissions for her.
  const json tokens = TokenFor(stack, c, portal, anna_email, "openid submissions:read");
  const std::string access = tokens["access_token"];
  REQUIRE(Status(c.Get("/api/v1/submissions", BearerToken(access))) == 200);

  // Anna's log: all three, newest first, each with who and why.
  json log;
  REQUIRE(testing::Eventually(
      [&] {
        log = AccessLog(c, anna);
        return log.size() >= 3;
      },
      15s));
  std::this_thread::sleep_for(1s);  // Nothing more arrives.
  log = AccessLog(c, anna);
  INFO(log.dump(2));
  REQUIRE(log.size() == 3);
  CHECK(log[0]["accessor_kind"] == "partner");
  CHECK(log[0]["accessor_id"] == portal.id);
  CHECK(log[0]["accessor_name"] == "Bürgerportal Plus");
  CHECK(log[0]["resource"] == "submission");
  CHECK(log[0]["action"] == "list");
  CHECK(log[0]["purpose"] == "submissions:read");
  CHECK(log[1]["accessor_kind"] == "administrator");
  CHECK(log[1]["accessor_id"].is_null());
  CHECK(log[1]["accessor_name"] == "administrator");
  CHECK(log[1]["resource"] == "account");
  CHECK(log[1]["action"] == "lookup");
  CHECK(log[1]["purpose"] == "ticket 4711: address check");
  CHECK(log[2]["accessor_kind"] == "back_office");
  CHECK(log[2]["accessor_name"] == "Stadtkämmerei");
  CHECK(log[2]["resource"] == "submission");
  CHECK(log[2]["resource_id"] == id);
  CHECK(log[2]["action"] == "read");
  CHECK(log[2]["purpose"] == "procedure: dog-tax-registration");
  CHECK_FALSE(log[2]["reference"].is_null());
  CHECK(log[0]["occurred_at"] >= log[1]["occurred_at"]);
  CHECK(log[1]["occurred_at"] >= log[2]["occurred_at"]);
  // Page by page the same, in the same order.
  CHECK(AccessLog(c, anna, 1) == log);

  // Ben's log shows none of it.
  CHECK(AccessLog(c, ben).empty());

  // Bounds and cursors from outside are checked; a partner portal never sees the log.
  for (const std::string& query : std::vector<std::string>{
           "?page_size=0", "?page_size=101", "?page_size=x", "?page_token=%25%25", "?page_token=MXx4",
           "?from=yesterday", "?to=2026-13-01T00:00:00Z", "?from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z",
           "?page_token=" + std::string(300, 'A')}) {
    INFO(query);
    CHECK(Status(c.Get(("/api/v1/me/access-log" + query).c_str(), Bearer(anna))) == 400);
  }
  auto within = c.Get("/api/v1/me/access-log?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z", Bearer(anna));
  REQUIRE(Status(within) == 200);
  CHECK(json::parse(within->body)["items"].empty());
  auto partner = c.Get("/api/v1/me/access-log", BearerToken(access));
  CHECK(Status(partner) == 403);
  CHECK(Status(c.Get("/api/v1/me/access-log")) == 401);
}

}  // namespace stadtportal::e2e

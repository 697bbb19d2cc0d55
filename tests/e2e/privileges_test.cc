// Privileges end when their grant ends: a removed member, a revoked role and a locked
// account lose them at the next request, at every service; rotating a session never
// extends it. Over HTTP against the real binaries.
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n";

void Sql(const std::string& statement) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::work tx(conn);
  tx.exec(statement);
  tx.commit();
}

std::string AccountId(httplib::Client& c, const json& login) {
  auto me = c.Get("/api/v1/me", Bearer(login));
  REQUIRE(Status(me) == 200);
  return json::parse(me->body)["account_id"];
}

// Switches the session to `party_id` ("" = oneself); returns the new log-in answer.
json ActFor(httplib::Client& c, const json& login, const std::string& party_id) {
  auto r = PostJson(c, "/api/v1/me/acting-party", {{"party_id", party_id}}, Bearer(login));
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 200);
  return json::parse(r->body);
}

// An admin-only call: 200 for tenant administrators, 403 for everyone else.
int AdminCall(httplib::Client& c, const json& login) {
  return Status(c.Get("/api/v1/admin/accounts?q=example.de&reason=ticket%204711", Bearer(login)));
}

}  // namespace

TEST_CASE("a removed member's next request for the organisation is refused at every service, with no data", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string ben_mail = UniqueEmail();
  json anna = Onboard(stack, c, UniqueEmail());
  json ben = Onboard(stack, c, ben_mail);

  const std::string org = CreateOrganisation(c, anna);
  const std::string base = "/api/v1/organisations/" + org;
  REQUIRE(Status(PostJson(c, base + "/invitations", {{"email", ben_mail}, {"role", "member"}}, Bearer(anna))) == 201);
  REQUIRE(Status(AcceptInvitation(stack, c, ben, ben_mail)) == 200);
  const std::string ben_party = AccountId(c, ben);

  // Ben, acting for the organisation: a submission awaiting its fee, a payment, a draft
  // with an attachment, a thread in the organisation's mailbox.
  json ben_org = ActFor(c, ben, org);
  json submission = SubmitCertificate(c, ben_org);
  const std::string sub = submission["id"];
  json payment = StartPayment(c, ben_org, sub, "privileges-" + sub);
  const std::string pay = payment["id"];
  auto draft = PostJson(c, "/api/v1/services/civil-registry-certificate/drafts", json::object(), Bearer(ben_org));
  REQUIRE(Status(draft) == 201);
  const std::string draft_id = json::parse(draft->body)["id"];
  httplib::MultipartFormDataItems items = {{"file", kPdf, "Vollmacht.pdf", "application/pdf"}};
  auto uploaded =
      c.Post(("/api/v1/drafts/" + draft_id + "/attachments?field=attachments").c_str(), Bearer(ben_org), items);
  REQUIRE(Status(uploaded) == 201);
  const std::string attachment = json::parse(uploaded->body)["id"];

  // What Ben's organisation session reads while he is a member.
  const std::vector<std::string> reads = {
      "/api/v1/submissions",        "/api/v1/submissions/" + sub,        "/api/v1/payments/" + pay, "/api/v1/drafts",
      "/api/v1/drafts/" + draft_id, "/api/v1/attachments/" + attachment, "/api/v1/mailbox/threads", base + "/members"};
  for (const auto& path : reads) {
    INFO(path);
    CHECK(Status(c.Get(path.c_str(), Bearer(ben_org))) == 200);
  }

  REQUIRE(Status(c.Delete((base + "/members/" + ben_party).c_str(), Bearer(anna))) == 204);

  // The very next request of the same session: refused everywhere, nothing of the
  // organisation in the answer.
  for (const auto& path : reads) {
    INFO(path);
    auto r = c.Get(path.c_str(), Bearer(ben_org));
    CHECK((Status(r) == 403 || Status(r) == 401));
    REQUIRE(r);
    CHECK(r->body.find(sub) == std::string::npos);
    CHECK(r->body.find(submission["reference"].get<std::string>()) == std::string::npos);
    CHECK(r->body.find(draft_id) == std::string::npos);
  }
  // Nor does he change anything for it.
  auto headers = Bearer(ben_org);
  headers.emplace("Idempotency-Key", "privileges-again-" + sub);
  const int pay_again =
      Status(c.Post(("/api/v1/submissions/" + sub + "/payment").c_str(), headers, "", "application/json"));
  CHECK((pay_again == 403 || pay_again == 401));
  const int withdraw =
      Status(c.Post(("/api/v1/submissions/" + sub + "/withdraw").c_str(), Bearer(ben_org), "{}", "application/json"));
  CHECK((withdraw == 403 || withdraw == 401));
  const int delete_draft = Status(c.Delete(("/api/v1/drafts/" + draft_id).c_str(), Bearer(ben_org)));
  CHECK((delete_draft == 403 || delete_draft == 401));
  const int new_draft =
      Status(PostJson(c, "/api/v1/services/civil-registry-certificate/drafts", json::object(), Bearer(ben_org)));
  CHECK((new_draft == 403 || new_draft == 401));

  // The session itself lives on: it shows the organisation is gone and switches back.
  CHECK(Status(c.Get("/api/v1/me/acting-party", Bearer(ben_org))) == 404);
  json ben_self = ActFor(c, ben_org, "");
  auto mine = c.Get("/api/v1/submissions", Bearer(ben_self));
  REQUIRE(Status(mine) == 200);
  CHECK(mine->body.find(sub) == std::string::npos);
  // The organisation's data is untouched and still there for Anna.
  json anna_org = ActFor(c, anna, org);
  auto theirs = c.Get(("/api/v1/submissions/" + sub).c_str(), Bearer(anna_org));
  REQUIRE(Status(theirs) == 200);
  CHECK(json::parse(theirs->body)["status"] == "awaiting_payment");
  CHECK(Status(c.Get(("/api/v1/drafts/" + draft_id).c_str(), Bearer(anna_org))) == 200);
}

TEST_CASE("a revoked tenant administrator's next admin call is refused; a locked account's next request is 401",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  const std::string admin_id = AccountId(c, admin);
  REQUIRE(AdminCall(c, admin) == 200);

  // Operators revoke the role in the database: the same session is no admin any more.
  Sql("UPDATE identity.accounts SET roles = '{}' WHERE id = '" + admin_id + "'");
  CHECK(AdminCall(c, admin) == 403);
  auto me = c.Get("/api/v1/me", Bearer(admin));
  REQUIRE(Status(me) == 200);
  // And granted again: the next call has it.
  Sql("UPDATE identity.accounts SET roles = '{tenant-admin}' WHERE id = '" + admin_id + "'");
  CHECK(AdminCall(c, admin) == 200);

  // A lock that did not come through the API (an operator in the database) ends the
  // session at its next request just the same, and keeps it ended after unlocking.
  json ben = Onboard(stack, c, UniqueEmail());
  const std::string ben_id = AccountId(c, ben);
  Sql("UPDATE identity.accounts SET state = 'locked' WHERE id = '" + ben_id + "'");
  CHECK(Status(c.Get("/api/v1/me", Bearer(ben))) == 401);
  CHECK(Status(c.Get("/api/v1/submissions", Bearer(ben))) == 401);
  Sql("UPDATE identity.accounts SET state = 'active' WHERE id = '" + ben_id + "'");
  CHECK(Status(c.Get("/api/v1/me", Bearer(ben))) == 401);
}

TEST_CASE("rotating a session keeps its absolute expiry and takes the account's current roles and state", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  const std::string anna_id = AccountId(c, anna);
  const std::string expires_at = anna["expires_at"];

  // Rotating again and again (seconds apart) never moves the end.
  json current = anna;
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(1100ms);
    json next = ActFor(c, current, "");
    CHECK(next["token"] != current["token"]);
    CHECK(next["expires_at"] == expires_at);
    CHECK(Status(c.Get("/api/v1/me", Bearer(current))) == 401);  // The old id ended.
    current = next;
  }

  // A role granted meanwhile is in the rotated session; a revoked one is not (the
  // session's roles, as GET /me shows them; acting on them needs the second factor too).
  const auto roles = [&] { return json::parse(c.Get("/api/v1/me", Bearer(current))->body)["roles"]; };
  CHECK(roles().empty());
  Sql("UPDATE identity.accounts SET roles = '{tenant-admin}' WHERE id = '" + anna_id + "'");
  current = ActFor(c, current, "");
  CHECK(roles() == json::array({"tenant-admin"}));
  CHECK(AdminCall(c, current) == 403);  // Second factor not passed in this session.
  Sql("UPDATE identity.accounts SET roles = '{}' WHERE id = '" + anna_id + "'");
  current = ActFor(c, current, "");
  CHECK(roles().empty());

  // A locked account cannot rotate its way out.
  Sql("UPDATE identity.accounts SET state = 'locked' WHERE id = '" + anna_id + "'");
  CHECK(Status(PostJson(c, "/api/v1/me/acting-party", {{"party_id", ""}}, Bearer(current))) == 401);
}

}  // namespace stadtportal::e2e

// Organisations, invitations and acting for an organisation, over HTTP against the real binaries.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json Organisation(const std::string& name) {
  return {{"name", name},
          {"legal_form", "company"},
          {"register_number", "HRB 4711"},
          {"address",
           {{"street", "Hauptmarkt"},
            {"house_number", "18"},
            {"postcode", "90403"},
            {"city", "Nürnberg"},
            {"country", "DE"}}}};
}

}  // namespace

TEST_CASE("create an organisation, invite by mail, accept, act for it, switch back; others see nothing", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string anna_mail = UniqueEmail(), ben_mail = UniqueEmail(), cem_mail = UniqueEmail();
  json anna = Onboard(stack, c, anna_mail);
  json ben = Onboard(stack, c, ben_mail);
  json cem = Onboard(stack, c, cem_mail);

  auto created = PostJson(c, "/api/v1/organisations", Organisation("Bäckerei Schmidt GmbH"), Bearer(anna));
  REQUIRE(Status(created) == 201);
  const std::string org = json::parse(created->body)["id"];
  const std::string base = "/api/v1/organisations/" + org;

  auto invited = PostJson(c, base + "/invitations", {{"email", ben_mail}, {"role", "member"}}, Bearer(anna));
  REQUIRE(Status(invited) == 201);
  const std::string token = MailedToken(stack, ben_mail, "invitations");
  auto accepted = AcceptInvitation(stack, c, ben, ben_mail);
  REQUIRE(Status(accepted) == 200);
  CHECK(json::parse(accepted->body)["role"] == "member");
  CHECK(Status(PostJson(c, "/api/v1/invitations/accept", {{"token", token}}, Bearer(cem))) == 422);  // Reused.

  // Ben acts for the organisation: a new session id, and the organisation's data.
  auto acting = PostJson(c, "/api/v1/me/acting-party", {{"party_id", org}}, Bearer(ben));
  REQUIRE(Status(acting) == 200);
  json ben_org = json::parse(acting->body);
  CHECK(ben_org["token"] != ben["token"]);
  CHECK(Status(c.Get("/api/v1/me", Bearer(ben))) == 401);  // The old session id ended.
  auto party = c.Get("/api/v1/me/acting-party", Bearer(ben_org));
  REQUIRE(Status(party) == 200);
  CHECK(json::parse(party->body)["id"] == org);
  CHECK(json::parse(party->body)["kind"] == "organisation");
  auto members = c.Get((base + "/members").c_str(), Bearer(ben_org));
  REQUIRE(Status(members) == 200);
  CHECK(json::parse(members->body)["items"].size() == 2);

  // …and back to himself.
  auto back = PostJson(c, "/api/v1/me/acting-party", {{"party_id", ""}}, Bearer(ben_org));
  REQUIRE(Status(back) == 200);
  json ben_self = json::parse(back->body);
  party = c.Get("/api/v1/me/acting-party", Bearer(ben_self));
  REQUIRE(Status(party) == 200);
  CHECK(json::parse(party->body)["kind"] == "person");

  // A non-member gets 404 for every organisation resource, and cannot act for it.
  CHECK(Status(c.Get(base.c_str(), Bearer(cem))) == 404);
  CHECK(Status(c.Get((base + "/members").c_str(), Bearer(cem))) == 404);
  CHECK(Status(PostJson(c, base + "/invitations", {{"email", cem_mail}, {"role", "owner"}}, Bearer(cem))) == 404);
  const std::string anna_party = json::parse(members->body)["items"][0]["person"]["id"];
  CHECK(Status(c.Delete((base + "/members/" + anna_party).c_str(), Bearer(cem))) == 404);
  CHECK(Status(c.Patch((base + "/members/" + anna_party).c_str(), Bearer(cem), R"({"role":"member"})",
                       "application/json")) == 404);
  CHECK(Status(PostJson(c, "/api/v1/me/acting-party", {{"party_id", org}}, Bearer(cem))) == 404);
  auto listed = c.Get("/api/v1/organisations", Bearer(cem));
  REQUIRE(Status(listed) == 200);
  CHECK(json::parse(listed->body)["items"].empty());

  SECTION("role rules and leaving") {
    // A member cannot invite or remove; the last owner cannot leave.
    CHECK(Status(PostJson(c, base + "/invitations", {{"email", cem_mail}, {"role", "member"}}, Bearer(ben_self))) ==
          403);
    CHECK(Status(c.Delete((base + "/members/" + anna_party).c_str(), Bearer(ben_self))) == 403);
    CHECK(Status(c.Delete((base + "/members/" + anna_party).c_str(), Bearer(anna))) == 409);

    // Ben acts for the organisation, then leaves it: acting for it now fails.
    auto again = PostJson(c, "/api/v1/me/acting-party", {{"party_id", org}}, Bearer(ben_self));
    REQUIRE(Status(again) == 200);
    json ben_org2 = json::parse(again->body);
    const std::string ben_party = json::parse(members->body)["items"][1]["person"]["id"];
    REQUIRE(Status(c.Delete((base + "/members/" + ben_party).c_str(), Bearer(ben_org2))) == 204);
    CHECK(Status(c.Get("/api/v1/me/acting-party", Bearer(ben_org2))) == 404);
    CHECK(Status(c.Get((base + "/members").c_str(), Bearer(ben_org2))) == 403);  // Acting for a left organisation.
    CHECK(Status(c.Get("/api/v1/me/profile", Bearer(ben_org2))) == 403);
    auto home = PostJson(c, "/api/v1/me/acting-party", {{"party_id", ""}}, Bearer(ben_org2));
    REQUIRE(Status(home) == 200);  // Switching back still works.
    CHECK(Status(c.Get("/api/v1/me/profile", Bearer(json::parse(home->body)))) == 200);
  }
}

TEST_CASE("bad organisation input gets 4xx problems with field errors and changes nothing", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  auto bad_postcode = Organisation("Gut");
  bad_postcode["address"]["postcode"] = "9040";
  auto long_name = Organisation(std::string(10000, 'x'));
  auto no_city = Organisation("Gut");
  no_city["address"].erase("city");
  auto bad_form = Organisation("Gut");
  bad_form["legal_form"] = "kingdom";
  for (const auto& [name, body, field] :
       std::vector<std::tuple<std::string, json, std::string>>{{"postcode", bad_postcode, "address.postcode"},
                                                               {"10,000-character name", long_name, "name"},
                                                               {"missing city", no_city, "address.city"},
                                                               {"legal form", bad_form, "legal_form"}}) {
    INFO(name);
    auto r = PostJson(c, "/api/v1/organisations", body, Bearer(anna));
    REQUIRE(r);
    CHECK(r->status == 422);
    auto problem = json::parse(r->body);
    REQUIRE(problem["errors"].size() >= 1);
    CHECK(problem["errors"][0]["field"] == field);
  }
  auto listed = c.Get("/api/v1/organisations", Bearer(anna));
  REQUIRE(Status(listed) == 200);
  CHECK(json::parse(listed->body)["items"].empty());

  auto created = PostJson(c, "/api/v1/organisations", Organisation("Gut"), Bearer(anna));
  REQUIRE(Status(created) == 201);
  const std::string base = "/api/v1/organisations/" + json::parse(created->body)["id"].get<std::string>();
  auto bad_role = PostJson(c, base + "/invitations", {{"email", UniqueEmail()}, {"role", "king"}}, Bearer(anna));
  CHECK(Status(bad_role) == 422);
  auto bad_mail = PostJson(c, base + "/invitations", {{"email", "not-an-address"}, {"role", "member"}}, Bearer(anna));
  CHECK(Status(bad_mail) == 422);
  CHECK(Status(PostJson(c, "/api/v1/invitations/accept", {{"token", "forged"}}, Bearer(anna))) == 422);
}

}  // namespace stadtportal::e2e

namespace stadtportal::e2e {

TEST_CASE("profile, preferences and consents over REST; another person's token sees only their own", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  json ben = Onboard(stack, c, UniqueEmail());
  auto patch = [&](const json& who, const json& body) {
    return c.Patch("/api/v1/me/profile", Bearer(who), body.dump(), "application/json");
  };

  auto updated = patch(anna, {{"given_name", "Anna"},
                              {"birth_date", "1990-02-28"},
                              {"address", {{"postcode", "90403"}, {"city", "Nürnberg"}, {"country", "DE"}}}});
  REQUIRE(Status(updated) == 200);
  auto profile = json::parse(updated->body)["attributes"];
  CHECK(profile["given_name"]["value"] == "Anna");
  CHECK(profile["given_name"]["source"] == "self");
  CHECK(profile["given_name"]["verified"] == false);
  CHECK(profile["address.postcode"]["value"] == "90403");

  auto bad =
      c.Patch("/api/v1/me/profile",
              {{"Authorization", "Bearer " + anna["token"].get<std::string>()}, {"Accept-Language", "en"}},
              json({{"birth_date", "2999-01-01"}, {"address", {{"postcode", "123"}}}}).dump(), "application/json");
  REQUIRE(Status(bad) == 422);
  auto errors = json::parse(bad->body)["errors"];
  REQUIRE(errors.size() == 2);
  CHECK(errors[0]["field"] == "address.postcode");
  CHECK(errors[1]["field"] == "birth_date");
  CHECK(errors[1]["message"] == "The date must not be in the future.");
  CHECK(Status(patch(anna, {{"given_name", std::string(10000, 'x')}})) == 422);
  CHECK(Status(patch(anna, {{"shoe_size", "44"}})) == 422);

  // Ben's token shows Ben's (empty) profile, never Anna's.
  auto bens = c.Get("/api/v1/me/profile", Bearer(ben));
  REQUIRE(Status(bens) == 200);
  CHECK(json::parse(bens->body)["attributes"].empty());

  auto prefs =
      c.Put("/api/v1/me/preferences", Bearer(anna),
            json({{"language", "en"}, {"email", {{"messages", true}, {"status_changes", false}, {"reminders", true}}}})
                .dump(),
            "application/json");
  REQUIRE(Status(prefs) == 200);
  CHECK(json::parse(c.Get("/api/v1/me/preferences", Bearer(anna))->body)["email"]["status_changes"] == false);
  CHECK(json::parse(c.Get("/api/v1/me/preferences", Bearer(ben))->body)["email"]["status_changes"] == true);
  CHECK(Status(c.Put("/api/v1/me/preferences", Bearer(anna), R"({"language":"en","email":{"messages":"yes"}})",
                     "application/json")) == 422);

  auto given = PostJson(c, "/api/v1/me/consents", {{"purpose", "satisfaction-survey"}, {"text_version", "2026-01"}},
                        Bearer(anna));
  REQUIRE(Status(given) == 201);
  const std::string consent = json::parse(given->body)["id"];
  CHECK(Status(c.Post(("/api/v1/me/consents/" + consent + "/withdraw").c_str(), Bearer(ben), "", "application/json")) ==
        404);
  auto withdrawn =
      c.Post(("/api/v1/me/consents/" + consent + "/withdraw").c_str(), Bearer(anna), "", "application/json");
  REQUIRE(Status(withdrawn) == 200);
  CHECK_FALSE(json::parse(withdrawn->body)["withdrawn_at"].is_null());
  CHECK(json::parse(c.Get("/api/v1/me/consents", Bearer(ben))->body)["items"].empty());
}

}  // namespace stadtportal::e2e

#include <pqxx/pqxx>

namespace stadtportal::e2e {

TEST_CASE("tenant administrators find, lock and unlock accounts; every access is logged", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string ben_mail = UniqueEmail();
  json admin = Admin(stack, c);
  json ben = Onboard(stack, c, ben_mail);

  // Not for ordinary accounts, and never without a reason.
  CHECK(Status(c.Get(("/api/v1/admin/accounts?q=" + ben_mail + "&reason=support").c_str(), Bearer(ben))) == 403);
  CHECK(Status(c.Get(("/api/v1/admin/accounts?q=" + ben_mail).c_str(), Bearer(admin))) == 400);

  auto found = c.Get(("/api/v1/admin/accounts?q=" + ben_mail + "&reason=ticket%204711").c_str(), Bearer(admin));
  REQUIRE(Status(found) == 200);
  auto items = json::parse(found->body)["items"];
  REQUIRE(items.size() == 1);
  const std::string ben_id = items[0]["id"];
  CHECK(items[0]["state"] == "active");

  auto locked = PostJson(c, "/api/v1/admin/accounts/" + ben_id + "/lock", {{"reason", "ticket 4711"}}, Bearer(admin));
  REQUIRE(Status(locked) == 200);
  CHECK(json::parse(locked->body)["state"] == "locked");
  CHECK(Status(c.Get("/api/v1/me", Bearer(ben))) == 401);  // Sessions ended.
  CHECK(Status(PostJson(c, "/api/v1/auth/login", {{"email", ben_mail}, {"password", kPassword}})) == 403);

  REQUIRE(Status(PostJson(c, "/api/v1/admin/accounts/" + ben_id + "/unlock", {{"reason", "ticket 4711 done"}},
                          Bearer(admin))) == 200);
  CHECK(Status(PostJson(c, "/api/v1/auth/login", {{"email", ben_mail}, {"password", kPassword}})) == 200);

  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::read_transaction tx(conn);
  auto log =
      tx.exec("SELECT action, reason FROM identity.admin_access_log WHERE target_account_id = " + tx.quote(ben_id) +
              " ORDER BY id");
  REQUIRE(log.size() == 3);
  CHECK(log[0][0].as<std::string>() == "find");
  CHECK(log[0][1].as<std::string>() == "ticket 4711");
  CHECK(log[1][0].as<std::string>() == "lock");
  CHECK(log[2][0].as<std::string>() == "unlock");
}

}  // namespace stadtportal::e2e

#include <optional>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace stadtportal::e2e {
namespace {

// A mail file as the SMTP sink wrote it: header lines (unfolded) and the body, with
// line endings made LF.
struct SunkMail {
  std::vector<std::string> headers;
  std::string body;
};

SunkMail ParseMailFile(const std::string& file) {
  const std::string text = absl::StrReplaceAll(file, {{"\r\n", "\n"}});
  const size_t end = text.find("\n\n");
  REQUIRE(end != std::string::npos);
  SunkMail m;
  m.body = text.substr(end + 2);
  for (absl::string_view line : absl::StrSplit(text.substr(0, end), '\n')) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !m.headers.empty()) {
      m.headers.back() += std::string(line);
    } else {
      m.headers.emplace_back(line);
    }
  }
  return m;
}

}  // namespace

TEST_CASE("an organisation name cannot write headers or a body into the platform's invitation mail", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string attack = "X\r\nX-Injected: yes\r\n\r\n<b>phish</b>";
  const std::string ben_mail = UniqueEmail();
  json anna = Onboard(stack, c, UniqueEmail());

  // Refused where it comes in: the name and every other one-line text, as a field error.
  auto with_street = Organisation("Gut");
  with_street["address"]["street"] = "Hauptmarkt\nBcc: evil@example.org";
  for (const auto& [body, field] : std::vector<std::pair<json, std::string>>{
           {Organisation(attack), "name"},
           {Organisation("X\xe2\x80\xa8X-Injected: yes"), "name"},  // U+2028 LINE SEPARATOR
           {Organisation("Tab\tGmbH"), "name"},
           {with_street, "address.street"}}) {
    INFO(field);
    auto r = PostJson(c, "/api/v1/organisations", body, Bearer(anna));
    REQUIRE(Status(r) == 422);
    auto problem = json::parse(r->body);
    REQUIRE(problem["errors"].size() == 1);
    CHECK(problem["errors"][0]["field"] == field);
    CHECK(problem["errors"][0]["code"] == "control_characters");
  }
  auto listed = c.Get("/api/v1/organisations", Bearer(anna));
  REQUIRE(Status(listed) == 200);
  CHECK(json::parse(listed->body)["items"].empty());
  auto bad_name = PostJson(c, "/api/v1/auth/register",
                           {{"email", UniqueEmail()}, {"password", kPassword}, {"display_name", attack}});
  REQUIRE(Status(bad_name) == 422);
  CHECK(json::parse(bad_name->body)["errors"][0]["code"] == "control_characters");

  // A name stored as an earlier version accepted it still cannot shape the mail.
  auto created = PostJson(c, "/api/v1/organisations", Organisation("Gut"), Bearer(anna));
  REQUIRE(Status(created) == 201);
  const std::string org = json::parse(created->body)["id"];
  {
    pqxx::connection conn(testing::DatabaseUrl());
    pqxx::work tx(conn);
    tx.exec("UPDATE accounts.parties SET display_name = " + tx.quote(attack) + " WHERE id = " + tx.quote(org));
    tx.commit();
  }
  httplib::Headers english = Bearer(anna);
  english.emplace("Accept-Language", "en");
  REQUIRE(Status(PostJson(c, "/api/v1/organisations/" + org + "/invitations", {{"email", ben_mail}, {"role", "member"}},
                          english)) == 201);
  MailedToken(stack, ben_mail, "invitations");  // Waits for the mail.
  const auto mails = stack.MailsTo(ben_mail);
  REQUIRE(mails.size() == 1);
  const SunkMail mail = ParseMailFile(mails[0]);
  std::string subject;
  for (const auto& h : mail.headers) {
    INFO(h);
    CHECK(h.rfind("X-Injected", 0) != 0);
    CHECK(h.find(':') != std::string::npos);  // Every header line is a header.
    if (h.rfind("Subject: ", 0) == 0) subject = h;
  }
  CHECK(subject == "Subject: Invitation to act for X X-Injected: yes <b>phish</b> on stadtportal");
  // The platform's text is the body; the attacker's words stay inside its sentence.
  CHECK(mail.body.rfind("Hello,\n\nyou are invited to act for X X-Injected: yes <b>phish</b> on stadtportal.", 0) == 0);
  for (absl::string_view line : absl::StrSplit(mail.body, '\n')) {
    CHECK(line.substr(0, 10) != "X-Injected");
    CHECK(line.substr(0, 12) != "<b>phish</b>");
  }
}

TEST_CASE("an invitation link works only for the account whose verified address it was sent to", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string ben_mail = UniqueEmail();
  json anna = Onboard(stack, c, UniqueEmail());
  json cem = Onboard(stack, c, UniqueEmail());
  auto created = PostJson(c, "/api/v1/organisations", Organisation("Gut"), Bearer(anna));
  REQUIRE(Status(created) == 201);
  const std::string base = "/api/v1/organisations/" + json::parse(created->body)["id"].get<std::string>();
  REQUIRE(Status(PostJson(c, base + "/invitations", {{"email", ben_mail}, {"role", "admin"}}, Bearer(anna))) == 201);
  const std::string token = MailedToken(stack, ben_mail, "invitations");

  // Cem, logged in with his own verified address, holds Ben's link: refused, nothing changes.
  CHECK(Status(PostJson(c, "/api/v1/invitations/accept", {{"token", token}}, Bearer(cem))) == 403);
  auto cems = c.Get("/api/v1/organisations", Bearer(cem));
  REQUIRE(Status(cems) == 200);
  CHECK(json::parse(cems->body)["items"].empty());

  // Ben registers with the address, verifies it and accepts.
  json ben = Onboard(stack, c, ben_mail);
  CHECK(Status(AcceptInvitation(stack, c, ben, ben_mail)) == 200);
  auto members = c.Get((base + "/members").c_str(), Bearer(anna));
  REQUIRE(Status(members) == 200);
  CHECK(json::parse(members->body)["items"].size() == 2);
}

}  // namespace stadtportal::e2e

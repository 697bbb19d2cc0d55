// Documents with an expiry and the reminder before it, across the real binaries: two
// accounts replicas, one restarted between scheduling and due time, the reminder job's
// clock set through STADTPORTAL_CLOCK_FILE (no sleeping until a due date).
#include <fstream>

#include <pqxx/pqxx>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// What the accounts replicas wrote into the outbox as reminder.due for `party`: at the
// source, not only after messaging's idempotency.
int DueEventsFor(const std::string& party) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::read_transaction tx(conn);
  return tx.exec1("SELECT count(*) FROM accounts.outbox WHERE topic = 'reminder.due' AND key = " + tx.quote(party))[0]
      .as<int>();
}

std::string InDays(int days) {
  return absl::FormatTime("%Y-%m-%d", absl::Now() + absl::Hours(24 * days), absl::UTCTimeZone());
}

// Sets the reminder job's time on every accounts replica: `days` from now.
void SetClock(const std::string& path, int days) {
  std::ofstream out(path + ".tmp");
  out << absl::FormatTime(absl::RFC3339_full, absl::Now() + absl::Hours(24 * days), absl::UTCTimeZone()) << "\n";
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());  // Never half a time.
}

// The reminder threads in the party's mailbox.
int ReminderThreads(httplib::Client& c, const json& login) {
  auto r = c.Get("/api/v1/mailbox/threads?page_size=100", Bearer(login));
  REQUIRE(Status(r) == 200);
  int n = 0;
  const json threads = json::parse(r->body);
  for (const auto& t : threads["items"]) {
    const std::string subject = t["subject"];
    if (subject.rfind("Erinnerung: ", 0) == 0 || subject.rfind("Reminder: ", 0) == 0) ++n;
  }
  return n;
}

// The reminder mails to `to` (they link to /dokumente).
std::vector<std::string> ReminderMails(Stack& stack, const std::string& to) {
  std::vector<std::string> out;
  for (const auto& m : stack.MailsTo(to)) {
    if (m.find("https://portal.example/dokumente") != std::string::npos) out.push_back(m);
  }
  return out;
}

json AddDocument(httplib::Client& c, const json& login, const std::string& type, const std::string& expires_on) {
  auto r = PostJson(c, "/api/v1/me/documents", {{"type", type}, {"expires_on", expires_on}}, Bearer(login));
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 201);
  return json::parse(r->body);
}

std::string GiveConsent(httplib::Client& c, const json& login) {
  auto r = PostJson(c, "/api/v1/me/consents", {{"purpose", "reminders"}, {"text_version", "2026-01"}}, Bearer(login));
  REQUIRE(Status(r) == 201);
  return json::parse(r->body)["id"];
}

json Documents(httplib::Client& c, const json& login) {
  auto r = c.Get("/api/v1/me/documents", Bearer(login));
  REQUIRE(Status(r) == 200);
  return json::parse(r->body)["items"];
}

}  // namespace

TEST_CASE(
    "reminders: two accounts replicas, one restarted before the due date: one message and one mail; "
    "none without consent or after withdrawal",
    "[e2e]") {
  Stack stack({{"accounts", 2}});
  const std::string clock = testing::TempDir() + "/reminder-clock-" + std::to_string(stack.gateway_port());
  SetClock(clock, 0);
  stack.SetEnv("accounts", "STADTPORTAL_CLOCK_FILE", clock);
  stack.SetEnv("accounts", "STADTPORTAL_REMINDER_INTERVAL_MS", "200");
  // The outbox is read below: the clock moves 70 days, so events are kept longer here.
  stack.SetEnv("accounts", "STADTPORTAL_EVENT_RETENTION_DAYS", "3650");
  REQUIRE(stack.Restart(stack.instance("accounts", 0)));
  REQUIRE(stack.Restart(stack.instance("accounts", 1)));
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string anna_mail = UniqueEmail(), ben_mail = UniqueEmail(), clara_mail = UniqueEmail();
  const json anna = Onboard(stack, c, anna_mail, "Anna Muster");
  const json ben = Onboard(stack, c, ben_mail, "Ben Beispiel");
  const json clara = Onboard(stack, c, clara_mail, "Clara Probe");

  // The REST edge refuses what is not a document: every field at once, 422.
  auto bad = PostJson(c, "/api/v1/me/documents",
                      {{"type", "driving_licence"}, {"expires_on", "2027-02-30"}, {"label", "a\tb"}}, Bearer(anna));
  REQUIRE(Status(bad) == 422);
  const json problem = json::parse(bad->body);
  CHECK(problem["errors"].size() == 3);
  CHECK(Status(PostJson(c, "/api/v1/me/documents", {{"type", "passport"}, {"expires_on", 20270101}}, Bearer(anna))) ==
        422);
  CHECK(Status(PostJson(c, "/api/v1/me/documents", {{"type", "passport"}, {"expires_on", InDays(10)}, {"x", 1}},
                        Bearer(anna))) == 422);
  CHECK(Status(c.Get("/api/v1/me/documents")) == 401);

  // Anna consents first; Ben never; Clara consents and withdraws before the due date.
  GiveConsent(c, anna);
  const json permit = AddDocument(c, anna, "residential_parking_permit", InDays(100));  // Due in 70 days.
  CHECK(permit["reminder"]["state"] == "scheduled");
  CHECK(permit["reminder"]["due_on"] == InDays(70));
  CHECK(permit["renewal_service_id"] == "residential-parking-permit");
  const json bens = AddDocument(c, ben, "residential_parking_permit", InDays(100));
  CHECK(bens["reminder"].is_null());
  const std::string claras_consent = GiveConsent(c, clara);
  const json claras = AddDocument(c, clara, "residential_parking_permit", InDays(100));
  CHECK(claras["reminder"]["state"] == "scheduled");
  REQUIRE(Status(PostJson(c, "/api/v1/me/consents/" + claras_consent + "/withdraw", json::object(), Bearer(clara))) ==
          200);
  CHECK(Documents(c, clara)[0]["reminder"]["state"] == "cancelled");
  // Nobody sees another's document.
  CHECK(Status(c.Get(("/api/v1/me/documents/" + permit["id"].get<std::string>()).c_str(), Bearer(ben))) == 404);
  CHECK(Status(c.Delete(("/api/v1/me/documents/" + permit["id"].get<std::string>()).c_str(), Bearer(ben))) == 404);
  CHECK(Documents(c, ben).size() == 1);

  // Before the due date nothing goes out.
  SetClock(clock, 69);
  std::this_thread::sleep_for(1500ms);  // Several runs of both replicas' jobs.
  CHECK(ReminderThreads(c, anna) == 0);

  // A replica restarts between scheduling and the due date.
  REQUIRE(stack.Restart(stack.instance("accounts", 0)));
  REQUIRE(stack.WaitReady(60s));

  SetClock(clock, 70);
  const bool reminded = testing::Eventually(
      [&] { return ReminderThreads(c, anna) >= 1 && !ReminderMails(stack, anna_mail).empty(); }, 30s);
  INFO(c.Get("/api/v1/mailbox/threads?page_size=100", Bearer(anna))->body);
  INFO(stack.MailsTo(anna_mail).size() << " mails to Anna");
  REQUIRE(reminded);
  // Both replicas keep running their jobs: still exactly one of each.
  std::this_thread::sleep_for(2s);
  REQUIRE(stack.Restart(stack.instance("accounts", 1)));
  std::this_thread::sleep_for(2s);
  CHECK(ReminderThreads(c, anna) == 1);
  const std::string anna_id = json::parse(c.Get("/api/v1/me", Bearer(anna))->body)["account_id"];
  CHECK(DueEventsFor(anna_id) == 1);
  CHECK(DueEventsFor(json::parse(c.Get("/api/v1/me", Bearer(ben))->body)["account_id"]) == 0);
  CHECK(DueEventsFor(json::parse(c.Get("/api/v1/me", Bearer(clara))->body)["account_id"]) == 0);
  const auto mails = ReminderMails(stack, anna_mail);
  REQUIRE(mails.size() == 1);
  const std::string link = "https://portal.example/dokumente/" + permit["id"].get<std::string>() + "/verlaengern";
  CHECK(mails[0].find(link) != std::string::npos);
  CHECK(Documents(c, anna)[0]["reminder"]["state"] == "sent");
  // None without consent, none after withdrawal.
  CHECK(ReminderThreads(c, ben) == 0);
  CHECK(ReminderMails(stack, ben_mail).empty());
  CHECK(ReminderThreads(c, clara) == 0);
  CHECK(ReminderMails(stack, clara_mail).empty());
  CHECK(Documents(c, clara)[0]["reminder"]["state"] == "cancelled");

  // The link's page starts the renewal: a draft of the permit service, made for Anna only.
  const std::string renewal = "/api/v1/me/documents/" + permit["id"].get<std::string>() + "/renewal";
  CHECK(Status(PostJson(c, renewal, json::object(), Bearer(ben))) == 404);
  auto started = PostJson(c, renewal, json::object(), Bearer(anna));
  INFO((started ? started->body : "no answer"));
  REQUIRE(Status(started) == 201);
  const json draft_ref = json::parse(started->body);
  CHECK(draft_ref["service_id"] == "residential-parking-permit");
  auto draft = c.Get(("/api/v1/drafts/" + draft_ref["draft_id"].get<std::string>()).c_str(), Bearer(anna));
  REQUIRE(Status(draft) == 200);
  CHECK(json::parse(draft->body)["service_id"] == "residential-parking-permit");
  // A passport has no online renewal.
  const json passport = AddDocument(c, anna, "passport", InDays(400));
  CHECK(Status(PostJson(c, "/api/v1/me/documents/" + passport["id"].get<std::string>() + "/renewal", json::object(),
                        Bearer(anna))) == 409);

  // Removing the document: gone from the list, for good.
  REQUIRE(Status(c.Delete(("/api/v1/me/documents/" + permit["id"].get<std::string>()).c_str(), Bearer(anna))) == 204);
  CHECK(Documents(c, anna).size() == 1);
  CHECK(stack.AllLogs().find("\"level\":\"error\"") == std::string::npos);
}

TEST_CASE("accounts does not start with a bad document types file or with the test clock in production", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  const std::string types =
      testing::TempDir() + "/bad-document-types-" + std::to_string(stack.gateway_port()) + ".json";
  {
    std::ofstream out(types);
    out << R"({"types": [{"id": "passport", "name": {"de": "Reisepass", "en": "Passport"}, "remind_days_before": 0,)"
           R"( "renewal_service_id": ""}]})";
  }
  auto run = [&](std::map<std::string, std::string> extra, const std::string& name) {
    auto env = stack.ServiceEnv("accounts");
    for (const auto& [k, v] : extra) env[k] = v;
    env["STADTPORTAL_GRPC_PORT"] = std::to_string(testing::FreePort());
    env["STADTPORTAL_ADMIN_PORT"] = std::to_string(testing::FreePort());
    return std::make_unique<testing::Process>(BinaryPath("accounts"), std::vector<std::string>{}, env,
                                              testing::TempDir() + "/" + name + ".log");
  };
  auto refused = run({{"STADTPORTAL_DOCUMENT_TYPES_FILE", types}}, "accounts-bad-types");
  int code = refused->Wait(30s);
  INFO(refused->Output());
  CHECK(code > 0);
  CHECK(refused->Output().find("STADTPORTAL_DOCUMENT_TYPES_FILE") != std::string::npos);
  CHECK(refused->Output().find("types[0].remind_days_before") != std::string::npos);

  auto clock = run({{"STADTPORTAL_CLOCK_FILE", "/tmp/clock"}, {"STADTPORTAL_ALLOW_TEST_PROVIDERS", "false"}},
                   "accounts-test-clock");
  code = clock->Wait(30s);
  INFO(clock->Output());
  CHECK(code > 0);
  CHECK(clock->Output().find("STADTPORTAL_CLOCK_FILE") != std::string::npos);
}

TEST_CASE("a department records the document it issued on approval; the applicant sees it, once", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  json anna = Onboard(stack, c, UniqueEmail());
  GiveConsent(c, anna);
  const std::string token = BackofficeToken(c, admin, "stadtkaemmerei", "Stadtkämmerei");

  const std::string id = Apply(c, anna, "dog-tax-registration", kDogTax);
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(token));
        return r && r->status == 200 && r->body.find(id) != std::string::npos;
      },
      15s));
  const std::string status = "/api/v1/backoffice/submissions/" + id + "/status";
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/acknowledge", json::object(),
                          BearerToken(token))) == 200);
  // The acknowledgement reaches the submission as an event.
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get(("/api/v1/submissions/" + id).c_str(), Bearer(anna));
        return Status(r) == 200 && json::parse(r->body)["status"] == "received_by_department";
      },
      15s));
  const json tag = {{"type", "dog_tax_tag"}, {"expires_on", InDays(365)}, {"label", "Marke 4711"}};
  // A document goes with an approval only, and well-formed.
  CHECK(Status(PostJson(c, status, {{"status", "in_progress"}, {"document", tag}}, BearerToken(token))) == 422);
  auto malformed =
      PostJson(c, status, {{"status", "approved"}, {"document", {{"type", 7}, {"expires_on", "1.1.2030"}, {"x", ""}}}},
               BearerToken(token));
  CHECK(Status(malformed) == 422);
  CHECK(Status(PostJson(
            c, status, {{"status", "approved"}, {"document", {{"type", "dog_tax_tag"}, {"expires_on", "2030-02-30x"}}}},
            BearerToken(token))) == 422);
  CHECK(Documents(c, anna).empty());
  REQUIRE(Status(PostJson(c, status, {{"status", "approved"}, {"document", tag}}, BearerToken(token))) == 200);
  // The same request again (a back office retrying): still one document.
  REQUIRE(Status(PostJson(c, status, {{"status", "approved"}, {"document", tag}}, BearerToken(token))) == 200);
  REQUIRE(testing::Eventually([&] { return Documents(c, anna).size() == 1; }, 15s));
  std::this_thread::sleep_for(1s);
  const json documents = Documents(c, anna);
  REQUIRE(documents.size() == 1);
  CHECK(documents[0]["source"] == "department");
  CHECK(documents[0]["type"] == "dog_tax_tag");
  CHECK(documents[0]["label"] == "Marke 4711");
  CHECK(documents[0]["expires_on"] == InDays(365));
  CHECK(documents[0]["submission"]["id"] == id);
  CHECK(documents[0]["submission"]["destination"] == "stadtkaemmerei");
  CHECK(documents[0]["reminder"]["state"] == "scheduled");  // Anna consented.
  CHECK(documents[0]["reminder"]["due_on"] == InDays(335));
}

}  // namespace stadtportal::e2e

// Documents with an expiry and the reminders before they expire: the document types file,
// the REST-facing validation, whose documents a caller sees, and the reminder job with a
// clock the test sets (exactly once, also with two jobs at once; consent and withdrawal).
#include <atomic>
#include <fstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "libs/app/retention.h"
#include "libs/auth/caller.h"
#include "libs/grpc/handler.h"
#include "libs/status/status.h"
#include "libs/testing/testing.h"
#include "services/accounts/document_types.h"
#include "services/accounts/reminders.h"
#include "services/accounts/service.h"
#include "services/accounts/test_caller.h"

namespace stadtportal::accounts {
namespace {

constexpr char kAnna[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
constexpr char kBen[] = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";

// The date `days` from today.
std::string InDays(int days) {
  return absl::FormatTime("%Y-%m-%d", absl::Now() + absl::Hours(24 * days), absl::UTCTimeZone());
}

// A clock the test moves: `days` from now.
struct TestClock {
  std::atomic<int> days{0};
  Clock clock() {
    return [this]() -> absl::StatusOr<absl::Time> { return absl::Now() + absl::Hours(24 * days.load()); };
  }
};

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "accounts"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  std::shared_ptr<const DocumentTypes> types = std::make_shared<const DocumentTypes>(*DocumentTypes::Embedded());
  Service service{store, Options{"09564000", "http://127.0.0.1:8080", std::chrono::hours(1), types}};
  grpc::ServerContext ctx;
  TestClock clock;
  ReminderJob job{store, types, clock.clock(), 5};

  std::string Query(const std::string& sql) { return testing::QueryValue(schema.pool(), sql); }
  int Count(const std::string& sql) { return std::stoi(Query(sql)); }
  int DueEvents() { return Count("SELECT count(*) FROM outbox WHERE topic = 'reminder.due'"); }

  grpc::Status Add(const auth::Caller& as, const std::string& type, const std::string& expires_on,
                   const std::string& label, v1::Document* out) {
    grpcx::TestCaller scope(as);
    v1::AddDocumentRequest req;
    req.set_type(type);
    req.set_expires_on(expires_on);
    req.set_label(label);
    return service.AddDocument(&ctx, &req, out);
  }
  v1::Document Add(const auth::Caller& as, const std::string& type, const std::string& expires_on) {
    v1::Document d;
    auto s = Add(as, type, expires_on, "", &d);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return d;
  }
  std::vector<v1::Document> List(const auth::Caller& as) {
    grpcx::TestCaller scope(as);
    v1::ListDocumentsRequest req;
    v1::ListDocumentsResponse resp;
    REQUIRE(service.ListDocuments(&ctx, &req, &resp).ok());
    return {resp.documents().begin(), resp.documents().end()};
  }
  grpc::Status Delete(const auth::Caller& as, const std::string& id) {
    grpcx::TestCaller scope(as);
    v1::DeleteDocumentRequest req;
    req.set_id(id);
    v1::DeleteDocumentResponse resp;
    return service.DeleteDocument(&ctx, &req, &resp);
  }
  v1::Consent Consent(const auth::Caller& as, const std::string& purpose = "reminders") {
    grpcx::TestCaller scope(as);
    v1::GiveConsentRequest req;
    req.set_purpose(purpose);
    req.set_text_version("2026-01");
    v1::Consent c;
    REQUIRE(service.GiveConsent(&ctx, &req, &c).ok());
    return c;
  }
  void Withdraw(const auth::Caller& as, const std::string& id) {
    grpcx::TestCaller scope(as);
    v1::WithdrawConsentRequest req;
    req.set_id(id);
    v1::Consent c;
    REQUIRE(service.WithdrawConsent(&ctx, &req, &c).ok());
  }
  int Run() {
    auto sent = job.RunOnce();
    REQUIRE(sent.ok());
    return *sent;
  }
  std::string ReminderState(const std::string& document_id) {
    return Query("SELECT coalesce(string_agg(state, ','), '') FROM reminders WHERE document_id = '" + document_id +
                 "'");
  }
};

std::vector<std::string> Fields(const grpc::Status& s) {
  std::vector<std::string> out;
  for (const auto& v : status::FieldViolations(status::FromGrpc(s))) out.push_back(v.field + ":" + v.code);
  return out;
}

}  // namespace

TEST_CASE("document types: the compiled-in file is valid and names the catalogue's renewal services", "[unit]") {
  auto types = DocumentTypes::Embedded();
  REQUIRE(types.ok());
  REQUIRE(types->Find("identity_card") != nullptr);
  REQUIRE(types->Find("passport") != nullptr);
  REQUIRE(types->Find("dog_tax_tag") != nullptr);
  const auto* permit = types->Find("residential_parking_permit");
  REQUIRE(permit != nullptr);
  CHECK(permit->renewal_service_id() == "residential-parking-permit");
  CHECK(permit->remind_days_before() == 30);
  CHECK(permit->name_de() == "Bewohnerparkausweis");
  CHECK(types->Find("driving_licence") == nullptr);
  CHECK(types->Find("") == nullptr);
}

TEST_CASE("document types: a bad file is refused, naming what is wrong", "[unit]") {
  const std::string good =
      R"({"id": "passport", "name": {"de": "Reisepass", "en": "Passport"}, "remind_days_before": 90, )"
      R"("renewal_service_id": ""})";
  REQUIRE(DocumentTypes::Parse(R"({"types": [)" + good + "]}").ok());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "not valid JSON"},
      {"[]", "exactly the member"},
      {R"({"types": []})", "non-empty array"},
      {R"({"types": [)" + good + ", " + good + "]}", "appears twice"},
      {R"({"types": [{"id": "Passport", "name": {"de": "a", "en": "b"}, "remind_days_before": 1, )"
       R"("renewal_service_id": ""}]})",
       "types[0].id"},
      {R"({"types": [{"id": "passport", "name": {"de": "a"}, "remind_days_before": 1, "renewal_service_id": ""}]})",
       "types[0].name"},
      {R"({"types": [{"id": "passport", "name": {"de": "a\nb", "en": "b"}, "remind_days_before": 1, )"
       R"("renewal_service_id": ""}]})",
       "types[0].name.de"},
      {R"({"types": [{"id": "passport", "name": {"de": "a", "en": "b"}, "remind_days_before": 0, )"
       R"("renewal_service_id": ""}]})",
       "types[0].remind_days_before"},
      {R"({"types": [{"id": "passport", "name": {"de": "a", "en": "b"}, "remind_days_before": 366, )"
       R"("renewal_service_id": ""}]})",
       "types[0].remind_days_before"},
      {R"({"types": [{"id": "passport", "name": {"de": "a", "en": "b"}, "remind_days_before": "30", )"
       R"("renewal_service_id": ""}]})",
       "types[0].remind_days_before"},
      {R"({"types": [{"id": "passport", "name": {"de": "a", "en": "b"}, "remind_days_before": 30, )"
       R"("renewal_service_id": "../etc"}]})",
       "types[0].renewal_service_id"},
      {R"({"types": [{"id": "passport", "name": {"de": "a", "en": "b"}, "remind_days_before": 30}]})",
       "\"renewal_service_id\" is missing"},
      {R"({"types": [{"id": "passport", "name": {"de": "a", "en": "b"}, "remind_days_before": 30, )"
       R"("renewal_service_id": "", "extra": 1}]})",
       "unknown member"},
  };
  for (const auto& [text, expected] : bad) {
    auto parsed = DocumentTypes::Parse(text);
    INFO(text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().message().find(expected) != absl::string_view::npos);
  }
}

TEST_CASE("document types: STADTPORTAL_DOCUMENT_TYPES_FILE is read; a missing or bad file stops the start", "[unit]") {
  const std::string path = testing::TempDir() + "/document-types-test.json";
  {
    std::ofstream out(path);
    out << R"({"types": [{"id": "fishing_licence", "name": {"de": "Fischereischein", "en": "Fishing licence"},)"
           R"( "remind_days_before": 14, "renewal_service_id": ""}]})";
  }
  auto types = DocumentTypes::FromEnv(
      config::Env(std::map<std::string, std::string>{{"STADTPORTAL_DOCUMENT_TYPES_FILE", path}}));
  CHECK(types.Find("fishing_licence") != nullptr);
  CHECK(types.Find("passport") == nullptr);
  // Without the variable: the compiled-in default.
  CHECK(DocumentTypes::FromEnv(config::Env(std::map<std::string, std::string>{})).Find("passport") != nullptr);
  CHECK_THROWS_WITH(DocumentTypes::FromEnv(config::Env(
                        std::map<std::string, std::string>{{"STADTPORTAL_DOCUMENT_TYPES_FILE", path + ".missing"}})),
                    Catch::Contains("STADTPORTAL_DOCUMENT_TYPES_FILE") && Catch::Contains("cannot be read"));
  {
    std::ofstream out(path);
    out << R"({"types": [{"id": "fishing_licence"}]})";
  }
  CHECK_THROWS_WITH(DocumentTypes::FromEnv(
                        config::Env(std::map<std::string, std::string>{{"STADTPORTAL_DOCUMENT_TYPES_FILE", path}})),
                    Catch::Contains("STADTPORTAL_DOCUMENT_TYPES_FILE") && Catch::Contains("types[0]"));
}

TEST_CASE("document values: dates, expiry range and labels", "[unit]") {
  CHECK(IsDate("2028-02-29"));
  CHECK_FALSE(IsDate("2027-02-29"));
  CHECK_FALSE(IsDate("2027-13-01"));
  CHECK_FALSE(IsDate("2027-1-01"));
  CHECK_FALSE(IsDate("27-01-01"));
  CHECK_FALSE(IsDate("2027-01-01T00:00:00Z"));
  CHECK_FALSE(IsDate("２０２７-01-01"));
  const std::string today = "2026-12-07";
  CHECK(ValidateExpiry("2026-12-07", today).ok());
  CHECK(ValidateExpiry("2056-12-07", today).ok());
  auto code = [](const absl::Status& s) { return status::FieldViolations(s).at(0).code; };
  CHECK(code(ValidateExpiry("2026-12-06", today)) == "too_early");
  CHECK(code(ValidateExpiry("2056-12-08", today)) == "too_late");
  CHECK(code(ValidateExpiry("2027-02-30", today)) == "invalid_date");
  CHECK(code(ValidateExpiry("", today)) == "required");
  CHECK(code(ValidateExpiry("2027-01-01'; DROP TABLE documents; --", today)) == "invalid_date");
  CHECK(ValidateDocumentLabel("").ok());
  CHECK(ValidateDocumentLabel("Anna's car, M-AB 123").ok());
  CHECK(ValidateDocumentLabel(std::string(80, 'x')).ok());
  CHECK_FALSE(ValidateDocumentLabel(std::string(81, 'x')).ok());
  CHECK(code(ValidateDocumentLabel("first\nsecond")) == "control_characters");
  CHECK(code(ValidateDocumentLabel("abc\u202Edef")) == "control_characters");
  CHECK_FALSE(ValidateDocumentLabel("\xff\xfe").ok());
}

TEST_CASE("documents: strict validation reports every field error at once; nothing is stored", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  v1::Document d;
  auto s = f.Add(anna, "driving_licence", "2027-02-30", "two\nlines", &d);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Fields(s) ==
        std::vector<std::string>{"type:invalid_option", "label:control_characters", "expires_on:invalid_date"});
  CHECK(Fields(f.Add(anna, "", InDays(-1), "", &d)) ==
        std::vector<std::string>{"type:required", "expires_on:too_early"});
  CHECK(Fields(f.Add(anna, "passport", InDays(365 * 31), "", &d)) == std::vector<std::string>{"expires_on:too_late"});
  CHECK(Fields(f.Add(anna, "passport", InDays(30), std::string(81, 'x'), &d)) ==
        std::vector<std::string>{"label:invalid"});
  CHECK(f.List(anna).empty());
  // Anonymous callers have no documents.
  grpcx::TestCaller scope(auth::Caller{});
  v1::ListDocumentsRequest req;
  v1::ListDocumentsResponse resp;
  CHECK(f.service.ListDocuments(&f.ctx, &req, &resp).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("documents: each party sees and removes only its own", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna), ben = PersonCaller(kBen);
  v1::Document permit;
  REQUIRE(f.Add(anna, "residential_parking_permit", InDays(200), "M-AB 123", &permit).ok());
  CHECK(permit.source() == "person");
  CHECK(permit.label() == "M-AB 123");
  CHECK(permit.renewal_service_id() == "residential-parking-permit");
  CHECK(permit.reminder_state().empty());  // No consent: nothing scheduled.
  const auto passport = f.Add(anna, "passport", InDays(100));
  auto list = f.List(anna);
  REQUIRE(list.size() == 2);
  CHECK(list[0].id() == passport.id());  // Soonest expiry first.
  CHECK(list[1].id() == permit.id());
  CHECK(f.List(ben).empty());
  // Ben cannot read or remove Anna's document; a malformed id is simply not found.
  {
    grpcx::TestCaller scope(ben);
    v1::GetDocumentRequest req;
    req.set_id(permit.id());
    v1::Document out;
    CHECK(f.service.GetDocument(&f.ctx, &req, &out).error_code() == grpc::StatusCode::NOT_FOUND);
  }
  CHECK(f.Delete(ben, permit.id()).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.Delete(anna, "not-a-uuid").error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.List(anna).size() == 2);
  REQUIRE(f.Delete(anna, permit.id()).ok());
  CHECK(f.Delete(anna, permit.id()).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.List(anna).size() == 1);
}

TEST_CASE("documents: acting for an organisation, the organisation's documents", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  f.Add(anna, "passport", InDays(100));
  v1::Organisation org;
  {
    grpcx::TestCaller scope(anna);
    v1::CreateOrganisationRequest req;
    req.set_name("Muster GmbH");
    req.set_legal_form(v1::LEGAL_FORM_COMPANY);
    auto* a = req.mutable_address();
    a->set_street("Hauptmarkt");
    a->set_house_number("18");
    a->set_postcode("90403");
    a->set_city("Nürnberg");
    a->set_country("DE");
    REQUIRE(f.service.CreateOrganisation(&f.ctx, &req, &org).ok());
  }
  auto for_org = anna;
  for_org.acting_party = org.party().id();
  const auto permit = f.Add(for_org, "residential_parking_permit", InDays(100));
  CHECK(permit.party_id() == org.party().id());
  REQUIRE(f.List(for_org).size() == 1);
  CHECK(f.List(for_org)[0].id() == permit.id());
  REQUIRE(f.List(anna).size() == 1);
  CHECK(f.List(anna)[0].type() == "passport");
  CHECK(f.Delete(anna, permit.id()).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("documents: at most 100 per party", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  for (int i = 0; i < kMaxDocumentsPerParty; ++i) f.Add(anna, "dog_tax_tag", InDays(10 + i));
  v1::Document d;
  CHECK(Fields(f.Add(anna, "dog_tax_tag", InDays(5), "", &d)) ==
        std::vector<std::string>{"documents:too_many_documents"});
  CHECK(f.List(PersonCaller(kBen)).empty());
}

TEST_CASE("reminders: none without consent; with it, one reminder N days before the expiry, exactly once",
          "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna), ben = PersonCaller(kBen);
  // Permits: reminder 30 days before. Both expire in 100 days: due in 70.
  const auto annas = f.Add(anna, "residential_parking_permit", InDays(100));
  const auto bens = f.Add(ben, "residential_parking_permit", InDays(100));
  f.Consent(anna, "satisfaction-survey");  // Another purpose does not count.
  f.clock.days = 70;
  CHECK(f.Run() == 0);
  CHECK(f.ReminderState(annas.id()).empty());
  f.Consent(anna);  // Schedules Anna's, not Ben's.
  CHECK(f.ReminderState(annas.id()) == "scheduled");
  CHECK(f.ReminderState(bens.id()).empty());
  f.clock.days = 69;  // The day before: nothing yet.
  CHECK(f.Run() == 0);
  f.clock.days = 70;
  CHECK(f.Run() == 1);
  CHECK(f.Run() == 0);
  f.clock.days = 71;
  CHECK(f.Run() == 0);
  CHECK(f.ReminderState(annas.id()) == "sent");
  REQUIRE(f.DueEvents() == 1);
  CHECK(f.Query("SELECT key FROM outbox WHERE topic = 'reminder.due'") == kAnna);
  CHECK(f.Query("SELECT payload->>'document_id' FROM outbox WHERE topic = 'reminder.due'") == annas.id());
  CHECK(f.Query("SELECT payload->>'expires_on' FROM outbox WHERE topic = 'reminder.due'") == InDays(100));
  CHECK(f.Query("SELECT payload->>'renewal_service_id' FROM outbox WHERE topic = 'reminder.due'") ==
        "residential-parking-permit");
  CHECK(f.Query("SELECT payload->>'document_name_de' FROM outbox WHERE topic = 'reminder.due'") ==
        "Bewohnerparkausweis");
  CHECK(f.Query("SELECT payload->>'party_kind' FROM outbox WHERE topic = 'reminder.due'") == "person");
  // Sent at the job's time (its clock, 70 days ahead here), not the database's.
  CHECK(f.Query("SELECT left(payload->>'occurred_at', 10) FROM outbox WHERE topic = 'reminder.due'") == InDays(70));
  CHECK(f.Query("SELECT payload->>'reminder_id' FROM outbox WHERE topic = 'reminder.due'") ==
        f.Query("SELECT id::text FROM reminders WHERE document_id = '" + annas.id() + "'"));
  // Listed with its reminder.
  auto list = f.List(anna);
  REQUIRE(list.size() == 1);
  CHECK(list[0].reminder_state() == "sent");
  CHECK(list[0].reminder_due_on() == InDays(70));
  // Consenting again later changes nothing about a sent reminder.
  f.Consent(anna);
  CHECK(f.ReminderState(annas.id()) == "sent");
  CHECK(f.Run() == 0);
  CHECK(f.DueEvents() == 1);
}

TEST_CASE("reminders: a document entered within its reminder period is reminded at once; an expired one never",
          "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  f.Consent(anna);
  const auto soon = f.Add(anna, "passport", InDays(10));  // 90 days before: already past.
  CHECK(f.ReminderState(soon.id()) == "scheduled");
  CHECK(f.Run() == 1);
  const auto later = f.Add(anna, "dog_tax_tag", InDays(40));  // Due in 10 days.
  f.clock.days = 41;  // The job did not run between due date and expiry: the tag has expired.
  CHECK(f.Run() == 0);
  CHECK(f.ReminderState(later.id()) == "scheduled");
  CHECK(f.DueEvents() == 1);
}

TEST_CASE("reminders: withdrawing the consent cancels pending reminders; none is sent", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  const auto consent = f.Consent(anna);
  const auto second = f.Consent(anna);  // Two standing consents to reminders.
  const auto permit = f.Add(anna, "residential_parking_permit", InDays(100));
  CHECK(f.ReminderState(permit.id()) == "scheduled");
  f.Withdraw(anna, consent.id());
  CHECK(f.ReminderState(permit.id()) == "scheduled");  // The other consent still stands.
  f.Withdraw(anna, second.id());
  CHECK(f.ReminderState(permit.id()) == "cancelled");
  f.clock.days = 70;
  CHECK(f.Run() == 0);
  // A document added after the withdrawal is not scheduled at all.
  const auto tag = f.Add(anna, "dog_tax_tag", InDays(30));
  CHECK(f.ReminderState(tag.id()).empty());
  CHECK(f.Run() == 0);
  CHECK(f.DueEvents() == 0);
  // Consenting again schedules both again; each is then sent once.
  f.Consent(anna);
  CHECK(f.ReminderState(permit.id()) == "scheduled");
  CHECK(f.Run() == 1);  // The permit (due today); the tag had expired by day 70.
  CHECK(f.DueEvents() == 1);
}

TEST_CASE("reminders: removing the document removes its reminder", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  f.Consent(anna);
  const auto permit = f.Add(anna, "residential_parking_permit", InDays(100));
  REQUIRE(f.Delete(anna, permit.id()).ok());
  CHECK(f.Count("SELECT count(*) FROM reminders") == 0);
  f.clock.days = 70;
  CHECK(f.Run() == 0);
}

TEST_CASE("reminders: two jobs at once send each reminder exactly once", "[integration]") {
  Fixture f;
  constexpr int kParties = 40;
  for (int i = 0; i < kParties; ++i) {
    char id[37];
    std::snprintf(id, sizeof id, "2c3d4e5f-6a7b-4c8d-9e0f-%012d", i);
    const auto p = PersonCaller(id);
    f.Consent(p);
    f.Add(p, "residential_parking_permit", InDays(31 + i % 3));
  }
  f.clock.days = 5;
  // Two replicas' jobs, batches of 5, racing over the same rows.
  ReminderJob other{f.store, f.types, f.clock.clock(), 5};
  std::atomic<int> first{0}, second{0};
  std::thread a([&] { first = *f.job.RunOnce(); });
  std::thread b([&] { second = *other.RunOnce(); });
  a.join();
  b.join();
  CHECK(first + second == kParties);
  CHECK(f.DueEvents() == kParties);
  CHECK(f.Count("SELECT count(DISTINCT payload->>'reminder_id') FROM outbox WHERE topic = 'reminder.due'") == kParties);
  CHECK(f.Count("SELECT count(*) FROM reminders WHERE state = 'sent'") == kParties);
  CHECK(f.Run() == 0);
}

TEST_CASE("reminders: a row another replica holds is skipped, and sent once that replica's work rolls back",
          "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  f.Consent(anna);
  const auto permit = f.Add(anna, "residential_parking_permit", InDays(100));
  f.clock.days = 70;
  // Another replica claimed the reminder and dies before its commit.
  pqxx::connection other(testing::DatabaseUrl());
  pqxx::work held(other);
  held.exec("SET LOCAL search_path TO " + held.quote_name(f.schema.name()));
  held.exec("SELECT id FROM reminders WHERE document_id = '" + permit.id() + "' FOR UPDATE");
  CHECK(f.Run() == 0);  // Skipped, not waited for.
  CHECK(f.DueEvents() == 0);
  held.abort();
  CHECK(f.Run() == 1);
  CHECK(f.DueEvents() == 1);
}

TEST_CASE("reminders: a clock that cannot be read sends nothing", "[integration]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  f.Consent(anna);
  f.Add(anna, "passport", InDays(10));
  const std::string path = testing::TempDir() + "/reminder-clock-test.txt";
  {
    std::ofstream out(path);
    out << "tomorrow";
  }
  ReminderJob job{f.store, f.types, app::FileClock(path)};
  CHECK_FALSE(job.RunOnce().ok());
  CHECK(f.DueEvents() == 0);
  {
    std::ofstream out(path);
    out << absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()) << "\n";
  }
  REQUIRE(job.RunOnce().ok());
  CHECK(f.DueEvents() == 1);
}

}  // namespace stadtportal::accounts

namespace stadtportal::accounts {

TEST_CASE("retention: a document goes with its reminders twelve months after its expiry", "[integration][retention]") {
  Fixture f;
  const auto anna = PersonCaller(kAnna);
  f.Consent(anna);
  const auto soon = f.Add(anna, "residential_parking_permit", InDays(10));
  const auto later = f.Add(anna, "passport", InDays(400));
  REQUIRE(f.ReminderState(soon.id()) == "scheduled");
  auto run = [&] {
    auto ended = app::RunRetention(f.clock.clock(), "document", "deleted", [&](absl::Time now, int limit) {
      return f.store->EndDocumentRetention(now, limit);
    });
    INFO(ended.status().message());
    REQUIRE(ended.ok());
    return *ended;
  };
  f.clock.days = 10 + 360;  // Eleven and a bit months after its expiry: kept.
  CHECK(run() == 0);
  CHECK(f.List(anna).size() == 2);
  f.clock.days = 10 + 370;
  CHECK(run() == 1);
  const auto left = f.List(anna);
  REQUIRE(left.size() == 1);
  CHECK(left[0].id() == later.id());
  CHECK(f.Count("SELECT count(*) FROM reminders WHERE document_id = '" + soon.id() + "'") == 0);
  CHECK(f.Count("SELECT count(*) FROM reminders WHERE document_id = '" + later.id() + "'") == 1);
}

}  // namespace stadtportal::accounts

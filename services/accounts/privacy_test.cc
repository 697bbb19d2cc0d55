// The person's own data in accounts: the export, no retained records, and the erasure
// with its tombstone (a late event of any kind brings nothing back).
#include <google/protobuf/util/time_util.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/events/testing.h"
#include "libs/grpc/handler.h"
#include "libs/privacy/privacy.h"
#include "libs/testing/json_schema.h"
#include "services/accounts/consumers.h"
#include "services/accounts/service.h"
#include "services/accounts/test_caller.h"

namespace stadtportal::accounts {
namespace {

using google::protobuf::util::TimeUtil;
namespace ev = events::v1;

constexpr char kAnna[] = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
constexpr char kBen[] = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
constexpr char kTenant[] = "09564000";
constexpr char kSubmission[] = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
// What must not be left of Anna outside her tombstone: her id, address, name, birth date.
const std::vector<std::string> kAnnaTraces = {kAnna, "anna.schmidt@example.de", "Schmidt", "1984-02-29"};
// Rows that are not hers although they hold her address: another municipality's mail to
// it, and a mail to an address it is only a part of.
const std::vector<std::string> kDecoys = {"Andere Gemeinde", "xanna.schmidt@example.de"};

struct Fixture : events::HandlerTest {
  Fixture()
      : HandlerTest("accounts", Store::Prepare,
                    Consumers(std::make_shared<const DocumentTypes>(*DocumentTypes::Embedded()))) {}
  std::shared_ptr<Store> store = std::make_shared<Store>(pool());
  Service service{store, Options{}};
  grpc::ServerContext ctx;
  int next_event = 1;

  template <class M>
  absl::Status Take(const std::string& source, const M& m) {
    return Handle(events::EventOf(source + "-" + std::to_string(next_event++), "key", m));
  }
  void Exec(const std::string& sql) {
    REQUIRE(pool()
                .Transact([&](pqxx::work& tx) {
                  tx.exec(sql);
                  return absl::OkStatus();
                })
                .ok());
  }
  absl::Status Erase(const std::string& party, const std::string& tenant = kTenant) {
    ev::PartyErasureRequested e;
    e.set_tenant(tenant);
    e.set_account_id(party);
    e.set_party_id(party);
    return Take("identity", e);
  }
  // Rows of every table of the schema (but the tombstones, the migrations' record and
  // `except`) whose text holds one of `traces` and no decoy, as "table:trace:count" lines.
  std::string Traces(const std::vector<std::string>& traces, const std::string& except = "") {
    std::string out;
    REQUIRE(pool()
                .Transact([&](pqxx::work& tx) {
                  for (const auto& t : tx.exec("SELECT table_name FROM information_schema.tables WHERE table_schema ="
                                               " current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")) {
                    const std::string table = t[0].as<std::string>();
                    if (table == "erased_parties" || table == "schema_migrations" || table == except) continue;
                    for (const auto& trace : traces) {
                      const auto n = tx.exec_params1("SELECT count(*) FROM " + tx.quote_name(table) +
                                                         " r WHERE r::text ILIKE '%' || $1 || '%' AND r::text NOT ILIKE"
                                                         " '%' || $2 || '%' AND r::text NOT ILIKE '%' || $3 || '%'",
                                                     trace, kDecoys[0], kDecoys[1])[0]
                                         .as<int64_t>();
                      if (n > 0) out += table + ":" + trace + ":" + std::to_string(n) + "\n";
                    }
                  }
                  return absl::OkStatus();
                })
                .ok());
    return out;
  }

  grpc::Status Export(const auth::Caller& caller, common::v1::PersonalData* out) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    return service.ExportPersonalData(&ctx, &req, out);
  }
  grpc::Status Retained(const auth::Caller& caller, common::v1::RetainedRecords* out) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    return service.ListRetainedRecords(&ctx, &req, out);
  }
  grpc::Status MyParty(const std::string& account) {
    grpcx::TestCaller as(PersonCaller(account));
    v1::GetMyPartyRequest req;
    v1::Party p;
    return service.GetMyParty(&ctx, &req, &p);
  }
};

ev::DataAccessed Read(const std::string& party) {
  ev::DataAccessed e;
  e.set_tenant(kTenant);
  e.set_party_id(party);
  e.set_accessor_kind("back_office");
  e.set_accessor_id("standesamt-client");
  e.set_accessor_name("Standesamt");
  e.set_resource("submission");
  e.set_resource_id(kSubmission);
  e.set_reference("NUE-2026-000007");
  e.set_action("read");
  e.set_purpose("procedure: dog-tax");
  *e.mutable_occurred_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()) - 60);
  return e;
}

ev::SubmissionStatusChanged Status(const std::string& party) {
  ev::SubmissionStatusChanged e;
  e.set_tenant(kTenant);
  e.set_submission_id(kSubmission);
  e.set_reference("NUE-2026-000007");
  e.set_party_id(party);
  e.set_service_id("dog-tax");
  e.set_status("submitted");
  *e.mutable_occurred_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()) - 120);
  return e;
}

ev::AccountVerified Verified(const std::string& account, const std::string& email) {
  ev::AccountVerified e;
  e.set_tenant(kTenant);
  e.set_account_id(account);
  e.set_email(email);
  return e;
}

ev::AccountIdentified Identified(const std::string& account) {
  ev::AccountIdentified e;
  e.set_tenant(kTenant);
  e.set_account_id(account);
  e.set_provider("bundid");
  e.set_assurance_level("substantial");
  auto& a = *e.mutable_attributes();
  a["given_name"] = "Anna";
  a["family_name"] = "Schmidt";
  a["birth_date"] = "1984-02-29";
  a["street"] = "Hauptmarkt 1";
  a["postal_code"] = "90403";
  a["locality"] = "Nürnberg";
  a["email"] = "anna.schmidt@example.de";
  return e;
}

// Anna: a profile from BundID, preferences, consents given, withdrawn and given again, a
// document with its reminder, her verified address, an organisation she owns (Ben a
// member, Carla invited by her), an invitation of Ben's organisation to her address, a
// back office's read and a file item. Ben: a party, profile, consent, read and item.
struct People {
  std::string anna_org, ben_org;
};

People Fill(Fixture& f) {
  People p;
  REQUIRE(f.MyParty(kAnna).ok());
  REQUIRE(f.MyParty(kBen).ok());
  REQUIRE(f.Take("identity", Verified(kAnna, "Anna.Schmidt@example.de")).ok());
  REQUIRE(f.Take("identity", Verified(kBen, "ben@example.de")).ok());
  REQUIRE(f.Take("identity", Identified(kAnna)).ok());
  REQUIRE(f.store->UpdateProfile(kTenant, kBen, {{"given_name", "Ben"}, {"family_name", "Berger"}}).ok());
  v1::Preferences prefs;
  prefs.set_language("en");
  prefs.mutable_email()->set_messages(false);
  REQUIRE(f.store->SetPreferences(kTenant, kAnna, prefs).ok());
  auto first = f.store->GiveConsent(kTenant, kAnna, "reminders", "2026-01");
  REQUIRE(first.ok());
  REQUIRE(f.store->WithdrawConsent(kTenant, kAnna, first->id()).ok());
  REQUIRE(f.store->GiveConsent(kTenant, kAnna, "reminders", "2026-02").ok());
  REQUIRE(f.store->GiveConsent(kTenant, kBen, "reminders", "2026-02").ok());
  NewDocument d;
  d.tenant = kTenant;
  d.party_id = kAnna;
  d.type = "passport";
  d.label = "Annas Pass";
  d.expires_on = "2030-06-30";
  d.source = "person";
  d.remind_days_before = 90;
  REQUIRE(f.store->AddDocument(d).ok());
  d.party_id = kBen;
  d.label = "Bens Pass";
  REQUIRE(f.store->AddDocument(d).ok());

  NewOrganisation o;
  o.tenant = kTenant;
  o.name = "Bäckerei Morgenrot GmbH";
  o.legal_form = "company";
  o.address.set_street("Hauptmarkt");
  o.address.set_house_number("18");
  o.address.set_postcode("90403");
  o.address.set_city("Nürnberg");
  o.address.set_country("DE");
  o.owner_id = kAnna;
  auto anna_org = f.store->CreateOrganisation(o);
  REQUIRE(anna_org.ok());
  p.anna_org = anna_org->party().id();
  o.name = "Turnverein Gostenhof";
  o.legal_form = "association";
  o.owner_id = kBen;
  auto ben_org = f.store->CreateOrganisation(o);
  REQUIRE(ben_org.ok());
  p.ben_org = ben_org->party().id();
  f.Exec("INSERT INTO memberships (tenant, organisation_id, person_id, role) VALUES ('09564000', '" + p.anna_org +
         "', '" + kBen + "', 'member')");
  REQUIRE(f.store
              ->Invite(
                  {kTenant, p.ben_org, "anna.schmidt@example.de", "member", "token-anna", kBen, std::chrono::hours(24)},
                  {"anna.schmidt@example.de", "Einladung", "Turnverein Gostenhof lädt Sie ein."})
              .ok());
  REQUIRE(
      f.store
          ->Invite({kTenant, p.anna_org, "carla@example.de", "member", "token-carla", kAnna, std::chrono::hours(24)},
                   {"carla@example.de", "Einladung", "Bäckerei Morgenrot GmbH lädt Sie ein."})
          .ok());
  // Another municipality's mail to the same address is not this tenant's.
  f.Exec(
      "INSERT INTO mail_outbox (tenant, recipient, subject, body) VALUES ('09564001', 'anna.schmidt@example.de',"
      " 'Andere Gemeinde', 'x'), ('09564000', 'xanna.schmidt@example.de', 'Jemand anderes', 'x')");
  REQUIRE(f.Take("connector", Read(kAnna)).ok());
  REQUIRE(f.Take("connector", Read(kBen)).ok());
  REQUIRE(f.Take("submission", Status(kAnna)).ok());
  REQUIRE(f.Take("submission", Status(kBen)).ok());
  f.Exec("UPDATE outbox SET published_at = now()");
  return p;
}

}  // namespace

TEST_CASE("accounts export: the person's party, profile, choices, organisations, documents, log and file",
          "[integration][export]") {
  Fixture f;
  const auto people = Fill(f);
  common::v1::PersonalData data;
  auto s = f.Export(PersonCaller(kAnna), &data);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(data.service() == "accounts");
  CHECK(data.files_size() == 0);
  const auto doc = nlohmann::json::parse(data.json());
  CHECK(doc["party"]["id"] == kAnna);
  // As its schema describes it, which finds what it does not describe.
  const std::string schema = std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/export/accounts.schema.json";
  const auto violations = testing::SchemaViolations(schema, doc);
  INFO(absl::StrJoin(violations, "\n"));
  CHECK(violations.empty());
  auto undescribed = doc;
  undescribed["secret"] = true;
  CHECK(testing::SchemaViolations(schema, undescribed) == std::vector<std::string>{": secret not described"});
  std::map<std::string, std::string> profile;
  for (const auto& a : doc["profile"]) profile[a["name"]] = a["value"];
  CHECK(profile["family_name"] == "Schmidt");
  CHECK(profile["birth_date"] == "1984-02-29");
  CHECK(profile["address.street"] == "Hauptmarkt");
  CHECK(doc["profile"][0]["provider"] == "bundid");
  CHECK(doc["preferences"]["language"] == "en");
  CHECK(doc["preferences"]["email_messages"] == false);
  REQUIRE(doc["consents"].size() == 2);  // The history: withdrawn, then given again.
  CHECK(doc["consents"][0]["withdrawn_at"].is_string());
  CHECK(doc["consents"][1]["withdrawn_at"].is_null());
  REQUIRE(doc["memberships"].size() == 1);
  CHECK(doc["memberships"][0]["organisation_id"] == people.anna_org);
  CHECK(doc["memberships"][0]["role"] == "owner");
  REQUIRE(doc["invitations"].size() == 1);  // To her address; not the one she sent.
  CHECK(doc["invitations"][0]["organisation_name"] == "Turnverein Gostenhof");
  CHECK(doc["invitations"][0]["answered_at"].is_null());
  REQUIRE(doc["documents"].size() == 1);
  CHECK(doc["documents"][0]["label"] == "Annas Pass");
  CHECK(doc["documents"][0]["expires_on"] == "2030-06-30");
  REQUIRE(doc["reminders"].size() == 1);
  CHECK(doc["reminders"][0]["due_on"] == "2030-04-01");
  CHECK(doc["reminders"][0]["state"] == "scheduled");
  CHECK(doc["verified_email"]["email"] == "anna.schmidt@example.de");  // Stored normalised.
  REQUIRE(doc["access_log"].size() == 1);
  CHECK(doc["access_log"][0]["accessor_name"] == "Standesamt");
  REQUIRE(doc["file"].size() == 1);
  CHECK(doc["file"][0]["kind"] == "submission_status");
  CHECK(doc["file"][0]["summary"].is_object());
  CHECK(std::string(doc["party"]["created_at"]).back() == 'Z');
  // Nothing of Ben's, no secret.
  for (const std::string other : {"Ben", "ben@", kBen, "Berger", "carla@", "token"}) {
    INFO(other);
    CHECK(data.json().find(other) == std::string::npos);
  }
  // Ben's own is his.
  common::v1::PersonalData ben;
  REQUIRE(f.Export(PersonCaller(kBen), &ben).ok());
  CHECK(ben.json().find("Schmidt") == std::string::npos);
  CHECK(ben.json().find(kAnna) == std::string::npos);
  CHECK(nlohmann::json::parse(ben.json())["memberships"].size() == 2);

  // Exporting makes no party.
  const std::string stranger = "8d9e0f1a-2b3c-4d4e-8f5a-6b7c8d9e0f1a";
  REQUIRE(f.Export(PersonCaller(stranger), &data).ok());
  CHECK(nlohmann::json::parse(data.json())["party"].is_null());
  CHECK(f.Query("SELECT count(*) FROM parties WHERE id = '" + stranger + "'") == "0");
}

TEST_CASE("accounts export and retained records: only the person acting as themself", "[integration][export]") {
  Fixture f;
  const auto people = Fill(f);
  auto organisation = PersonCaller(kAnna);
  organisation.acting_party = people.anna_org;
  auto partner = PersonCaller(kAnna);
  partner.partner_id = "partner-portal";
  partner.partner_name = "Partnerportal";
  partner.partner_scope = "profile";
  auto admin = PersonCaller(kAnna);
  admin.roles = {"tenant-admin"};
  common::v1::PersonalData data;
  common::v1::RetainedRecords retained;
  for (const auto& caller : {organisation, partner, admin}) {
    CHECK(f.Export(caller, &data).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(f.Retained(caller, &retained).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(f.Export(auth::Caller{}, &data).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(data.json().empty());
  // Nothing of accounts is kept after an erasure.
  REQUIRE(f.Retained(PersonCaller(kAnna), &retained).ok());
  CHECK(retained.records_size() == 0);
}

TEST_CASE("accounts erasure: every row of the person goes, the tombstone stays, Ben's rows and organisations stay",
          "[integration][erasure]") {
  Fixture f;
  const auto people = Fill(f);
  REQUIRE(!f.Traces(kAnnaTraces).empty());
  const std::string ben_before = f.Traces({kBen, "ben@example.de", "Berger"}, "invitations");
  const std::string tombstone = privacy::Tombstone(kTenant, kAnna);

  auto check = [&] {
    CHECK(f.Traces(kAnnaTraces) == "");
    CHECK(f.Query("SELECT count(*) FROM erased_parties WHERE tombstone = '" + tombstone + "'") == "1");
    CHECK(f.Traces({kBen, "ben@example.de", "Berger"}, "invitations") == ben_before);
    // Her organisation stays, without an owner; Ben stays its member. Carla's invitation
    // stays, no longer naming who sent it; the one to Anna's address is gone.
    CHECK(f.Query("SELECT count(*) FROM parties WHERE id = '" + people.anna_org + "'") == "1");
    CHECK(f.Query("SELECT string_agg(person_id::text || ':' || role, ',') FROM memberships WHERE organisation_id = '" +
                  people.anna_org + "'") == std::string(kBen) + ":member");
    CHECK(f.Query("SELECT email || ':' || coalesce(invited_by::text, 'none') FROM invitations") ==
          "carla@example.de:none");
    CHECK(f.Query("SELECT string_agg(recipient, ',' ORDER BY id) FROM mail_outbox") ==
          "carla@example.de,anna.schmidt@example.de,xanna.schmidt@example.de");
    CHECK(f.Query("SELECT tenant FROM mail_outbox WHERE recipient = 'anna.schmidt@example.de'") == "09564001");
  };
  REQUIRE(f.Erase(kAnna).ok());
  check();
  REQUIRE(f.Erase(kAnna).ok());  // Delivered again: the same.
  check();
  CHECK(f.Erase("Anna").code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Erase(kBen, "Nürnberg").code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("accounts erasure: an unverified contact address reaches nobody else's invitations or mails",
          "[integration][erasure]") {
  Fixture f;
  Fill(f);
  // Anna names Carla's address as her contact address (nothing checks it is hers).
  f.Exec("INSERT INTO profile_attributes (tenant, party_id, name, value, source) VALUES ('" + std::string(kTenant) +
         "', '" + kAnna +
         "', 'contact_email', 'carla@example.de', 'self') ON CONFLICT (party_id, name) DO UPDATE SET value = "
         "'carla@example.de', source = 'self'");
  const std::string carla = "SELECT count(*) FROM invitations WHERE email = 'carla@example.de'";
  const std::string mails = "SELECT count(*) FROM mail_outbox WHERE recipient = 'carla@example.de'";
  REQUIRE(f.Query(carla) == "1");
  REQUIRE(f.Query(mails) == "1");
  REQUIRE(f.Erase(kAnna).ok());
  CHECK(f.Query(carla) == "1");
  CHECK(f.Query(mails) == "1");
  CHECK(f.Query("SELECT count(*) FROM profile_attributes WHERE value = 'carla@example.de'") == "0");
}

TEST_CASE("accounts erasure: a late event of any kind about the erased person brings nothing back; calls refuse",
          "[integration][erasure]") {
  Fixture f;
  Fill(f);
  REQUIRE(f.Erase(kAnna).ok());
  REQUIRE(f.Traces(kAnnaTraces) == "");

  const auto at = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()) - 30);
  REQUIRE(f.Take("identity", Verified(kAnna, "anna.schmidt@example.de")).ok());
  REQUIRE(f.Take("identity", Identified(kAnna)).ok());
  ev::DocumentRecorded document;
  document.set_tenant(kTenant);
  document.set_party_id(kAnna);
  document.set_submission_id(kSubmission);
  document.set_reference("NUE-2026-000007");
  document.set_destination("buergeramt");
  document.set_document_type("passport");
  document.set_expires_on("2031-01-31");
  REQUIRE(f.Take("connector", document).ok());
  REQUIRE(f.Take("connector", Read(kAnna)).ok());
  REQUIRE(f.Take("submission", Status(kAnna)).ok());
  ev::PaymentSucceeded paid;
  paid.set_tenant(kTenant);
  paid.set_payment_id("9e0f1a2b-3c4d-4e5f-9a6b-7c8d9e0f1a2b");
  paid.set_submission_id(kSubmission);
  paid.mutable_amount()->set_amount_minor(1200);
  paid.mutable_amount()->set_currency("EUR");
  paid.set_provider("testpay");
  paid.set_party_id(kAnna);
  *paid.mutable_occurred_at() = at;
  REQUIRE(f.Take("payment", paid).ok());
  ev::PaymentRefunded refund;
  refund.set_tenant(kTenant);
  refund.set_payment_id(paid.payment_id());
  refund.set_refund_id("0f1a2b3c-4d5e-4f6a-8b7c-8d9e0f1a2b3c");
  refund.set_submission_id(kSubmission);
  refund.set_party_id(kAnna);
  refund.mutable_amount()->set_amount_minor(200);
  refund.mutable_amount()->set_currency("EUR");
  *refund.mutable_occurred_at() = at;
  REQUIRE(f.Take("payment", refund).ok());
  ev::MessageReceived message;
  message.set_tenant(kTenant);
  message.set_party_id(kAnna);
  message.set_thread_id("1a2b3c4d-5e6f-4a7b-9c8d-9e0f1a2b3c4d");
  message.set_message_id("2b3c4d5e-6f7a-4b8c-8d9e-0f1a2b3c4d5e");
  message.set_kind("message");
  message.set_subject("Ihre Hundesteuer");
  *message.mutable_occurred_at() = at;
  REQUIRE(f.Take("messaging", message).ok());
  ev::ReminderDue reminder;
  reminder.set_tenant(kTenant);
  reminder.set_reminder_id("3c4d5e6f-7a8b-4c9d-9e0f-1a2b3c4d5e6f");
  reminder.set_party_id(kAnna);
  reminder.set_party_kind("person");
  reminder.set_document_id("4d5e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f7a");
  reminder.set_document_type("passport");
  reminder.set_document_name_de("Reisepass");
  reminder.set_document_name_en("Passport");
  reminder.set_expires_on("2031-01-31");
  *reminder.mutable_occurred_at() = at;
  REQUIRE(f.Take("accounts", reminder).ok());
  ev::ConsentChanged consent;
  consent.set_tenant(kTenant);
  consent.set_party_id(kAnna);
  consent.set_consent_id("5e6f7a8b-9c0d-4e1f-9a2b-3c4d5e6f7a8b");
  consent.set_purpose("reminders");
  consent.set_text_version("2026-02");
  consent.set_state("given");
  *consent.mutable_occurred_at() = at;
  REQUIRE(f.Take("accounts", consent).ok());
  ev::ProviderLinkChanged link;
  link.set_tenant(kTenant);
  link.set_account_id(kAnna);
  link.set_provider("bundid");
  link.set_state("linked");
  *link.mutable_occurred_at() = at;
  REQUIRE(f.Take("identity", link).ok());
  CHECK(f.Traces(kAnnaTraces) == "");

  // The same events about Ben are taken: the check is the erased party's only.
  const auto before = std::stoll(f.Query("SELECT count(*) FROM file_items"));
  auto bens = message;
  bens.set_party_id(kBen);
  REQUIRE(f.Take("messaging", bens).ok());
  CHECK(std::stoll(f.Query("SELECT count(*) FROM file_items")) == before + 1);

  // Calls that would make her party again refuse.
  CHECK(f.MyParty(kAnna).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  {
    grpcx::TestCaller as(PersonCaller(kAnna));
    v1::GiveConsentRequest req;
    req.set_purpose("reminders");
    req.set_text_version("2026-02");
    v1::Consent out;
    CHECK(f.service.GiveConsent(&f.ctx, &req, &out).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  }
  CHECK(f.store->CreateParty({kTenant, "person", "Anna", kAnna}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.Traces(kAnnaTraces) == "");
  CHECK(f.MyParty(kBen).ok());
}

}  // namespace stadtportal::accounts

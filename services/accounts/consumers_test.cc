#include "services/accounts/consumers.h"

#include <functional>

#include <catch2/catch.hpp>

#include "libs/events/testing.h"
#include "services/accounts/store.h"

namespace stadtportal::accounts {
namespace {

constexpr char kAccount[] = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";

struct Fixture : events::HandlerTest {
  Fixture()
      : HandlerTest("accounts", Store::Prepare,
                    Consumers(std::make_shared<const DocumentTypes>(*DocumentTypes::Embedded()))) {}
  // The verified addresses: "account|tenant|email" lines.
  std::string Verified() {
    return Query(
        "SELECT coalesce(string_agg(account_id || '|' || tenant || '|' || email, ';'), '')"
        " FROM verified_emails");
  }
};

events::v1::AccountVerified Verified(const std::string& email) {
  events::v1::AccountVerified e;
  e.set_tenant("09564000");
  e.set_account_id(kAccount);
  e.set_email(email);
  return e;
}

}  // namespace

TEST_CASE("account.verified: the account's verified address, normalised; the latest one counts", "[integration]") {
  Fixture f;
  REQUIRE(f.Apply(OnAccountVerified, Verified(" Anna.Muster@Example.DE ")).ok());
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna.muster@example.de")).ok());
  CHECK(f.Verified() == std::string(kAccount) + "|09564000|anna.muster@example.de");
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna@example.de")).ok());
  CHECK(f.Verified() == std::string(kAccount) + "|09564000|anna@example.de");

  // Malformed messages change nothing and are refused.
  auto broken = Verified("not an address");
  CHECK(f.Apply(OnAccountVerified, broken).code() == absl::StatusCode::kInvalidArgument);
  broken = Verified("anna@example.de");
  broken.set_account_id("42");
  CHECK(f.Apply(OnAccountVerified, broken).code() == absl::StatusCode::kInvalidArgument);
  broken = Verified("anna@example.de");
  broken.set_tenant("");
  CHECK(f.Apply(OnAccountVerified, broken).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Verified() == std::string(kAccount) + "|09564000|anna@example.de");
}

TEST_CASE("accounts' consumer refuses a payload that is not its topic's message", "[integration]") {
  Fixture f;
  auto event = events::EventOf("identity-9", kAccount, Verified("anna@example.de"));
  event.payload["email"] = nlohmann::json::array({"anna@example.de", "ben@example.de"});
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Verified().empty());
}

TEST_CASE("account.identified: what a provider vouched for becomes the verified profile; bad values are left out",
          "[integration]") {
  Fixture f;
  events::v1::AccountIdentified e;
  e.set_tenant("09564000");
  e.set_account_id(kAccount);
  e.set_provider("bundid");
  e.set_assurance_level("substantial");
  auto& a = *e.mutable_attributes();
  a["given_name"] = "Erika";
  a["family_name"] = "Mustermann";
  a["birth_date"] = "1964-08-12";
  a["street"] = "Heidestraße 17a";
  a["postal_code"] = "51147";
  a["locality"] = "Köln";
  a["email"] = "erika.mustermann@example.org";
  a["persistent_id"] = "bPK2-erika";  // No profile attribute: not kept.
  REQUIRE(f.Apply(OnAccountIdentified, e).ok());
  const std::string rows =
      "SELECT string_agg(name || '=' || value || '|' || source || '|' || provider || '|' || assurance, ';' "
      "ORDER BY name) FROM profile_attributes p JOIN parties y ON y.id = p.party_id "
      "WHERE y.identity_account_id = '" +
      std::string(kAccount) + "'";
  CHECK(f.Query(rows) ==
        "address.city=Köln|provider|bundid|substantial;address.country=DE|provider|bundid|substantial;"
        "address.house_number=17a|provider|bundid|substantial;address.postcode=51147|provider|bundid|substantial;"
        "address.street=Heidestraße|provider|bundid|substantial;birth_date=1964-08-12|provider|bundid|substantial;"
        "contact_email=erika.mustermann@example.org|provider|bundid|substantial;"
        "family_name=Mustermann|provider|bundid|substantial;given_name=Erika|provider|bundid|substantial");

  // A later log-in at a higher level replaces; a value that fails its check is left out.
  e.set_assurance_level("high");
  a["birth_date"] = "2999-01-01";
  a["given_name"] = "Erika\x01";
  REQUIRE(f.Apply(OnAccountIdentified, e).ok());
  CHECK(f.Query("SELECT value || '|' || assurance FROM profile_attributes WHERE name = 'birth_date'") ==
        "1964-08-12|substantial");
  CHECK(f.Query("SELECT value || '|' || assurance FROM profile_attributes WHERE name = 'family_name'") ==
        "Mustermann|high");

  // Malformed messages change nothing and are refused.
  const std::vector<std::function<void(events::v1::AccountIdentified&)>> breaks = {
      [](auto& b) { b.set_account_id("42"); }, [](auto& b) { b.set_tenant("9564"); },
      [](auto& b) { b.set_provider("Bund ID"); }, [](auto& b) { b.set_assurance_level("very high"); }};
  for (const auto& spoil : breaks) {
    auto broken = e;
    spoil(broken);
    broken.mutable_attributes()->at("family_name") = "Fälschung";
    CHECK(f.Apply(OnAccountIdentified, broken).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Query("SELECT value FROM profile_attributes WHERE name = 'family_name'") == "Mustermann");
}

TEST_CASE("account.identified by a company account: the organisation made once, its representatives members",
          "[integration]") {
  Fixture f;
  auto company = [](const std::string& account, const std::string& given) {
    events::v1::AccountIdentified e;
    e.set_tenant("09564000");
    e.set_account_id(account);
    e.set_provider("elster-company");
    e.set_assurance_level("substantial");
    auto& a = *e.mutable_attributes();
    a["given_name"] = given;
    a["family_name"] = "Schmidt";
    a["organisation_id"] = "ELSTER-UK-4711";
    a["organisation_name"] = "Bäckerei Schmidt GmbH";
    a["street"] = "Hauptmarkt 1";
    a["postal_code"] = "90403";
    a["locality"] = "Nürnberg";
    return e;
  };
  const std::string second = "4d5e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f70";
  REQUIRE(f.Apply(OnAccountIdentified, company(kAccount, "Klara")).ok());
  REQUIRE(f.Apply(OnAccountIdentified, company(second, "Karl")).ok());
  REQUIRE(f.Apply(OnAccountIdentified, company(kAccount, "Klara")).ok());  // Again: nothing new.
  CHECK(f.Query("SELECT count(*) FROM organisations") == "1");
  CHECK(f.Query("SELECT p.display_name || '|' || o.street || '|' || o.house_number || '|' || o.postcode || '|' || "
                "o.city || '|' || o.country || '|' || o.provider || '|' || o.provider_id FROM organisations o "
                "JOIN parties p ON p.id = o.party_id") ==
        "Bäckerei Schmidt GmbH|Hauptmarkt|1|90403|Nürnberg|DE|elster-company|ELSTER-UK-4711");
  CHECK(f.Query("SELECT string_agg(y.identity_account_id || '=' || m.role, ';' ORDER BY m.role DESC) "
                "FROM memberships m JOIN parties y ON y.id = m.person_id") ==
        std::string(kAccount) + "=owner;" + second + "=admin");
  // The company's address is not the person's.
  CHECK(f.Query("SELECT count(*) FROM profile_attributes WHERE name LIKE 'address.%'") == "0");
  CHECK(f.Query("SELECT count(*) FROM profile_attributes WHERE name = 'given_name' AND source = 'provider'") == "2");

  // A company without a name, or with an address that is none: refused, nothing written.
  auto nameless = company("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a81", "Nina");
  nameless.mutable_attributes()->erase("organisation_name");
  CHECK(f.Apply(OnAccountIdentified, nameless).code() == absl::StatusCode::kInvalidArgument);
  auto nowhere = company("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a81", "Nina");
  (*nowhere.mutable_attributes())["organisation_id"] = "ELSTER-UK-4712";
  (*nowhere.mutable_attributes())["postal_code"] = "9040";
  CHECK(f.Apply(OnAccountIdentified, nowhere).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Query("SELECT count(*) FROM organisations") == "1");

  // At level low anyone could name any company: the person's own attributes count, but
  // no organisation is joined or made, and its address is not taken as the person's.
  const std::string stranger = "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b92";
  for (const char* id : {"ELSTER-UK-4711", "ELSTER-UK-4713"}) {
    auto low = company(stranger, "Mallory");
    low.set_assurance_level("low");
    (*low.mutable_attributes())["organisation_id"] = id;
    REQUIRE(f.Apply(OnAccountIdentified, low).ok());
  }
  CHECK(f.Query("SELECT count(*) FROM organisations") == "1");
  CHECK(f.Query("SELECT count(*) FROM memberships m JOIN parties y ON y.id = m.person_id "
                "WHERE y.identity_account_id = '" +
                stranger + "'") == "0");
  CHECK(f.Query("SELECT value || '|' || assurance FROM profile_attributes p JOIN parties y ON y.id = p.party_id "
                "WHERE y.identity_account_id = '" +
                stranger + "' AND name = 'given_name'") == "Mallory|low");
  CHECK(f.Query("SELECT count(*) FROM profile_attributes WHERE name LIKE 'address.%'") == "0");
}

}  // namespace stadtportal::accounts

namespace stadtportal::accounts {
namespace {

constexpr char kSubmission[] = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";

events::v1::DocumentRecorded Recorded() {
  events::v1::DocumentRecorded e;
  e.set_tenant("09564000");
  e.set_party_id(kAccount);
  e.set_submission_id(kSubmission);
  e.set_reference("NUE-2026-000042");
  e.set_destination("strassenverkehrsamt");
  e.set_document_type("residential_parking_permit");
  e.set_expires_on("2031-03-01");
  e.set_label("Zone 12");
  return e;
}

absl::Status Record(Fixture& f, const events::v1::DocumentRecorded& e) {
  auto types = DocumentTypes::Embedded();
  return f.pool().Transact([&](pqxx::work& tx) { return OnDocumentRecorded(tx, e, *types); });
}

}  // namespace

TEST_CASE("document.recorded: the department's document, once per submission and type", "[integration]") {
  Fixture f;
  REQUIRE(Record(f, Recorded()).ok());
  // The event again (at-least-once delivery): nothing more.
  REQUIRE(Record(f, Recorded()).ok());
  CHECK(f.Query("SELECT count(*) FROM documents") == "1");
  CHECK(f.Query("SELECT party_id::text || '|' || type || '|' || expires_on::text || '|' || source || '|' || "
                "submission_id::text || '|' || reference || '|' || destination || '|' || label FROM documents") ==
        std::string(kAccount) + "|residential_parking_permit|2031-03-01|department|" + kSubmission +
            "|NUE-2026-000042|strassenverkehrsamt|Zone 12");
  // The person had never called accounts: the party is made, as a person with the account's id.
  CHECK(f.Query("SELECT kind || '|' || identity_account_id::text FROM parties WHERE id = '" + std::string(kAccount) +
                "'") == "person|" + std::string(kAccount));
  // No consent: no reminder.
  CHECK(f.Query("SELECT count(*) FROM reminders") == "0");
  // Through the consumer's handlers, with a consent standing: scheduled 30 days before.
  f.Query("WITH c AS (INSERT INTO consents (tenant, party_id, purpose, text_version) VALUES ('09564000', '" +
          std::string(kAccount) + "', 'reminders', '1') RETURNING id) SELECT count(*) FROM c");
  auto other = Recorded();
  other.set_document_type("dog_tax_tag");
  other.set_label("");
  REQUIRE(f.Handle(events::EventOf("connector-1", kSubmission, other)).ok());
  CHECK(f.Query("SELECT to_char(due_on, 'YYYY-MM-DD') || '|' || state FROM reminders") == "2031-01-30|scheduled");
}

TEST_CASE("document.recorded: malformed messages and unknown types are refused and change nothing", "[integration]") {
  Fixture f;
  std::vector<std::function<void(events::v1::DocumentRecorded&)>> breakers = {
      [](auto& e) { e.set_tenant("9564000"); },
      [](auto& e) { e.set_party_id("anna"); },
      [](auto& e) { e.set_submission_id(""); },
      [](auto& e) { e.set_reference("NUE\n2026"); },
      [](auto& e) { e.set_destination("Straßenverkehrsamt"); },
      [](auto& e) { e.set_document_type("driving_licence"); },
      [](auto& e) { e.set_document_type("residential_parking_permit'; --"); },
      [](auto& e) { e.set_expires_on("2031-02-30"); },
      [](auto& e) { e.set_expires_on("01.03.2031"); },
      [](auto& e) { e.set_label(std::string(81, 'x')); },
      [](auto& e) { e.set_label("a\u2028b"); },
  };
  for (size_t i = 0; i < breakers.size(); ++i) {
    auto e = Recorded();
    breakers[i](e);
    INFO(i);
    CHECK(Record(f, e).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Query("SELECT count(*) FROM documents") == "0");
  CHECK(f.Query("SELECT count(*) FROM parties") == "0");
}

}  // namespace stadtportal::accounts

#include "services/messaging/consumers.h"

#include <catch2/catch.hpp>

#include "libs/events/testing.h"
#include "services/messaging/store.h"

namespace stadtportal::messaging {
namespace {

constexpr char kAnna[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";

struct Fixture : events::HandlerTest {
  Fixture() : HandlerTest("messaging", Store::Prepare, Consumers()) {}
  // Anna's contact row: "email|language|notify_messages", or "" without one.
  std::string Contact() {
    return Query(
        "SELECT coalesce((SELECT email || '|' || language || '|' || notify_messages::text"
        " FROM contacts WHERE party_id = '" +
        std::string(kAnna) + "'), '')");
  }
};

events::v1::AccountVerified Verified(const std::string& email) {
  events::v1::AccountVerified e;
  e.set_tenant("09564000");
  e.set_account_id(kAnna);
  e.set_email(email);
  return e;
}

events::v1::PreferencesChanged Preferences(const std::string& language, bool messages) {
  events::v1::PreferencesChanged e;
  e.set_tenant("09564000");
  e.set_party_id(kAnna);
  e.set_language(language);
  e.set_messages(messages);
  e.set_status_changes(true);
  return e;
}

}  // namespace

TEST_CASE("account.verified: notifications go to the verified address, the latest one", "[integration]") {
  Fixture f;
  auto apply = [&](const events::v1::AccountVerified& e) { return f.Apply(OnAccountVerified, e); };
  REQUIRE(apply(Verified("anna@example.de")).ok());
  CHECK(f.Contact() == "anna@example.de|de|true");  // Before any preferences: German, notified.
  REQUIRE(apply(Verified("anna@example.de")).ok());
  REQUIRE(apply(Verified("anna.neu@example.de")).ok());
  CHECK(f.Contact() == "anna.neu@example.de|de|true");
  CHECK(f.Query("SELECT count(*) FROM contacts") == "1");

  auto stranger = Verified("x@example.de");
  stranger.set_account_id("not-a-uuid");
  CHECK(apply(stranger).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("preferences.changed: the language and the choice to be notified, keeping the address", "[integration]") {
  Fixture f;
  auto apply = [&](const events::v1::PreferencesChanged& e) { return f.Apply(OnPreferencesChanged, e); };
  REQUIRE(apply(Preferences("en", false)).ok());
  CHECK(f.Contact() == "|en|false");
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna@example.de")).ok());
  REQUIRE(apply(Preferences("de", true)).ok());
  REQUIRE(apply(Preferences("de", true)).ok());
  CHECK(f.Contact() == "anna@example.de|de|true");

  CHECK(apply(Preferences("fr", true)).code() == absl::StatusCode::kInvalidArgument);
  auto other = Preferences("en", true);
  other.set_tenant("Nürnberg");
  CHECK(apply(other).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Contact() == "anna@example.de|de|true");
}

TEST_CASE("messaging's consumer refuses a payload that is not its topic's message", "[integration]") {
  Fixture f;
  auto event = events::EventOf("accounts-3", kAnna, Preferences("en", false));
  event.payload["messages"] = {{"enabled", false}};
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  event = events::EventOf("identity-3", kAnna, Verified("anna@example.de"));
  event.payload = "anna@example.de";
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Contact().empty());
  // The same messages, well-formed, are handled.
  REQUIRE(f.Handle(events::EventOf("identity-4", kAnna, Verified("anna@example.de"))).ok());
  CHECK(f.Contact() == "anna@example.de|de|true");
}

}  // namespace stadtportal::messaging

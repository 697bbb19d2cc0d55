#include "services/messaging/consumers.h"

#include <catch2/catch.hpp>

#include "libs/events/testing.h"
#include "libs/mail/mail.h"
#include "services/messaging/store.h"

namespace stadtportal::messaging {
namespace {

constexpr char kAnna[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";

struct Fixture : events::HandlerTest {
  Fixture()
      : HandlerTest(
            "messaging",
            [](pqxx::connection& c) {
              Store::Prepare(c);
              mail::Outbox::Prepare(c);
            },
            Consumers(std::make_shared<const Templates>(*Templates::Embedded()), TestOptions())) {}
  static Options TestOptions() {
    Options o;
    o.public_url = "https://stadtportal.example";
    o.portal_name = "Stadtportal Nürnberg";
    return o;
  }
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

namespace {

events::v1::ReminderDue Reminder(const std::string& id = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d") {
  events::v1::ReminderDue e;
  e.set_tenant("09564000");
  e.set_reminder_id(id);
  e.set_party_id(kAnna);
  e.set_party_kind("person");
  e.set_document_id("8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e");
  e.set_document_type("residential_parking_permit");
  e.set_document_name_de("Bewohnerparkausweis");
  e.set_document_name_en("Residential parking permit");
  e.set_label("M-AB 123");
  e.set_expires_on("2027-03-01");
  e.set_renewal_service_id("residential-parking-permit");
  return e;
}

absl::Status Remind(Fixture& f, const events::v1::ReminderDue& e) {
  return f.Handle(events::EventOf("accounts-" + e.reminder_id(), e.party_id(), e));
}

std::string Mails(Fixture& f) { return f.Query("SELECT count(*) FROM mail_outbox"); }

}  // namespace

TEST_CASE("reminder.due: one mailbox message and, as the party wants it, one mail with the renewal link",
          "[integration]") {
  Fixture f;
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna@example.de")).ok());
  REQUIRE(Remind(f, Reminder()).ok());
  // The event again (at-least-once delivery, another event id): still one message, one mail.
  REQUIRE(Remind(f, Reminder()).ok());
  CHECK(f.Query("SELECT count(*) FROM messages") == "1");
  // The reminder in the mailbox is published once, as a reminder.
  CHECK(f.Query("SELECT count(*) FROM outbox WHERE topic = 'message.received'") == "1");
  CHECK(f.Query("SELECT payload->>'kind' || '|' || key || '|' || (payload->>'message_id' = (SELECT id::text FROM"
                " messages)) FROM outbox WHERE topic = 'message.received'") ==
        "reminder|" + std::string(kAnna) + "|true");
  CHECK(f.Query("SELECT party_id::text || '|' || sender_kind || '|' || subject FROM messages") ==
        std::string(kAnna) + "|system|Erinnerung: Bewohnerparkausweis läuft am 01.03.2027 ab");
  const std::string link = "https://stadtportal.example/dokumente/8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e/verlaengern";
  CHECK(f.Query("SELECT body FROM messages").find(link) != std::string::npos);
  REQUIRE(Mails(f) == "1");
  CHECK(f.Query("SELECT recipient FROM mail_outbox") == "anna@example.de");
  const auto body = f.Query("SELECT body FROM mail_outbox");
  CHECK(body.find(link) != std::string::npos);
  CHECK(body.find("01.03.2027") != std::string::npos);
  CHECK(body.find("Bewohnerparkausweis (M-AB 123)") != std::string::npos);
  CHECK(body.find("https://stadtportal.example/postfach/") != std::string::npos);

  // A second reminder, in English, for a document no online service renews.
  auto en = Preferences("en", true);
  REQUIRE(f.Apply(OnPreferencesChanged, en).ok());
  auto passport = Reminder("9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f");
  passport.set_document_name_en("Passport");
  passport.set_label("");
  passport.set_renewal_service_id("");
  REQUIRE(Remind(f, passport).ok());
  CHECK(f.Query("SELECT subject FROM messages ORDER BY seq DESC LIMIT 1") ==
        "Reminder: Passport expires on 2027-03-01");
  CHECK(Mails(f) == "2");
  CHECK(f.Query("SELECT subject FROM mail_outbox ORDER BY id DESC LIMIT 1") == "Reminder: Passport expires soon");
  const auto english = f.Query("SELECT body FROM mail_outbox ORDER BY id DESC LIMIT 1");
  CHECK(english.find("To apply for its renewal: https://stadtportal.example/dokumente") != std::string::npos);
  CHECK(english.find("verlaengern") == std::string::npos);
}

TEST_CASE("reminder.due: no mail without an address or when the party declined reminder mails", "[integration]") {
  Fixture f;
  REQUIRE(Remind(f, Reminder()).ok());  // No contact at all: the mailbox only.
  CHECK(f.Query("SELECT count(*) FROM messages") == "1");
  CHECK(Mails(f) == "0");
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna@example.de")).ok());
  auto off = Preferences("de", true);
  off.set_reminders(false);
  REQUIRE(f.Apply(OnPreferencesChanged, off).ok());
  REQUIRE(Remind(f, Reminder("0d1e2f3a-4b5c-4d6e-9f7a-8b9c0d1e2f3a")).ok());
  CHECK(f.Query("SELECT count(*) FROM messages") == "2");
  CHECK(Mails(f) == "0");
  // A publisher from before the field keeps the choice as it is.
  REQUIRE(f.Apply(OnPreferencesChanged, Preferences("de", true)).ok());
  CHECK(f.Query("SELECT notify_reminders::text FROM contacts") == "false");
  auto on = Preferences("de", false);  // Messages off, reminders on: the reminder mail goes.
  on.set_reminders(true);
  REQUIRE(f.Apply(OnPreferencesChanged, on).ok());
  REQUIRE(Remind(f, Reminder("1e2f3a4b-5c6d-4e7f-8a8b-9c0d1e2f3a4b")).ok());
  CHECK(Mails(f) == "1");
}

TEST_CASE("reminder.due: malformed messages are refused and change nothing", "[integration]") {
  Fixture f;
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna@example.de")).ok());
  std::vector<std::function<void(events::v1::ReminderDue&)>> breakers = {
      [](auto& e) { e.set_party_id("anna"); },
      [](auto& e) { e.set_reminder_id(""); },
      [](auto& e) { e.set_document_id("../../admin"); },
      [](auto& e) { e.set_party_kind("department"); },
      [](auto& e) { e.set_document_name_de("Ausweis\r\nBcc: x@example.org"); },
      [](auto& e) { e.set_document_name_en(""); },
      [](auto& e) { e.set_label("a\nb"); },
      [](auto& e) { e.set_expires_on("tomorrow"); },
      [](auto& e) { e.set_renewal_service_id("https://evil.example/"); },
      [](auto& e) { e.set_tenant(""); },
  };
  for (size_t i = 0; i < breakers.size(); ++i) {
    auto e = Reminder();
    breakers[i](e);
    INFO(i);
    CHECK(Remind(f, e).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Query("SELECT count(*) FROM messages") == "0");
  CHECK(Mails(f) == "0");
}

}  // namespace stadtportal::messaging

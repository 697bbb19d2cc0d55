#include "services/messaging/consumers.h"

#include <regex>

#include "libs/api/api.h"
#include "libs/app/retention.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/mail/mail.h"
#include "libs/status/status.h"
#include "services/messaging/store.h"

namespace stadtportal::messaging {
namespace {

absl::Status CheckParty(const std::string& party_id, const std::string& tenant) {
  if (auto s = api::ValidateUuid(party_id, "party_id"); !s.ok()) return s;
  if (!config::IsTenantKey(tenant)) return status::FieldError("tenant", "invalid");
  return absl::OkStatus();
}

// An event about an erased party (late, or delivered again) changes nothing: no contact,
// thread or mail comes back.
bool Erased(pqxx::work& tx, const std::string& party_id, const std::string& tenant, const std::string& topic) {
  if (!Store::IsErased(tx, tenant, party_id)) return false;
  log::Info("event about an erased party skipped", {{"topic", topic}});
  return true;
}

}  // namespace

absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e) {
  if (auto s = CheckParty(e.account_id(), e.tenant()); !s.ok()) return s;
  if (Erased(tx, e.account_id(), e.tenant(), "account.verified")) return absl::OkStatus();
  Store::SetContactEmail(tx, e.account_id(), e.tenant(), e.email());
  return absl::OkStatus();
}

absl::Status OnPreferencesChanged(pqxx::work& tx, const events::v1::PreferencesChanged& e) {
  if (auto s = CheckParty(e.party_id(), e.tenant()); !s.ok()) return s;
  if (e.language() != "de" && e.language() != "en") return status::FieldError("language", "invalid");
  if (Erased(tx, e.party_id(), e.tenant(), "preferences.changed")) return absl::OkStatus();
  Store::SetContactPreferences(tx, e.party_id(), e.tenant(), e.language(), e.messages(),
                               e.has_reminders() ? std::optional<bool>(e.reminders()) : std::nullopt);
  return absl::OkStatus();
}

absl::Status OnReminderDue(pqxx::work& tx, const events::v1::ReminderDue& e, const Templates& templates,
                           const Options& options) {
  // From accounts, and checked all the same: these values go into a mailbox and a mail.
  if (auto s = CheckParty(e.party_id(), e.tenant()); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.reminder_id(), "reminder_id"); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.document_id(), "document_id"); !s.ok()) return s;
  if (e.party_kind() != "person" && e.party_kind() != "organisation") {
    return status::FieldError("party_kind", "invalid_option");
  }
  if (auto s = api::ValidateText(e.document_name_de(), "document_name_de", 100); !s.ok()) return s;
  if (auto s = api::ValidateText(e.document_name_en(), "document_name_en", 100); !s.ok()) return s;
  if (!e.label().empty()) {
    if (auto s = api::ValidateText(e.label(), "label", 80); !s.ok()) return s;
  }
  static const std::regex kDate("^[0-9]{4}-[0-9]{2}-[0-9]{2}$");
  if (!std::regex_match(e.expires_on(), kDate)) return status::FieldError("expires_on", "invalid_date");
  if (!e.renewal_service_id().empty()) {
    if (auto s = api::ValidateSlug(e.renewal_service_id(), "renewal_service_id"); !s.ok()) return s;
  }
  if (Erased(tx, e.party_id(), e.tenant(), "reminder.due")) return absl::OkStatus();
  const auto contact = Store::FindContact(tx, e.party_id());
  const bool en = contact.has_value() && contact->language == "en";
  const std::string name = en ? e.document_name_en() : e.document_name_de();
  const std::string document = e.label().empty() ? name : name + " (" + e.label() + ")";
  // 2027-03-01 → 01.03.2027 in German.
  const std::string date =
      en ? e.expires_on()
         : e.expires_on().substr(8, 2) + "." + e.expires_on().substr(5, 2) + "." + e.expires_on().substr(0, 4);
  const std::string renewal_url = e.renewal_service_id().empty()
                                      ? options.public_url + "/dokumente"
                                      : options.public_url + "/dokumente/" + e.document_id() + "/verlaengern";
  NewMessage m;
  m.tenant = e.tenant();
  m.party_id = e.party_id();
  m.party_kind = e.party_kind();
  m.sender_kind = "system";
  m.sender_name = options.portal_name;
  m.message_key = "reminder-" + e.reminder_id();
  m.reminder = true;
  if (en) {
    m.subject = "Reminder: " + name + " expires on " + date;
    m.body = document + " expires on " + date + ".\n\n" +
             (e.renewal_service_id().empty() ? "Your documents: " : "To apply for its renewal online: ") + renewal_url +
             "\n";
  } else {
    m.subject = "Erinnerung: " + name + " läuft am " + date + " ab";
    m.body = document + " läuft am " + date + " ab.\n\n" +
             (e.renewal_service_id().empty() ? "Ihre Dokumente: " : "Die Verlängerung beantragen Sie online hier: ") +
             renewal_url + "\n";
  }
  auto posted = Store::PostIn(tx, m, [&](pqxx::work& tx, const v1::Message& message) {
    // By e-mail only as the party wants it.
    if (!contact || contact->email.empty() || !contact->notify_reminders) return;
    auto rendered = templates.Render("reminder", contact->language, contact->email,
                                     {{"document", document},
                                      {"expires_on", date},
                                      {"renewal_url", renewal_url},
                                      {"mailbox_url", options.public_url + "/postfach/" + message.thread_id()},
                                      {"portal_name", options.portal_name}});
    if (!rendered.ok()) {
      log::Error("reminder mail not rendered", {{"error", std::string(rendered.status().message())}});
      return;
    }
    mail::Outbox::Enqueue(tx, m.tenant, *rendered);
  });
  return posted.status();
}

absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e) {
  if (auto s = CheckParty(e.party_id(), e.tenant()); !s.ok()) return s;
  const auto erased = Store::ErasePerson(tx, e.tenant(), e.party_id());
  const int64_t published = events::ErasePublished(tx, {e.party_id(), erased.email});
  log::Info("party erased", {{"party_id", e.party_id()},
                             {"threads", std::to_string(erased.threads)},
                             {"mails", std::to_string(erased.mails)},
                             {"contacts", std::to_string(erased.contacts)},
                             {"events", std::to_string(published)}});
  // Counted with the handler's success: the consumer commits right after it.
  if (erased.threads > 0) app::CountRetention("thread", "erased", erased.threads);
  return absl::OkStatus();
}

events::Handlers Consumers(std::shared_ptr<const Templates> templates, Options options) {
  events::Handlers h;
  h.On<events::v1::AccountVerified>(OnAccountVerified);
  h.On<events::v1::PreferencesChanged>(OnPreferencesChanged);
  h.On<events::v1::PartyErasureRequested>(OnPartyErasureRequested);
  h.On<events::v1::ReminderDue>(
      [templates, options = std::move(options)](pqxx::work& tx, const events::v1::ReminderDue& e) {
        return OnReminderDue(tx, e, *templates, options);
      });
  return h;
}

}  // namespace stadtportal::messaging

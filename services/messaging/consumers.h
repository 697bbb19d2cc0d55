#pragma once

#include <memory>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"
#include "services/messaging/service.h"
#include "services/messaging/templates.h"

// The events messaging consumes: where and whether to tell a party that something arrived.
// Each handler runs in the consumer's transaction (exactly once with its inbox); a message
// naming no party or tenant is refused (INVALID_ARGUMENT).
namespace stadtportal::messaging {

// account.verified from identity: notifications go to the verified address.
absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e);
// preferences.changed from accounts: the language and whether to notify of messages.
absl::Status OnPreferencesChanged(pqxx::work& tx, const events::v1::PreferencesChanged& e);

// reminder.due from accounts: a document of the party expires soon. Puts a message from
// the system into the party's mailbox (once per reminder: its message key) and, when the
// party's contact has an address and wants reminders by e-mail, queues the "reminder"
// mail in the same transaction, with the link that starts the renewal
// (<public url>/dokumente/<document id>/verlaengern; the portal's page for it calls
// POST /api/v1/me/documents/{id}/renewal) or, without an online renewal, the documents
// page (<public url>/dokumente). A malformed message is refused (INVALID_ARGUMENT).
absl::Status OnReminderDue(pqxx::work& tx, const events::v1::ReminderDue& e, const Templates& templates,
                           const Options& options);

// party.erasure_requested from identity: the person's mailbox goes except the threads a
// retention rule keeps (Store::ErasePerson, the same condition as ListRetainedRecords),
// with the contact, the mails to its address and the published events naming the party or
// the address; its tombstone stays, and the handlers above skip a later event about the
// party. Idempotent; a malformed message is refused (INVALID_ARGUMENT).
absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e);

// The handlers of messaging's consumer (`templates` and `options` for the reminders).
events::Handlers Consumers(std::shared_ptr<const Templates> templates, Options options);

}  // namespace stadtportal::messaging

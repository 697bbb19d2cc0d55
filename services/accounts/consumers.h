#pragma once

#include <memory>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"
#include "services/accounts/document_types.h"

// The events accounts consumes, each in the consumer's transaction (exactly once with its
// inbox).
namespace stadtportal::accounts {

// account.verified from identity: invitations are accepted only by their addressee's
// verified account; a malformed message is refused (INVALID_ARGUMENT).
absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e);

// account.identified from identity: what an upstream provider vouched for becomes the
// person's verified profile (provider, level, time), each value checked as a person's own
// would be; a value that fails is left out (logged by name), the others count. A
// malformed message is refused (INVALID_ARGUMENT). A company account's log-in (with
// organisation_id) makes or joins the organisation the provider vouched for
// (Store::RecordIdentified); its address is the organisation's.
absl::Status OnAccountIdentified(pqxx::work& tx, const events::v1::AccountIdentified& e);

// document.recorded from connector: a department's document (type, expiry) for the
// applicant's party, recorded once per submission and type, with its reminder scheduled
// while the person consents (Store::RecordDocument). A malformed message or an unknown
// type is refused (INVALID_ARGUMENT).
absl::Status OnDocumentRecorded(pqxx::work& tx, const events::v1::DocumentRecorded& e, const DocumentTypes& types);

// data.accessed from the service that served a read of a party's data by someone other
// than the party: one entry of the party's access log per event (its id). Checked as
// from outside: a tenant key, a party UUID, a known accessor kind and resource, bounded
// plain texts, a purpose, a time not in the future; INVALID_ARGUMENT otherwise, nothing kept.
absl::Status OnDataAccessed(pqxx::work& tx, const events::Event& event, const events::v1::DataAccessed& e);

// party.erasure_requested from identity: every row of the person goes and its tombstone
// stays (Store::ErasePerson), with the published events naming the party or its
// addresses. Idempotent; a malformed message is refused (INVALID_ARGUMENT).
absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e);

// The handlers of accounts' consumer. Every handler but the erasure's runs behind one
// check: an event about an erased party (late, or delivered again) changes nothing.
events::Handlers Consumers(std::shared_ptr<const DocumentTypes> types);

}  // namespace stadtportal::accounts

#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"

// The connector's event consumers: each runs in the consumer's transaction (libs/events).
namespace stadtportal::connector {

// A submission ready for its department becomes a pending delivery (once per submission).
// One for a destination the tenant has not registered is a dead letter at once, for an
// operator to see, register the destination and replay; one withdrawn before it arrived is
// withdrawn at once.
absl::Status OnReadyForDelivery(pqxx::work& tx, const events::v1::SubmissionReadyForDelivery& e);

// A withdrawn submission is not delivered any more: a pending or dead delivery is withdrawn
// (it stays listed with its attempts); a delivered one stays delivered.
absl::Status OnWithdrawn(pqxx::work& tx, const events::v1::SubmissionWithdrawn& e);

// The person asked for erasure: deliveries the department received lose snapshot and
// party, reads of the person's data on the access log lose the party; deliveries not yet
// received stay (Store::Erase). Idempotent.
absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e);

// All three, for the connector's consumer.
events::Handlers Consumers();

}  // namespace stadtportal::connector

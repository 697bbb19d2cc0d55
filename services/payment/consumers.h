#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"

// The events payment consumes: the erasure of a person. Each handler runs in the
// consumer's transaction (exactly once with its inbox); a malformed message is refused
// (INVALID_ARGUMENT).
namespace stadtportal::payment {

// The person asked for erasure: their payments that are no cash record are deleted, the
// retained ones stay (Store::Erase). Idempotent.
absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e);

// The handlers of payment's consumer.
events::Handlers Consumers();

}  // namespace stadtportal::payment

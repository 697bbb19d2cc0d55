#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"

// The events messaging consumes: where and whether to tell a party that something arrived.
// Each handler runs in the consumer's transaction (exactly once with its inbox); a message
// naming no party or tenant is refused (INVALID_ARGUMENT).
namespace stadtportal::messaging {

// account.verified from identity: notifications go to the verified address.
absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e);
// preferences.changed from accounts: the language and whether to notify of messages.
absl::Status OnPreferencesChanged(pqxx::work& tx, const events::v1::PreferencesChanged& e);

// The handlers of messaging's consumer.
events::Handlers Consumers();

}  // namespace stadtportal::messaging

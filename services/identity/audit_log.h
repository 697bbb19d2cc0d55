#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"

namespace stadtportal::identity {

// The consumer of `audit.recorded` events (audit::Record in the other services): checks
// the entry and keeps it in the audit log, naming the service from the event id;
// INVALID_ARGUMENT for a malformed entry (the event stays pending and is logged).
absl::Status ApplyAuditEvent(pqxx::work& tx, const events::Event& event);

}  // namespace stadtportal::identity

#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"

// The events identity consumes.
namespace stadtportal::identity {

// audit.recorded (audit::Record in the other services): checks the entry and keeps it in
// the audit log, naming the service from the event id; INVALID_ARGUMENT for a malformed
// entry (refused: logged and counted, never kept).
absl::Status OnAuditRecorded(pqxx::work& tx, const events::Event& event, const events::v1::AuditRecorded& recorded);

// The handlers of identity's consumer.
events::Handlers Consumers();

}  // namespace stadtportal::identity

#include "services/identity/audit_log.h"

#include "libs/audit/audit.h"
#include "services/identity/store.h"

namespace stadtportal::identity {

absl::Status ApplyAuditEvent(pqxx::work& tx, const events::Event& event) {
  auto entry = audit::Entry::FromJson(event.payload);
  if (!entry.ok()) return entry.status();
  // Event ids are "<service>-<outbox id>".
  Store::InsertAudit(tx, event.id.substr(0, event.id.find('-')), *entry);
  return absl::OkStatus();
}

}  // namespace stadtportal::identity

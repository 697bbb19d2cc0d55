#include "services/identity/consumers.h"

#include "libs/audit/audit.h"
#include "services/identity/store.h"

namespace stadtportal::identity {

absl::Status OnAuditRecorded(pqxx::work& tx, const events::Event& event, const events::v1::AuditRecorded& recorded) {
  auto entry = audit::Entry::FromEvent(recorded);
  if (!entry.ok()) return entry.status();
  // Event ids are "<service>-<outbox id>".
  Store::InsertAudit(tx, event.id.substr(0, event.id.find('-')), *entry);
  return absl::OkStatus();
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::AuditRecorded>(OnAuditRecorded);
  return h;
}

}  // namespace stadtportal::identity

#include "services/identity/consumers.h"

#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "libs/audit/audit.h"
#include "services/identity/store.h"

namespace stadtportal::identity {
namespace {

// The actions each service records on the audit log (audit::Of in its service.cc), by
// prefix; identity's own entries are written directly, never as events.
const std::map<std::string, std::vector<std::string>>& ActionsOf() {
  static const auto* actions = new std::map<std::string, std::vector<std::string>>{
      {"connector", {"destination.", "dead_letter."}},
      {"payment", {"refund."}},
  };
  return *actions;
}

}  // namespace

absl::Status OnAuditRecorded(pqxx::work& tx, const events::Event& event, const events::v1::AuditRecorded& recorded) {
  auto entry = audit::Entry::FromEvent(recorded);
  if (!entry.ok()) return entry.status();
  // Event ids are "<service>-<outbox id>"; a service records only its own actions.
  const std::string service = event.id.substr(0, event.id.find('-'));
  auto own = ActionsOf().find(service);
  if (own == ActionsOf().end()) return absl::InvalidArgumentError("audit entry: not from a service that records");
  bool allowed = false;
  for (const auto& prefix : own->second) allowed = allowed || absl::StartsWith(entry->action, prefix);
  if (!allowed) return absl::InvalidArgumentError("audit entry: action not one of " + service + "'s");
  Store::InsertAudit(tx, service, *entry);
  return absl::OkStatus();
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::AuditRecorded>(OnAuditRecorded);
  return h;
}

}  // namespace stadtportal::identity

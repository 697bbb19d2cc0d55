#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "libs/auth/caller.h"
#include "stadtportal/events/v1/events.pb.h"

// The audit log of administrative actions (docs/adr/0016-operators.md): who (account,
// session reference), what (action, target ids, outcome), when, and the request id.
// Every service records an entry in the transaction that makes the change, as an
// `audit.recorded` event (events::v1::AuditRecorded) through its outbox; identity keeps
// the one audit log and consumes the events into it exactly once.
namespace stadtportal::audit {

struct Entry {
  std::string tenant;
  std::string actor;        // The administrator's account id ("operator:<name>" for the command).
  std::string session_ref;  // Never the session id.
  std::string action;       // "<thing>.<verb>", e.g. "destination.put", "refund.create".
  nlohmann::json targets = nlohmann::json::object();  // The ids touched, e.g. {"payment_id": "…"}.
  std::string outcome = "succeeded";                  // "succeeded" | "refused" | "failed"
  std::string request_id;

  // The event that carries the entry to identity.
  events::v1::AuditRecorded ToEvent() const;
  // The entry an event carries; INVALID_ARGUMENT naming the field that is missing or
  // malformed (events come from other services: checked before they are kept).
  static absl::StatusOr<Entry> FromEvent(const events::v1::AuditRecorded& e);
};

// An entry for an action of `caller` in the current request (its request id is taken
// from the log scope grpcx::Handle binds).
Entry Of(const auth::Caller& caller, std::string action, nlohmann::json targets);

// Records `entry` in `tx`, the transaction of the action itself: the entry exists
// exactly when the action took effect.
void Record(pqxx::work& tx, const Entry& entry);

}  // namespace stadtportal::audit

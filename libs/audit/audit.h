#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "libs/auth/caller.h"
#include "libs/db/pool.h"
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

// A read of a party's data by someone other than the party, for the party's access log
// (docs/data-protection.md, "Who read my data"): published as `data.accessed` by the
// service that served the read, in the transaction of its own record of it (or as the
// record itself where it keeps none). Accounts lists them to the party.
struct Access {
  std::string tenant;
  std::string party_id;
  std::string accessor_kind;  // "back_office" | "partner" | "administrator"
  std::string accessor_id;    // The client id, or the administrator's account id.
  std::string accessor_name;  // The department or partner portal's name, or "administrator".
  std::string resource;       // "submission", "attachment", "mailbox", "profile", "account"
  std::string resource_id;    // "" for a list or a look-up.
  std::string reference;
  std::string action;   // "read", "list", "lookup", "download", …
  std::string purpose;  // The administrator's reason, the partner's scope, the procedure.

  // The event, read at `occurred_at`.
  events::v1::DataAccessed ToEvent(const google::protobuf::Timestamp& occurred_at) const;
};

// A partner portal's read for the person as the caller token names it: accessor
// "partner", purpose the scope the gateway let the call in with. Only for callers with
// caller.partner().
Access PartnerRead(const auth::Caller& caller, std::string resource, std::string resource_id = "",
                   std::string reference = "", std::string action = "read");

// Publishes `access` in `tx` (key: the party id), at the transaction's time (the time its
// own record of the read carries).
void RecordAccess(pqxx::work& tx, const Access& access);
// The same in a transaction of its own, for services that keep no record of the read
// themselves: the event is the record. Called before the read is answered; a failure
// fails the read.
absl::Status RecordAccess(db::Pool& pool, const Access& access);

}  // namespace stadtportal::audit

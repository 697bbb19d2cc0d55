#include "libs/audit/audit.h"

#include <regex>
#include <tuple>

#include <google/protobuf/util/time_util.h>

#include "libs/events/events.h"
#include "libs/log/log.h"

namespace stadtportal::audit {

events::v1::AuditRecorded Entry::ToEvent() const {
  events::v1::AuditRecorded e;
  e.set_tenant(tenant);
  e.set_actor(actor);
  e.set_session_ref(session_ref);
  e.set_action(action);
  // Targets are a JSON object by construction (Of, or an object literal).
  (void)events::FromJson(targets.is_object() ? targets : nlohmann::json::object(), e.mutable_targets());
  e.set_outcome(outcome);
  e.set_request_id(request_id);
  return e;
}

absl::StatusOr<Entry> Entry::FromEvent(const events::v1::AuditRecorded& event) {
  static const std::regex kTenant("^[0-9]{8}$");
  static const std::regex kAction("^[a-z_]+\\.[a-z_]+$");
  Entry e;
  for (auto [name, field, value] :
       {std::make_tuple("tenant", &e.tenant, &event.tenant()), std::make_tuple("actor", &e.actor, &event.actor()),
        std::make_tuple("session_ref", &e.session_ref, &event.session_ref()),
        std::make_tuple("action", &e.action, &event.action()), std::make_tuple("outcome", &e.outcome, &event.outcome()),
        std::make_tuple("request_id", &e.request_id, &event.request_id())}) {
    if (value->size() > 200) return absl::InvalidArgumentError(std::string("audit entry: ") + name + " too long");
    *field = *value;
  }
  if (!std::regex_match(e.tenant, kTenant)) return absl::InvalidArgumentError("audit entry: tenant malformed");
  if (!std::regex_match(e.action, kAction)) return absl::InvalidArgumentError("audit entry: action malformed");
  if (e.actor.empty()) return absl::InvalidArgumentError("audit entry: actor missing");
  if (e.outcome != "succeeded" && e.outcome != "refused" && e.outcome != "failed")
    return absl::InvalidArgumentError("audit entry: outcome");
  e.targets = events::ToJson(event.targets());
  return e;
}

Entry Of(const auth::Caller& caller, std::string action, nlohmann::json targets) {
  Entry e;
  e.tenant = caller.tenant;
  e.actor = caller.account_id;
  e.session_ref = caller.session_ref;
  e.action = std::move(action);
  e.targets = std::move(targets);
  e.request_id = log::CurrentRequestId();
  return e;
}

void Record(pqxx::work& tx, const Entry& entry) { events::Publish(tx, entry.actor, entry.ToEvent()); }

events::v1::DataAccessed Access::ToEvent(const google::protobuf::Timestamp& occurred_at) const {
  events::v1::DataAccessed e;
  e.set_tenant(tenant);
  e.set_party_id(party_id);
  e.set_accessor_kind(accessor_kind);
  e.set_accessor_id(accessor_id);
  e.set_accessor_name(accessor_name);
  e.set_resource(resource);
  e.set_resource_id(resource_id);
  e.set_reference(reference);
  e.set_action(action);
  e.set_purpose(purpose);
  *e.mutable_occurred_at() = occurred_at;
  return e;
}

Access PartnerRead(const auth::Caller& caller, std::string resource, std::string resource_id, std::string reference,
                   std::string action) {
  Access a;
  a.tenant = caller.tenant;
  // A partner reads for the person themself (the verifier refuses an acting party).
  a.party_id = caller.account_id;
  a.accessor_kind = "partner";
  a.accessor_id = caller.partner_id;
  a.accessor_name = caller.partner_name;
  a.resource = std::move(resource);
  a.resource_id = std::move(resource_id);
  a.reference = std::move(reference);
  a.action = std::move(action);
  a.purpose = caller.partner_scope;
  return a;
}

void RecordAccess(pqxx::work& tx, const Access& access) {
  events::Publish(tx, access.party_id, access.ToEvent(events::TransactionTime(tx)));
}

absl::Status RecordAccess(db::Pool& pool, const Access& access) {
  return pool.Transact([&](pqxx::work& tx) {
    RecordAccess(tx, access);
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::audit

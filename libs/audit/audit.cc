#include "libs/audit/audit.h"

#include <regex>

#include "libs/events/events.h"
#include "libs/log/log.h"

namespace stadtportal::audit {

nlohmann::json Entry::ToJson() const {
  return {{"tenant", tenant},   {"actor", actor},     {"session_ref", session_ref}, {"action", action},
          {"targets", targets}, {"outcome", outcome}, {"request_id", request_id}};
}

absl::StatusOr<Entry> Entry::FromJson(const nlohmann::json& j) {
  static const std::regex kTenant("^[0-9]{8}$");
  static const std::regex kAction("^[a-z_]+\\.[a-z_]+$");
  if (!j.is_object()) return absl::InvalidArgumentError("audit entry: not an object");
  Entry e;
  for (auto [name, field] : {std::make_pair("tenant", &e.tenant), std::make_pair("actor", &e.actor),
                             std::make_pair("session_ref", &e.session_ref), std::make_pair("action", &e.action),
                             std::make_pair("outcome", &e.outcome), std::make_pair("request_id", &e.request_id)}) {
    if (!j.contains(name) || !j[name].is_string() || j[name].get_ref<const std::string&>().size() > 200) {
      return absl::InvalidArgumentError(std::string("audit entry: ") + name + " missing or malformed");
    }
    *field = j[name].get<std::string>();
  }
  if (!std::regex_match(e.tenant, kTenant)) return absl::InvalidArgumentError("audit entry: tenant malformed");
  if (!std::regex_match(e.action, kAction)) return absl::InvalidArgumentError("audit entry: action malformed");
  if (e.actor.empty()) return absl::InvalidArgumentError("audit entry: actor missing");
  if (e.outcome != "succeeded" && e.outcome != "refused" && e.outcome != "failed")
    return absl::InvalidArgumentError("audit entry: outcome");
  if (!j.contains("targets") || !j["targets"].is_object()) return absl::InvalidArgumentError("audit entry: targets");
  e.targets = j["targets"];
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

void Record(pqxx::work& tx, const Entry& entry) { events::PublishJson(tx, kTopic, entry.actor, entry.ToJson()); }

}  // namespace stadtportal::audit

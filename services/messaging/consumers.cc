#include "services/messaging/consumers.h"

#include "libs/api/api.h"
#include "libs/config/config.h"
#include "libs/status/status.h"
#include "services/messaging/store.h"

namespace stadtportal::messaging {
namespace {

absl::Status CheckParty(const std::string& party_id, const std::string& tenant) {
  if (auto s = api::ValidateUuid(party_id, "party_id"); !s.ok()) return s;
  if (!config::IsTenantKey(tenant)) return status::FieldError("tenant", "invalid");
  return absl::OkStatus();
}

}  // namespace

absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e) {
  if (auto s = CheckParty(e.account_id(), e.tenant()); !s.ok()) return s;
  Store::SetContactEmail(tx, e.account_id(), e.tenant(), e.email());
  return absl::OkStatus();
}

absl::Status OnPreferencesChanged(pqxx::work& tx, const events::v1::PreferencesChanged& e) {
  if (auto s = CheckParty(e.party_id(), e.tenant()); !s.ok()) return s;
  if (e.language() != "de" && e.language() != "en") return status::FieldError("language", "invalid");
  Store::SetContactPreferences(tx, e.party_id(), e.tenant(), e.language(), e.messages());
  return absl::OkStatus();
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::AccountVerified>(OnAccountVerified);
  h.On<events::v1::PreferencesChanged>(OnPreferencesChanged);
  return h;
}

}  // namespace stadtportal::messaging

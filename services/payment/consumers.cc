#include "services/payment/consumers.h"

#include "libs/api/api.h"
#include "libs/app/retention.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/payment/store.h"

namespace stadtportal::payment {

absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e) {
  if (!config::IsTenantKey(e.tenant())) return status::FieldError("tenant", "invalid");
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  auto erased = Store::Erase(tx, e.tenant(), e.party_id());
  if (!erased.ok()) return erased.status();
  // Counted when the handler is done; a transaction that then fails is retried and counted again.
  app::CountRetention("payment", "erased", erased->payments);
  app::CountRetention("event", "erased", erased->events);
  log::Info("party erased", {{"party", e.party_id()},
                             {"payments", std::to_string(erased->payments)},
                             {"events", std::to_string(erased->events)}});
  return absl::OkStatus();
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::PartyErasureRequested>(OnPartyErasureRequested);
  return h;
}

}  // namespace stadtportal::payment

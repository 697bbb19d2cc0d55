#include "services/connector/consumers.h"

#include "libs/api/api.h"
#include "libs/app/retention.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/connector/store.h"

namespace stadtportal::connector {
namespace {

absl::Status CheckTenant(const std::string& tenant) {
  if (!config::IsTenantKey(tenant)) return status::FieldError("tenant", "invalid");
  return absl::OkStatus();
}

}  // namespace

absl::Status OnReadyForDelivery(pqxx::work& tx, const events::v1::SubmissionReadyForDelivery& e) {
  // Refused (INVALID_ARGUMENT) rather than stored: the event can never become a delivery.
  if (auto s = CheckTenant(e.tenant()); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.submission_id(), "submission_id"); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  if (auto s = api::ValidateSlug(e.destination(), "destination"); !s.ok()) return s;
  if (auto s = api::ValidateText(e.reference(), "reference", 100); !s.ok()) return s;
  if (auto s = api::ValidateSlug(e.service_id(), "service_id"); !s.ok()) return s;
  if (!Store::AddDelivery(tx, e.tenant(), e.submission_id(), e.destination(), e.party_id(), e.reference(),
                          e.service_id())) {
    return absl::OkStatus();  // Known already: its state is the worker's and the operators'.
  }
  if (Store::WasWithdrawn(tx, e.tenant(), e.submission_id())) {
    Store::Withdraw(tx, e.tenant(), e.submission_id());
    return absl::OkStatus();
  }
  if (!Store::HasDestination(tx, e.tenant(), e.destination())) {
    // Nowhere to deliver: an operator sees it among the dead letters at once.
    Store::DeadLetter(tx, e.submission_id(), "unknown destination " + e.destination());
    log::Warn("delivery to an unknown destination: dead letter",
              {{"submission", e.submission_id()}, {"destination", e.destination()}});
  }
  return absl::OkStatus();
}

absl::Status OnWithdrawn(pqxx::work& tx, const events::v1::SubmissionWithdrawn& e) {
  if (auto s = CheckTenant(e.tenant()); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.submission_id(), "submission_id"); !s.ok()) return s;
  if (Store::Withdraw(tx, e.tenant(), e.submission_id())) {
    log::Info("delivery withdrawn before delivery", {{"submission", e.submission_id()}});
  }
  return absl::OkStatus();
}

absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e) {
  if (auto s = CheckTenant(e.tenant()); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  auto erased = Store::Erase(tx, e.tenant(), e.party_id());
  if (!erased.ok()) return erased.status();
  // Counted when the handler is done; a transaction that then fails is retried and counted again.
  app::CountRetention("delivery", "erased", erased->deliveries);
  app::CountRetention("access_log", "erased", erased->reads);
  app::CountRetention("event", "erased", erased->events);
  log::Info("party erased", {{"party", e.party_id()},
                             {"deliveries", std::to_string(erased->deliveries)},
                             {"reads", std::to_string(erased->reads)},
                             {"events", std::to_string(erased->events)}});
  return absl::OkStatus();
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::SubmissionReadyForDelivery>(OnReadyForDelivery);
  h.On<events::v1::SubmissionWithdrawn>(OnWithdrawn);
  h.On<events::v1::PartyErasureRequested>(OnPartyErasureRequested);
  return h;
}

}  // namespace stadtportal::connector

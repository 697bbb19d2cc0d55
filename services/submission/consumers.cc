#include "services/submission/consumers.h"

#include <google/protobuf/util/time_util.h>

#include <regex>
#include <set>

#include "absl/time/clock.h"
#include "libs/api/api.h"
#include "libs/app/retention.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/submission/store.h"

namespace stadtportal::submission {
namespace {

// The tenant and the submission an event is about; refused (INVALID_ARGUMENT) when malformed.
absl::Status CheckSubmission(const std::string& tenant, const std::string& submission_id) {
  if (!config::IsTenantKey(tenant)) return status::FieldError("tenant", "invalid");
  return api::ValidateUuid(submission_id, "submission_id");
}

}  // namespace

absl::Status OnPaymentSucceeded(pqxx::work& tx, const events::v1::PaymentSucceeded& e) {
  if (auto s = CheckSubmission(e.tenant(), e.submission_id()); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.payment_id(), "payment_id"); !s.ok()) return s;
  return Store::MarkPaid(tx, e.tenant(), e.submission_id(), e.payment_id());
}

absl::Status OnPaymentFailed(pqxx::work& tx, const events::v1::PaymentFailed& e) {
  if (auto s = CheckSubmission(e.tenant(), e.submission_id()); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.payment_id(), "payment_id"); !s.ok()) return s;
  // A provider's key (a bounded label of the KPIs), one of the outcomes the contract names.
  static const std::regex kProvider("[a-z][a-z0-9_-]{0,31}");
  if (!std::regex_match(e.provider(), kProvider)) return status::FieldError("provider", "invalid");
  static const std::set<std::string> kOutcomes = {"declined", "cancelled", "expired", "provider_error"};
  if (kOutcomes.count(e.outcome()) == 0) return status::FieldError("outcome", "invalid");
  if (!e.has_occurred_at()) return status::FieldError("occurred_at", "required");
  // A moment of the platform's life: not before 2000, not ahead of this clock by more than
  // the replicas' drift.
  const int64_t at = e.occurred_at().seconds();
  if (at < 946684800 || at > absl::ToUnixSeconds(absl::Now()) + 3600) {
    return status::FieldError("occurred_at", "out_of_range");
  }
  return Store::RecordPaymentFailure(tx, e.tenant(), e.submission_id(), e.provider(), e.outcome(),
                                     google::protobuf::util::TimeUtil::ToString(e.occurred_at()));
}

absl::Status OnDeliveryDelivered(pqxx::work& tx, const events::v1::DeliveryDelivered& e) {
  if (auto s = CheckSubmission(e.tenant(), e.submission_id()); !s.ok()) return s;
  return Store::MarkDelivered(tx, e.tenant(), e.submission_id());
}

absl::Status OnDeliveryDelayed(pqxx::work& tx, const events::v1::DeliveryDelayed& e) {
  if (auto s = CheckSubmission(e.tenant(), e.submission_id()); !s.ok()) return s;
  return Store::MarkDelayed(tx, e.tenant(), e.submission_id());
}

absl::Status OnDeliveryAcknowledged(pqxx::work& tx, const events::v1::DeliveryAcknowledged& e) {
  if (auto s = CheckSubmission(e.tenant(), e.submission_id()); !s.ok()) return s;
  return Store::MarkReceived(tx, e.tenant(), e.submission_id());
}

absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e) {
  if (!config::IsTenantKey(e.tenant())) return status::FieldError("tenant", "invalid");
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  const std::string account_id = e.account_id().empty() ? e.party_id() : e.account_id();
  if (auto s = api::ValidateUuid(account_id, "account_id"); !s.ok()) return s;
  auto erased = Store::Erase(tx, e.tenant(), e.party_id(), account_id);
  if (!erased.ok()) return erased.status();
  // Counted when the handler is done; a transaction that then fails is retried and counted again.
  app::CountRetention("draft", "erased", erased->drafts);
  app::CountRetention("submission", "erased", erased->submissions + erased->authored);
  app::CountRetention("event", "erased", erased->events);
  log::Info("party erased", {{"party", e.party_id()},
                             {"drafts", std::to_string(erased->drafts)},
                             {"submissions", std::to_string(erased->submissions)},
                             {"authored", std::to_string(erased->authored)},
                             {"events", std::to_string(erased->events)}});
  return absl::OkStatus();
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::PaymentSucceeded>(OnPaymentSucceeded);
  h.On<events::v1::PaymentFailed>(OnPaymentFailed);
  h.On<events::v1::DeliveryDelivered>(OnDeliveryDelivered);
  h.On<events::v1::DeliveryDelayed>(OnDeliveryDelayed);
  h.On<events::v1::DeliveryAcknowledged>(OnDeliveryAcknowledged);
  h.On<events::v1::PartyErasureRequested>(OnPartyErasureRequested);
  return h;
}

}  // namespace stadtportal::submission

#include "services/submission/consumers.h"

#include "libs/api/api.h"
#include "libs/config/config.h"
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

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::PaymentSucceeded>(OnPaymentSucceeded);
  h.On<events::v1::DeliveryDelivered>(OnDeliveryDelivered);
  h.On<events::v1::DeliveryDelayed>(OnDeliveryDelayed);
  h.On<events::v1::DeliveryAcknowledged>(OnDeliveryAcknowledged);
  return h;
}

}  // namespace stadtportal::submission

#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "libs/events/events.h"

// The events submission consumes: payments, the connector's delivery reports and the
// erasure of a person. Each
// handler runs in the consumer's transaction (exactly once with its inbox); a message
// naming no submission id is refused (INVALID_ARGUMENT).
namespace stadtportal::submission {

// The fee is paid: awaiting_payment → paid, and on to delivery.
absl::Status OnPaymentSucceeded(pqxx::work& tx, const events::v1::PaymentSucceeded& e);
// A payment ended without money: counted for the KPIs (payment_failures); the submission
// stays awaiting payment.
absl::Status OnPaymentFailed(pqxx::work& tx, const events::v1::PaymentFailed& e);
// The department's system accepted the submission: delivered, the delay ends.
absl::Status OnDeliveryDelivered(pqxx::work& tx, const events::v1::DeliveryDelivered& e);
// The first delivery attempt failed: the applicant sees "delivery delayed".
absl::Status OnDeliveryDelayed(pqxx::work& tx, const events::v1::DeliveryDelayed& e);
// The department's back office acknowledged receipt: received_by_department.
absl::Status OnDeliveryAcknowledged(pqxx::work& tx, const events::v1::DeliveryAcknowledged& e);

// The person asked for erasure: drafts deleted with their files, submissions no retention
// rule keeps anonymised, retained ones untouched (Store::Erase). Idempotent.
absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e);

// The handlers of submission's consumer.
events::Handlers Consumers();

}  // namespace stadtportal::submission

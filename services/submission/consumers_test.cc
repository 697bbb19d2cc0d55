#include "services/submission/consumers.h"

#include <type_traits>

#include <catch2/catch.hpp>

#include "libs/events/testing.h"
#include "services/submission/catalogue.h"
#include "services/submission/store.h"

namespace stadtportal::submission {
namespace {

constexpr char kTenant[] = "09564000";
constexpr char kPayment[] = "7b2e4c1a-9f3d-4e8b-a6c5-1d2e3f4a5b6c";

struct Fixture : events::HandlerTest {
  Fixture() : HandlerTest("submission", Store::Prepare, Consumers()) {
    REQUIRE(Store(pool()).SyncCatalogue(*LoadCatalogue()).ok());
  }

  // A submission in `status`, as Submit and the status changes before would leave it.
  std::string Insert(const std::string& status) {
    return Query(
        "INSERT INTO submissions (id, tenant, party_id, account_id, service_id, form_version, reference, status, data,"
        " fee_minor, fee_currency, draft_id, idempotency_key) SELECT gen_random_uuid(), '09564000',"
        " gen_random_uuid(), gen_random_uuid(), 'dog-tax-registration', 1, 'NUE-2026-' || (1000 + count(*)), '" +
        status + "', '{}', 0, 'EUR', gen_random_uuid(), 'k' FROM submissions RETURNING id");
  }
  std::string Status(const std::string& id) { return Query("SELECT status FROM submissions WHERE id = '" + id + "'"); }
  bool Delayed(const std::string& id) {
    return Query("SELECT delivery_delayed FROM submissions WHERE id = '" + id + "'") == "t";
  }
  std::string History(const std::string& id) {
    return Query(
        "SELECT coalesce(string_agg(status, ',' ORDER BY seq), '') FROM submission_history"
        " WHERE submission_id = '" +
        id + "'");
  }
};

template <class M>
M About(const std::string& id, const std::string& tenant = kTenant) {
  M m;
  m.set_tenant(tenant);
  m.set_submission_id(id);
  if constexpr (std::is_same_v<M, events::v1::PaymentSucceeded>) m.set_payment_id(kPayment);
  return m;
}

}  // namespace

TEST_CASE("payment.succeeded: awaiting payment becomes paid and ready for delivery, once", "[integration]") {
  Fixture f;
  const std::string id = f.Insert("awaiting_payment");
  auto paid = About<events::v1::PaymentSucceeded>(id);
  for (int i = 0; i < 2; ++i) REQUIRE(f.Apply(OnPaymentSucceeded, paid).ok());  // The second changes nothing.
  CHECK(f.Status(id) == "paid");
  CHECK(f.History(id) == "paid");
  auto ready = nlohmann::json::parse(
      f.Query("SELECT payload::text FROM outbox WHERE topic = 'submission.ready_for_delivery' AND key = '" + id + "'"));
  CHECK(ready["payment_id"] == kPayment);
  CHECK(ready["destination"] == f.Query("SELECT destination FROM online_services WHERE tenant = "
                                        "'09564000' AND id = 'dog-tax-registration'"));
  CHECK(f.Query("SELECT count(*) FROM outbox WHERE topic = 'submission.ready_for_delivery'") == "1");
  // The status change is published once, from awaiting_payment.
  CHECK(f.Query("SELECT string_agg(payload->>'previous_status' || '>' || (payload->>'status'), ',') FROM outbox"
                " WHERE topic = 'submission.status_changed'") == "awaiting_payment>paid");
  CHECK(f.Query("SELECT count(*) FROM outbox WHERE topic <> 'catalogue.changed'") == "2");

  // A withdrawn submission stays withdrawn; another tenant's is not touched.
  const std::string withdrawn = f.Insert("withdrawn");
  REQUIRE(f.Apply(OnPaymentSucceeded, About<events::v1::PaymentSucceeded>(withdrawn)).ok());
  CHECK(f.Status(withdrawn) == "withdrawn");
  const std::string waiting = f.Insert("awaiting_payment");
  REQUIRE(f.Apply(OnPaymentSucceeded, About<events::v1::PaymentSucceeded>(waiting, "09162000")).ok());
  CHECK(f.Status(waiting) == "awaiting_payment");
  CHECK(f.Query("SELECT count(*) FROM outbox WHERE topic <> 'catalogue.changed'") == "2");
}

TEST_CASE("delivery.delivered: delivered once; a later status stays", "[integration]") {
  Fixture f;
  const std::string id = f.Insert("paid");
  for (int i = 0; i < 2; ++i) REQUIRE(f.Apply(OnDeliveryDelivered, About<events::v1::DeliveryDelivered>(id)).ok());
  CHECK(f.Status(id) == "delivered");
  CHECK(f.History(id) == "delivered");

  // The back office acknowledged before the push was reported: received_by_department stays.
  const std::string received = f.Insert("received_by_department");
  REQUIRE(f.Apply(OnDeliveryDelivered, About<events::v1::DeliveryDelivered>(received)).ok());
  CHECK(f.Status(received) == "received_by_department");
  CHECK(f.History(received).empty());
}

TEST_CASE("delivery.delayed: the applicant sees the delay until the submission is delivered", "[integration]") {
  Fixture f;
  const std::string id = f.Insert("submitted");
  for (int i = 0; i < 2; ++i) REQUIRE(f.Apply(OnDeliveryDelayed, About<events::v1::DeliveryDelayed>(id)).ok());
  CHECK(f.Delayed(id));
  CHECK(f.Status(id) == "submitted");
  REQUIRE(f.Apply(OnDeliveryDelivered, About<events::v1::DeliveryDelivered>(id)).ok());
  CHECK_FALSE(f.Delayed(id));
  CHECK(f.Status(id) == "delivered");
}

TEST_CASE("delivery.acknowledged: received by the department, once; a decision stays", "[integration]") {
  Fixture f;
  const std::string id = f.Insert("delivered");
  for (int i = 0; i < 2; ++i) {
    REQUIRE(f.Apply(OnDeliveryAcknowledged, About<events::v1::DeliveryAcknowledged>(id)).ok());
  }
  CHECK(f.Status(id) == "received_by_department");
  CHECK(f.History(id) == "received_by_department");
  const std::string approved = f.Insert("approved");
  REQUIRE(f.Apply(OnDeliveryAcknowledged, About<events::v1::DeliveryAcknowledged>(approved)).ok());
  CHECK(f.Status(approved) == "approved");
}

TEST_CASE("submission's consumer refuses a payload that is not its topic's message", "[integration]") {
  Fixture f;
  const std::string id = f.Insert("awaiting_payment");
  auto event = events::EventOf("payment-1", id, About<events::v1::PaymentSucceeded>(id));
  event.payload["amount"] = "12 EUR";
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  // A message that names no submission can never apply either.
  event = events::EventOf("connector-1", id, About<events::v1::DeliveryDelivered>("'; DROP TABLE submissions; --"));
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Status(id) == "awaiting_payment");
}

TEST_CASE("submission's consumer refuses an event with a malformed tenant or id; nothing changes", "[integration]") {
  Fixture f;
  const std::string id = f.Insert("awaiting_payment");
  const std::string delivered = f.Insert("delivered");
  for (const std::string tenant : {"", "0956400", "09564000 ", "x9564000", "'; --"}) {
    INFO(tenant);
    CHECK(f.Apply(OnPaymentSucceeded, About<events::v1::PaymentSucceeded>(id, tenant)).code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(f.Apply(OnDeliveryDelivered, About<events::v1::DeliveryDelivered>(id, tenant)).code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(f.Apply(OnDeliveryDelayed, About<events::v1::DeliveryDelayed>(id, tenant)).code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(f.Apply(OnDeliveryAcknowledged, About<events::v1::DeliveryAcknowledged>(delivered, tenant)).code() ==
          absl::StatusCode::kInvalidArgument);
  }
  for (const std::string payment : {"", "pay-1", "7b2e4c1a-9f3d-4e8b-a6c5-1d2e3f4a5b6c'"}) {
    INFO(payment);
    auto paid = About<events::v1::PaymentSucceeded>(id);
    paid.set_payment_id(payment);
    CHECK(f.Apply(OnPaymentSucceeded, paid).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Status(id) == "awaiting_payment");
  CHECK_FALSE(f.Delayed(id));
  CHECK(f.Status(delivered) == "delivered");
  CHECK(f.Query("SELECT count(*) FROM outbox WHERE topic <> 'catalogue.changed'") == "0");
}

}  // namespace stadtportal::submission

namespace stadtportal::submission {

TEST_CASE("payment.failed: counted for the KPIs under the online service, nothing moves; hostile values refused",
          "[integration][kpi]") {
  Fixture f;
  const std::string id = f.Insert("awaiting_payment");
  auto failed = About<events::v1::PaymentFailed>(id);
  failed.set_payment_id(kPayment);
  failed.set_provider("testpay");
  failed.set_outcome("declined");
  failed.mutable_occurred_at()->set_seconds(1772445600);  // 2026-03-02 10:00 UTC
  REQUIRE(f.Apply(OnPaymentFailed, failed).ok());
  CHECK(f.Status(id) == "awaiting_payment");
  // The day only, never the moment; the submission, never the person.
  CHECK(f.Query("SELECT concat_ws('|', service_id, submission_id, provider, outcome, day) FROM payment_failures") ==
        "dog-tax-registration|" + id + "|testpay|declined|2026-03-02");
  CHECK(f.Query("SELECT count(*) FROM kpi_dirty_days WHERE service_id = 'dog-tax-registration'"
                " AND day = '2026-03-02'") == "1");
  // Not a submission of this deployment: skipped.
  auto unknown = failed;
  unknown.set_submission_id("3f2a4c1b-9e8d-4b7a-a6c5-0d1e2f3a4b5c");
  CHECK(f.Apply(OnPaymentFailed, unknown).ok());
  // Values that would become labels, rows or SQL are checked first.
  for (const std::string& provider : {std::string(), std::string("TestPay"), std::string("test pay"),
                                      std::string("'; DROP TABLE payment_failures; --"), std::string(40, 'p')}) {
    INFO(provider);
    auto bad = failed;
    bad.set_provider(provider);
    CHECK(f.Apply(OnPaymentFailed, bad).code() == absl::StatusCode::kInvalidArgument);
  }
  for (const std::string outcome : {"", "success", "declined ", "other"}) {
    INFO(outcome);
    auto bad = failed;
    bad.set_outcome(outcome);
    CHECK(f.Apply(OnPaymentFailed, bad).code() == absl::StatusCode::kInvalidArgument);
  }
  auto no_time = failed;
  no_time.clear_occurred_at();
  CHECK(f.Apply(OnPaymentFailed, no_time).code() == absl::StatusCode::kInvalidArgument);
  for (const int64_t at : {int64_t{0}, int64_t{946684799}, absl::ToUnixSeconds(absl::Now()) + 86400}) {
    INFO(at);
    auto bad = failed;
    bad.mutable_occurred_at()->set_seconds(at);
    CHECK(f.Apply(OnPaymentFailed, bad).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Query("SELECT count(*) FROM payment_failures") == "1");
}

}  // namespace stadtportal::submission

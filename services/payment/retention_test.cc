#include <catch2/catch.hpp>

#include "absl/time/time.h"
#include "libs/app/retention.h"
#include "libs/testing/testing.h"
#include "services/payment/store.h"

namespace stadtportal::payment {
namespace {

constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
constexpr char kTenant[] = "09564000";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "payment"};
  db::Pool& pool = schema.pool(Store::Prepare);
  Store store{pool};

  // A finished payment of `party`, last changed at `changed` (a timestamptz literal).
  std::string Insert(const std::string& party, const std::string& changed, const std::string& state = "success") {
    return testing::QueryValue(
        pool,
        "INSERT INTO payments (tenant, party_id, party_kind, submission_id, amount_minor, currency,"
        " description, state, idempotency_key, request_fingerprint, reference, provider, provider_ref,"
        " finished, created_at, updated_at) VALUES ('09564000', '" +
            party + "', 'person', gen_random_uuid()::text, 1200, 'EUR', 'Urkunde', '" + state +
            "', gen_random_uuid()::text, 'fp', 'NUE-2026-000001', 'testpay', 'tp-123', true, '" + changed + "', '" +
            changed + "') RETURNING id::text");
  }
};

}  // namespace

TEST_CASE("a payment is kept ten years after the end of the year of its last change", "[integration][retention]") {
  Fixture f;
  // Paid half an hour into the new year in Nuremberg, still the old year in UTC.
  const std::string late = f.Insert(kAnna, "2026-12-31T23:30:00Z");
  CHECK(testing::QueryValue(f.pool, "SELECT retain_until::text FROM payments WHERE id = '" + late + "'") ==
        "2037-12-31");
  const std::string before = f.Insert(kAnna, "2026-12-31T22:30:00Z");  // 23:30 in Nuremberg.
  CHECK(testing::QueryValue(f.pool, "SELECT retain_until::text FROM payments WHERE id = '" + before + "'") ==
        "2036-12-31");
  // A refund the next year extends it (every change of the row is one).
  testing::QueryValue(f.pool,
                      "UPDATE payments SET refunded_minor = 200, updated_at = '2027-03-01T10:00:00Z'"
                      " WHERE id = '" +
                          before + "' RETURNING id");
  CHECK(testing::QueryValue(f.pool, "SELECT retain_until::text FROM payments WHERE id = '" + before + "'") ==
        "2037-12-31");

  auto retained = f.store.RetainedRecords(kTenant, kAnna);
  REQUIRE(retained.ok());
  REQUIRE(retained->records_size() == 2);
  for (const auto& r : retained->records()) {
    CHECK(r.service() == "payment");
    CHECK(r.kind() == "payment");
    CHECK(r.reference() == "NUE-2026-000001");
    CHECK(r.rule() == kCashRecordRule);
    CHECK(r.legal_basis() == kCashRecordLegalBasis);
    CHECK(r.until() == "2037-12-31");
  }
  CHECK(f.store.RetainedRecords(kTenant, kBen)->records_size() == 0);
  CHECK(f.store.RetainedRecords("09564001", kAnna)->records_size() == 0);
}

}  // namespace stadtportal::payment

namespace stadtportal::payment {

TEST_CASE("the retention job anonymises payments after their last day, on the clock's day in Nuremberg",
          "[integration][retention]") {
  Fixture f;
  const std::string old = f.Insert(kAnna, "2015-06-01T10:00:00Z");     // Kept until 2025-12-31.
  const std::string recent = f.Insert(kAnna, "2016-03-01T10:00:00Z");  // Until 2026-12-31.
  testing::QueryValue(f.pool, "INSERT INTO payment_events (payment_id, state, source, detail) VALUES ('" + old +
                                  "', 'started', 'api', '{\"provider_ref\": \"tp-123\"}') RETURNING 1");
  testing::QueryValue(f.pool,
                      "INSERT INTO refunds (payment_id, amount_minor, state, provider_ref, requested_by)"
                      " VALUES ('" +
                          old + "', 100, 'success', 'tp-r-1', 'system') RETURNING 1");
  auto run = [&](const std::string& now) {
    absl::Time t;
    std::string err;
    REQUIRE(absl::ParseTime(absl::RFC3339_full, now, &t, &err));
    auto ended = app::RunRetention(
        app::FixedClock(t), "payment", "anonymised",
        [&](absl::Time at, int limit) { return f.store.EndRetention(at, limit); }, 1);
    INFO(ended.status().message());
    REQUIRE(ended.ok());
    return *ended;
  };
  // 2025-12-31 in Nuremberg still: kept.
  CHECK(run("2025-12-31T22:59:00Z") == 0);
  // 2026-01-01 in Nuremberg: the first is anonymised, the second kept.
  CHECK(run("2025-12-31T23:00:00Z") == 1);
  CHECK(testing::QueryValue(f.pool,
                            "SELECT (party_id IS NULL AND provider_ref = '' AND anonymised_at IS NOT NULL"
                            " AND amount_minor = 1200 AND state = 'success' AND refunded_minor = 0)::text"
                            " FROM payments WHERE id = '" +
                                old + "'") == "true");
  CHECK(testing::QueryValue(f.pool, "SELECT detail::text FROM payment_events WHERE payment_id = '" + old + "'") ==
        "{}");
  CHECK(testing::QueryValue(
            f.pool, "SELECT provider_ref || amount_minor FROM refunds WHERE payment_id = '" + old + "'") == "100");
  CHECK(testing::QueryValue(f.pool, "SELECT party_id::text FROM payments WHERE id = '" + recent + "'") == kAnna);
  CHECK(f.store.RetainedRecords(kTenant, kAnna)->records_size() == 1);
  // The anonymised payment still reads (the report, a refund's check).
  auto row = f.store.Get(kTenant, old);
  REQUIRE(row.ok());
  CHECK(row->payment.party().id().empty());
  // Years later both are gone, in batches of one.
  CHECK(run("2030-01-01T00:00:00Z") == 1);
  CHECK(run("2030-01-01T00:00:00Z") == 0);
  // The history stays append-only for everything else.
  CHECK_THROWS(testing::QueryValue(f.pool, "UPDATE payment_events SET state = 'x' RETURNING 1"));
}

}  // namespace stadtportal::payment

// The person's own data: export, retained records and erasure (docs/data-protection.md).
#include <grpcpp/create_channel.h>
#include <catch2/catch.hpp>

#include "absl/strings/str_join.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/handler.h"
#include "libs/testing/json_schema.h"
#include "libs/testing/testing.h"
#include "services/payment/consumers.h"
#include "services/payment/service.h"

namespace stadtportal::payment {
namespace {

using namespace std::chrono_literals;

constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
constexpr char kTenant[] = "09564000";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "payment"};
  db::Pool& pool = schema.pool(Store::Prepare);
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  // Export and retained records ask no provider and no submission service.
  Service service{store,
                  {},
                  Options{},
                  grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
                  *auth::Signer::FromKey(auth::NewSigningKey("payment-test"), 60s, "payment")};
  grpc::ServerContext ctx;

  std::string Query(const std::string& sql) { return testing::QueryValue(pool, sql); }

  // A payment of `party` in `state`, with its history and the provider's reference.
  std::string Insert(const std::string& party, const std::string& state, const std::string& reference) {
    const bool finished = state == "success" || state == "failed" || state == "cancelled" || state == "error";
    const std::string id = Query(
        "INSERT INTO payments (tenant, party_id, party_kind, submission_id, amount_minor, currency, description,"
        " state, idempotency_key, request_fingerprint, reference, provider, provider_ref, finished)"
        " VALUES ('09564000', '" +
        party + "', 'person', gen_random_uuid()::text, 2400, 'EUR', 'Personenstandsurkunde', '" + state +
        "', gen_random_uuid()::text, 'fp', '" + reference + "', 'testpay', 'tp-" + reference + "', " +
        (finished ? "true" : "false") + ") RETURNING id::text");
    Query("WITH i AS (INSERT INTO payment_events (payment_id, state, source, detail) VALUES ('" + id +
          "', 'created', 'api', '{}'), ('" + id + "', 'started', 'api', '{\"provider_ref\": \"tp-" + reference +
          "\"}') RETURNING 1) SELECT count(*) FROM i");
    return id;
  }
  void Refund(const std::string& payment, const std::string& reason) {
    Query("INSERT INTO refunds (payment_id, amount_minor, state, reason, provider_ref, requested_by) VALUES ('" +
          payment + "', 2400, 'success', '" + reason + "', 'tp-r-1', 'system') RETURNING 1");
  }
  // A published event naming `party`, as the relay leaves it.
  void Published(const std::string& party) {
    Query(
        "INSERT INTO outbox (topic, key, payload, published_at) VALUES ('payment.succeeded', gen_random_uuid()::text,"
        " jsonb_build_object('party_id', '" +
        party + "'), now()) RETURNING 1");
  }
  int64_t Count(const std::string& sql) { return std::stoll(Query(sql)); }
};

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.account_id = id;
  c.tenant = kTenant;
  c.assurance = "low";
  return c;
}

absl::Status Erase(Fixture& f, const std::string& party) {
  events::v1::PartyErasureRequested e;
  e.set_tenant(kTenant);
  e.set_account_id(party);
  e.set_party_id(party);
  return f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); });
}

// Anna: a success with a refund, a failed one, one expired unpaid, one expired whose late
// money went back, one still open. Ben: a failed one.
struct Payments {
  std::string paid, failed, expired, late, open, bens;
};

Payments Populate(Fixture& f) {
  Payments p;
  p.paid = f.Insert(kAnna, "success", "NUE-2026-000001");
  f.Refund(p.paid, "");
  p.failed = f.Insert(kAnna, "failed", "NUE-2026-000002");
  p.expired = f.Insert(kAnna, "cancelled", "NUE-2026-000003");
  p.late = f.Insert(kAnna, "cancelled", "NUE-2026-000004");
  f.Refund(p.late, "late_success_refunded");
  p.open = f.Insert(kAnna, "started", "NUE-2026-000005");
  p.bens = f.Insert(kBen, "failed", "NUE-2026-000006");
  f.Published(kAnna);
  f.Published(kBen);
  return p;
}

}  // namespace

TEST_CASE("the export holds the person's payments and refunds without the provider's references", "[export]") {
  Fixture f;
  const Payments p = Populate(f);
  grpcx::TestCaller anna(Person(kAnna));
  common::v1::PersonalDataRequest req;
  common::v1::PersonalData data;
  REQUIRE(f.service.ExportPersonalData(&f.ctx, &req, &data).ok());
  CHECK(data.service() == "payment");
  CHECK(data.files_size() == 0);
  const auto j = nlohmann::json::parse(data.json());
  // As its schema describes it, which finds what it does not describe.
  const auto violations =
      testing::SchemaViolations(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/export/payment.schema.json", j);
  INFO(absl::StrJoin(violations, "\n"));
  CHECK(violations.empty());
  REQUIRE(j["payments"].size() == 5);
  const auto& paid = j["payments"][0];
  CHECK(paid["id"] == p.paid);
  CHECK(paid["reference"] == "NUE-2026-000001");
  CHECK(paid["state"] == "success");
  CHECK(paid["amount"]["amount_minor"] == 2400);
  CHECK(paid["amount"]["currency"] == "EUR");
  CHECK(paid["provider"] == "testpay");
  CHECK(paid["history"].size() == 2);
  CHECK(paid["history"][1]["state"] == "started");
  REQUIRE(paid["refunds"].size() == 1);
  CHECK(paid["refunds"][0]["state"] == "success");
  CHECK(paid["created_at"].get<std::string>().back() == 'Z');
  CHECK(j["payments"][4]["state"] == "started");
  // No provider references, checkout links, keys; nothing of Ben.
  CHECK(data.json().find("tp-") == std::string::npos);
  CHECK(data.json().find("provider_ref") == std::string::npos);
  CHECK(data.json().find("idempotency") == std::string::npos);
  CHECK(data.json().find(p.bens) == std::string::npos);
  CHECK(data.json().find("NUE-2026-000006") == std::string::npos);
}

TEST_CASE("only the person acting as themself exports payments and lists retained ones", "[export][erasure]") {
  Fixture f;
  Populate(f);
  auto organisation = Person(kAnna);
  organisation.acting_party = "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f";
  auto partner = Person(kAnna);
  partner.partner_id = "partner-portal";
  partner.partner_name = "Partner";
  auto admin = Person(kAnna);
  admin.roles = {"tenant-admin"};
  for (const auto& caller : {organisation, partner, admin}) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    common::v1::PersonalData data;
    CHECK(f.service.ExportPersonalData(&f.ctx, &req, &data).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    common::v1::RetainedRecords retained;
    CHECK(f.service.ListRetainedRecords(&f.ctx, &req, &retained).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  grpcx::TestCaller nobody(auth::Caller{});
  common::v1::PersonalDataRequest req;
  common::v1::PersonalData data;
  CHECK(f.service.ExportPersonalData(&f.ctx, &req, &data).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("erasure: payments where no money moved go, cash records and open ones stay, twice as once", "[erasure]") {
  Fixture f;
  const Payments p = Populate(f);
  auto listed = [&] {
    grpcx::TestCaller anna(Person(kAnna));
    common::v1::PersonalDataRequest req;
    common::v1::RetainedRecords retained;
    REQUIRE(f.service.ListRetainedRecords(&f.ctx, &req, &retained).ok());
    std::map<std::string, common::v1::RetainedRecord> by_id;
    for (const auto& r : retained.records()) by_id[r.id()] = r;
    return by_id;
  };
  const auto before = listed();
  REQUIRE(before.size() == 3);
  CHECK(before.count(p.paid) == 1);
  CHECK(before.count(p.late) == 1);
  CHECK(before.at(p.paid).rule() == kCashRecordRule);
  CHECK(before.at(p.paid).until().size() == 10);
  CHECK(before.at(p.open).rule() == kOpenPaymentRule);
  CHECK(before.at(p.open).until().empty());

  const auto bens = f.Query("SELECT count(*) FROM payments WHERE party_id = '" + std::string(kBen) + "'");
  REQUIRE(Erase(f, kAnna).ok());
  REQUIRE(Erase(f, kAnna).ok());  // Again: the same.

  // Exactly the retained payments still name Anna, untouched; the others are gone with their history.
  CHECK(f.Query("SELECT string_agg(id::text, ',' ORDER BY reference) FROM payments WHERE party_id = '" +
                std::string(kAnna) + "'") == p.paid + "," + p.late + "," + p.open);
  for (const auto& gone : {p.failed, p.expired}) {
    CHECK(f.Count("SELECT count(*) FROM payments WHERE id = '" + gone + "'") == 0);
    CHECK(f.Count("SELECT count(*) FROM payment_events WHERE payment_id = '" + gone + "'") == 0);
  }
  CHECK(f.Count("SELECT count(*) FROM payment_events WHERE payment_id = '" + p.paid +
                "' AND detail->>'provider_ref' = 'tp-NUE-2026-000001'") == 1);
  CHECK(f.Count("SELECT count(*) FROM refunds") == 2);
  CHECK(listed().size() == 3);
  // Published events naming Anna are gone; Ben's stay, as do his payments.
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE payload->>'party_id' = '" + std::string(kAnna) + "'") == 0);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE payload->>'party_id' = '" + std::string(kBen) + "'") == 1);
  CHECK(f.Query("SELECT count(*) FROM payments WHERE party_id = '" + std::string(kBen) + "'") == bens);
  CHECK(f.Count("SELECT count(*) FROM payment_events WHERE payment_id = '" + p.bens + "'") == 2);

  // The history stays append-only outside an erasure, and a cash record's even inside one.
  CHECK_THROWS(f.Query("WITH d AS (DELETE FROM payment_events WHERE payment_id = '" + p.bens +
                       "' RETURNING 1) SELECT count(*) FROM d"));
  CHECK_FALSE(f.pool
                  .Transact([&](pqxx::work& tx) {
                    tx.exec("SELECT set_config('stadtportal.erasure', 'on', true)");
                    tx.exec("DELETE FROM payment_events WHERE payment_id = '" + p.paid + "'");
                    return absl::OkStatus();
                  })
                  .ok());
  CHECK(f.Count("SELECT count(*) FROM payment_events WHERE payment_id = '" + p.paid + "'") == 2);
}

TEST_CASE("a malformed erasure event is refused and changes nothing", "[erasure]") {
  Fixture f;
  Populate(f);
  events::v1::PartyErasureRequested e;
  e.set_tenant(kTenant);
  e.set_party_id("' OR true --");
  auto s = f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); });
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  e.set_tenant("x");
  e.set_party_id(kAnna);
  s = f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); });
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Count("SELECT count(*) FROM payments") == 6);
}

}  // namespace stadtportal::payment

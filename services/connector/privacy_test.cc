// The person's own data: export, retained records and erasure; the snapshot's retention
// (docs/data-protection.md).
#include <map>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "libs/app/retention.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/testing/json_schema.h"
#include "services/connector/consumers.h"
#include "services/connector/service.h"
#include "services/connector/test_schema.h"

namespace stadtportal::connector {
namespace {

constexpr char kTenant[] = "09564000";
constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

struct Fixture : ConnectorSchema {
  // Submission and messaging are not called by these tests: channels to nowhere.
  Service service{store, Options{}, grpcx::MakeChannel("127.0.0.1:1"), grpcx::MakeChannel("127.0.0.1:1"),
                  *auth::Signer::FromKey(auth::NewSigningKey("t"), std::chrono::seconds(60), "connector")};
  grpc::ServerContext ctx;

  Fixture() {
    REQUIRE(Exec("INSERT INTO destinations (tenant, id, name, mode) VALUES ('09564000', 'standesamt',"
                 " 'Standesamt Nürnberg', 'pull')")
                .ok());
  }

  // A delivery of `party` in `state`, with a snapshot naming the party, read once by the back office.
  std::string Deliver(const std::string& party, const std::string& state, int n) {
    const std::string id = absl::StrCat("3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a", 10 + n);
    const std::string reference = absl::StrCat("NUE-2026-0000", 10 + n);
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  Store::AddDelivery(tx, kTenant, id, "standesamt", party, reference, "civil-registry-certificate");
                  tx.exec_params(
                      "UPDATE deliveries SET state = $2, snapshot = convert_to($3, 'UTF8'),"
                      " delivered_at = CASE WHEN $2 IN ('delivered', 'acknowledged') THEN now() END,"
                      " acknowledged_at = CASE WHEN $2 = 'acknowledged' THEN now() END"
                      " WHERE submission_id = $1::uuid",
                      id, state, "snapshot of " + party);
                  return absl::OkStatus();
                })
                .ok());
    audit::Access read;
    read.tenant = kTenant;
    read.accessor_kind = "back_office";
    read.accessor_id = "standesamt-client";
    read.accessor_name = "Standesamt";
    read.resource = "submission";
    read.resource_id = id;
    read.reference = reference;
    read.action = "read";
    read.purpose = "procedure: civil-registry-certificate";
    REQUIRE(store->LogAccess(read, id, "fetch").ok());
    return id;
  }
  // How many rows of each table of the schema hold `value` anywhere.
  std::map<std::string, int64_t> RowsNaming(const std::string& value) { return testing::RowsNaming(pool, value); }
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

std::map<std::string, common::v1::RetainedRecord> Retained(Fixture& f, const std::string& party) {
  grpcx::TestCaller as(Person(party));
  common::v1::PersonalDataRequest req;
  common::v1::RetainedRecords out;
  REQUIRE(f.service.ListRetainedRecords(&f.ctx, &req, &out).ok());
  std::map<std::string, common::v1::RetainedRecord> by_id;
  for (const auto& r : out.records()) by_id[r.id()] = r;
  return by_id;
}

}  // namespace

TEST_CASE("the export holds the person's deliveries and who read them, nothing of others", "[export]") {
  Fixture f;
  const auto received = f.Deliver(kAnna, "acknowledged", 1);
  const auto pending = f.Deliver(kAnna, "pending", 2);
  const auto bens = f.Deliver(kBen, "acknowledged", 3);
  grpcx::TestCaller anna(Person(kAnna));
  common::v1::PersonalDataRequest req;
  common::v1::PersonalData data;
  REQUIRE(f.service.ExportPersonalData(&f.ctx, &req, &data).ok());
  CHECK(data.service() == "connector");
  const auto j = nlohmann::json::parse(data.json());
  // As its schema describes it, which finds what it does not describe.
  const auto violations =
      testing::SchemaViolations(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/export/connector.schema.json", j);
  INFO(absl::StrJoin(violations, "\n"));
  CHECK(violations.empty());
  REQUIRE(j["deliveries"].size() == 2);
  const auto& d = j["deliveries"][0];
  CHECK(d["submission_id"] == received);
  CHECK(d["reference"] == "NUE-2026-000011");
  CHECK(d["destination_name"] == "Standesamt Nürnberg");
  CHECK(d["state"] == "acknowledged");
  CHECK(d["acknowledged_at"].get<std::string>().back() == 'Z');
  CHECK(j["deliveries"][1]["submission_id"] == pending);
  CHECK(j["deliveries"][1]["acknowledged_at"].is_null());
  REQUIRE(j["reads"].size() == 2);
  CHECK(j["reads"][0]["client_id"] == "standesamt-client");
  CHECK(j["reads"][0]["department"] == "Standesamt Nürnberg");
  CHECK(j["reads"][0]["action"] == "fetch");
  CHECK(j["reads"][0]["purpose"] == "procedure: civil-registry-certificate");
  CHECK(j["reads"][0]["submission_id"] == received);
  // Not the snapshot, and nothing of Ben.
  CHECK(data.json().find("snapshot") == std::string::npos);
  CHECK(data.json().find(bens) == std::string::npos);
  CHECK(data.json().find(kBen) == std::string::npos);
}

TEST_CASE("only the person acting as themself exports deliveries and lists retained ones", "[export][erasure]") {
  Fixture f;
  f.Deliver(kAnna, "pending", 1);
  auto organisation = Person(kAnna);
  organisation.acting_party = "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f";
  auto partner = Person(kAnna);
  partner.partner_id = "partner-portal";
  partner.partner_name = "Partner";
  auto back_office = Person(kAnna);
  back_office.roles = {"department", "destination:standesamt"};
  for (const auto& caller : {organisation, partner, back_office}) {
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

TEST_CASE("erasure: received deliveries and the access log forget the person, pending ones stay, twice as once",
          "[erasure]") {
  Fixture f;
  const auto received = f.Deliver(kAnna, "acknowledged", 1);
  const auto withdrawn = f.Deliver(kAnna, "withdrawn", 2);
  const auto pending = f.Deliver(kAnna, "pending", 3);
  const auto pushed = f.Deliver(kAnna, "delivered", 4);
  const auto dead = f.Deliver(kAnna, "dead", 5);
  const auto bens = f.Deliver(kBen, "acknowledged", 6);
  REQUIRE(f.Exec("UPDATE outbox SET published_at = now()").ok());

  const auto before = Retained(f, kAnna);
  CHECK(before.size() == 3);
  for (const auto& id : {pending, pushed, dead}) {
    REQUIRE(before.count(id) == 1);
    CHECK(before.at(id).kind() == "delivery");
    CHECK(before.at(id).rule() == kDeliveryRule);
    CHECK(before.at(id).until().empty());
  }
  const auto ben_before = f.RowsNaming(kBen);
  REQUIRE(Erase(f, kAnna).ok());
  const auto once = f.RowsNaming(kAnna);
  REQUIRE(Erase(f, kAnna).ok());
  CHECK(f.RowsNaming(kAnna) == once);

  // Only the three deliveries not received yet still name Anna (with their snapshots).
  CHECK(once == std::map<std::string, int64_t>{{"deliveries", 3}});
  CHECK(Retained(f, kAnna).size() == 3);
  for (const auto& id : {received, withdrawn}) {
    CHECK(f.Count("SELECT count(*) FROM deliveries WHERE submission_id = '" + id +
                  "' AND party_id IS NULL AND snapshot IS NULL AND reference <> ''") == 1);
  }
  // The reads stay on record (who, when, why) without the party.
  CHECK(f.Count("SELECT count(*) FROM access_log WHERE party_id IS NULL AND client_id = 'standesamt-client'"
                " AND purpose <> ''") == 5);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE payload->>'party_id' = '" + std::string(kAnna) + "'") == 0);
  // Ben is untouched.
  CHECK(f.RowsNaming(kBen) == ben_before);
  CHECK(f.Count("SELECT count(*) FROM deliveries WHERE submission_id = '" + bens + "' AND snapshot IS NOT NULL") == 1);

  // A back office reading the received submission later: on its record, published to no one.
  audit::Access read;
  read.tenant = kTenant;
  read.accessor_kind = "back_office";
  read.accessor_id = "standesamt-client";
  read.accessor_name = "Standesamt";
  read.resource = "submission";
  read.resource_id = received;
  read.reference = "NUE-2026-000011";
  read.action = "read";
  read.purpose = "procedure: civil-registry-certificate";
  const auto published = f.Count("SELECT count(*) FROM outbox");
  REQUIRE(f.store->LogAccess(read, received, "fetch").ok());
  CHECK(f.Count("SELECT count(*) FROM access_log WHERE submission_id = '" + received + "'") == 2);
  CHECK(f.Count("SELECT count(*) FROM outbox") == published);
}

TEST_CASE("a malformed erasure event is refused and changes nothing", "[erasure]") {
  Fixture f;
  f.Deliver(kAnna, "acknowledged", 1);
  events::v1::PartyErasureRequested e;
  e.set_tenant(kTenant);
  e.set_party_id("not-a-party");
  CHECK(f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); }).code() ==
        absl::StatusCode::kInvalidArgument);
  e.set_tenant("0956400");
  e.set_party_id(kAnna);
  CHECK(f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); }).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.Count("SELECT count(*) FROM deliveries WHERE party_id IS NOT NULL AND snapshot IS NOT NULL") == 1);
}

TEST_CASE("a delivery's snapshot is cleared the set number of days after the department acknowledged it",
          "[retention]") {
  Fixture f;
  const auto old = f.Deliver(kAnna, "acknowledged", 1);
  const auto recent = f.Deliver(kAnna, "acknowledged", 2);
  const auto pending = f.Deliver(kAnna, "pending", 3);
  REQUIRE(f.Exec("UPDATE deliveries SET acknowledged_at = '2026-01-01T10:00:00Z' WHERE submission_id = '" + old + "'")
              .ok());
  REQUIRE(
      f.Exec("UPDATE deliveries SET acknowledged_at = '2026-01-20T10:00:00Z' WHERE submission_id = '" + recent + "'")
          .ok());
  auto run = [&](const std::string& now, int days) {
    absl::Time t;
    std::string err;
    REQUIRE(absl::ParseTime(absl::RFC3339_full, now, &t, &err));
    auto cleared = app::RunRetention(
        app::FixedClock(t), "delivery_snapshot", "deleted",
        [&](absl::Time at, int limit) { return f.store->ClearSnapshots(at, days, limit); }, 1);
    INFO(cleared.status().message());
    REQUIRE(cleared.ok());
    return *cleared;
  };
  auto kept = [&](const std::string& id) {
    return f.Count("SELECT count(*) FROM deliveries WHERE submission_id = '" + id + "' AND snapshot IS NOT NULL") == 1;
  };
  CHECK(run("2026-01-31T09:59:00Z", 30) == 0);  // Not quite 30 days.
  CHECK(run("2026-01-31T10:00:00Z", 30) == 1);
  CHECK_FALSE(kept(old));
  CHECK(kept(recent));
  CHECK(kept(pending));
  // The delivery itself stays, with its party, for the procedure still running.
  CHECK(f.Count("SELECT count(*) FROM deliveries WHERE submission_id = '" + old + "' AND party_id = '" +
                std::string(kAnna) + "' AND state = 'acknowledged'") == 1);
  CHECK(run("2026-12-31T00:00:00Z", 30) == 1);  // The other one, once its days passed.
  CHECK(run("2026-12-31T00:00:00Z", 30) == 0);
  CHECK(kept(pending));  // Never while the department has not received it.
}

TEST_CASE("the snapshot's retention is read from the environment and bounded", "[retention]") {
  auto options = [](const std::map<std::string, std::string>& vars) {
    return Options::FromEnv(config::Env(vars), "09564000");
  };
  CHECK(options({}).snapshot_days == 30);
  CHECK(options({{"STADTPORTAL_DELIVERY_SNAPSHOT_DAYS", "7"}}).snapshot_days == 7);
  CHECK_THROWS_AS(options({{"STADTPORTAL_DELIVERY_SNAPSHOT_DAYS", "0"}}), config::Error);
  CHECK_THROWS_AS(options({{"STADTPORTAL_DELIVERY_SNAPSHOT_DAYS", "3651"}}), config::Error);
}

}  // namespace stadtportal::connector

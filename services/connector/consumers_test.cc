#include "services/connector/consumers.h"

#include <catch2/catch.hpp>

#include "services/connector/test_schema.h"

namespace stadtportal::connector {
namespace {

constexpr char kTenant[] = "09564000";
constexpr char kParty[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";

struct Consuming : ConnectorSchema {
  // Runs the connector's handlers on an event as its consumer does, in one transaction.
  template <class M>
  absl::Status Handle(const M& message) {
    events::Event e{"submission-" + std::to_string(++seq), std::string(events::Topic<M>::kName),
                    message.submission_id(), events::ToJson(message)};
    return pool.Transact([&](pqxx::work& tx) { return handlers(tx, e); });
  }
  int seq = 0;
  events::Handlers handlers = Consumers();
};

events::v1::SubmissionReadyForDelivery Ready(const std::string& id, const std::string& destination) {
  events::v1::SubmissionReadyForDelivery e;
  e.set_tenant(kTenant);
  e.set_submission_id(id);
  e.set_reference("NUE-2026-000001");
  e.set_party_id(kParty);
  e.set_service_id("civil-registry-certificate");
  e.set_destination(destination);
  return e;
}

events::v1::SubmissionWithdrawn Withdrawn(const std::string& id) {
  events::v1::SubmissionWithdrawn e;
  e.set_tenant(kTenant);
  e.set_submission_id(id);
  e.set_reference("NUE-2026-000001");
  e.set_service_id("civil-registry-certificate");
  return e;
}

}  // namespace

TEST_CASE("submission.ready_for_delivery: a pending delivery once per submission; malformed events are refused",
          "[integration]") {
  Consuming c;
  REQUIRE(c.Exec("INSERT INTO destinations (tenant, id, name, mode) VALUES ('09564000', 'standesamt', 'Amt', 'pull')")
              .ok());
  const std::string id = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b";
  REQUIRE(c.Handle(Ready(id, "standesamt")).ok());
  REQUIRE(c.Handle(Ready(id, "standesamt")).ok());  // A second event for it changes nothing.
  CHECK(c.State(id) == "pending");
  auto pending = c.store->ListDeliveries(kTenant, "standesamt", "pending", 10);
  REQUIRE(pending.ok());
  REQUIRE(pending->deliveries_size() == 1);
  CHECK(pending->deliveries(0).reference() == "NUE-2026-000001");
  CHECK(pending->deliveries(0).service_id() == "civil-registry-certificate");

  // Not a delivery: refused (INVALID_ARGUMENT, acknowledged and counted by the consumer), nothing stored.
  auto bad_id = Ready("not-a-uuid", "standesamt");
  CHECK(c.Handle(bad_id).code() == absl::StatusCode::kInvalidArgument);
  auto bad_destination = Ready("4f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b", "../etc");
  CHECK(c.Handle(bad_destination).code() == absl::StatusCode::kInvalidArgument);
  auto bad_tenant = Ready("4f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b", "standesamt");
  bad_tenant.set_tenant("x");
  CHECK(c.Handle(bad_tenant).code() == absl::StatusCode::kInvalidArgument);
  CHECK(c.State("4f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b") == "none");
  events::Event not_the_message{"submission-99", "submission.ready_for_delivery", id, nlohmann::json::array()};
  CHECK(c.pool.Transact([&](pqxx::work& tx) { return c.handlers(tx, not_the_message); }).code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("submission.ready_for_delivery to an unknown destination is a dead letter at once, replayed by an operator",
          "[integration]") {
  Consuming c;
  const std::string id = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b";
  REQUIRE(c.Handle(Ready(id, "standesamt")).ok());
  CHECK(c.State(id) == "dead");
  auto dead = c.store->ListDeliveries(kTenant, "", "dead", 10);
  REQUIRE(dead.ok());
  REQUIRE(dead->deliveries_size() == 1);
  CHECK(dead->deliveries(0).last_error() == "unknown destination standesamt");
  CHECK(dead->deliveries(0).attempts() == 1);
  // The same event again (a replayed stream) does not touch it.
  REQUIRE(c.Handle(Ready(id, "standesamt")).ok());
  CHECK(c.store->ListDeliveries(kTenant, "", "dead", 10)->deliveries_size() == 1);

  // The operator registers the destination and replays the dead letter.
  REQUIRE(c.Exec("INSERT INTO destinations (tenant, id, name, mode) VALUES ('09564000', 'standesamt', 'Amt', 'pull')")
              .ok());
  audit::Entry entry;
  entry.actor = "5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e";
  entry.action = "dead_letter.replay";
  auto replayed = c.store->Replay(kTenant, id, "", entry);
  REQUIRE(replayed.ok());
  CHECK(*replayed == 1);
  CHECK(c.State(id) == "pending");
  CHECK(*c.store->Replay(kTenant, id, "", entry) == 0);

  // A known destination is not a dead letter.
  const std::string other = "4f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b";
  REQUIRE(c.Handle(Ready(other, "standesamt")).ok());
  CHECK(c.State(other) == "pending");
}

TEST_CASE("submission.withdrawn: a delivery not yet delivered is withdrawn and never sent; a delivered one stays",
          "[integration]") {
  Consuming c;
  REQUIRE(c.Exec("INSERT INTO destinations (tenant, id, name, mode, endpoint_url, secret) VALUES"
                 " ('09564000', 'standesamt', 'Amt', 'push', 'http://127.0.0.1:9/inbox', repeat('s', 40))")
              .ok());
  const std::string pending = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a61";
  const std::string delivered = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a62";
  const std::string dead = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a63";
  const std::string early = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a64";
  for (const auto& id : {pending, delivered, dead}) REQUIRE(c.Handle(Ready(id, "standesamt")).ok());
  REQUIRE(c.Exec("UPDATE deliveries SET state = 'delivered', delivered_at = now() WHERE submission_id = '" + delivered +
                 "'")
              .ok());
  REQUIRE(c.Exec("UPDATE deliveries SET state = 'dead' WHERE submission_id = '" + dead + "'").ok());

  for (const auto& id : {pending, delivered, dead}) REQUIRE(c.Handle(Withdrawn(id)).ok());
  CHECK(c.State(pending) == "withdrawn");
  CHECK(c.State(dead) == "withdrawn");
  CHECK(c.State(delivered) == "delivered");
  // Visible to operators with the reason; not claimed for sending, not replayed.
  auto withdrawn = c.store->ListDeliveries(kTenant, "standesamt", "withdrawn", 10);
  REQUIRE(withdrawn.ok());
  REQUIRE(withdrawn->deliveries_size() == 2);
  CHECK(withdrawn->deliveries(0).last_error() == "withdrawn by the applicant before delivery");
  auto claimed = c.store->Claim(10, std::chrono::seconds(60), "lease");
  REQUIRE(claimed.ok());
  CHECK(claimed->empty());
  audit::Entry entry;
  entry.actor = "5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e";
  CHECK(*c.store->Replay(kTenant, "", "standesamt", entry) == 0);
  // Nor acknowledged by the back office.
  CHECK(c.store->Acknowledge(kTenant, "standesamt", pending).status().code() == absl::StatusCode::kFailedPrecondition);

  // A withdrawal that arrives before the submission's delivery withdraws it when it comes.
  REQUIRE(c.Handle(Withdrawn(early)).ok());
  CHECK(c.State(early) == "none");
  REQUIRE(c.Handle(Ready(early, "standesamt")).ok());
  CHECK(c.State(early) == "withdrawn");
  // Refused: not a submission id.
  CHECK(c.Handle(Withdrawn("nope")).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("submission.withdrawn of another tenant withdraws nothing, before or after the delivery arrives",
          "[integration]") {
  Consuming c;
  REQUIRE(c.Exec("INSERT INTO destinations (tenant, id, name, mode, endpoint_url, secret) VALUES"
                 " ('09564000', 'standesamt', 'Amt', 'push', 'http://127.0.0.1:9/inbox', repeat('s', 40))")
              .ok());
  auto foreign = [](const std::string& id) {
    auto e = Withdrawn(id);
    e.set_tenant("09162000");
    return e;
  };
  const std::string pending = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a71";
  REQUIRE(c.Handle(Ready(pending, "standesamt")).ok());
  REQUIRE(c.Handle(foreign(pending)).ok());
  CHECK(c.State(pending) == "pending");
  CHECK(c.Count("SELECT count(*) FROM deliveries WHERE state = 'withdrawn'") == 0);

  // Arriving before the delivery: the delivery comes pending all the same.
  const std::string early = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a72";
  REQUIRE(c.Handle(foreign(early)).ok());
  REQUIRE(c.Handle(Ready(early, "standesamt")).ok());
  CHECK(c.State(early) == "pending");

  // Nor does it take the place of the tenant's own withdrawal that arrives early too.
  const std::string withdrawn = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a73";
  REQUIRE(c.Handle(foreign(withdrawn)).ok());
  REQUIRE(c.Handle(Withdrawn(withdrawn)).ok());
  REQUIRE(c.Handle(Ready(withdrawn, "standesamt")).ok());
  CHECK(c.State(withdrawn) == "withdrawn");
  // The tenant's own withdrawal of the first still applies.
  REQUIRE(c.Handle(Withdrawn(pending)).ok());
  CHECK(c.State(pending) == "withdrawn");
}

}  // namespace stadtportal::connector

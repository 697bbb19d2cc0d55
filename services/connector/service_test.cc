#include "services/connector/service.h"

#include <catch2/catch.hpp>

#include "libs/auth/tokens.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"

namespace stadtportal::connector {
namespace {

auth::Caller Admin() {
  auth::Caller c;
  c.account_id = "5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e";
  c.tenant = "09564000";
  c.roles = {"tenant-admin"};
  return c;
}

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "connector"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  // Submission and messaging are not called by these tests: channels to nowhere.
  Service service{store, Options{}, grpcx::MakeChannel("127.0.0.1:1"), grpcx::MakeChannel("127.0.0.1:1"),
                  *auth::Signer::FromKey(auth::NewSigningKey("t"), std::chrono::seconds(60))};
  grpc::ServerContext ctx;
};

v1::PutDestinationRequest Push(const std::string& id, const std::string& url) {
  v1::PutDestinationRequest req;
  req.set_id(id);
  req.set_name("Standesamt Nürnberg");
  req.set_mode(v1::DELIVERY_MODE_PUSH);
  req.set_endpoint_url(url);
  req.set_secret(std::string(40, 's'));
  return req;
}

}  // namespace

TEST_CASE("destinations are created by admins, with secrets rotated and never shown", "[integration]") {
  Fixture f;
  v1::Destination d;
  auto req = Push("standesamt", "https://fachverfahren.example/inbox");
  CHECK(f.service.PutDestination(&f.ctx, &req, &d).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  grpcx::TestCaller admin(Admin());
  REQUIRE(f.service.PutDestination(&f.ctx, &req, &d).ok());
  CHECK(d.has_secret());
  req.set_secret(std::string(40, 't'));
  REQUIRE(f.service.PutDestination(&f.ctx, &req, &d).ok());
  REQUIRE(f.store
              ->Transact([&](pqxx::work& tx) {
                auto r = tx.exec1("SELECT secret, previous_secret FROM destinations WHERE id = 'standesamt'");
                CHECK(r[0].as<std::string>() == std::string(40, 't'));
                CHECK(r[1].as<std::string>() == std::string(40, 's'));
                return absl::OkStatus();
              })
              .ok());
  auto http = Push("gesundheitsamt", "http://fachverfahren.example/inbox");
  CHECK(f.service.PutDestination(&f.ctx, &http, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto weak = Push("gesundheitsamt", "https://fachverfahren.example/inbox");
  weak.set_secret("short");
  CHECK(f.service.PutDestination(&f.ctx, &weak, &d).error_message() == "secret: 32 to 200 characters");
  v1::PutDestinationRequest pull;
  pull.set_id("bibliothek");
  pull.set_name("Stadtbibliothek");
  pull.set_mode(v1::DELIVERY_MODE_PULL);
  REQUIRE(f.service.PutDestination(&f.ctx, &pull, &d).ok());
  v1::ListDestinationsRequest list;
  v1::ListDestinationsResponse all;
  REQUIRE(f.service.ListDestinations(&f.ctx, &list, &all).ok());
  CHECK(all.destinations_size() == 2);
}

TEST_CASE("deliveries: once per submission, dead letters for unknown destinations, replay", "[integration]") {
  Fixture f;
  const std::string id = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b";
  REQUIRE(f.store
              ->Transact([&](pqxx::work& tx) {
                for (int i = 0; i < 2; ++i) {
                  Store::AddDelivery(tx, "09564000", id, "standesamt", "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f",
                                     "NUE-2026-000001", "civil-registry-certificate");
                }
                Store::Reschedule(tx, id, 0, "unknown destination standesamt", true);
                return absl::OkStatus();
              })
              .ok());
  grpcx::TestCaller admin(Admin());
  v1::ListDeadLettersRequest list;
  v1::ListDeliveriesResponse dead;
  REQUIRE(f.service.ListDeadLetters(&f.ctx, &list, &dead).ok());
  REQUIRE(dead.deliveries_size() == 1);
  CHECK(dead.deliveries(0).last_error() == "unknown destination standesamt");
  v1::ReplayRequest replay;
  replay.set_submission_id(id);
  v1::ReplayResponse replayed;
  REQUIRE(f.service.Replay(&f.ctx, &replay, &replayed).ok());
  CHECK(replayed.replayed() == 1);
  CHECK(f.service.Replay(&f.ctx, &replay, &replayed).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("back-office callers are bound to their destination; signatures are HMAC over time and body", "[unit]") {
  auth::Caller c;
  c.roles = {"department", "destination:standesamt"};
  c.acting_party = "Standesamt";
  auto bo = BackofficeOf(c);
  REQUIRE(bo.ok());
  CHECK(bo->destination == "standesamt");
  c.roles = {"destination:standesamt"};
  CHECK(BackofficeOf(c).status().code() == absl::StatusCode::kPermissionDenied);
  // RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?") split as "<t>.<body>".
  CHECK(DeliverySignature("Jefe", 0, "what do ya want for nothing?") != DeliverySignature("Jefe", 1, "x"));
  CHECK(auth::HmacSha256Hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace stadtportal::connector

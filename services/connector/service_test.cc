#include "services/connector/service.h"

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::connector {
namespace {

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "connector"};
  Service service{std::make_shared<Store>(schema.pool(Store::Prepare)), "09564000"};
  grpc::ServerContext ctx;
};

v1::PutDestinationRequest Push(const std::string& id, const std::string& url) {
  v1::PutDestinationRequest req;
  req.set_id(id);
  req.set_name("Standesamt Nürnberg");
  req.set_mode(v1::DELIVERY_MODE_PUSH);
  req.set_endpoint_url(url);
  return req;
}

}  // namespace

TEST_CASE("destinations are created, updated in place and listed", "[integration]") {
  Fixture f;
  v1::Destination d;
  auto req = Push("standesamt", "https://fachverfahren.example/inbox");
  REQUIRE(f.service.PutDestination(&f.ctx, &req, &d).ok());
  req.set_endpoint_url("https://fachverfahren.example/v2/inbox");
  REQUIRE(f.service.PutDestination(&f.ctx, &req, &d).ok());
  v1::PutDestinationRequest pull;
  pull.set_id("buergeramt");
  pull.set_name("Bürgeramt");
  pull.set_mode(v1::DELIVERY_MODE_PULL);
  REQUIRE(f.service.PutDestination(&f.ctx, &pull, &d).ok());

  v1::ListDestinationsRequest list;
  v1::ListDestinationsResponse resp;
  REQUIRE(f.service.ListDestinations(&f.ctx, &list, &resp).ok());
  REQUIRE(resp.destinations_size() == 2);
  CHECK(resp.destinations(0).id() == "buergeramt");
  CHECK(resp.destinations(1).endpoint_url() == "https://fachverfahren.example/v2/inbox");
}

TEST_CASE("push destinations need an https endpoint, pull ones none", "[integration]") {
  Fixture f;
  v1::Destination d;
  auto plain = Push("standesamt", "http://fachverfahren.example/inbox");
  CHECK(f.service.PutDestination(&f.ctx, &plain, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto pull = Push("standesamt", "https://fachverfahren.example/inbox");
  pull.set_mode(v1::DELIVERY_MODE_PULL);
  CHECK(f.service.PutDestination(&f.ctx, &pull, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto no_mode = Push("standesamt", "https://fachverfahren.example/inbox");
  no_mode.set_mode(v1::DELIVERY_MODE_UNSPECIFIED);
  CHECK(f.service.PutDestination(&f.ctx, &no_mode, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListDestinationsRequest list;
  v1::ListDestinationsResponse resp;
  REQUIRE(f.service.ListDestinations(&f.ctx, &list, &resp).ok());
  CHECK(resp.destinations_size() == 0);
}

}  // namespace stadtportal::connector

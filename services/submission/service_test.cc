#include "services/submission/service.h"

#include <set>

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::submission {
namespace {

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "submission"};
  Service service{std::make_shared<Store>(schema.pool(Store::Prepare)), "09564000"};
  grpc::ServerContext ctx;
};

}  // namespace

TEST_CASE("the seeded Nuremberg catalogue is listed page by page", "[integration]") {
  Fixture f;
  v1::ListOnlineServicesRequest req;
  req.mutable_page()->set_page_size(4);
  v1::ListOnlineServicesResponse first, second;
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &first).ok());
  REQUIRE(first.services_size() == 4);
  REQUIRE_FALSE(first.page().next_page_token().empty());
  req.mutable_page()->set_page_token(first.page().next_page_token());
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &second).ok());
  CHECK(second.services_size() == 2);
  CHECK(second.page().next_page_token().empty());

  std::set<std::string> ids;
  for (const auto& s : first.services()) ids.insert(s.id());
  for (const auto& s : second.services()) ids.insert(s.id());
  CHECK(ids == std::set<std::string>{"change-of-address", "civil-registry-certificate", "contact-person-report",
                                     "dog-tax-registration", "library-fee-payment", "residential-parking-permit"});
}

TEST_CASE("the catalogue is searched by text and category", "[integration]") {
  Fixture f;
  v1::ListOnlineServicesRequest req;
  v1::ListOnlineServicesResponse resp;
  req.set_query("URKUNDE");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).id() == "civil-registry-certificate");
  CHECK(resp.services(0).fee().amount_minor() == 1200);
  CHECK(resp.services(0).fee_per_unit());
  CHECK(resp.services(0).required_assurance_level() == v1::ASSURANCE_LEVEL_SUBSTANTIAL);

  req.clear_query();
  req.set_category("traffic");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).id() == "residential-parking-permit");

  req.mutable_tenant()->set_key("09162000");  // Another municipality: nothing seeded.
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  CHECK(resp.services_size() == 0);
}

TEST_CASE("catalogue requests with bad input are refused", "[integration]") {
  Fixture f;
  v1::GetOnlineServiceRequest get;
  v1::OnlineService s;
  get.set_id("Not A Slug");
  CHECK(f.service.GetOnlineService(&f.ctx, &get, &s).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  get.set_id("no-such-service");
  CHECK(f.service.GetOnlineService(&f.ctx, &get, &s).error_code() == grpc::StatusCode::NOT_FOUND);
  get.set_id("dog-tax-registration");
  REQUIRE(f.service.GetOnlineService(&f.ctx, &get, &s).ok());
  CHECK(s.name().de() == "Hund zur Hundesteuer anmelden");

  v1::ListOnlineServicesRequest list;
  v1::ListOnlineServicesResponse resp;
  list.mutable_page()->set_page_token("%%%");
  CHECK(f.service.ListOnlineServices(&f.ctx, &list, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  list.mutable_page()->clear_page_token();
  list.mutable_page()->set_page_size(-1);
  CHECK(f.service.ListOnlineServices(&f.ctx, &list, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace stadtportal::submission

#include "services/accounts/service.h"

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::accounts {
namespace {

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "accounts"};
  Service service{std::make_shared<Store>(schema.pool(Store::Prepare)), "09564000"};
  grpc::ServerContext ctx;
};

constexpr char kAccount[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";

v1::CreatePartyRequest Person() {
  v1::CreatePartyRequest req;
  req.set_kind(common::v1::PARTY_KIND_PERSON);
  req.set_display_name("Anna Muster");
  req.set_identity_account_id(kAccount);
  return req;
}

}  // namespace

TEST_CASE("persons and organisations are created and read back", "[integration]") {
  Fixture f;
  v1::Party person, org, found;
  auto p = Person();
  REQUIRE(f.service.CreateParty(&f.ctx, &p, &person).ok());
  CHECK(person.kind() == common::v1::PARTY_KIND_PERSON);
  CHECK(person.identity_account_id() == kAccount);
  CHECK(person.tenant().key() == "09564000");

  v1::CreatePartyRequest o;
  o.set_kind(common::v1::PARTY_KIND_ORGANISATION);
  o.set_display_name("Bäckerei Schmidt GmbH");
  REQUIRE(f.service.CreateParty(&f.ctx, &o, &org).ok());
  CHECK(org.display_name() == "Bäckerei Schmidt GmbH");
  CHECK(org.identity_account_id().empty());

  v1::GetPartyRequest get;
  get.set_id(org.id());
  REQUIRE(f.service.GetParty(&f.ctx, &get, &found).ok());
  CHECK(found.SerializeAsString() == org.SerializeAsString());
}

TEST_CASE("an identity account has at most one person party", "[integration]") {
  Fixture f;
  v1::Party a;
  auto p = Person();
  REQUIRE(f.service.CreateParty(&f.ctx, &p, &a).ok());
  CHECK(f.service.CreateParty(&f.ctx, &p, &a).error_code() == grpc::StatusCode::ALREADY_EXISTS);
}

TEST_CASE("invalid parties are refused", "[integration]") {
  Fixture f;
  v1::Party a;
  auto no_kind = Person();
  no_kind.set_kind(common::v1::PARTY_KIND_UNSPECIFIED);
  CHECK(f.service.CreateParty(&f.ctx, &no_kind, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto no_account = Person();
  no_account.clear_identity_account_id();
  CHECK(f.service.CreateParty(&f.ctx, &no_account, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto bad_utf8 = Person();
  bad_utf8.set_display_name("\xff\xfe");
  CHECK(f.service.CreateParty(&f.ctx, &bad_utf8, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetPartyRequest get;
  get.set_id("00000000-0000-0000-0000-000000000000");
  CHECK(f.service.GetParty(&f.ctx, &get, &a).error_code() == grpc::StatusCode::NOT_FOUND);
}

}  // namespace stadtportal::accounts

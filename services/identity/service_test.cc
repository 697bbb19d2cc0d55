#include "services/identity/service.h"

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::identity {
namespace {

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  Service service{std::make_shared<Store>(schema.pool(Store::Prepare)), "09564000"};
  grpc::ServerContext ctx;
};

v1::CreateAccountRequest Request(const std::string& email) {
  v1::CreateAccountRequest req;
  req.set_email(email);
  req.set_display_name("Anna Muster");
  req.set_language(v1::LANGUAGE_EN);
  return req;
}

}  // namespace

TEST_CASE("e-mail addresses are normalised and checked", "[unit]") {
  CHECK(*NormalizeEmail("  Anna.Muster@Example.DE ") == "anna.muster@example.de");
  CHECK_FALSE(NormalizeEmail("no-at-sign").ok());
  CHECK_FALSE(NormalizeEmail("a@b").ok());
  CHECK_FALSE(NormalizeEmail("a b@example.de").ok());
}

TEST_CASE("accounts are created in the default tenant and found again", "[integration]") {
  Fixture f;
  v1::Account created;
  auto req = Request("Anna@Example.de");
  REQUIRE(f.service.CreateAccount(&f.ctx, &req, &created).ok());
  CHECK(created.tenant().key() == "09564000");
  CHECK(created.email() == "Anna@Example.de");
  CHECK(created.language() == v1::LANGUAGE_EN);
  CHECK(created.state() == v1::ACCOUNT_STATE_PENDING_VERIFICATION);
  CHECK(created.created_at().seconds() > 0);

  v1::GetAccountRequest get;
  get.set_id(created.id());
  v1::Account found;
  REQUIRE(f.service.GetAccount(&f.ctx, &get, &found).ok());
  CHECK(found.SerializeAsString() == created.SerializeAsString());
}

TEST_CASE("a second account with the same e-mail is refused, in any letter case", "[integration]") {
  Fixture f;
  v1::Account a;
  auto first = Request("anna@example.de");
  REQUIRE(f.service.CreateAccount(&f.ctx, &first, &a).ok());
  auto second = Request("ANNA@example.de");
  auto s = f.service.CreateAccount(&f.ctx, &second, &a);
  CHECK(s.error_code() == grpc::StatusCode::ALREADY_EXISTS);
}

TEST_CASE("bad requests are refused and change nothing", "[integration]") {
  Fixture f;
  v1::Account a;
  auto bad_email = Request("not-an-address");
  CHECK(f.service.CreateAccount(&f.ctx, &bad_email, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto bad_name = Request("anna@example.de");
  bad_name.set_display_name("   ");
  CHECK(f.service.CreateAccount(&f.ctx, &bad_name, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto bad_tenant = Request("anna@example.de");
  bad_tenant.mutable_tenant()->set_key("nuremberg");
  CHECK(f.service.CreateAccount(&f.ctx, &bad_tenant, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  v1::GetAccountRequest get;
  get.set_id("not-a-uuid");
  CHECK(f.service.GetAccount(&f.ctx, &get, &a).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  get.set_id("00000000-0000-0000-0000-000000000000");
  CHECK(f.service.GetAccount(&f.ctx, &get, &a).error_code() == grpc::StatusCode::NOT_FOUND);

  // The valid address can still be registered: nothing was stored by the refusals.
  auto good = Request("anna@example.de");
  REQUIRE(f.service.CreateAccount(&f.ctx, &good, &a).ok());
}

}  // namespace stadtportal::identity

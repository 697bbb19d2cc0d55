#include "services/accounts/consumers.h"

#include <catch2/catch.hpp>

#include "libs/events/testing.h"
#include "services/accounts/store.h"

namespace stadtportal::accounts {
namespace {

constexpr char kAccount[] = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";

struct Fixture : events::HandlerTest {
  Fixture() : HandlerTest("accounts", Store::Prepare, Consumers()) {}
  // The verified addresses: "account|tenant|email" lines.
  std::string Verified() {
    return Query(
        "SELECT coalesce(string_agg(account_id || '|' || tenant || '|' || email, ';'), '')"
        " FROM verified_emails");
  }
};

events::v1::AccountVerified Verified(const std::string& email) {
  events::v1::AccountVerified e;
  e.set_tenant("09564000");
  e.set_account_id(kAccount);
  e.set_email(email);
  return e;
}

}  // namespace

TEST_CASE("account.verified: the account's verified address, normalised; the latest one counts", "[integration]") {
  Fixture f;
  REQUIRE(f.Apply(OnAccountVerified, Verified(" Anna.Muster@Example.DE ")).ok());
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna.muster@example.de")).ok());
  CHECK(f.Verified() == std::string(kAccount) + "|09564000|anna.muster@example.de");
  REQUIRE(f.Apply(OnAccountVerified, Verified("anna@example.de")).ok());
  CHECK(f.Verified() == std::string(kAccount) + "|09564000|anna@example.de");

  // Malformed messages change nothing and are refused.
  auto broken = Verified("not an address");
  CHECK(f.Apply(OnAccountVerified, broken).code() == absl::StatusCode::kInvalidArgument);
  broken = Verified("anna@example.de");
  broken.set_account_id("42");
  CHECK(f.Apply(OnAccountVerified, broken).code() == absl::StatusCode::kInvalidArgument);
  broken = Verified("anna@example.de");
  broken.set_tenant("");
  CHECK(f.Apply(OnAccountVerified, broken).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Verified() == std::string(kAccount) + "|09564000|anna@example.de");
}

TEST_CASE("accounts' consumer refuses a payload that is not its topic's message", "[integration]") {
  Fixture f;
  auto event = events::EventOf("identity-9", kAccount, Verified("anna@example.de"));
  event.payload["email"] = nlohmann::json::array({"anna@example.de", "ben@example.de"});
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Verified().empty());
}

}  // namespace stadtportal::accounts

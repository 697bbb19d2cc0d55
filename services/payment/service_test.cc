#include "services/payment/service.h"

#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::payment {
namespace {

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "payment"};
  Service service{std::make_shared<Store>(schema.pool(Store::Prepare)), "09564000"};
};

v1::CreatePaymentRequest Request(const std::string& key) {
  v1::CreatePaymentRequest req;
  req.mutable_party()->set_id("6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f");
  req.mutable_party()->set_kind(common::v1::PARTY_KIND_PERSON);
  req.set_submission_id("SUB-2026-000123");
  req.mutable_amount()->set_amount_minor(2400);
  req.mutable_amount()->set_currency("EUR");
  req.set_description("Geburtsurkunde, 2 Exemplare");
  req.set_idempotency_key(key);
  return req;
}

}  // namespace

TEST_CASE("a payment is created once per idempotency key", "[integration]") {
  Fixture f;
  grpc::ServerContext ctx;
  auto req = Request("key-1");
  v1::Payment first, again, found;
  REQUIRE(f.service.CreatePayment(&ctx, &req, &first).ok());
  CHECK(first.state() == v1::PAYMENT_STATE_CREATED);
  CHECK(first.amount().amount_minor() == 2400);
  REQUIRE(f.service.CreatePayment(&ctx, &req, &again).ok());
  CHECK(again.id() == first.id());

  auto other = Request("key-1");
  other.mutable_amount()->set_amount_minor(1200);
  CHECK(f.service.CreatePayment(&ctx, &other, &again).error_code() == grpc::StatusCode::FAILED_PRECONDITION);

  v1::GetPaymentRequest get;
  get.set_id(first.id());
  REQUIRE(f.service.GetPayment(&ctx, &get, &found).ok());
  CHECK(found.amount().amount_minor() == 2400);
}

TEST_CASE("concurrent duplicates yield one payment", "[integration]") {
  Fixture f;
  std::vector<std::string> ids(6);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ids.size(); ++i) {
    threads.emplace_back([&, i] {
      grpc::ServerContext ctx;
      auto req = Request("same-key");
      v1::Payment p;
      if (f.service.CreatePayment(&ctx, &req, &p).ok()) ids[i] = p.id();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& id : ids) CHECK(id == ids[0]);
  CHECK_FALSE(ids[0].empty());
}

TEST_CASE("invalid payments are refused", "[integration]") {
  Fixture f;
  grpc::ServerContext ctx;
  v1::Payment p;
  auto zero = Request("k");
  zero.mutable_amount()->set_amount_minor(0);
  CHECK(f.service.CreatePayment(&ctx, &zero, &p).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto currency = Request("k");
  currency.mutable_amount()->set_currency("euro");
  CHECK(f.service.CreatePayment(&ctx, &currency, &p).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto no_key = Request("");
  CHECK(f.service.CreatePayment(&ctx, &no_key, &p).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // None of the refusals stored anything under key "k".
  auto good = Request("k");
  REQUIRE(f.service.CreatePayment(&ctx, &good, &p).ok());
  CHECK(p.amount().currency() == "EUR");
}

}  // namespace stadtportal::payment

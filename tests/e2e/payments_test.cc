// Paying a fee over REST with the testpay provider, against the real binaries.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "libs/redis/client.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json Payment(httplib::Client& c, const json& login, const std::string& id) {
  auto r = c.Get(("/api/v1/payments/" + id).c_str(), Bearer(login));
  REQUIRE(Status(r) == 200);
  return json::parse(r->body);
}

// Whether the submission was handed to delivery (its event is in the stream).
bool QueuedForDelivery(const std::string& submission) {
  redis::Client redis(*redis::Options::FromUrl(StackRedisUrl()));
  auto r = redis.Command({"XRANGE", "sp:events:submission.ready_for_delivery", "-", "+"});
  if (!r.ok()) return false;
  for (size_t i = 0; i < r->size(); ++i) {
    const redisReply* fields = r->raw()->element[i]->element[1];
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
      if (std::string(fields->element[f]->str) == "key" && std::string(fields->element[f + 1]->str) == submission) {
        return true;
      }
    }
  }
  return false;
}

void WebhookMode(Stack& stack, const std::string& mode) {
  httplib::Client provider("127.0.0.1", stack.testpay_port());
  provider.set_bearer_token_auth(kTestpayKey);
  REQUIRE(Status(provider.Post("/control/webhooks", json{{"mode", mode}}.dump(), "application/json")) == 200);
}

}  // namespace

TEST_CASE("a fee-bearing order is paid with testpay: success, decline and retry, cancel and retry", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());

  SECTION("success") {
    json s = SubmitCertificate(c, anna);
    const std::string id = s["id"];
    json p = StartPayment(c, anna, id, "pay-" + id);
    CHECK(p["state"] == "started");
    CHECK(p["amount"]["amount_minor"] == 2400);
    CHECK(p["reference"] == s["reference"]);
    // The same key again: the same payment and checkout.
    json again = StartPayment(c, anna, id, "pay-" + id);
    CHECK(again["id"] == p["id"]);
    CHECK(again["next_url"] == p["next_url"]);

    const std::string back = PayAtProvider(stack, p, "success");
    const std::string path = back.substr(back.find("/api/v1/"));
    auto returned = c.Get(path.c_str());
    REQUIRE(Status(returned) == 200);
    CHECK(returned->body.find("data-state=\"success\"") != std::string::npos);
    REQUIRE(testing::Eventually([&] { return SubmissionStatus(c, anna, id) == "paid"; }, 15s));
    CHECK(testing::Eventually([&] { return QueuedForDelivery(id); }, 10s));
    auto history = json::parse(c.Get(("/api/v1/submissions/" + id).c_str(), Bearer(anna))->body)["history"];
    CHECK(history.back()["status"] == "paid");
    CHECK(Payment(c, anna, p["id"])["state"] == "success");
    // Paid is paid: no second payment.
    auto headers = Bearer(anna);
    headers.emplace("Idempotency-Key", "pay-again-" + id);
    CHECK(Status(c.Post(("/api/v1/submissions/" + id + "/payment").c_str(), headers, "", "application/json")) == 409);
  }

  for (const std::string outcome : {"decline", "cancel"}) {
    DYNAMIC_SECTION(outcome << ", then a new payment") {
      json s = SubmitCertificate(c, anna);
      const std::string id = s["id"];
      json first = StartPayment(c, anna, id, "first-" + id);
      PayAtProvider(stack, first, outcome);
      REQUIRE(testing::Eventually([&] { return Payment(c, anna, first["id"])["finished"] == true; }, 15s));
      json ended = Payment(c, anna, first["id"]);
      CHECK(ended["state"] == (outcome == "decline" ? "failed" : "cancelled"));
      CHECK(ended["reason"] == (outcome == "decline" ? "declined" : "cancelled_by_user"));
      CHECK(SubmissionStatus(c, anna, id) == "awaiting_payment");
      json retry = StartPayment(c, anna, id, "retry-" + id);
      CHECK(retry["id"] != first["id"]);
      PayAtProvider(stack, retry, "success");
      CHECK(testing::Eventually([&] { return SubmissionStatus(c, anna, id) == "paid"; }, 15s));
    }
  }

  SECTION("another party cannot pay or see it") {
    json s = SubmitCertificate(c, anna);
    json p = StartPayment(c, anna, s["id"], "mine-" + s["id"].get<std::string>());
    json ben = Onboard(stack, c, UniqueEmail());
    CHECK(Status(c.Get(("/api/v1/payments/" + p["id"].get<std::string>()).c_str(), Bearer(ben))) == 404);
    auto headers = Bearer(ben);
    headers.emplace("Idempotency-Key", "bens-key-0001");
    CHECK(Status(c.Post(("/api/v1/submissions/" + s["id"].get<std::string>() + "/payment").c_str(), headers, "",
                        "application/json")) == 404);
  }
}

TEST_CASE("browser closed after paying and the webhook lost: the reconciliation completes payment and submission",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  json admin = Admin(stack, c);

  WebhookMode(stack, "drop");
  json s = SubmitCertificate(c, anna);
  const std::string id = s["id"];
  json p = StartPayment(c, anna, id, "closed-" + id);
  PayAtProvider(stack, p, "success");  // …and the browser closes: no return.
  std::this_thread::sleep_for(500ms);
  CHECK(SubmissionStatus(c, anna, id) == "awaiting_payment");

  CHECK(Status(PostJson(c, "/api/v1/admin/payments/reconcile", {{"older_than_seconds", 0}}, Bearer(anna))) == 403);
  auto run = PostJson(c, "/api/v1/admin/payments/reconcile", {{"older_than_seconds", 0}}, Bearer(admin));
  REQUIRE(Status(run) == 200);
  CHECK(json::parse(run->body)["settled"].get<int>() >= 1);
  CHECK(Payment(c, anna, p["id"])["state"] == "success");
  CHECK(testing::Eventually([&] { return SubmissionStatus(c, anna, id) == "paid"; }, 15s));
  CHECK(testing::Eventually([&] { return QueuedForDelivery(id); }, 10s));

  // Refunds by the admin: a stale available figure or too much → 409, nothing refunded.
  const std::string refunds = "/api/v1/payments/" + p["id"].get<std::string>() + "/refunds";
  CHECK(Status(PostJson(c, refunds, {{"amount_minor", 1200}, {"refund_amount_available", 2000}}, Bearer(admin))) ==
        409);
  CHECK(Status(PostJson(c, refunds, {{"amount_minor", 5000}, {"refund_amount_available", 2400}}, Bearer(admin))) ==
        409);
  CHECK(Status(PostJson(c, refunds, {{"amount_minor", 1200}, {"refund_amount_available", 2400}}, Bearer(anna))) == 403);
  CHECK(Payment(c, admin, p["id"])["refund_amount_available"] == 2400);
  auto refunded = PostJson(c, refunds, {{"amount_minor", 1200}, {"refund_amount_available", 2400}}, Bearer(admin));
  REQUIRE(Status(refunded) == 201);
  CHECK(json::parse(refunded->body)["state"] == "success");
  CHECK(Payment(c, admin, p["id"])["refund_amount_available"] == 1200);

  auto report = c.Get("/api/v1/admin/payments/report?day=2026-13-40", Bearer(admin));
  CHECK(Status(report) == 422);

  // Webhooks that are not the provider's are refused.
  auto forged = c.Post("/api/v1/payment-webhooks/testpay", {{"Testpay-Signature", "t=1,v1=abc"}},
                       R"({"id":"evt_x","type":"checkout.succeeded","checkout_id":"chk_x"})", "application/json");
  CHECK(Status(forged) == 401);
  CHECK(Status(c.Post("/api/v1/payment-webhooks/nopay", "{}", "application/json")) == 404);
  CHECK(stack.AllLogs().find("\"level\":\"error\"") == std::string::npos);
}

TEST_CASE("the payment service does not start with testpay unless test providers are allowed", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto env = stack.ServiceEnv("payment");                       // As Stack::Start gives it.
  REQUIRE(env.count("STADTPORTAL_ALLOW_TEST_PROVIDERS") == 1);  // The stack's payment service runs with it.
  env.erase("STADTPORTAL_ALLOW_TEST_PROVIDERS");
  env["STADTPORTAL_PAYMENT_PROVIDERS"] = "paypal,testpay";
  env["STADTPORTAL_PAYPAL_CLIENT_ID"] = "id";
  env["STADTPORTAL_PAYPAL_CLIENT_SECRET"] = "secret";
  env["STADTPORTAL_PAYPAL_WEBHOOK_ID"] = "hook";
  env["STADTPORTAL_GRPC_PORT"] = std::to_string(testing::FreePort());
  env["STADTPORTAL_ADMIN_PORT"] = std::to_string(testing::FreePort());
  testing::Process refused(BinaryPath("payment"), {}, env, testing::TempDir() + "/payment-no-test-providers.log");
  const int code = refused.Wait(30s);
  INFO(refused.Output());
  CHECK(code > 0);  // Exited by itself, with an error.
  CHECK(refused.Output().find("STADTPORTAL_ALLOW_TEST_PROVIDERS") != std::string::npos);

  // The same settings with the development flag start and serve.
  env["STADTPORTAL_ALLOW_TEST_PROVIDERS"] = "true";
  env["STADTPORTAL_GRPC_PORT"] = std::to_string(testing::FreePort());
  env["STADTPORTAL_ADMIN_PORT"] = std::to_string(testing::FreePort());
  testing::Process allowed(BinaryPath("payment"), {}, env, testing::TempDir() + "/payment-test-providers.log");
  httplib::Client admin("127.0.0.1", static_cast<uint16_t>(std::stoi(env["STADTPORTAL_ADMIN_PORT"])));
  CHECK(testing::Eventually([&] { return Status(admin.Get("/metrics")) == 200; }, 20s));
  CHECK(allowed.running());
}

}  // namespace stadtportal::e2e

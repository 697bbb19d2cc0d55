#include "services/payment/service.h"

#include <atomic>
#include <csignal>
#include <thread>
#include <vector>

#include <grpcpp/server_builder.h>
#include <httplib.h>
#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"
#include "services/payment/testpay.h"

namespace stadtportal::payment {
namespace {

using namespace std::chrono_literals;

constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
constexpr char kTenant[] = "09564000";
constexpr char kKey[] = "test-api-key";
constexpr char kSecret[] = "test-webhook-secret";

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.account_id = id;
  c.tenant = kTenant;
  c.assurance = "low";
  return c;
}

auth::Caller Admin() {
  auto c = Person("5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e");
  c.roles = {"tenant-admin"};
  return c;
}

// The submission service as the payment service meets it, over a real gRPC channel: it
// verifies the caller token (the payment service's own key, as itself, for
// submission) and answers GetPaymentTerms from the submissions the tests register.
class Submissions final : public submission::v1::SubmissionService::Service {
 public:
  struct Row {
    std::string owner;
    std::string status;
    int64_t fee;
    std::string currency;
  };
  static inline std::mutex mu;
  static inline std::map<std::string, Row> rows;  // By id.
  std::atomic<int> asked{0};

  explicit Submissions(const auth::Signer& payment) {
    auto v = auth::Verifier::FromKeys(auth::Signer::FromKey(auth::NewSigningKey("gw"), 60s)->PublicKey(), "submission");
    REQUIRE(v->TrustServiceKeys("payment", payment.PublicKey()).ok());
    verifier_ = std::make_unique<auth::Verifier>(*std::move(v));
  }

  grpc::Status GetPaymentTerms(grpc::ServerContext* ctx, const submission::v1::GetPaymentTermsRequest* req,
                               submission::v1::PaymentTerms* resp) override {
    ++asked;
    auto caller = verifier_->Verify(grpcx::ClientMetadata(*ctx, auth::kCallerMetadataKey));
    if (!caller.ok() || caller->account_id != "payment" || caller->tenant != kTenant ||
        req->tenant().key() != kTenant) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "not the payment service of this tenant");
    }
    std::lock_guard<std::mutex> lock(mu);
    auto it = rows.find(req->submission_id());
    if (it == rows.end() || it->second.owner != req->party_id()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "submission not found");
    }
    resp->set_submission_id(it->first);
    resp->set_status(it->second.status);
    resp->mutable_fee()->set_amount_minor(it->second.fee);
    resp->mutable_fee()->set_currency(it->second.currency);
    resp->set_reference("NUE-2026-000123");
    resp->mutable_service_name()->set_de("Personenstandsurkunde bestellen");
    return grpc::Status::OK;
  }

 private:
  std::unique_ptr<auth::Verifier> verifier_;
};

// A submission awaiting its fee (by default Anna's, 24 EUR), known to Submissions.
std::string NewSubmission(const std::string& owner = kAnna, int64_t fee = 2400, const std::string& currency = "EUR",
                          const std::string& status = "awaiting_payment");

// The real testpay adapter, watched: before each call it takes a lease of the service's
// pool of ONE connection itself. Were the service holding that connection (a transaction)
// across the provider call, the lease would time out: counted in `held`. It can also
// crash the service right after the provider answered (an exception thrown through the
// handler: nothing after the call is recorded), once per arming.
class WatchedProvider final : public Provider {
 public:
  WatchedProvider(std::shared_ptr<Provider> inner, db::Pool& pool) : inner_(std::move(inner)), pool_(pool) {}
  std::string name() const override { return inner_->name(); }
  absl::StatusOr<Checkout> Start(const CheckoutRequest& r) override {
    Check("start");
    auto out = inner_->Start(r);
    if (out.ok()) last_next_url = out->next_url;
    Crash("start");
    return out;
  }
  absl::StatusOr<ProviderState> Query(const std::string& ref) override {
    Check("query");
    return inner_->Query(ref);
  }
  absl::StatusOr<ProviderState> Capture(const std::string& ref) override {
    Check("capture");
    return inner_->Capture(ref);
  }
  absl::StatusOr<WebhookEvent> VerifyWebhook(const std::map<std::string, std::string>& headers,
                                             const std::string& body) override {
    return inner_->VerifyWebhook(headers, body);
  }
  absl::StatusOr<RefundResult> Refund(const std::string& ref, int64_t amount, const std::string& currency,
                                      const std::string& refund_id) override {
    Check("refund");
    auto out = inner_->Refund(ref, amount, currency, refund_id);
    Crash("refund");
    return out;
  }

  std::mutex mu;
  std::map<std::string, int> calls;  // By kind.
  std::atomic<int> held{0};
  std::string crash_after;  // "start" | "refund": throw once after that call.
  std::string last_next_url;

 private:
  void Check(const std::string& kind) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++calls[kind];
    }
    if (!pool_.Acquire().ok()) ++held;
  }
  void Crash(const std::string& kind) {
    std::lock_guard<std::mutex> lock(mu);
    if (crash_after != kind) return;
    crash_after.clear();
    throw std::runtime_error("crashed after the provider call");
  }
  std::shared_ptr<Provider> inner_;
  db::Pool& pool_;
};

// The payment service against the real testpay simulator; its webhooks reach the
// service through a small HTTP endpoint standing in for the gateway route. With
// `watched`, the service has a pool of one connection and a WatchedProvider.
struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "payment"};
  std::unique_ptr<db::Pool> one_connection;
  std::shared_ptr<Store> store;
  std::shared_ptr<WatchedProvider> watched;
  uint16_t testpay_port = testing::FreePort();
  testing::Process testpay{STADTPORTAL_BIN_DIR "/stadtportal-testpay",
                           {},
                           {{"STADTPORTAL_TESTPAY_PORT", std::to_string(testpay_port)},
                            {"STADTPORTAL_TESTPAY_API_KEY", kKey},
                            {"STADTPORTAL_TESTPAY_WEBHOOK_SECRET", kSecret}},
                           testing::TempDir() + "/testpay-" + auth::RandomToken(4) + ".log"};
  httplib::Server hooks;
  std::thread hooks_thread;
  uint16_t hooks_port = 0;
  auth::Signer signer = *auth::Signer::FromKey(auth::NewSigningKey("payment-test"), 60s, "payment");
  Submissions submissions{signer};
  std::unique_ptr<grpc::Server> submission_server;
  std::unique_ptr<Service> service;
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> received;  // (signature, body)
  std::atomic<int> answered{0};

  explicit Fixture(std::chrono::seconds expiry = std::chrono::seconds(5400), bool watch = false,
                   const std::string& return_url = "") {
    if (watch) {
      db::PoolOptions po;
      po.url = testing::DatabaseUrl();
      po.schema = schema.name();
      po.size = 1;
      po.acquire_timeout = 1500ms;
      one_connection = std::make_unique<db::Pool>(po, Store::Prepare);
      store = std::make_shared<Store>(*one_connection);
    } else {
      store = std::make_shared<Store>(schema.pool(Store::Prepare));
    }
    hooks.Post("/api/v1/payment-webhooks/testpay", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(mu);
        received.emplace_back(req.get_header_value("Testpay-Signature"), req.body);
      }
      res.status = Deliver(req.get_header_value("Testpay-Signature"), req.body).ok() ? 200 : 400;
      ++answered;
    });
    hooks_port = static_cast<uint16_t>(hooks.bind_to_any_port("127.0.0.1"));
    hooks_thread = std::thread([this] { hooks.listen_after_bind(); });
    Options o;
    o.public_url = "http://127.0.0.1:" + std::to_string(hooks_port);
    o.return_url = return_url;
    o.expiry = expiry;
    std::shared_ptr<Provider> testpay_provider = std::make_shared<TestpayProvider>(
        TestpayOptions{"http://127.0.0.1:" + std::to_string(testpay_port), kKey, kSecret});
    if (watch) {
      watched = std::make_shared<WatchedProvider>(testpay_provider, *one_connection);
      testpay_provider = watched;
    }
    grpc::ServerBuilder builder;
    builder.RegisterService(&submissions);
    submission_server = builder.BuildAndStart();
    service = std::make_unique<Service>(store, std::vector<std::shared_ptr<Provider>>{testpay_provider}, o,
                                        submission_server->InProcessChannel({}), signer);
    httplib::Client probe("127.0.0.1", testpay_port);
    REQUIRE(testing::Eventually([&] { return static_cast<bool>(probe.Get("/pay/none")); }, 10s));
  }
  ~Fixture() {
    hooks.stop();
    hooks_thread.join();
    submission_server->Shutdown();
  }

  grpc::Status Deliver(const std::string& signature, const std::string& body) {
    grpc::ServerContext ctx;
    v1::HandleWebhookRequest req;
    req.set_provider("testpay");
    (*req.mutable_headers())["testpay-signature"] = signature;
    req.set_body(body);
    v1::HandleWebhookResponse resp;
    return service->HandleWebhook(&ctx, &req, &resp);
  }

  v1::Payment Create(const std::string& key, const std::string& submission) {
    grpc::ServerContext ctx;
    v1::CreatePaymentRequest req;
    req.set_submission_id(submission);
    req.set_idempotency_key(key);
    v1::Payment p;
    auto s = service->CreatePayment(&ctx, &req, &p);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return p;
  }

  v1::Payment Get(const std::string& id) {
    grpc::ServerContext ctx;
    v1::GetPaymentRequest req;
    req.set_id(id);
    v1::Payment p;
    REQUIRE(service->GetPayment(&ctx, &req, &p).ok());
    return p;
  }

  // The payer's choice on the checkout page; returns where testpay sends the browser.
  std::string Pay(const v1::Payment& p, const std::string& outcome) {
    httplib::Client c("127.0.0.1", testpay_port);
    const std::string path = p.next_url().substr(p.next_url().find("/pay/"));
    auto page = c.Get(path.c_str());
    REQUIRE(page);
    REQUIRE(page->status == 200);
    auto r = c.Post((path + "/" + outcome).c_str());
    REQUIRE(r);
    REQUIRE(r->status == 303);
    return r->get_header_value("Location");
  }

  void Webhooks(const std::string& mode) {
    httplib::Client c("127.0.0.1", testpay_port);
    c.set_bearer_token_auth(kKey);
    REQUIRE(c.Post("/control/webhooks", nlohmann::json{{"mode", mode}}.dump(), "application/json")->status == 200);
  }

  int64_t Count(const std::string& sql) {
    db::Pool& pool = one_connection != nullptr ? *one_connection : schema.pool();
    auto n = pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<int64_t> { return tx.exec1(sql)[0].as<int64_t>(); });
    REQUIRE(n.ok());
    return *n;
  }
};

std::string NewSubmission(const std::string& owner, int64_t fee, const std::string& currency,
                          const std::string& status) {
  // A fresh submission id per test (payments reference submissions by id).
  static std::atomic<int> n{0};
  char buf[40];
  std::snprintf(buf, sizeof buf, "aaaaaaaa-0000-4000-8000-%012d", ++n + static_cast<int>(getpid() % 100000) * 100);
  std::lock_guard<std::mutex> lock(Submissions::mu);
  Submissions::rows[buf] = {owner, status, fee, currency};
  return buf;
}

}  // namespace

TEST_CASE("the payer comes back to the portal's page of the submission when a return URL is configured",
          "[integration]") {
  Fixture f(std::chrono::seconds(5400), false,
            "https://portal.example/submissions/{submission}/paid?payment={payment}");
  grpcx::TestCaller anna(Person(kAnna));
  const auto submission = NewSubmission();
  auto p = f.Create("pay-key-return", submission);
  REQUIRE(p.state() == v1::PAYMENT_STATE_STARTED);
  CHECK(f.Pay(p, "success") ==
        "https://portal.example/submissions/" + submission + "/paid?payment=" + p.id());
}

TEST_CASE("a paid fee: checkout, payer pays, signed webhook, success and one event for the submission",
          "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  const auto submission = NewSubmission();
  auto p = f.Create("pay-key-0001", submission);
  CHECK(p.state() == v1::PAYMENT_STATE_STARTED);
  CHECK(p.provider() == "testpay");
  CHECK(p.next_url().find("/pay/chk_") != std::string::npos);
  const std::string back = f.Pay(p, "success");
  CHECK(back == "http://127.0.0.1:" + std::to_string(f.hooks_port) + "/api/v1/payments/" + p.id() + "/return");
  REQUIRE(testing::Eventually([&] { return f.answered > 0; }, 10s));
  auto paid = f.Get(p.id());
  CHECK(paid.state() == v1::PAYMENT_STATE_SUCCESS);
  CHECK(paid.finished());
  CHECK(paid.next_url().empty());
  REQUIRE(paid.events_size() == 3);
  CHECK(paid.events(0).state() == "created");
  CHECK(paid.events(1).state() == "started");
  CHECK(paid.events(2).state() == "success");
  CHECK(paid.events(2).source() == "webhook");
  CHECK(paid.refund_amount_available() == 2400);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.succeeded' AND key = '" + submission + "'") == 1);
  // The payer's party and the time of the success (its history's) travel with it.
  CHECK(f.Count("SELECT count(*) FROM outbox o WHERE topic = 'payment.succeeded' AND payload->>'party_id' = '" +
                std::string(kAnna) +
                "' AND (payload->>'occurred_at')::timestamptz = (SELECT at FROM payment_events e"
                " WHERE e.payment_id = (o.payload->>'payment_id')::uuid AND e.state = 'success')") == 1);

  // Replayed, forged and stale notifications change nothing.
  const auto [signature, body] = f.received.front();
  CHECK(f.Deliver(signature, body).error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(f.Deliver("t=1,v1=00", body).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  const int64_t old = absl::ToUnixSeconds(absl::Now()) - 3600;
  const std::string stale_body =
      R"({"id":"evt_stale","type":"checkout.cancelled","checkout_id":")" + paid.provider_reference() + "\"}";
  CHECK(f.Deliver("t=" + std::to_string(old) + ",v1=" + TestpaySignature(kSecret, old, stale_body), stale_body)
            .error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.Get(p.id()).state() == v1::PAYMENT_STATE_SUCCESS);
  CHECK(f.Count("SELECT count(*) FROM payment_events") == 3);

  // A paid submission cannot be paid again.
  grpc::ServerContext ctx;
  v1::CreatePaymentRequest again;
  again.set_submission_id(submission);
  again.set_idempotency_key("pay-key-0002");
  v1::Payment ignored;
  CHECK(f.service->CreatePayment(&ctx, &again, &ignored).error_message() == "submission: already_paid");
}

TEST_CASE("20 parallel identical requests with one key make one payment; another request with it is refused",
          "[integration]") {
  Fixture f;
  const auto submission = NewSubmission();
  std::vector<std::thread> threads;
  std::vector<std::string> ids(20);
  std::atomic<int> failures{0};
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      grpcx::TestCaller anna(Person(kAnna));
      grpc::ServerContext ctx;
      v1::CreatePaymentRequest req;
      req.set_submission_id(submission);
      req.set_idempotency_key("parallel-key-01");
      v1::Payment p;
      if (f.service->CreatePayment(&ctx, &req, &p).ok()) {
        ids[i] = p.id() + "|" + p.next_url();
      } else {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 1);  // Same payment, same checkout.
  CHECK(f.Count("SELECT count(*) FROM payments") == 1);

  grpcx::TestCaller anna(Person(kAnna));
  grpc::ServerContext ctx;
  v1::CreatePaymentRequest other;
  other.set_submission_id(NewSubmission());  // Another of Anna's submissions.
  other.set_idempotency_key("parallel-key-01");
  v1::Payment p;
  CHECK(f.service->CreatePayment(&ctx, &other, &p).error_message() == "idempotency_key: reused");
  // Another party may use the same key for its own payment.
  grpcx::TestCaller ben(Person(kBen));
  other.set_submission_id(NewSubmission(kBen));
  REQUIRE(f.service->CreatePayment(&ctx, &other, &p).ok());
  CHECK(f.Count("SELECT count(*) FROM payments") == 2);
}

TEST_CASE("declined and cancelled payments end; a new payment for the submission succeeds", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  const auto submission = NewSubmission();
  auto declined = f.Create("decline-key-01", submission);
  f.Pay(declined, "decline");
  REQUIRE(testing::Eventually([&] { return f.Get(declined.id()).finished(); }, 10s));
  CHECK(f.Get(declined.id()).state() == v1::PAYMENT_STATE_FAILED);
  CHECK(f.Get(declined.id()).reason() == "declined");
  auto cancelled = f.Create("cancel-key-001", submission);
  f.Pay(cancelled, "cancel");
  REQUIRE(testing::Eventually([&] { return f.Get(cancelled.id()).finished(); }, 10s));
  CHECK(f.Get(cancelled.id()).state() == v1::PAYMENT_STATE_CANCELLED);
  CHECK(f.Get(cancelled.id()).reason() == "cancelled_by_user");
  auto retry = f.Create("retry-key-0001", submission);
  f.Pay(retry, "success");
  REQUIRE(testing::Eventually([&] { return f.Get(retry.id()).finished(); }, 10s));
  CHECK(f.Get(retry.id()).state() == v1::PAYMENT_STATE_SUCCESS);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.succeeded'") == 1);
  // Each ending without money is published once for the KPIs, with its outcome and no person.
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.failed' AND key = '" + submission + "'") == 2);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.failed' AND payload->>'outcome' = 'declined'"
                " AND payload->>'payment_id' = '" +
                declined.id() + "' AND payload->>'provider' = 'testpay'") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.failed' AND payload->>'outcome' = 'cancelled'"
                " AND payload->>'payment_id' = '" +
                cancelled.id() + "'") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.failed' AND payload ? 'party_id'") == 0);
}

TEST_CASE("a payment whose webhook was lost is settled by the reconciliation", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  f.Webhooks("drop");
  auto p = f.Create("lost-hook-key1", NewSubmission());
  f.Pay(p, "success");  // The payer closes the browser: no return, no webhook.
  std::this_thread::sleep_for(300ms);
  CHECK(f.Get(p.id()).state() == v1::PAYMENT_STATE_STARTED);
  auto r = f.service->ReconcileNow(0s);
  CHECK(r.checked() == 1);
  CHECK(r.settled() == 1);
  auto settled = f.Get(p.id());
  CHECK(settled.state() == v1::PAYMENT_STATE_SUCCESS);
  CHECK(settled.events(settled.events_size() - 1).source() == "reconcile");
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.succeeded'") == 1);
}

TEST_CASE("unpaid payments expire; money arriving later goes back automatically", "[integration]") {
  Fixture f(std::chrono::seconds(0));
  grpcx::TestCaller anna(Person(kAnna));
  f.Webhooks("drop");
  auto p = f.Create("expire-key-001", NewSubmission());
  auto r = f.service->ReconcileNow(0s);
  CHECK(r.expired() == 1);
  auto expired = f.Get(p.id());
  CHECK(expired.state() == v1::PAYMENT_STATE_CANCELLED);
  CHECK(expired.reason() == "expired");
  // The payer still pays at the provider; the next notification or query refunds it.
  f.Pay(p, "success");
  f.Webhooks("deliver");
  f.service->ReconcileNow(0s);  // Finished payments are not asked again…
  CHECK(f.Count("SELECT count(*) FROM refunds") == 0);
  // …but a provider notification of the late payment is applied.
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const std::string late =
      R"({"id":"evt_late","type":"checkout.succeeded","checkout_id":")" + expired.provider_reference() + "\"}";
  REQUIRE(f.Deliver("t=" + std::to_string(now) + ",v1=" + TestpaySignature(kSecret, now, late), late).ok());
  CHECK(f.Get(p.id()).state() == v1::PAYMENT_STATE_CANCELLED);
  CHECK(f.Count("SELECT count(*) FROM refunds WHERE state = 'success' AND reason = 'late_success_refunded'") == 1);
  // No success for the submission: the expiry (payment.failed) and the money that went
  // back, the payer's to see.
  CHECK(f.Count("SELECT count(*) FROM outbox") == 2);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.failed' AND payload->>'outcome' = 'expired'") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.refunded' AND payload->>'party_id' = '" +
                std::string(kAnna) + "' AND (payload->'amount'->>'amount_minor')::int = 2400") == 1);
}

TEST_CASE("two successful payments for one submission: the second is refunded and reported", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  const auto submission = NewSubmission();
  auto first = f.Create("double-key-001", submission);
  auto second = f.Create("double-key-002", submission);  // A second tab.
  f.Pay(first, "success");
  f.Pay(second, "success");
  REQUIRE(testing::Eventually([&] { return f.Get(first.id()).finished() && f.Get(second.id()).finished(); }, 10s));
  CHECK(f.Count("SELECT count(*) FROM payments WHERE state = 'success' AND reason = ''") == 1);
  CHECK(f.Count("SELECT count(*) FROM payments WHERE reason = 'duplicate_refunded'") == 1);
  // The money goes back right after the duplicate is settled (no provider call inside its transaction).
  CHECK(testing::Eventually(
      [&] {
        return f.Count("SELECT count(*) FROM refunds WHERE state = 'success' AND reason = 'duplicate_refunded'") == 1;
      },
      10s));
  CHECK(f.Count("SELECT count(*) FROM refunds") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.succeeded'") == 1);
}

TEST_CASE("two success notifications for one submission at the same moment: both applied, one refunded",
          "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  f.Webhooks("drop");  // The notifications are sent below, both at once.
  constexpr int kRounds = 15;
  for (int round = 0; round < kRounds; ++round) {
    const auto submission = NewSubmission();
    std::vector<std::string> bodies;
    for (int tab = 0; tab < 2; ++tab) {
      auto p = f.Create(absl::StrCat("race-key-", round, "-", tab), submission);
      f.Pay(p, "success");
      bodies.push_back(absl::StrCat(R"({"id":"evt_race_)", round, "_", tab,
                                    R"(","type":"checkout.succeeded","checkout_id":")", p.provider_reference(), "\"}"));
    }
    std::atomic<int> ready{0};
    std::vector<grpc::Status> results(2);
    std::vector<std::thread> senders;
    for (int tab = 0; tab < 2; ++tab) {
      senders.emplace_back([&, tab] {
        const int64_t now = absl::ToUnixSeconds(absl::Now());
        const std::string signature = "t=" + std::to_string(now) + ",v1=" + TestpaySignature(kSecret, now, bodies[tab]);
        ++ready;
        while (ready < 2) std::this_thread::yield();
        results[tab] = f.Deliver(signature, bodies[tab]);
      });
    }
    for (auto& t : senders) t.join();
    INFO("round " << round << ": " << results[0].error_message() << " / " << results[1].error_message());
    REQUIRE(results[0].ok());
    REQUIRE(results[1].ok());
  }
  CHECK(f.Count("SELECT count(*) FROM payments WHERE state = 'success' AND reason = ''") == kRounds);
  CHECK(f.Count("SELECT count(*) FROM payments WHERE reason = 'duplicate_refunded'") == kRounds);
  CHECK(f.Count("SELECT count(*) FROM refunds WHERE state = 'success' AND reason = 'duplicate_refunded'") == kRounds);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.succeeded'") == kRounds);
}

TEST_CASE("correctly signed notifications with fields of unexpected types are refused, not a 500", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  // A number where testpay sends a string.
  const int64_t t = absl::ToUnixSeconds(absl::Now());
  for (const std::string body : {R"({"id":1,"type":"checkout.succeeded","checkout_id":"co_1"})",
                                 R"({"id":"evt-1","type":["checkout.succeeded"],"checkout_id":"co_1"})",
                                 R"({"id":"evt-1","type":"checkout.succeeded","checkout_id":null})", R"([1,2])"}) {
    INFO(body);
    const std::string signature = absl::StrCat("t=", t, ",v1=", TestpaySignature(kSecret, t, body));
    CHECK(f.Deliver(signature, body).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_CASE("a refund the provider does not make shows a code, never the provider's text", "[integration]") {
  Fixture f;
  std::string id;
  {
    grpcx::TestCaller anna(Person(kAnna));
    auto p = f.Create("refund-key-down", NewSubmission());
    f.Pay(p, "success");
    REQUIRE(testing::Eventually([&] { return f.Get(p.id()).finished(); }, 10s));
    id = p.id();
  }
  // The provider is gone: its client reports a transport error with the address.
  f.testpay.Signal(SIGKILL);
  REQUIRE(f.testpay.Wait(5s) == -2);
  grpcx::TestCaller admin(Admin());
  grpc::ServerContext ctx;
  v1::CreateRefundRequest req;
  req.set_payment_id(id);
  req.mutable_amount()->set_amount_minor(1200);
  req.mutable_amount()->set_currency("EUR");
  req.set_refund_amount_available(2400);
  v1::Refund r;
  REQUIRE(f.service->CreateRefund(&ctx, &req, &r).ok());
  CHECK(r.state() == "error");
  CHECK(r.reason() == "provider_error");
  const auto payment = f.Get(id);  // What the citizen's GET /payments/{id} shows.
  REQUIRE(payment.refunds_size() == 1);
  CHECK(payment.refunds(0).reason() == "provider_error");
  CHECK(payment.DebugString().find("127.0.0.1") == std::string::npos);
  CHECK(payment.DebugString().find(std::to_string(f.testpay_port)) == std::string::npos);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'payment.refunded'") == 0);  // Not made: not published.
}

TEST_CASE("refunds: optimistic concurrency on the available amount, partial refunds, a report", "[integration]") {
  Fixture f;
  std::string id;
  {
    grpcx::TestCaller anna(Person(kAnna));
    auto p = f.Create("refund-key-001", NewSubmission());
    f.Pay(p, "success");
    REQUIRE(testing::Eventually([&] { return f.Get(p.id()).finished(); }, 10s));
    id = p.id();
    grpc::ServerContext ctx;
    v1::CreateRefundRequest not_admin;
    not_admin.set_payment_id(id);
    v1::Refund r;
    CHECK(f.service->CreateRefund(&ctx, &not_admin, &r).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  grpcx::TestCaller admin(Admin());
  auto refund = [&](int64_t amount, int64_t available) {
    grpc::ServerContext ctx;
    v1::CreateRefundRequest req;
    req.set_payment_id(id);
    req.mutable_amount()->set_amount_minor(amount);
    req.mutable_amount()->set_currency("EUR");
    req.set_refund_amount_available(available);
    req.set_reason("eine Urkunde zu viel");
    v1::Refund r;
    auto s = f.service->CreateRefund(&ctx, &req, &r);
    return std::make_pair(s, r);
  };
  CHECK(refund(1200, 2000).first.error_code() == grpc::StatusCode::ABORTED);              // Stale figure.
  CHECK(refund(3000, 2400).first.error_code() == grpc::StatusCode::FAILED_PRECONDITION);  // Above available.
  CHECK(f.Count("SELECT count(*) FROM refunds") == 0);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'audit.recorded'") == 0);  // Refused: no action taken.
  auto [ok, r] = refund(1200, 2400);
  REQUIRE(ok.ok());
  CHECK(r.state() == "success");
  CHECK(f.Get(id).refund_amount_available() == 1200);
  CHECK(refund(1200, 2400).first.error_code() == grpc::StatusCode::ABORTED);  // The figure moved.
  REQUIRE(refund(1200, 1200).first.ok());
  CHECK(f.Get(id).refund_amount_available() == 0);
  // Each refund made is published once, for the payer, at the time it was recorded.
  CHECK(f.Count("SELECT count(*) FROM outbox o WHERE topic = 'payment.refunded' AND payload->>'party_id' = '" +
                std::string(kAnna) + "' AND payload->>'payment_id' = '" + id +
                "' AND (payload->'amount'->>'amount_minor')::int = 1200"
                " AND (payload->>'occurred_at')::timestamptz = (SELECT updated_at FROM refunds r"
                " WHERE r.id = (o.payload->>'refund_id')::uuid)") == 2);
  // Each refund is on the audit log (identity keeps it; the entry travels as an event).
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'audit.recorded' AND payload->>'action' = 'refund.create'"
                " AND payload->'targets'->>'payment_id' = '" +
                id + "' AND payload->>'outcome' = 'succeeded'") == 2);

  grpc::ServerContext ctx;
  v1::GetReportRequest req;
  req.set_day(absl::FormatCivilTime(absl::ToCivilDay(absl::Now(), absl::UTCTimeZone())));
  v1::Report report;
  REQUIRE(f.service->GetReport(&ctx, &req, &report).ok());
  REQUIRE(report.providers_size() == 1);
  CHECK(report.providers(0).provider() == "testpay");
  CHECK(report.providers(0).successes() == 1);
  CHECK(report.providers(0).success_amount_minor() == 2400);
  CHECK(report.providers(0).refunds() == 2);
  CHECK(report.providers(0).refund_amount_minor() == 2400);
  req.set_day("2026-13-01");
  CHECK(f.service->GetReport(&ctx, &req, &report).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("bad payment requests are refused and store nothing", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  grpc::ServerContext ctx;
  v1::CreatePaymentRequest req;
  req.set_idempotency_key("bad-request-01");
  v1::Payment p;
  auto refused = [&](const std::string& submission) {
    req.set_submission_id(submission);
    return f.service->CreatePayment(&ctx, &req, &p);
  };
  // Malformed, unknown, another party's: not found. The fee is the submission's: the
  // request carries none, and the submission must be awaiting it.
  CHECK(refused("not-a-uuid").error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(refused("bbbbbbbb-0000-4000-8000-000000000000").error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(refused(NewSubmission(kBen)).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(refused(NewSubmission(kAnna, 2400, "EUR", "submitted")).error_message() ==
        "status: the submission is submitted, not awaiting payment");
  CHECK(refused(NewSubmission(kAnna, 0)).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(refused(NewSubmission(kAnna, 100, "euro")).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  req.set_idempotency_key("short");
  CHECK(refused(NewSubmission()).error_message() == "idempotency_key: invalid");
  req.set_idempotency_key("bad-request-01");
  req.set_provider("bitcoin");
  CHECK(refused(NewSubmission()).error_message() == "provider: invalid_option");
  CHECK(f.Count("SELECT count(*) FROM payments") == 0);
  // The submission's figures are what is paid.
  auto fee = f.Create("fee-key-000001", NewSubmission(kAnna, 1750, "EUR"));
  CHECK(fee.amount().amount_minor() == 1750);
  CHECK(fee.amount().currency() == "EUR");
  CHECK(fee.reference() == "NUE-2026-000123");
  CHECK(fee.description() == "Personenstandsurkunde bestellen");
  // Someone else's payment is not found.
  req.set_provider("");
  auto mine = f.Create("mine-key-00001", NewSubmission());
  grpcx::TestCaller ben(Person(kBen));
  v1::GetPaymentRequest get;
  get.set_id(mine.id());
  CHECK(f.service->GetPayment(&ctx, &get, &p).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("no provider call runs while the service holds a pooled connection", "[integration]") {
  Fixture f(std::chrono::seconds(5400), true);
  std::string paid_id;
  {
    grpcx::TestCaller anna(Person(kAnna));
    // Checkouts, a webhook success, a duplicate refunded automatically.
    const auto submission = NewSubmission();
    auto first = f.Create("watch-key-0001", submission);
    auto second = f.Create("watch-key-0002", submission);
    f.Pay(first, "success");
    f.Pay(second, "success");
    REQUIRE(testing::Eventually([&] { return f.Get(first.id()).finished() && f.Get(second.id()).finished(); }, 10s));
    paid_id = f.Get(first.id()).reason().empty() ? first.id() : second.id();  // The other went back.
    // The payer's return and the reconciliation ask the provider.
    f.Webhooks("drop");
    auto returned = f.Create("watch-key-0003", NewSubmission());
    f.Pay(returned, "success");
    grpc::ServerContext ctx;
    v1::CompleteReturnRequest back;
    back.set_id(returned.id());
    v1::Payment state;
    REQUIRE(f.service->CompleteReturn(&ctx, &back, &state).ok());
    CHECK(state.state() == v1::PAYMENT_STATE_SUCCESS);
    auto lost = f.Create("watch-key-0004", NewSubmission());
    f.Pay(lost, "success");
    CHECK(f.service->ReconcileNow(0s).settled() == 1);
  }
  grpcx::TestCaller admin(Admin());
  grpc::ServerContext ctx;
  v1::CreateRefundRequest req;
  req.set_payment_id(paid_id);
  req.mutable_amount()->set_amount_minor(1200);
  req.set_refund_amount_available(2400);
  v1::Refund refund;
  REQUIRE(f.service->CreateRefund(&ctx, &req, &refund).ok());
  CHECK(refund.state() == "success");

  CHECK(testing::Eventually([&] { return f.Count("SELECT count(*) FROM refunds WHERE state = 'success'") == 2; }, 10s));
  std::lock_guard<std::mutex> lock(f.watched->mu);
  CHECK(f.watched->calls["start"] == 4);
  CHECK(f.watched->calls["query"] >= 2);
  CHECK(f.watched->calls["refund"] == 2);  // The duplicate's and the administrator's.
  CHECK(f.watched->held == 0);
}

TEST_CASE("a crash after the provider's checkout: a retry with the key resumes it, the reconciliation ends it",
          "[integration]") {
  Fixture f(std::chrono::seconds(0), true);
  grpcx::TestCaller anna(Person(kAnna));
  auto create = [&](const std::string& key, const std::string& submission, v1::Payment* out) {
    grpc::ServerContext ctx;
    v1::CreatePaymentRequest req;
    req.set_submission_id(submission);
    req.set_idempotency_key(key);
    return f.service->CreatePayment(&ctx, &req, out);
  };
  v1::Payment p;
  f.watched->crash_after = "start";
  const auto submission = NewSubmission();
  CHECK(create("crash-key-0001", submission, &p).error_code() == grpc::StatusCode::INTERNAL);
  const std::string checkout = f.watched->last_next_url;
  REQUIRE_FALSE(checkout.empty());
  // Claimed, the checkout made at the provider, its outcome never recorded.
  CHECK(f.Count("SELECT count(*) FROM payments WHERE state = 'created' AND provider_ref = ''") == 1);
  REQUIRE(create("crash-key-0001", submission, &p).ok());
  CHECK(p.state() == v1::PAYMENT_STATE_STARTED);
  CHECK(p.next_url() == checkout);  // The provider answered the same checkout.
  CHECK(f.Count("SELECT count(*) FROM payments") == 1);
  REQUIRE(p.events_size() == 2);
  CHECK(p.events(1).state() == "started");
  f.Pay(p, "success");
  REQUIRE(testing::Eventually([&] { return f.Get(p.id()).state() == v1::PAYMENT_STATE_SUCCESS; }, 10s));

  // Without a retry, the periodic job ends the claimed payment after the expiry.
  f.watched->crash_after = "start";
  CHECK(create("crash-key-0002", NewSubmission(), &p).error_code() == grpc::StatusCode::INTERNAL);
  CHECK(f.service->ReconcileNow(0s).expired() == 1);
  CHECK(f.Count("SELECT count(*) FROM payments WHERE state = 'cancelled' AND reason = 'expired'") == 1);
  CHECK(f.watched->held == 0);
}

TEST_CASE(
    "a crash after the provider's refund: the reconciliation asks again with the refund's id, money goes back once",
    "[integration]") {
  Fixture f(std::chrono::seconds(5400), true);
  v1::Payment paid;
  {
    grpcx::TestCaller anna(Person(kAnna));
    paid = f.Create("refund-crash-01", NewSubmission());
    f.Pay(paid, "success");
    REQUIRE(testing::Eventually([&] { return f.Get(paid.id()).finished(); }, 10s));
  }
  grpcx::TestCaller admin(Admin());
  grpc::ServerContext ctx;
  v1::CreateRefundRequest req;
  req.set_payment_id(paid.id());
  req.mutable_amount()->set_amount_minor(1000);
  req.set_refund_amount_available(2400);
  v1::Refund refund;
  f.watched->crash_after = "refund";
  CHECK(f.service->CreateRefund(&ctx, &req, &refund).error_code() == grpc::StatusCode::INTERNAL);
  auto provider_refunded = [&] {
    httplib::Client c("127.0.0.1", f.testpay_port);
    c.set_bearer_token_auth(kKey);
    auto r = c.Get(("/v1/checkouts/" + paid.provider_reference()).c_str());
    REQUIRE(r);
    return nlohmann::json::parse(r->body).at("refunded_minor").get<int64_t>();
  };
  CHECK(provider_refunded() == 1000);
  // In doubt: still submitted, its amount held back so it cannot be refunded twice.
  CHECK(f.Count("SELECT count(*) FROM refunds WHERE state = 'submitted'") == 1);
  CHECK(f.Get(paid.id()).refund_amount_available() == 1400);
  f.service->ReconcileNow(0s);
  CHECK(f.Count("SELECT count(*) FROM refunds WHERE state = 'success'") == 1);
  CHECK(f.Count("SELECT count(*) FROM refunds WHERE state = 'submitted'") == 0);
  CHECK(provider_refunded() == 1000);  // Asked again with the same id: nothing given twice.
  auto after = f.Get(paid.id());
  CHECK(after.refund_amount_available() == 1400);
  CHECK(after.events(after.events_size() - 1).source() == "reconcile");
  CHECK(after.events(after.events_size() - 1).reason() == "refunded");
  f.service->ReconcileNow(0s);
  CHECK(provider_refunded() == 1000);
  CHECK(f.watched->held == 0);
}

TEST_CASE("testpay, the simulator, is refused unless the deployment says it is for development", "[unit]") {
  using Values = std::map<std::string, std::string>;
  const Values testpay = {{"STADTPORTAL_TESTPAY_URL", "http://127.0.0.1:7070"},
                          {"STADTPORTAL_TESTPAY_API_KEY", "k"},
                          {"STADTPORTAL_TESTPAY_WEBHOOK_SECRET", "s"}};
  auto with = [&](Values extra) {
    Values v = testpay;
    for (auto& [k, value] : extra) v[k] = value;
    return config::Env(v);
  };
  // The default provider list, an explicit one, and testpay behind a real provider.
  for (const Values& extra :
       {Values{}, Values{{"STADTPORTAL_PAYMENT_PROVIDERS", "testpay"}},
        Values{{"STADTPORTAL_PAYMENT_PROVIDERS", "testpay"}, {"STADTPORTAL_ALLOW_TEST_PROVIDERS", "false"}}}) {
    try {
      ProvidersFromEnv(with(extra));
      FAIL("testpay was accepted");
    } catch (const config::Error& e) {
      CHECK(std::string(e.what()).find("STADTPORTAL_ALLOW_TEST_PROVIDERS=true") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(ProvidersFromEnv(with({{"STADTPORTAL_PAYMENT_PROVIDERS", "paypal,testpay"},
                                         {"STADTPORTAL_PAYPAL_CLIENT_ID", "id"},
                                         {"STADTPORTAL_PAYPAL_CLIENT_SECRET", "secret"},
                                         {"STADTPORTAL_PAYPAL_WEBHOOK_ID", "hook"}})),
                  config::Error);

  auto allowed = ProvidersFromEnv(with({{"STADTPORTAL_ALLOW_TEST_PROVIDERS", "true"}}));
  REQUIRE(allowed.size() == 1);
  CHECK(allowed[0]->name() == "testpay");
  auto paypal = ProvidersFromEnv(with({{"STADTPORTAL_PAYMENT_PROVIDERS", "paypal"},
                                       {"STADTPORTAL_PAYPAL_CLIENT_ID", "id"},
                                       {"STADTPORTAL_PAYPAL_CLIENT_SECRET", "secret"},
                                       {"STADTPORTAL_PAYPAL_WEBHOOK_ID", "hook"}}));
  REQUIRE(paypal.size() == 1);
  CHECK(paypal[0]->name() == "paypal");
}

}  // namespace stadtportal::payment

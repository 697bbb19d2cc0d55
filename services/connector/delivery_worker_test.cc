#include "services/connector/delivery_worker.h"

#include <httplib.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/log/log.h"
#include "libs/testing/testing.h"
#include "services/connector/test_schema.h"

namespace stadtportal::connector {
namespace {

namespace sv1 = submission::v1;
using namespace std::chrono_literals;

constexpr char kTenant[] = "09564000";
const std::string kSecret(40, 's');

// A department's system on loopback; `delay` before it answers 200.
struct Receiver {
  explicit Receiver(std::chrono::milliseconds delay = 0ms, int fail_first = 0) : delay(delay), fail_first(fail_first) {
    server.Post("/inbox", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++in_flight;
        keys.push_back(req.get_header_value("Idempotency-Key"));
        bodies.push_back(req.body);
        traceparents.push_back(req.get_header_value("traceparent"));
        signatures_ok =
            signatures_ok &&
            req.get_header_value("X-Stadtportal-Signature") ==
                DeliverySignature(kSecret, std::stoll(req.get_header_value("X-Stadtportal-Timestamp")), req.body);
      }
      std::this_thread::sleep_for(this->delay);
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      res.status = ++answered <= this->fail_first ? 503 : 200;
      if (res.status == 200) ++delivered;
    });
    port = server.bind_to_any_port("127.0.0.1");
    serving = std::thread([this] { server.listen_after_bind(); });
  }
  ~Receiver() {
    server.stop();
    serving.join();
  }
  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port, "/inbox"); }
  int InFlight() {
    std::lock_guard<std::mutex> lock(mu);
    return in_flight;
  }
  int Delivered() {
    std::lock_guard<std::mutex> lock(mu);
    return delivered;
  }

  std::chrono::milliseconds delay;
  int fail_first;
  httplib::Server server;
  std::thread serving;
  int port = 0;
  std::mutex mu;
  int in_flight = 0;
  int answered = 0;
  int delivered = 0;
  bool signatures_ok = true;
  std::vector<std::string> keys;
  std::vector<std::string> bodies;
  std::vector<std::string> traceparents;
};

Options Local() {
  Options o;
  o.egress.allowed = *net::ParseNetworks("127.0.0.1/32");
  o.egress.allow_http = true;
  o.http_timeout = 30s;  // Longer than the slow receiver takes.
  o.poll = 50ms;
  o.backoff_base = 1ms;
  o.backoff_max = 1ms;
  return o;
}

struct Fixture : ConnectorSchema {
  // The snapshot submission would give; counts the calls.
  absl::StatusOr<sv1::DeliverySnapshot> Snapshot(const std::string& tenant, const std::string& id) {
    ++snapshot_calls;
    sv1::DeliverySnapshot s;
    {
      std::lock_guard<std::mutex> lock(mu);
      s.set_destination(destinations.at(id));
    }
    s.set_party_id("6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f");
    s.mutable_submission()->set_id(id);
    s.mutable_submission()->set_reference("NUE-2026-" + id.substr(30));
    s.mutable_submission()->set_data_json(R"({"tenant":")" + tenant + R"("})");
    return s;
  }
  DeliveryWorker Worker(Options o) {
    return DeliveryWorker(store, o, [this](const std::string& t, const std::string& id) { return Snapshot(t, id); });
  }
  void Destination(const std::string& id, const std::string& url) {
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  tx.exec_params(
                      "INSERT INTO destinations (tenant, id, name, mode, endpoint_url, secret)"
                      " VALUES ($1, $2, 'Amt', 'push', $3, $4)",
                      kTenant, id, url, kSecret);
                  return absl::OkStatus();
                })
                .ok());
  }
  // A delivery created while handling the submit's event, in its trace.
  std::string Add(const std::string& destination, const std::string& traceparent) {
    log::RequestScope scope("event-1", traceparent);
    return Add(destination);
  }
  std::string Add(const std::string& destination) {
    const std::string id = absl::StrCat("3f0c9a52-7a61-4d8e-9f1b-", 100000000000 + next++);
    {
      std::lock_guard<std::mutex> lock(mu);
      destinations[id] = destination;
    }
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  Store::AddDelivery(tx, kTenant, id, destination, "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f",
                                     "NUE-2026-000001", "civil-registry-certificate");
                  return absl::OkStatus();
                })
                .ok());
    return id;
  }
  std::mutex mu;
  std::map<std::string, std::string> destinations;
  std::atomic<int> snapshot_calls{0};
  int64_t next = 1;
};

}  // namespace

TEST_CASE("a receiver that answers after 20 s holds no database connection, and other deliveries go on meanwhile",
          "[integration]") {
  Fixture f;
  Receiver slow(20s);
  Receiver fast;
  f.Destination("langsam", slow.Url());
  f.Destination("schnell", fast.Url());
  auto o = Local();
  o.parallel = 4;
  auto worker = f.Worker(o);
  const std::string waiting = f.Add("langsam");
  std::vector<std::string> quick;
  for (int i = 0; i < 6; ++i) quick.push_back(f.Add("schnell"));
  const auto start = std::chrono::steady_clock::now();
  worker.Start();

  REQUIRE(testing::Eventually([&] { return slow.InFlight() == 1; }, 5s));
  REQUIRE(testing::Eventually([&] { return fast.Delivered() == 6; }, 5s));
  // While the slow request is in flight: no connection lent out (the idle workers' polls
  // borrow one for a moment, so each sample waits briefly for such a poll to end), and new
  // deliveries to the fast receiver are made within moments.
  std::vector<int> in_use;
  int added = 0;
  while (std::chrono::steady_clock::now() - start < 17s) {
    in_use.push_back(f.pool.stats().in_use);
    CHECK(testing::Eventually([&] { return f.pool.stats().in_use == 0; }, 200ms));
    quick.push_back(f.Add("schnell"));
    ++added;
    CHECK(testing::Eventually([&] { return fast.Delivered() == 6 + added; }, 2s));
    CHECK(slow.InFlight() == 1);
    std::this_thread::sleep_for(1500ms);
  }
  const int fast_meanwhile = fast.Delivered();
  CHECK(slow.InFlight() == 1);  // Still waiting for the slow receiver.
  CHECK(fast_meanwhile >= 12);
  REQUIRE(testing::Eventually([&] { return f.State(waiting) == "delivered"; }, 10s));
  worker.Stop();
  for (const auto& id : quick) CHECK(f.State(id) == "delivered");
  CHECK(f.pool.stats().in_use == 0);
  CHECK(fast.signatures_ok);
  CHECK(slow.signatures_ok);
  testing::Report(absl::StrCat("connector: during a 20 s push, pool in_use samples [", absl::StrJoin(in_use, ","),
                               "], ", fast_meanwhile, " deliveries to a fast receiver completed meanwhile"));
}

TEST_CASE("retries send the kept snapshot under the same idempotency key; a failure is reported once",
          "[integration]") {
  Fixture f;
  Receiver flaky(0ms, 2);  // 503 twice, then 200.
  f.Destination("amt", flaky.Url());
  auto worker = f.Worker(Local());
  const std::string id = f.Add("amt");
  for (int round = 0; round < 3; ++round) {
    REQUIRE(testing::Eventually([&] { return worker.DeliverDue(10) == 1; }, 2s));
  }
  CHECK(f.State(id) == "delivered");
  CHECK(f.snapshot_calls == 1);
  REQUIRE(flaky.keys.size() == 3);
  CHECK(std::set<std::string>(flaky.keys.begin(), flaky.keys.end()) == std::set<std::string>{id});
  CHECK(flaky.bodies[0] == flaky.bodies[2]);
  auto doc = nlohmann::json::parse(flaky.bodies[2]);
  CHECK(doc["delivery_id"] == id);
  CHECK(doc["destination"] == "amt");
  CHECK(doc["submission"]["data"]["tenant"] == kTenant);
  CHECK(f.Count("SELECT count(*) FROM delivery_attempts") == 3);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'delivery.delayed'") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'delivery.delivered'") == 1);
  CHECK(f.Count("SELECT count(*) FROM deliveries WHERE lease_token IS NOT NULL OR lease_until IS NOT NULL") == 0);
}

TEST_CASE("a lease that ended lets another worker claim the delivery; each claim's attempt is recorded once",
          "[integration]") {
  Fixture f;
  f.Destination("amt", "http://127.0.0.1:9/inbox");
  const std::string id = f.Add("amt");
  auto first = f.store->Claim(10, 1ms, "first");
  REQUIRE(first.ok());
  REQUIRE(first->size() == 1);
  // Claimed again once the lease has ended (a worker that died mid-request), and not
  // while a lease runs.
  std::this_thread::sleep_for(20ms);
  CHECK(f.store->Claim(10, 60s, "second")->size() == 1);
  auto again = f.store->Claim(10, 60s, "third");
  REQUIRE(again.ok());
  CHECK(again->empty());

  Attempt ok;
  ok.http_status = 200;
  Breaker breaker;
  // The first worker's request succeeded after its lease had ended: it counts; the second
  // worker's lease stays.
  CHECK(*f.store->Record(first->front(), ok, breaker) == Recorded::kLeaseLost);
  CHECK(f.State(id) == "delivered");
  CHECK(f.Count("SELECT count(*) FROM deliveries WHERE lease_token = 'second'") == 1);
  CHECK(*f.store->Record(first->front(), ok, breaker) == Recorded::kDuplicate);
  Due second = first->front();
  second.lease_token = "second";
  CHECK(*f.store->Record(second, ok, breaker) == Recorded::kMovedOn);  // Delivered already: the attempt only.
  CHECK(*f.store->Record(second, ok, breaker) == Recorded::kDuplicate);
  // Two attempts on record, one counted (the second found it delivered), delivered once,
  // no lease left.
  const std::vector<int64_t> counts = {f.Count("SELECT count(*) FROM delivery_attempts"),
                                       f.Count("SELECT attempts FROM deliveries"),
                                       f.Count("SELECT count(*) FROM outbox WHERE topic = 'delivery.delivered'"),
                                       f.Count("SELECT count(*) FROM deliveries WHERE lease_token IS NOT NULL")};
  CHECK(counts == std::vector<int64_t>{2, 1, 1, 0});
}

TEST_CASE("a delivery whose every send outlasts its lease is counted each time and becomes a dead letter",
          "[integration]") {
  Fixture f;
  f.Destination("amt", "http://127.0.0.1:9/inbox");
  const std::string id = f.Add("amt");
  constexpr int kMaxAttempts = 3;
  Breaker breaker;
  breaker.threshold = 100;  // Only the attempts decide here.
  auto claimed = f.store->Claim(1, 1ms, "claim-0");
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  Due sending = claimed->front();
  std::vector<int64_t> counted;
  for (int claim = 1; claim <= 10; ++claim) {
    // The send outlasts the lease, and another worker claims the delivery meanwhile…
    std::this_thread::sleep_for(20ms);
    auto next = f.store->Claim(1, 1ms, absl::StrCat("claim-", claim));
    REQUIRE(next.ok());
    // …before the first records its failure.
    Attempt failed;
    failed.error = "Timeout was reached";
    failed.dead = sending.attempts + 1 >= kMaxAttempts;
    CHECK(*f.store->Record(sending, failed, breaker) == Recorded::kLeaseLost);
    counted.push_back(f.Count("SELECT attempts FROM deliveries"));
    if (f.State(id) == "dead") break;
    REQUIRE(next->size() == 1);
    sending = next->front();
  }
  // Each claim read the count before the one before it was recorded: given up one late.
  CHECK(counted == std::vector<int64_t>{1, 2, 3, 4});
  CHECK(f.State(id) == "dead");
  std::this_thread::sleep_for(20ms);
  CHECK(f.store->Claim(1, 1ms, "after")->empty());
  CHECK(f.Count("SELECT count(*) FROM delivery_attempts") == 4);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'delivery.delayed'") == 1);
}

TEST_CASE("a request that could outlast its lease is not started: a failed attempt, retried or given up",
          "[integration]") {
  Fixture f;
  Receiver receiver;
  f.Destination("amt", receiver.Url());
  auto o = Local();
  o.http_timeout = 1s;
  o.snapshot_deadline = 100ms;  // The snapshot below takes longer: too little of the lease is left.
  auto slow_snapshots = [&f](const std::string& tenant, const std::string& id) {
    std::this_thread::sleep_for(300ms);
    return f.Snapshot(tenant, id);
  };
  o.max_attempts = 2;
  DeliveryWorker worker(f.store, o, slow_snapshots);
  const std::string retried = f.Add("amt");
  REQUIRE(worker.DeliverDue(1) == 1);
  CHECK(receiver.Delivered() == 0);
  CHECK(f.State(retried) == "pending");
  CHECK(f.Count("SELECT count(*) FROM delivery_attempts WHERE error LIKE 'lease too short: %'") == 1);
  // The kept snapshot leaves time enough for the request.
  REQUIRE(testing::Eventually([&] { return worker.DeliverDue(1) == 1; }, 2s));
  CHECK(f.State(retried) == "delivered");
  CHECK(receiver.Delivered() == 1);

  o.max_attempts = 1;
  DeliveryWorker last(f.store, o, slow_snapshots);
  const std::string given_up = f.Add("amt");
  REQUIRE(last.DeliverDue(1) == 1);
  CHECK(f.State(given_up) == "dead");
  CHECK(receiver.Delivered() == 1);
  CHECK(f.Count("SELECT attempts FROM deliveries WHERE submission_id = '" + given_up + "'") == 1);
}

TEST_CASE("a delivery continues the submit's trace: each attempt a span of it, sent in the traceparent header",
          "[integration]") {
  Fixture f;
  Receiver flaky(0ms, 1);  // 503 once, then 200.
  f.Destination("amt", flaky.Url());
  auto worker = f.Worker(Local());
  const std::string submit = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const std::string traced = f.Add("amt", submit);
  const std::string untraced = f.Add("amt");
  for (int round = 0; round < 3 && flaky.Delivered() < 2; ++round) {
    REQUIRE(testing::Eventually([&] { return worker.DeliverDue(10) >= 1; }, 2s));
  }
  REQUIRE(flaky.Delivered() == 2);
  std::vector<std::string> spans;
  for (size_t i = 0; i < flaky.keys.size(); ++i) {
    const std::string& tp = flaky.traceparents[i];
    INFO(tp);
    REQUIRE(log::NormalizeTraceparent(tp) == tp);
    if (flaky.keys[i] == traced) {
      CHECK(tp.substr(0, 36) == submit.substr(0, 36));  // The submit's trace id…
      CHECK(tp.substr(52) == "-01");                    // …and its flags,
      spans.push_back(tp.substr(36, 16));               // in a span of its own per attempt.
    } else {
      CHECK(flaky.keys[i] == untraced);
      CHECK(tp.substr(3, 32) != submit.substr(3, 32));  // A trace of its own.
    }
  }
  REQUIRE_FALSE(spans.empty());
  CHECK(std::set<std::string>(spans.begin(), spans.end()).size() == spans.size());
  CHECK(std::find(spans.begin(), spans.end(), submit.substr(36, 16)) == spans.end());
}

}  // namespace stadtportal::connector

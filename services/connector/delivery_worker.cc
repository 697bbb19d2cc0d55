#include "services/connector/delivery_worker.h"

#include <algorithm>
#include <random>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/api/delivery.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::connector {
namespace {

namespace sv1 = submission::v1;

prometheus::Family<prometheus::Counter>& Deliveries() {
  static auto& f = metrics::CounterFamily("stadtportal_deliveries_total",
                                          "Delivery attempts to back offices, by outcome (delivered, failed, dead).");
  return f;
}

prometheus::Family<prometheus::Gauge>& BacklogGauge() {
  static auto& f =
      metrics::GaugeFamily("stadtportal_delivery_backlog",
                           "dead_letters: deliveries given up; oldest_undelivered_seconds: age of the oldest "
                           "submission not yet delivered; withdrawn: deliveries withdrawn before delivery.");
  return f;
}

int MillisSince(std::chrono::steady_clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

DeliveryWorker::DeliveryWorker(std::shared_ptr<Store> store, Options options, SnapshotSource snapshots)
    : store_(std::move(store)), options_(std::move(options)), snapshots_(std::move(snapshots)) {
  for (const char* o : {"delivered", "failed", "dead"}) Deliveries().Add({{"outcome", o}});
}

void DeliveryWorker::Start() {
  stopping_ = false;
  for (int i = 0; i < options_.parallel; ++i) {
    threads_.push_back(std::make_unique<app::Periodic>(absl::StrCat("deliveries-", i), options_.poll, [this] {
      while (!stopping_ && DeliverDue(1) > 0) {
      }
    }));
    threads_.back()->Start();
  }
}

void DeliveryWorker::Stop() {
  stopping_ = true;
  for (auto& t : threads_) t->Stop();
  threads_.clear();
}

int DeliveryWorker::DeliverDue(int limit) {
  // The leases begin with the claim (a little after this).
  const auto claimed_at = std::chrono::steady_clock::now();
  auto claimed = store_->Claim(limit, options_.lease(), auth::RandomToken(16));
  if (!claimed.ok()) {
    log::Warn("deliveries not claimed", {{"error", std::string(claimed.status().message())}});
    return 0;
  }
  for (const auto& due : *claimed) Deliver(due, claimed_at);
  return static_cast<int>(claimed->size());
}

absl::StatusOr<sv1::DeliverySnapshot> DeliveryWorker::Snapshot(const Due& due) {
  sv1::DeliverySnapshot snap;
  if (due.snapshot && snap.ParseFromString(*due.snapshot)) return snap;
  auto fetched = snapshots_(due.tenant, due.submission_id);
  if (!fetched.ok()) return fetched.status();
  // Kept for the retries; without it the next attempt fetches it again.
  if (auto s = store_->KeepSnapshot(due, fetched->SerializeAsString()); !s.ok()) {
    log::Warn("snapshot not kept", {{"submission", due.submission_id}, {"error", std::string(s.message())}});
  }
  return fetched;
}

void DeliveryWorker::Deliver(const Due& due, std::chrono::steady_clock::time_point claimed_at) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  // Each attempt is a span of the submit's trace: its log lines carry the trace id, and
  // the department's system receives it in the traceparent header.
  const std::string traceparent = log::ChildTraceparent(due.traceparent);
  log::RequestScope scope(log::NewRequestId(), traceparent);
  const auto start = std::chrono::steady_clock::now();
  Attempt a;
  // The destination is checked again before anything is fetched or sent: its name may
  // resolve elsewhere now, and the request goes to the address checked here.
  auto endpoint = ResolveEndpoint(due.endpoint_url, options_.egress);
  std::string body;
  if (!endpoint.ok()) {
    a.error = std::string(endpoint.status().message());
  } else if (due.secret.size() < kMinSecretBytes) {
    a.error = "secret: the destination has no signing secret of 32 bytes or more";
  } else if (auto snap = Snapshot(due); !snap.ok()) {
    a.error = "snapshot: " + std::string(snap.status().message());
  } else if (auto doc = api::DeliveryDocument(*snap); !doc.ok()) {
    a.error = std::string(doc.status().message());
  } else {
    body = doc->dump();
  }
  // A request that might end only after the lease (another worker may have claimed the
  // delivery by then) is not started: a failed attempt like any other, tried again after
  // the backoff, and given up after the last.
  const int spent_ms = MillisSince(claimed_at);
  if (a.error.empty() &&
      std::chrono::milliseconds(spent_ms) + options_.http_timeout + Options::kLeaseMargin > options_.lease()) {
    a.error = absl::StrCat("lease too short: ", spent_ms, " ms of it spent before the request");
  }
  if (a.error.empty()) {
    const int64_t ts = absl::ToUnixSeconds(absl::Now());
    auto r = Post(*endpoint,
                  {{"X-Stadtportal-Delivery", due.submission_id},
                   {"X-Stadtportal-Timestamp", std::to_string(ts)},
                   {"X-Stadtportal-Signature", DeliverySignature(due.secret, ts, body)},
                   {"Idempotency-Key", due.submission_id},
                   {"traceparent", traceparent}},
                  body, options_.http_timeout);
    a.http_status = r.http_status;
    a.error = r.error;
  }
  a.duration_ms = MillisSince(start);
  if (!a.error.empty()) {
    a.dead = due.attempts + 1 >= options_.max_attempts || due.age_seconds >= options_.max_age.count();
    // Exponential backoff with full jitter.
    const int64_t cap =
        std::min<int64_t>(options_.backoff_max.count(), options_.backoff_base.count() << std::min(due.attempts, 20));
    a.retry_in_ms = std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(cap, 1))(rng);
  }
  auto recorded =
      store_->Record(due, a, Breaker{options_.breaker_threshold, static_cast<int>(options_.breaker_open.count())});
  if (!recorded.ok()) {
    // The lease ends and the delivery is sent again (the receiver dedupes it).
    log::Warn("delivery outcome not recorded",
              {{"submission", due.submission_id}, {"error", std::string(recorded.status().message())}});
    return;
  }
  if (*recorded == Recorded::kLeaseLost) {
    log::Warn("delivery lease ended before the outcome was recorded; recorded all the same",
              {{"submission", due.submission_id}});
  }
  if (*recorded == Recorded::kDuplicate) return;
  if (*recorded == Recorded::kMovedOn) {
    log::Info("delivery attempt for a delivery no longer pending",
              {{"submission", due.submission_id}, {"error", a.error}});
    return;
  }
  if (a.error.empty()) {
    Deliveries().Add({{"outcome", "delivered"}}).Increment();
    return;
  }
  Deliveries().Add({{"outcome", a.dead ? "dead" : "failed"}}).Increment();
  log::Warn(a.dead ? "delivery given up: dead letter" : "delivery failed; will retry",
            {{"submission", due.submission_id},
             {"destination", due.destination},
             {"error", a.error},
             {"attempt", due.attempts + 1},
             {"retry_in_ms", a.retry_in_ms}});
}

void DeliveryWorker::UpdateGauges() {
  auto b = store_->ReadBacklog();
  if (!b.ok()) return;
  BacklogGauge().Add({{"kind", "dead_letters"}}).Set(static_cast<double>(b->dead_letters));
  BacklogGauge().Add({{"kind", "oldest_undelivered_seconds"}}).Set(static_cast<double>(b->oldest_undelivered_seconds));
  BacklogGauge().Add({{"kind", "withdrawn"}}).Set(static_cast<double>(b->withdrawn));
}

}  // namespace stadtportal::connector

#include "libs/app/retention.h"

#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::app {

std::chrono::milliseconds RetentionInterval(const config::Env& env) {
  return std::chrono::milliseconds(
      env.Int("STADTPORTAL_RETENTION_INTERVAL_MS", 3600 * 1000, 1000, int64_t{24} * 3600 * 1000));
}

void CountRetention(const std::string& kind, const std::string& outcome, int64_t n) {
  static auto& family = metrics::CounterFamily(
      "stadtportal_retention_records_total",
      "Records whose retention ended, by kind: handed over to the archive, anonymised or deleted; and failed runs.");
  family.Add({{"kind", kind}, {"outcome", outcome}}).Increment(static_cast<double>(n));
}

absl::StatusOr<int> RunRetention(const Clock& clock, const std::string& kind, const std::string& outcome,
                                 const RetentionStep& step, int limit, int max_total) {
  auto now = clock();
  if (!now.ok()) return now.status();
  int total = 0;
  while (total < max_total) {
    auto ended = step(*now, limit);
    if (!ended.ok()) return ended.status();
    CountRetention(kind, outcome, *ended);
    total += *ended;
    if (*ended < limit) break;
  }
  return total;
}

std::shared_ptr<Periodic> RetentionPeriodic(const std::string& kind, std::chrono::milliseconds interval,
                                            std::function<absl::StatusOr<int>()> run) {
  return std::make_shared<Periodic>(kind + "-retention", interval, [kind, run = std::move(run)] {
    auto ended = run();
    if (!ended.ok()) {
      CountRetention(kind, "failed");
      log::Warn("retention job failed", {{"kind", kind}, {"error", std::string(ended.status().message())}});
    } else if (*ended > 0) {
      log::Info("retention ended records", {{"kind", kind}, {"count", std::to_string(*ended)}});
    }
  });
}

}  // namespace stadtportal::app

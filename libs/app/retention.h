#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/app/clock.h"
#include "libs/app/periodic.h"
#include "libs/config/config.h"

// What every service's retention job shares (docs/data-protection.md, "Retention"): the
// interval setting, the counter and the periodic wrapper. Each job runs on every replica;
// it claims its rows FOR UPDATE SKIP LOCKED, so replicas share the work and none does a
// record twice.
namespace stadtportal::app {

// STADTPORTAL_RETENTION_INTERVAL_MS: how often the retention jobs run (default one hour,
// 1 s – 1 day).
std::chrono::milliseconds RetentionInterval(const config::Env& env);

// stadtportal_retention_records_total{kind, outcome}: records of `kind` ("submission",
// "payment", "thread", "document", "event") handed over to the archive, anonymised or
// deleted — counted once committed — and failed runs (outcome "failed").
void CountRetention(const std::string& kind, const std::string& outcome, int64_t n = 1);

// One run of a retention job: `step(now, limit)` ends up to `limit` records due by the
// clock's "now" in one transaction and returns how many; it is repeated until a step ends
// fewer than `limit`, or `max_total` were ended. Each step's records are counted as
// `outcome` once it committed. Returns how many records the run ended.
using RetentionStep = std::function<absl::StatusOr<int>(absl::Time now, int limit)>;
absl::StatusOr<int> RunRetention(const Clock& clock, const std::string& kind, const std::string& outcome,
                                 const RetentionStep& step, int limit = 200, int max_total = 10000);

// The periodic job "<kind>-retention": runs `run` (returning how many records it ended)
// every `interval`, logging the count or the error (ids only, never personal data).
std::shared_ptr<Periodic> RetentionPeriodic(const std::string& kind, std::chrono::milliseconds interval,
                                            std::function<absl::StatusOr<int>()> run);

}  // namespace stadtportal::app

#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "libs/db/pool.h"
#include "stadtportal/submission/v1/submission.pb.h"

// Business KPIs of the online services (docs/operations.md, "KPIs"; ADR 0027): daily
// figures per tenant, service and UTC day in kpi_daily, computed from the funnel events,
// the status history and the feedback — counts, never personal data. Every new source
// row marks its day stale (kpi_dirty_days, by trigger); the job computes the marked days
// anew, so a late event lands in its own day and the figures always equal a computation
// from scratch (Recompute).
namespace stadtportal::submission {

// The upper bounds (seconds) of the duration histograms (time to submit, delivery
// latency, decision time); a median or p90 is the bound of the bucket it falls in.
const std::vector<int64_t>& KpiBuckets();

struct KpiQuery {
  std::string tenant;
  std::string service_id;
  absl::CivilDay from;
  absl::CivilDay to;
  std::string granularity;  // day | week | month
  int min_citizens = 5;
};

// Parses and checks a request's range: from/to as YYYY-MM-DD (from <= to, neither before
// 2000 nor after 2100), granularity day | week | month, at most 366 days by day, 731 by
// week and 3660 by month. INVALID_ARGUMENT naming the field.
absl::Status ParseKpiRange(const std::string& from, const std::string& to, const std::string& granularity, KpiQuery* q);

class Kpis {
 public:
  explicit Kpis(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // Computes the days marked stale, at most `limit` per call (one transaction; replicas
  // take different days: SKIP LOCKED); returns how many days were computed.
  absl::StatusOr<int> RunOnce(int limit = 500);
  // Computes every service's days of `tenant` from `from` to `to` anew from the sources.
  absl::Status Recompute(const std::string& tenant, absl::CivilDay from, absl::CivilDay to);

  // The figures per period, small cells suppressed.
  absl::StatusOr<v1::GetKpisResponse> Get(const KpiQuery& q);
  // The funnel over the whole range; `steps` the form's steps in order.
  absl::StatusOr<v1::GetFunnelResponse> Funnel(const KpiQuery& q, const std::vector<std::string>& steps);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::submission

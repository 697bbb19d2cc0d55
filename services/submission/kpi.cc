#include "services/submission/kpi.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/status/status.h"

namespace stadtportal::submission {
namespace {

// The histogram metrics: one row per bucket, dim = the bucket's upper bound in seconds
// ("inf" beyond the last).
constexpr char kTimeToSubmit[] = "time_to_submit_seconds";
constexpr char kDeliveryLatency[] = "delivery_latency_seconds";
constexpr char kDecisionTime[] = "decision_time_seconds";

// The SQL expression of the bucket of `secs`.
std::string BucketSql(const std::string& secs) {
  return absl::StrCat("coalesce((SELECT min(u) FROM unnest('{", absl::StrJoin(KpiBuckets(), ","),
                      "}'::bigint[]) u WHERE u >= ", secs, ")::text, 'inf')");
}

std::string Day(absl::CivilDay d) { return absl::FormatCivilTime(d); }

// One cell of a range: the sum of the days' values and citizens.
struct Cell {
  double value = 0;
  int64_t citizens = 0;
};
using Cells = std::map<std::pair<std::string, std::string>, Cell>;  // (metric, dim) → cell

class Figures {
 public:
  Figures(const Cells& cells, int k, v1::KpiPeriod* out) : cells_(cells), k_(k), out_(out) {}

  Cell Get(const std::string& metric, const std::string& dim = "") const {
    auto it = cells_.find({metric, dim});
    return it == cells_.end() ? Cell{} : it->second;
  }
  // Fewer citizens than k, but some: the cell could point at a person. A value without
  // citizens of its own (a draft's repeated failures on a later day) could as well.
  bool Small(const Cell& c) const {
    return (c.citizens > 0 && c.citizens < k_) || (k_ > 1 && c.citizens == 0 && c.value > 0);
  }
  // Whether any dim of `metric` is withheld: a total shown next to its parts would give
  // the withheld part away by subtraction, so it is withheld too.
  bool AnySmall(const std::string& metric) const {
    for (const auto& [key, cell] : cells_) {
      if (key.first == metric && Small(cell)) return true;
    }
    return false;
  }

  void Add(const std::string& metric, const std::string& dim, std::optional<double> value, bool suppressed) {
    auto* f = out_->add_figures();
    f->set_metric(metric);
    f->set_dim(dim);
    if (suppressed) {
      f->set_suppressed(true);
    } else if (value) {
      f->set_value(*value);
    }
  }
  // `withheld`: a part of it is (see AnySmall).
  void Count(const std::string& metric, const std::string& dim = "", bool withheld = false) {
    const Cell c = Get(metric, dim);
    Add(metric, dim, c.value, withheld || Small(c));
  }
  void Rate(const std::string& metric, const std::string& numerator, const std::string& denominator,
            bool withheld = false) {
    const Cell n = Get(numerator), d = Get(denominator);
    Add(metric, "", d.value > 0 ? std::optional<double>(n.value / d.value) : std::nullopt,
        withheld || Small(n) || Small(d));
  }
  // Median and p90 of a histogram: the upper bound of the bucket the rank falls in.
  void Quantiles(const std::string& metric, const std::string& prefix) {
    std::vector<std::pair<int64_t, double>> buckets;  // bound → count; "inf" as the last bound + 1
    double total = 0;
    int64_t citizens = 0;
    for (const auto& [key, cell] : cells_) {
      if (key.first != metric) continue;
      const int64_t bound = key.second == "inf" ? KpiBuckets().back() + 1 : std::stoll(key.second);
      buckets.emplace_back(bound, cell.value);
      total += cell.value;
      citizens += cell.citizens;
    }
    std::sort(buckets.begin(), buckets.end());
    for (const auto& [name, q] : {std::pair<std::string, double>{"_median_seconds", 0.5}, {"_p90_seconds", 0.9}}) {
      std::optional<double> value;
      if (total > 0) {
        const double rank = std::ceil(q * total);
        double seen = 0;
        for (const auto& [bound, n] : buckets) {
          seen += n;
          if (seen >= rank) {
            value = static_cast<double>(std::min(bound, KpiBuckets().back()));
            break;
          }
        }
      }
      Add(prefix + name, "", value, citizens > 0 && citizens < k_);
    }
  }
  // Every dim of `metric`, the most frequent first; suppressed ones after, by name (their
  // order would tell the withheld values apart).
  void Dims(const std::string& metric) {
    std::vector<std::pair<std::string, Cell>> dims;
    for (const auto& [key, cell] : cells_) {
      if (key.first == metric) dims.emplace_back(key.second, cell);
    }
    std::stable_sort(dims.begin(), dims.end(), [this](const auto& a, const auto& b) {
      const bool sa = Small(a.second), sb = Small(b.second);
      if (sa != sb) return !sa;
      if (!sa && a.second.value != b.second.value) return a.second.value > b.second.value;
      return a.first < b.first;
    });
    for (const auto& [dim, cell] : dims) Add(metric, dim, cell.value, Small(cell));
  }

 private:
  const Cells& cells_;
  int k_;
  v1::KpiPeriod* out_;
};

void FillPeriod(const Cells& cells, int k, v1::KpiPeriod* out) {
  Figures f(cells, k, out);
  f.Count("views");
  f.Count("drafts_started");
  f.Count("drafts_saved");
  f.Count("submissions");
  // The abandoned drafts are the sum of abandoned_after_step's dims.
  const bool abandoned_parts = f.AnySmall("abandoned_after_step");
  f.Count("drafts_abandoned", "", abandoned_parts);
  f.Rate("abandonment_rate", "drafts_abandoned", "drafts_started", abandoned_parts);
  f.Rate("visit_to_submission_rate", "submissions", "views");
  f.Quantiles(kTimeToSubmit, "time_to_submit");
  f.Count("payments_completed");
  // Payments that ended without money, in all the ways they can; the success rate is over
  // every payment that ended. Totals are withheld with any of their parts: the provider
  // errors are the sum of provider_errors' dims, the failures the sum of the outcomes.
  const bool provider_parts = f.AnySmall("provider_errors");
  Cell failed;
  bool failure_parts = provider_parts;
  for (const char* outcome : {"declined", "cancelled", "expired", "provider_error"}) {
    const Cell c = f.Get("payment_failures", outcome);
    failed.value += c.value;
    failed.citizens += c.citizens;
    failure_parts = failure_parts || f.Small(c);
  }
  const Cell paid = f.Get("payments_completed");
  const double ended = paid.value + failed.value;
  f.Add("payments_failed", "", failed.value, failure_parts || f.Small(failed));
  f.Add("payment_success_rate", "", ended > 0 ? std::optional<double>(paid.value / ended) : std::nullopt,
        failure_parts || f.Small(paid) || f.Small(failed));
  for (const char* outcome : {"declined", "cancelled", "expired"}) f.Count("payment_failures", outcome);
  f.Count("payment_failures", "provider_error", provider_parts);
  f.Dims("provider_errors");
  f.Count("received_by_department");
  f.Quantiles(kDeliveryLatency, "delivery_latency");
  f.Count("decisions", "approved");
  f.Count("decisions", "rejected");
  f.Quantiles(kDecisionTime, "decision_time");
  Cell ratings;
  double sum = 0;
  for (int r = 1; r <= 5; ++r) {
    const Cell c = f.Get("ratings", std::to_string(r));
    ratings.value += c.value;
    ratings.citizens += c.citizens;
    sum += r * c.value;
  }
  // The count and mean are withheld with any rating's cell: the difference would tell it.
  const bool rating_parts = f.AnySmall("ratings");
  f.Add("ratings_count", "", ratings.value, rating_parts || f.Small(ratings));
  f.Add("rating_mean", "", ratings.value > 0 ? std::optional<double>(sum / ratings.value) : std::nullopt,
        rating_parts || f.Small(ratings));
  for (int r = 1; r <= 5; ++r) f.Count("ratings", std::to_string(r));
  f.Count("comments");
  f.Dims("steps_completed");
  f.Dims("abandoned_after_step");
  f.Dims("validation_errors");
}

absl::CivilDay PeriodStart(absl::CivilDay d, const std::string& granularity) {
  if (granularity == "week") return d - static_cast<int>(absl::GetWeekday(d));  // Monday is 0
  if (granularity == "month") return absl::CivilDay(absl::CivilMonth(d));
  return d;
}

absl::StatusOr<absl::CivilDay> ParseDay(const std::string& s, const std::string& field) {
  static const std::regex kDay("[0-9]{4}-[0-9]{2}-[0-9]{2}");
  absl::CivilDay d;
  if (s.empty()) return status::MalformedField(field, "required");
  if (!std::regex_match(s, kDay) || !absl::ParseCivilTime(s, &d) || Day(d) != s) {
    return status::MalformedField(field, "invalid", "a date YYYY-MM-DD");
  }
  if (d < absl::CivilDay(2000, 1, 1) || d > absl::CivilDay(2100, 12, 31)) {
    return status::MalformedField(field, "out_of_range");
  }
  return d;
}

}  // namespace

const std::vector<int64_t>& KpiBuckets() {
  // 1, 2, 5, 10, 15, 30 minutes; 1, 2, 4, 8, 12 hours; 1, 2, 3, 5, 7, 14, 30, 60, 90 days.
  static const std::vector<int64_t> kBuckets = {60,     120,    300,     600,     900,     1800,   3600,
                                                7200,   14400,  28800,   43200,   86400,   172800, 259200,
                                                432000, 604800, 1209600, 2592000, 5184000, 7776000};
  return kBuckets;
}

absl::Status ParseKpiRange(const std::string& from, const std::string& to, const std::string& granularity,
                           KpiQuery* q) {
  auto f = ParseDay(from, "from");
  if (!f.ok()) return f.status();
  auto t = ParseDay(to, "to");
  if (!t.ok()) return t.status();
  if (*t < *f) return status::MalformedField("to", "before_from");
  int max_days = 0;
  if (granularity == "day") {
    max_days = 366;
  } else if (granularity == "week") {
    max_days = 731;
  } else if (granularity == "month") {
    max_days = 3660;
  } else {
    return status::MalformedField("granularity", "invalid", "day, week or month");
  }
  if (*t - *f + 1 > max_days) {
    return status::MalformedField("to", "range_too_long", absl::StrCat("at most ", max_days, " days by ", granularity));
  }
  q->from = *f;
  q->to = *t;
  q->granularity = granularity;
  return absl::OkStatus();
}

void Kpis::Prepare(pqxx::connection& conn) {
  conn.prepare("kpi_take_dirty",
               "DELETE FROM kpi_dirty_days WHERE (tenant, service_id, day) IN (SELECT tenant, service_id, day"
               " FROM kpi_dirty_days ORDER BY marked_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
               " RETURNING tenant, service_id, day::text AS day");
  conn.prepare("kpi_clear_day", "DELETE FROM kpi_daily WHERE tenant = $1 AND service_id = $2 AND day = $3::date");
  // One day of one service from the sources. `firsts`: a draft's first event of a kind
  // (per step for steps, per field for validation errors), so that a range's citizens
  // are the sum of its days'.
  conn.prepare(
      "kpi_compute_day",
      "WITH b AS (SELECT ($3::date)::timestamp AT TIME ZONE 'UTC' AS t0,"
      "                  ($3::date + 1)::timestamp AT TIME ZONE 'UTC' AS t1),"
      " e AS (SELECT f.* FROM funnel_events f, b WHERE f.tenant = $1 AND f.service_id = $2"
      "       AND f.occurred_at >= b.t0 AND f.occurred_at < b.t1),"
      " firsts AS (SELECT e.* FROM e WHERE e.draft_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM funnel_events p"
      "       WHERE p.draft_id = e.draft_id AND p.event = e.event AND p.field = e.field"
      "       AND (e.event <> 'step_completed' OR p.step = e.step)"
      "       AND (p.occurred_at < e.occurred_at OR (p.occurred_at = e.occurred_at AND p.id < e.id)))),"
      " h AS (SELECT h.submission_id, h.status, h.at, s.submitted_at FROM submission_history h"
      "       JOIN submissions s ON s.id = h.submission_id, b"
      "       WHERE s.tenant = $1 AND s.service_id = $2 AND h.at >= b.t0 AND h.at < b.t1"
      "       AND h.status IN ('paid', 'received_by_department', 'approved', 'rejected')),"
      " pf AS (SELECT p.provider, p.outcome, p.submission_id FROM payment_failures p"
      "       WHERE p.tenant = $1 AND p.service_id = $2 AND p.day = $3::date),"
      " fb AS (SELECT f.rating, f.comment FROM feedback f JOIN submissions s ON s.id = f.submission_id, b"
      "       WHERE s.tenant = $1 AND s.service_id = $2 AND f.given_at >= b.t0 AND f.given_at < b.t1),"
      " figures (metric, dim, value, citizens) AS ("
      "  SELECT 'views', '', sum(count), sum(count) FROM e WHERE event = 'viewed' HAVING count(*) > 0"
      "  UNION ALL SELECT 'drafts_started', '', count(*), count(*) FROM firsts WHERE event = 'draft_started'"
      "   HAVING count(*) > 0"
      "  UNION ALL SELECT 'drafts_saved', '', count(*), count(*) FROM firsts WHERE event = 'saved' HAVING count(*) > 0"
      "  UNION ALL SELECT 'steps_completed', step, count(*), count(*) FROM firsts WHERE event = 'step_completed'"
      "   GROUP BY step"
      "  UNION ALL SELECT 'submissions', '', count(*), count(*) FROM firsts WHERE event = 'submitted'"
      "   HAVING count(*) > 0"
      "  UNION ALL SELECT 'drafts_abandoned', '', count(*), count(*) FROM firsts WHERE event = 'abandoned'"
      "   HAVING count(*) > 0"
      "  UNION ALL SELECT 'abandoned_after_step', last_step, count(*), count(*) FROM (SELECT coalesce((SELECT p.step"
      "   FROM funnel_events p WHERE p.draft_id = a.draft_id AND p.event = 'step_completed'"
      "   AND p.occurred_at <= a.occurred_at ORDER BY p.occurred_at DESC, p.id DESC LIMIT 1), '') AS last_step"
      "   FROM firsts a WHERE a.event = 'abandoned') x GROUP BY last_step"
      "  UNION ALL SELECT 'validation_errors', v.field, v.n, coalesce(c.n, 0) FROM"
      "   (SELECT field, sum(count) AS n FROM e WHERE event = 'validation_failed' GROUP BY field) v"
      "   LEFT JOIN (SELECT field, count(*) AS n FROM firsts WHERE event = 'validation_failed' GROUP BY field) c"
      "   USING (field)"
      "  UNION ALL SELECT '" +
          std::string(kTimeToSubmit) + "', " + BucketSql("secs") +
          ", count(*), count(*) FROM (SELECT extract(epoch FROM a.occurred_at - (SELECT min(p.occurred_at)"
          "   FROM funnel_events p WHERE p.draft_id = a.draft_id AND p.event = 'draft_started')) AS secs"
          "   FROM firsts a WHERE a.event = 'submitted') x WHERE secs IS NOT NULL GROUP BY 2"
          "  UNION ALL SELECT 'payments_completed', '', count(*), count(*) FROM h WHERE status = 'paid'"
          "   HAVING count(*) > 0"
          "  UNION ALL SELECT 'payment_failures', outcome, count(*), count(DISTINCT submission_id) FROM pf"
          "   GROUP BY outcome"
          "  UNION ALL SELECT 'provider_errors', provider, count(*), count(DISTINCT submission_id) FROM pf"
          "   WHERE outcome = 'provider_error'"
          "   GROUP BY provider"
          "  UNION ALL SELECT 'received_by_department', '', count(*), count(*) FROM h"
          "   WHERE status = 'received_by_department' HAVING count(*) > 0"
          "  UNION ALL SELECT '" +
          kDeliveryLatency + "', " + BucketSql("extract(epoch FROM at - submitted_at)") +
          ", count(*), count(*) FROM h WHERE status = 'received_by_department' GROUP BY 2"
          "  UNION ALL SELECT 'decisions', status, count(*), count(*) FROM h WHERE status IN ('approved', 'rejected')"
          "   GROUP BY status"
          "  UNION ALL SELECT '" +
          kDecisionTime + "', " + BucketSql("secs") +
          ", count(*), count(*) FROM (SELECT extract(epoch FROM h.at - (SELECT max(r.at) FROM submission_history r"
          "   WHERE r.submission_id = h.submission_id AND r.status = 'received_by_department' AND r.at <= h.at))"
          "   AS secs FROM h WHERE status IN ('approved', 'rejected')) x WHERE secs IS NOT NULL GROUP BY 2"
          "  UNION ALL SELECT 'ratings', rating::text, count(*), count(*) FROM fb GROUP BY rating"
          "  UNION ALL SELECT 'comments', '', count(*), count(*) FROM fb WHERE comment <> '' HAVING count(*) > 0)"
          " INSERT INTO kpi_daily (tenant, service_id, day, metric, dim, value, citizens)"
          " SELECT $1, $2, $3::date, metric, dim, value, citizens FROM figures");
  conn.prepare("kpi_services",
               "SELECT id AS service_id FROM online_services WHERE tenant = $1"
               " UNION SELECT DISTINCT service_id FROM funnel_events WHERE tenant = $1");
  conn.prepare("kpi_read",
               "SELECT day::text AS day, metric, dim, value, citizens FROM kpi_daily WHERE tenant = $1"
               " AND service_id = $2 AND day BETWEEN $3::date AND $4::date");
}

absl::StatusOr<int> Kpis::RunOnce(int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    auto days = tx.exec_prepared("kpi_take_dirty", limit);
    for (const auto& d : days) {
      const auto tenant = d["tenant"].as<std::string>(), service = d["service_id"].as<std::string>(),
                 day = d["day"].as<std::string>();
      tx.exec_prepared("kpi_clear_day", tenant, service, day);
      tx.exec_prepared("kpi_compute_day", tenant, service, day);
    }
    return static_cast<int>(days.size());
  });
}

absl::Status Kpis::Recompute(const std::string& tenant, absl::CivilDay from, absl::CivilDay to) {
  return pool_.Transact([&](pqxx::work& tx) {
    for (const auto& s : tx.exec_prepared("kpi_services", tenant)) {
      const auto service = s["service_id"].as<std::string>();
      for (auto d = from; d <= to; ++d) {
        tx.exec_prepared("kpi_clear_day", tenant, service, Day(d));
        tx.exec_prepared("kpi_compute_day", tenant, service, Day(d));
      }
    }
    return absl::OkStatus();
  });
}

namespace {

// The range's rows, summed per period (keyed by the period's start).
absl::StatusOr<std::map<absl::CivilDay, Cells>> ReadPeriods(db::Pool& pool, const KpiQuery& q,
                                                            const std::string& granularity) {
  return pool.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::map<absl::CivilDay, Cells>> {
    std::map<absl::CivilDay, Cells> periods;
    for (const auto& r : tx.exec_prepared("kpi_read", q.tenant, q.service_id, Day(q.from), Day(q.to))) {
      absl::CivilDay day;
      if (!absl::ParseCivilTime(r["day"].as<std::string>(), &day)) return absl::InternalError("kpi_daily: bad day");
      auto& cell = periods[std::max(PeriodStart(day, granularity), q.from)]
                          [{r["metric"].as<std::string>(), r["dim"].as<std::string>()}];
      cell.value += r["value"].as<double>();
      cell.citizens += r["citizens"].as<int64_t>();
    }
    return periods;
  });
}

}  // namespace

absl::StatusOr<v1::GetKpisResponse> Kpis::Get(const KpiQuery& q) {
  auto periods = ReadPeriods(pool_, q, q.granularity);
  if (!periods.ok()) return periods.status();
  v1::GetKpisResponse out;
  out.set_service_id(q.service_id);
  out.set_from(Day(q.from));
  out.set_to(Day(q.to));
  out.set_granularity(q.granularity);
  out.set_min_citizens(q.min_citizens);
  const Cells none;
  // Every period of the range, those without data too (all zero).
  for (auto start = q.from; start <= q.to;) {
    absl::CivilDay next = start + 1;
    if (q.granularity == "week") next = PeriodStart(start, "week") + 7;
    if (q.granularity == "month") next = absl::CivilDay(absl::CivilMonth(start) + 1);
    auto* p = out.add_periods();
    p->set_start(Day(start));
    p->set_end(Day(std::min(next - 1, q.to)));
    auto it = periods->find(start);
    FillPeriod(it == periods->end() ? none : it->second, q.min_citizens, p);
    start = next;
  }
  return out;
}

absl::StatusOr<v1::GetFunnelResponse> Kpis::Funnel(const KpiQuery& q, const std::vector<std::string>& steps) {
  auto periods = ReadPeriods(pool_, q, "day");
  if (!periods.ok()) return periods.status();
  Cells cells;
  for (const auto& [day, day_cells] : *periods) {
    for (const auto& [key, cell] : day_cells) {
      cells[key].value += cell.value;
      cells[key].citizens += cell.citizens;
    }
  }
  v1::GetFunnelResponse out;
  out.set_service_id(q.service_id);
  out.set_from(Day(q.from));
  out.set_to(Day(q.to));
  out.set_min_citizens(q.min_citizens);
  // The form's steps in order, then steps of older form versions by name.
  std::vector<std::string> order = steps;
  for (const auto& [key, cell] : cells) {
    if (key.first == "steps_completed" && std::find(order.begin(), order.end(), key.second) == order.end()) {
      order.push_back(key.second);
    }
  }
  std::vector<std::pair<std::string, std::pair<std::string, std::string>>> rows = {
      {"viewed", {"views", ""}}, {"draft_started", {"drafts_started", ""}}};
  for (const auto& s : order) rows.push_back({"step:" + s, {"steps_completed", s}});
  rows.push_back({"submitted", {"submissions", ""}});
  std::optional<int64_t> before;
  bool first = true;
  for (const auto& [name, key] : rows) {
    auto it = cells.find(key);
    const Cell c = it == cells.end() ? Cell{} : it->second;
    auto* s = out.add_steps();
    s->set_step(name);
    std::optional<int64_t> count;
    if (c.citizens > 0 && c.citizens < q.min_citizens) {
      s->set_suppressed(true);
    } else {
      count = static_cast<int64_t>(std::llround(c.value));
      s->set_count(*count);
      if (!first && before) s->set_drop_off(*before - *count);
    }
    before = count;
    first = false;
  }
  return out;
}

}  // namespace stadtportal::submission

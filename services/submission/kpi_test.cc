#include "services/submission/kpi.h"

#include <catch2/catch.hpp>

#include "libs/grpc/handler.h"
#include "libs/metrics/metrics.h"
#include "libs/testing/testing.h"
#include "services/submission/catalogue.h"
#include "services/submission/service.h"

namespace stadtportal::submission {
namespace {

constexpr char kTenant[] = "09564000";
constexpr char kService[] = "civil-registry-certificate";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "submission"};
  db::Pool& pool = schema.pool(Store::Prepare);
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  Kpis kpis{pool};
  int drafts = 0;

  Fixture() { REQUIRE(store->SyncCatalogue(*LoadCatalogue()).ok()); }

  std::string Value(const std::string& sql) { return testing::QueryValue(pool, sql); }

  // A funnel event at `at` (an SQL timestamp literal in UTC).
  void Event(const std::string& event, const std::string& draft, const std::string& at, const std::string& step = "",
             const std::string& field = "", int count = 1, const std::string& service = kService) {
    Value("INSERT INTO funnel_events (tenant, service_id, event, draft_id, step, field, count, occurred_at) VALUES ('" +
          std::string(kTenant) + "', '" + service + "', '" + event + "', " +
          (draft.empty() ? "NULL" : "'" + draft + "'") + ", '" + step + "', '" + field + "', " + std::to_string(count) +
          ", '" + at + "+00') RETURNING 1");
  }
  std::string NewDraftId() {
    char id[37];
    std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", ++drafts);
    return id;
  }
  // A submission of `draft` submitted at `at`, with its history.
  std::string Submission(const std::string& draft, const std::string& at) {
    const std::string id = Value(
        "INSERT INTO submissions (id, tenant, party_id, account_id, service_id, form_version, reference, status,"
        " data, fee_minor, fee_currency, draft_id, idempotency_key, submitted_at) VALUES (gen_random_uuid(), '" +
        std::string(kTenant) + "', gen_random_uuid(), gen_random_uuid(), '" + kService + "', 1, 'NUE-" + draft +
        "', 'submitted', '{}', 0, 'EUR', '" + draft + "', '" + draft + "', '" + at + "+00') RETURNING id::text");
    History(id, "submitted", at);
    return id;
  }
  void History(const std::string& id, const std::string& status, const std::string& at) {
    Value("INSERT INTO submission_history (submission_id, status, at) VALUES ('" + id + "', '" + status + "', '" + at +
          "+00') RETURNING 1");
  }
  void Feedback(const std::string& id, int rating, const std::string& comment, const std::string& at) {
    Value("INSERT INTO feedback (submission_id, rating, comment, given_at) VALUES ('" + id + "', " +
          std::to_string(rating) + ", '" + comment + "', '" + at + "+00') RETURNING 1");
  }
  // A payment of submission `id` that ended without money on `day` (payment.failed, as its
  // consumer records it).
  void PaymentFailure(const std::string& id, const std::string& provider, const std::string& outcome,
                      const std::string& day) {
    Value("INSERT INTO payment_failures (tenant, service_id, submission_id, provider, outcome, day) VALUES ('" +
          std::string(kTenant) + "', '" + kService + "', '" + id + "', '" + provider + "', '" + outcome + "', '" + day +
          "') RETURNING 1");
  }
  void RunJob() {
    for (;;) {
      auto n = kpis.RunOnce(3);  // Small batches: several rounds.
      INFO((n.ok() ? "" : std::string(n.status().message())));
      REQUIRE(n.ok());
      if (*n == 0) return;
    }
  }
  std::string Table() {
    return Value(
        "SELECT coalesce(string_agg(concat_ws('|', tenant, service_id, day, metric, dim, value, citizens), E'\\n'"
        " ORDER BY tenant, service_id, day, metric, dim), '') FROM kpi_daily");
  }
  KpiQuery Query(const std::string& from, const std::string& to, const std::string& granularity, int k = 1) {
    KpiQuery q;
    REQUIRE(ParseKpiRange(from, to, granularity, &q).ok());
    q.tenant = kTenant;
    q.service_id = kService;
    q.min_citizens = k;
    return q;
  }
};

// The figure (metric, dim) of a period: its value, -1 when suppressed, -2 when absent.
double Figure(const v1::KpiPeriod& p, const std::string& metric, const std::string& dim = "") {
  for (const auto& f : p.figures()) {
    if (f.metric() == metric && f.dim() == dim) return f.suppressed() ? -1 : f.has_value() ? f.value() : -2;
  }
  return -2;
}

// A month of journeys over three days; returns the submission ids.
std::vector<std::string> Journeys(Fixture& f) {
  f.Event("viewed", "", "2026-03-02 08:00:00", "", "", 7);
  f.Event("viewed", "", "2026-03-03 08:00:00", "", "", 3);
  std::vector<std::string> submissions;
  for (int i = 0; i < 6; ++i) {
    const std::string d = f.NewDraftId();
    const std::string day = i < 4 ? "2026-03-02" : "2026-03-03";
    f.Event("draft_started", d, day + " 09:00:00");
    f.Event("saved", d, day + " 09:01:00");
    f.Event("saved", d, day + " 09:02:00");
    f.Event("step_completed", d, day + " 09:02:00", "certificate");
    if (i == 5) {
      f.Event("abandoned", d, "2026-03-04 09:00:00");
      continue;
    }
    if (i == 4) continue;  // Still open.
    f.Event("step_completed", d, day + " 09:03:00", "applicant");
    if (i == 0) {
      f.Event("validation_failed", d, day + " 09:03:10", "applicant", "email");
      f.Event("validation_failed", d, day + " 09:03:20", "applicant", "email");
    }
    // Submitted 4 minutes after the start: in the 300-second bucket.
    f.Event("submitted", d, day + " 09:04:00");
    submissions.push_back(f.Submission(d, day + " 09:04:00"));
  }
  f.History(submissions[0], "paid", "2026-03-02 09:05:00");
  f.History(submissions[0], "received_by_department", "2026-03-02 09:35:00");  // 31 minutes: ≤ 3600
  f.History(submissions[0], "approved", "2026-03-04 09:35:00");                // 2 days: ≤ 172800
  f.PaymentFailure(submissions[0], "testpay", "declined", "2026-03-02");
  // One applicant's two tries: two failures, one citizen.
  f.PaymentFailure(submissions[1], "paypal", "provider_error", "2026-03-03");
  f.PaymentFailure(submissions[1], "paypal", "provider_error", "2026-03-03");
  f.Feedback(submissions[0], 4, "Schnell erledigt", "2026-03-02 10:00:00");
  f.Feedback(submissions[1], 5, "", "2026-03-02 10:00:00");
  return submissions;
}

TEST_CASE("the KPI job follows every new row, late ones into their own day, and equals a recomputation",
          "[integration][kpi]") {
  Fixture f;
  auto submissions = Journeys(f);
  f.RunJob();
  CHECK(f.Value("SELECT count(*) FROM kpi_dirty_days") == "0");
  const std::string before = f.Table();
  REQUIRE_FALSE(before.empty());

  // Late rows: a view and a rating of days already computed, a decision of another day.
  f.Event("viewed", "", "2026-03-02 23:59:59", "", "", 2);
  f.Feedback(submissions[2], 1, "", "2026-03-02 11:00:00");
  f.History(submissions[1], "rejected", "2026-03-05 12:00:00");
  f.PaymentFailure(submissions[2], "testpay", "expired", "2026-03-05");
  CHECK(f.Value("SELECT count(*) FROM kpi_dirty_days") == "2");
  f.RunJob();
  const std::string incremental = f.Table();
  CHECK(incremental != before);
  auto march2 = f.kpis.Get(f.Query("2026-03-02", "2026-03-02", "day"));
  REQUIRE(march2.ok());
  CHECK(Figure(march2->periods(0), "views") == 9);
  CHECK(Figure(march2->periods(0), "ratings", "1") == 1);
  CHECK(Figure(march2->periods(0), "ratings_count") == 3);

  // From scratch: the same table.
  f.Value("WITH d AS (DELETE FROM kpi_daily RETURNING 1) SELECT count(*) FROM d");
  REQUIRE(f.kpis.Recompute(kTenant, absl::CivilDay(2026, 2, 20), absl::CivilDay(2026, 3, 10)).ok());
  CHECK(f.Table() == incremental);
}

TEST_CASE("KPI figures per day, week and month, with the small numbers suppressed", "[integration][kpi]") {
  Fixture f;
  Journeys(f);
  f.RunJob();

  auto month = f.kpis.Get(f.Query("2026-03-01", "2026-03-31", "month"));
  REQUIRE(month.ok());
  REQUIRE(month->periods_size() == 1);
  const auto& m = month->periods(0);
  CHECK(m.start() == "2026-03-01");
  CHECK(m.end() == "2026-03-31");
  CHECK(Figure(m, "views") == 10);
  CHECK(Figure(m, "drafts_started") == 6);
  CHECK(Figure(m, "drafts_saved") == 6);  // Drafts, not saves.
  CHECK(Figure(m, "steps_completed", "certificate") == 6);
  CHECK(Figure(m, "steps_completed", "applicant") == 4);
  CHECK(Figure(m, "submissions") == 4);
  CHECK(Figure(m, "drafts_abandoned") == 1);
  CHECK(Figure(m, "abandoned_after_step", "certificate") == 1);
  CHECK(Figure(m, "abandonment_rate") == Approx(1.0 / 6));
  CHECK(Figure(m, "visit_to_submission_rate") == Approx(0.4));
  CHECK(Figure(m, "time_to_submit_median_seconds") == 300);
  CHECK(Figure(m, "time_to_submit_p90_seconds") == 300);
  CHECK(Figure(m, "validation_errors", "email") == 2);
  CHECK(Figure(m, "payments_completed") == 1);
  CHECK(Figure(m, "payments_failed") == 3);
  CHECK(Figure(m, "payment_success_rate") == Approx(0.25));
  CHECK(Figure(m, "payment_failures", "declined") == 1);
  CHECK(Figure(m, "payment_failures", "provider_error") == 2);
  CHECK(Figure(m, "payment_failures", "expired") == 0);
  CHECK(Figure(m, "provider_errors", "paypal") == 2);
  CHECK(Figure(m, "provider_errors", "testpay") == -2);  // No errors of testpay: no cell.
  CHECK(Figure(m, "received_by_department") == 1);
  CHECK(Figure(m, "delivery_latency_median_seconds") == 3600);
  CHECK(Figure(m, "decisions", "approved") == 1);
  CHECK(Figure(m, "decisions", "rejected") == 0);
  CHECK(Figure(m, "decision_time_median_seconds") == 172800);
  CHECK(Figure(m, "ratings_count") == 2);
  CHECK(Figure(m, "rating_mean") == 4.5);
  CHECK(Figure(m, "comments") == 1);

  // By day: every day of the range, empty ones too; the abandonment in its own day.
  auto days = f.kpis.Get(f.Query("2026-03-01", "2026-03-05", "day"));
  REQUIRE(days.ok());
  REQUIRE(days->periods_size() == 5);
  CHECK(Figure(days->periods(0), "views") == 0);
  CHECK(Figure(days->periods(0), "abandonment_rate") == -2);  // Nothing started: no rate.
  CHECK(Figure(days->periods(1), "drafts_started") == 4);
  CHECK(Figure(days->periods(3), "drafts_abandoned") == 1);

  // By ISO week: 2026-03-01 is a Sunday, so the range's first week is one day long.
  auto weeks = f.kpis.Get(f.Query("2026-03-01", "2026-03-10", "week"));
  REQUIRE(weeks.ok());
  REQUIRE(weeks->periods_size() == 3);
  CHECK(weeks->periods(0).end() == "2026-03-01");
  CHECK(weeks->periods(1).start() == "2026-03-02");
  CHECK(weeks->periods(1).end() == "2026-03-08");
  CHECK(weeks->periods(2).end() == "2026-03-10");
  CHECK(Figure(weeks->periods(1), "submissions") == 4);

  // k = 5: cells of fewer than five citizens are withheld, larger ones and zeros shown.
  auto safe = f.kpis.Get(f.Query("2026-03-01", "2026-03-31", "month", 5));
  REQUIRE(safe.ok());
  const auto& s = safe->periods(0);
  CHECK(safe->min_citizens() == 5);
  CHECK(Figure(s, "views") == 10);
  CHECK(Figure(s, "drafts_started") == 6);
  CHECK(Figure(s, "submissions") == -1);
  CHECK(Figure(s, "drafts_abandoned") == -1);
  CHECK(Figure(s, "abandonment_rate") == -1);
  CHECK(Figure(s, "rating_mean") == -1);
  CHECK(Figure(s, "validation_errors", "email") == -1);
  CHECK(Figure(s, "payments_failed") == -1);
  CHECK(Figure(s, "payment_success_rate") == -1);
  CHECK(Figure(s, "provider_errors", "paypal") == -1);
  CHECK(Figure(s, "decisions", "rejected") == 0);
  for (const auto& fig : s.figures()) {
    if (fig.suppressed()) CHECK_FALSE(fig.has_value());
  }

  // The funnel: views, start, each step of the form in order, submissions.
  auto funnel = f.kpis.Funnel(f.Query("2026-03-01", "2026-03-31", "month"), {"certificate", "applicant"});
  REQUIRE(funnel.ok());
  REQUIRE(funnel->steps_size() == 5);
  CHECK(funnel->steps(0).step() == "viewed");
  CHECK(funnel->steps(0).count() == 10);
  CHECK_FALSE(funnel->steps(0).has_drop_off());
  CHECK(funnel->steps(1).drop_off() == 4);
  CHECK(funnel->steps(2).step() == "step:certificate");
  CHECK(funnel->steps(3).step() == "step:applicant");
  CHECK(funnel->steps(3).drop_off() == 2);
  CHECK(funnel->steps(4).count() == 4);
}

TEST_CASE("KPI ranges are checked field by field", "[kpi]") {
  KpiQuery q;
  auto Message = [&](const std::string& from, const std::string& to, const std::string& g) {
    return std::string(ParseKpiRange(from, to, g, &q).message());
  };
  CHECK(Message("", "2026-03-01", "day") == "from: required");
  CHECK(Message("2026-3-01", "2026-03-01", "day") == "from: a date YYYY-MM-DD");
  CHECK(Message("2026-02-30", "2026-03-01", "day") == "from: a date YYYY-MM-DD");
  CHECK(Message("2026-03-01", "2026-03-01'", "day") == "to: a date YYYY-MM-DD");
  CHECK(Message("1999-12-31", "2026-03-01", "month") == "from: out_of_range");
  CHECK(Message("2026-03-02", "2026-03-01", "day") == "to: before_from");
  CHECK(Message("2026-03-01", "2026-03-01", "hour") == "granularity: day, week or month");
  CHECK(Message("2025-01-01", "2026-01-02", "day") == "to: at most 366 days by day");
  CHECK(ParseKpiRange("2025-01-01", "2026-01-01", "day", &q).ok());
  CHECK(ParseKpiRange("2017-01-01", "2026-12-31", "month", &q).ok());
}

TEST_CASE("only a kpi-reader of the tenant reads KPIs", "[integration][kpi]") {
  Fixture f;
  Service service{f.store, Options{}};
  grpc::ServerContext ctx;
  v1::GetKpisRequest req;
  req.set_service_id(kService);
  req.set_from("2026-03-01");
  req.set_to("2026-03-31");
  req.set_granularity("month");
  v1::GetKpisResponse resp;
  auth::Caller c;
  c.account_id = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
  c.tenant = kTenant;
  c.assurance = "low";
  {
    grpcx::TestCaller as(c);
    CHECK(service.GetKpis(&ctx, &req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  c.roles = {"tenant-admin"};
  {
    grpcx::TestCaller as(c);
    CHECK(service.GetKpis(&ctx, &req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  c.roles = {"kpi-reader"};
  {
    grpcx::TestCaller as(c);
    auto s = service.GetKpis(&ctx, &req, &resp);
    INFO(s.error_message());
    CHECK(s.ok());
    CHECK(resp.periods_size() == 1);
    req.set_service_id("no-such-service");
    CHECK(service.GetKpis(&ctx, &req, &resp).error_code() == grpc::StatusCode::NOT_FOUND);
    req.set_service_id("../x");
    CHECK(service.GetKpis(&ctx, &req, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    req.set_service_id(kService);
    req.set_granularity("year");
    CHECK(service.GetKpis(&ctx, &req, &resp).error_message() == "granularity: day, week or month");
    v1::GetFunnelRequest freq;
    freq.set_service_id(kService);
    freq.set_from("2026-03-01");
    freq.set_to("2026-03-31");
    v1::GetFunnelResponse funnel;
    s = service.GetFunnel(&ctx, &freq, &funnel);
    INFO(s.error_message());
    CHECK(s.ok());
    CHECK(funnel.steps_size() == 5);  // viewed, draft_started, the form's two steps, submitted
  }
  // Another tenant's reader sees its own tenant's service only.
  c.tenant = "09162000";
  {
    grpcx::TestCaller as(c);
    CHECK(service.GetKpis(&ctx, &req, &resp).error_code() != grpc::StatusCode::OK);
  }
}

// The funnel counter's value for (service, event); -1 when the series does not exist.
double FunnelCounter(const std::string& service, const std::string& event) {
  for (const auto& family : metrics::Registry()->Collect()) {
    if (family.name != "stadtportal_submission_funnel_total") continue;
    for (const auto& m : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (labels["online_service"] == service && labels["event"] == event) return m.counter.value;
    }
  }
  return -1;
}

TEST_CASE("the funnel counter exports every service's events from the start, unknown services never",
          "[integration][kpi]") {
  Fixture f;  // Syncing the catalogue registers its services.
  const double before = FunnelCounter(kService, "submitted");
  CHECK(before >= 0);
  CHECK(FunnelCounter("dog-tax-registration", "abandoned") >= 0);
  REQUIRE(f.store->RecordFunnel(kTenant, {{"submitted", kService, "", "", "", ""}}).ok());
  FunnelEvent views{"viewed", "no-such-service", "", "", "", ""};
  views.count = 7;
  REQUIRE(f.store->RecordFunnel(kTenant, {views}).ok());
  CHECK(FunnelCounter(kService, "submitted") == before + 1);
  CHECK(FunnelCounter("no-such-service", "viewed") == -1);
}

}  // namespace
TEST_CASE("a total is withheld with any of its parts, and a value without citizens of its own", "[integration][kpi]") {
  Fixture f;
  // Five ratings of 5 and one of 1: the 1 is withheld, so the count and the mean, which
  // would give it away, are withheld too.
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    const std::string d = f.NewDraftId();
    f.Event("draft_started", d, "2026-04-01 09:00:00");
    f.Event("submitted", d, "2026-04-01 09:04:00");
    ids.push_back(f.Submission(d, "2026-04-01 09:04:00"));
    f.Feedback(ids.back(), i < 5 ? 5 : 1, "", "2026-04-01 10:00:00");
  }
  // One draft failing a field on its first day, then again on the next: the second day's
  // failures belong to no new citizen.
  const std::string repeat = f.NewDraftId();
  f.Event("validation_failed", repeat, "2026-04-01 09:10:00", "applicant", "email");
  f.Event("validation_failed", repeat, "2026-04-02 09:10:00", "applicant", "email");
  f.Event("validation_failed", repeat, "2026-04-02 09:11:00", "applicant", "email");
  // Six failed payments of five applicants: shown, but one provider error of one applicant is not.
  for (int i = 0; i < 5; ++i) f.PaymentFailure(ids[i], "testpay", "declined", "2026-04-01");
  f.PaymentFailure(ids[5], "paypal", "provider_error", "2026-04-01");
  f.RunJob();

  auto day = f.kpis.Get(f.Query("2026-04-01", "2026-04-01", "day", 5));
  REQUIRE(day.ok());
  const auto& p = day->periods(0);
  CHECK(Figure(p, "ratings", "5") == 5);
  CHECK(Figure(p, "ratings", "1") == -1);
  CHECK(Figure(p, "ratings_count") == -1);
  CHECK(Figure(p, "rating_mean") == -1);
  CHECK(Figure(p, "payment_failures", "declined") == 5);
  CHECK(Figure(p, "provider_errors", "paypal") == -1);
  CHECK(Figure(p, "payment_failures", "provider_error") == -1);
  CHECK(Figure(p, "payments_failed") == -1);
  CHECK(Figure(p, "payment_success_rate") == -1);
  auto next = f.kpis.Get(f.Query("2026-04-02", "2026-04-02", "day", 5));
  REQUIRE(next.ok());
  CHECK(Figure(next->periods(0), "validation_errors", "email") == -1);
  // Without protection (k = 1) the same cells are shown.
  auto open = f.kpis.Get(f.Query("2026-04-01", "2026-04-02", "month", 1));
  REQUIRE(open.ok());
  CHECK(Figure(open->periods(0), "rating_mean") == Approx(26.0 / 6));
  CHECK(Figure(open->periods(0), "validation_errors", "email") == 3);
}

}  // namespace stadtportal::submission

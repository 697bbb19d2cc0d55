// The business KPIs across the real binaries: a known mix of journeys (views, drafts,
// an expired draft, submissions, payments, a decision, ratings, validation errors) and
// exactly the figures the KPI API must answer, as JSON and as CSV, with and without the
// small-number suppression.
#include <fstream>
#include <map>
#include <thread>

#include <pqxx/pqxx>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kService[] = "civil-registry-certificate";

void Sql(const std::string& sql) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::work tx(conn);
  tx.exec(sql);
  tx.commit();
}

std::string Query(const std::string& sql) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::read_transaction tx(conn);
  return tx.exec1(sql)[0].as<std::string>();
}

// Sets the jobs' time: `days` from now (written whole: a rename).
void SetClock(const std::string& path, int days) {
  std::ofstream out(path + ".tmp");
  out << absl::FormatTime(absl::RFC3339_full, absl::Now() + absl::Hours(24 * days), absl::UTCTimeZone()) << "\n";
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());
}

json Draft(httplib::Client& c, const json& login) {
  auto created = PostJson(c, std::string("/api/v1/services/") + kService + "/drafts", json::object(), Bearer(login));
  REQUIRE(Status(created) == 201);
  return json::parse(created->body);
}

json Patch(httplib::Client& c, const json& login, const json& draft, const json& body) {
  auto h = Bearer(login);
  h.emplace("If-Match", "\"" + std::to_string(draft["version"].get<int64_t>()) + "\"");
  auto r = c.Patch(("/api/v1/drafts/" + draft["id"].get<std::string>()).c_str(), h, body.dump(), "application/json");
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 200);
  return json::parse(r->body);
}

// A certificate order through both steps, submitted (awaiting its fee); returns its id.
std::string Order(httplib::Client& c, const json& login) {
  json d = Draft(c, login);
  d = Patch(c, login, d, {{"data", CertificateAnswers()}, {"completed_step", "certificate"}});
  d = Patch(c, login, d, {{"data", json::object()}, {"completed_step", "applicant"}});
  auto h = Bearer(login);
  h.emplace("Idempotency-Key", "kpi-" + d["id"].get<std::string>());
  auto r = c.Post(("/api/v1/drafts/" + d["id"].get<std::string>() + "/submit").c_str(), h, "", "application/json");
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 201);
  return json::parse(r->body)["id"];
}

std::string Today() { return absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()); }

std::string KpiPath(const std::string& granularity = "day") {
  return std::string("/api/v1/admin/kpis?service=") + kService + "&from=" + Today() + "&to=" + Today() +
         "&granularity=" + granularity;
}

// "metric" or "metric/dim" → value (null when absent), "!" appended to the key when suppressed.
std::map<std::string, json> Figures(const json& period) {
  std::map<std::string, json> out;
  for (const auto& f : period["figures"]) {
    std::string key = f["metric"].get<std::string>();
    if (!f["dim"].get<std::string>().empty()) key += "/" + f["dim"].get<std::string>();
    if (f["suppressed"].get<bool>()) key += "!";
    out[key] = f["value"];
  }
  return out;
}

// RFC 4180 records (quoted fields with doubled quotes, CRLF line ends).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      row.push_back(field);
      field.clear();
    } else if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
      ++i;
    } else {
      field += ch;
    }
  }
  return rows;
}

// The CSV answer holds exactly the JSON answer's figures, row by row.
void CheckCsvEqualsJson(httplib::Client& c, const json& reader, const json& kpis) {
  auto h = Bearer(reader);
  h.emplace("Accept", "text/csv");
  auto r = c.Get(KpiPath().c_str(), h);
  REQUIRE(Status(r) == 200);
  CHECK(r->get_header_value("Content-Type").rfind("text/csv", 0) == 0);
  CHECK(r->get_header_value("Content-Disposition") == "attachment; filename=\"kpis.csv\"");
  const auto rows = ParseCsv(r->body);
  REQUIRE_FALSE(rows.empty());
  CHECK(rows[0] == std::vector<std::string>{"period_start", "period_end", "metric", "dim", "value", "suppressed"});
  size_t i = 1;
  for (const auto& p : kpis["periods"]) {
    for (const auto& f : p["figures"]) {
      REQUIRE(i < rows.size());
      const std::vector<std::string> expected = {p["start"],
                                                 p["end"],
                                                 f["metric"],
                                                 f["dim"],
                                                 f["value"].is_null() ? "" : f["value"].dump(),
                                                 f["suppressed"].get<bool>() ? "true" : "false"};
      CHECK(rows[i] == expected);
      ++i;
    }
  }
  CHECK(i == rows.size());
}

TEST_CASE("the KPIs of a known mix of journeys, as JSON and CSV, with small numbers suppressed", "[e2e][kpi]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  // The service's figures of this run only: earlier tests' rows of the shared schema go.
  const std::string of_service =
      std::string("(SELECT id FROM submission.submissions WHERE service_id = '") + kService + "')";
  Sql("DELETE FROM submission.feedback WHERE submission_id IN " + of_service +
      "; DELETE FROM submission.submission_history WHERE submission_id IN " + of_service +
      "; DELETE FROM submission.attachments WHERE submission_id IN " + of_service +
      "; DELETE FROM submission.submissions WHERE service_id = '" + kService +
      "'; DELETE FROM submission.drafts WHERE service_id = '" + kService +
      "'; DELETE FROM submission.funnel_events WHERE service_id = '" + kService +
      "'; DELETE FROM submission.payment_failures WHERE service_id = '" + kService +
      "'; DELETE FROM submission.kpi_daily WHERE service_id = '" + kService +
      "'; DELETE FROM submission.kpi_dirty_days WHERE service_id = '" + kService + "'");

  // Quick jobs, the drafts' expiry by the test's clock, every figure shown (k = 1).
  const std::string clock = testing::TempDir() + "/kpi-clock-" + UniqueEmail();
  SetClock(clock, 0);
  stack.SetEnv("submission", "STADTPORTAL_CLOCK_FILE", clock);
  stack.SetEnv("submission", "STADTPORTAL_DRAFT_PURGE_INTERVAL_MS", "300");
  stack.SetEnv("submission", "STADTPORTAL_KPI_INTERVAL_MS", "300");
  stack.SetEnv("submission", "STADTPORTAL_KPI_MIN_CITIZENS", "1");
  REQUIRE(stack.Restart(stack.instance("submission")));
  REQUIRE(stack.WaitReady(60s));

  // The reader: granted kpi-reader by the operator; the role acts after the second factor.
  const std::string reader_mail = UniqueEmail();
  Onboard(stack, c, reader_mail);
  std::string out;
  REQUIRE(RunAdmin(stack, {"--by", "e2e", "grant-role", reader_mail, "kpi-reader"}, &out) == 0);
  const json reader = Login(c, reader_mail);
  CHECK(Status(c.Get(KpiPath().c_str(), Bearer(reader))) == 403);  // Second factor not yet passed.
  EnrolSecondFactor(c, reader, EnrolmentCode(out));
  const json admin = Admin(stack, c);
  const std::string backoffice = BackofficeToken(c, admin, "standesamt", "Standesamt");
  const json anna = Onboard(stack, c, UniqueEmail());

  // 1 draft stopped after step 1 and expired (the clock a month on, then back).
  json expiring = Draft(c, anna);
  Patch(c, anna, expiring, {{"data", {{"certificate_type", "birth"}}}, {"completed_step", "certificate"}});
  SetClock(clock, 31);
  REQUIRE(testing::Eventually(
      [&] {
        return Query(std::string("SELECT count(*) FROM submission.funnel_events WHERE service_id = '") + kService +
                     "' AND event = 'abandoned'") == "1";
      },
      15s));
  SetClock(clock, 0);

  // 10 views of the service's page.
  for (int i = 0; i < 10; ++i) {
    REQUIRE(Status(c.Get((std::string("/api/v1/services/") + kService).c_str())) == 200);
  }
  // 3 orders submitted; 1 draft whose field "copies" fails its step's check twice; 1
  // draft only started.
  std::vector<std::string> orders = {Order(c, anna), Order(c, anna), Order(c, anna)};
  json failing = Draft(c, anna);
  auto answers = CertificateAnswers();
  answers["copies"] = 0;
  failing = Patch(c, anna, failing, {{"data", answers}});
  for (int i = 0; i < 2; ++i) {
    auto v = PostJson(c, "/api/v1/drafts/" + failing["id"].get<std::string>() + "/validate?step=certificate",
                      json::object(), Bearer(anna));
    REQUIRE(Status(v) == 200);
    const json errors = json::parse(v->body)["errors"];
    REQUIRE(errors.size() == 1);
    CHECK(errors[0]["field"] == "copies");
  }
  Draft(c, anna);

  // 2 fees paid, 1 declined; 1 paid order received by the department and approved.
  for (int i = 0; i < 3; ++i) {
    PayAtProvider(stack, StartPayment(c, anna, orders[i], "kpi-pay-" + orders[i]), i < 2 ? "success" : "decline");
  }
  for (int i = 0; i < 2; ++i) {
    REQUIRE(testing::Eventually([&] { return SubmissionStatus(c, anna, orders[i]) != "awaiting_payment"; }, 20s));
  }
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(backoffice));
        return r && r->status == 200 && r->body.find(orders[0]) != std::string::npos;
      },
      20s));
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + orders[0] + "/acknowledge", json::object(),
                          BearerToken(backoffice))) == 200);
  REQUIRE(testing::Eventually([&] { return SubmissionStatus(c, anna, orders[0]) == "received_by_department"; }, 15s));
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + orders[0] + "/status", {{"status", "approved"}},
                          BearerToken(backoffice))) == 200);
  REQUIRE(testing::Eventually([&] { return SubmissionStatus(c, anna, orders[0]) == "approved"; }, 15s));
  // Ratings 4 and 5, one with a comment.
  REQUIRE(Status(PostJson(c, "/api/v1/submissions/" + orders[0] + "/feedback",
                          {{"rating", 5}, {"comment", "Schnell und einfach"}}, Bearer(anna))) == 201);
  REQUIRE(Status(PostJson(c, "/api/v1/submissions/" + orders[1] + "/feedback", {{"rating", 4}}, Bearer(anna))) == 201);

  // Every figure, exactly (durations: the upper bound of their histogram bucket, ≤ 60 s).
  const std::map<std::string, json> expected = {{"views", 10},
                                                {"drafts_started", 6},
                                                {"drafts_saved", 5},
                                                {"submissions", 3},
                                                {"drafts_abandoned", 1},
                                                {"abandonment_rate", 1.0 / 6},
                                                {"visit_to_submission_rate", 3.0 / 10},
                                                {"time_to_submit_median_seconds", 60},
                                                {"time_to_submit_p90_seconds", 60},
                                                {"payments_completed", 2},
                                                {"payments_failed", 1},
                                                {"payment_success_rate", 2.0 / 3},
                                                {"payment_failures/declined", 1},
                                                {"payment_failures/cancelled", 0},
                                                {"payment_failures/expired", 0},
                                                {"payment_failures/provider_error", 0},
                                                {"received_by_department", 1},
                                                {"delivery_latency_median_seconds", 60},
                                                {"delivery_latency_p90_seconds", 60},
                                                {"decisions/approved", 1},
                                                {"decisions/rejected", 0},
                                                {"decision_time_median_seconds", 60},
                                                {"decision_time_p90_seconds", 60},
                                                {"ratings_count", 2},
                                                {"rating_mean", 4.5},
                                                {"ratings/1", 0},
                                                {"ratings/2", 0},
                                                {"ratings/3", 0},
                                                {"ratings/4", 1},
                                                {"ratings/5", 1},
                                                {"comments", 1},
                                                {"steps_completed/certificate", 4},
                                                {"steps_completed/applicant", 3},
                                                {"abandoned_after_step/certificate", 1},
                                                {"validation_errors/copies", 2}};
  json kpis;
  // Views reach the service in batches (gateway, then submission: up to 10 s each).
  const bool complete = testing::Eventually(
      [&] {
        auto r = c.Get(KpiPath().c_str(), Bearer(reader));
        if (Status(r) != 200) return false;
        kpis = json::parse(r->body);
        return kpis["periods"].size() == 1 && Figures(kpis["periods"][0]) == expected;
      },
      60s);
  INFO(kpis.dump(2));
  CHECK(complete);
  CHECK(kpis["min_citizens"] == 1);
  CHECK(kpis["periods"][0]["start"] == Today());
  CheckCsvEqualsJson(c, reader, kpis);

  auto funnel = c.Get(
      (std::string("/api/v1/admin/kpis/funnel?service=") + kService + "&from=" + Today() + "&to=" + Today()).c_str(),
      Bearer(reader));
  REQUIRE(Status(funnel) == 200);
  const json steps = json::parse(funnel->body)["steps"];
  CHECK(steps == json::parse(R"([
    {"step": "viewed", "count": 10, "drop_off": null, "suppressed": false},
    {"step": "draft_started", "count": 6, "drop_off": 4, "suppressed": false},
    {"step": "step:certificate", "count": 4, "drop_off": 2, "suppressed": false},
    {"step": "step:applicant", "count": 3, "drop_off": 1, "suppressed": false},
    {"step": "submitted", "count": 3, "drop_off": 0, "suppressed": false}])"));

  // The operator's recomputation from the sources: the same figures.
  Sql("DELETE FROM submission.kpi_daily WHERE service_id = '" + std::string(kService) + "'");
  std::string recompute_out;
  REQUIRE(RunServiceCommand(stack, "submission",
                            {"recompute-kpis", "--tenant", "09564000", "--from", Today(), "--to", Today()},
                            &recompute_out) == 0);
  INFO(recompute_out);
  auto recomputed = c.Get(KpiPath().c_str(), Bearer(reader));
  REQUIRE(Status(recomputed) == 200);
  CHECK(Figures(json::parse(recomputed->body)["periods"][0]) == expected);
  CHECK(RunServiceCommand(stack, "submission", {"recompute-kpis", "--tenant", "09564000", "--from", Today()}) == 64);
  CHECK(RunServiceCommand(stack, "submission",
                          {"recompute-kpis", "--tenant", "0956'; --", "--from", Today(), "--to", Today()}) == 64);
  CHECK(RunServiceCommand(stack, "submission",
                          {"recompute-kpis", "--tenant", "09564000", "--from", "2026-02-30", "--to", Today()}) == 64);

  // Only kpi-readers; every parameter checked.
  CHECK(Status(c.Get(KpiPath().c_str(), Bearer(anna))) == 403);
  CHECK(Status(c.Get(KpiPath().c_str(), Bearer(admin))) == 403);
  CHECK(Status(c.Get(KpiPath().c_str())) == 401);
  auto bad = c.Get(KpiPath("year").c_str(), Bearer(reader));
  CHECK(Status(bad) == 400);
  CHECK((bad && bad->body.find("granularity") != std::string::npos));
  CHECK(Status(c.Get("/api/v1/admin/kpis?service=civil-registry-certificate&from=2026-01-01&to=2027-06-01"
                     "&granularity=day",
                     Bearer(reader))) == 400);
  CHECK(Status(
            c.Get(("/api/v1/admin/kpis?service=no-such-service&from=" + Today() + "&to=" + Today() + "&granularity=day")
                      .c_str(),
                  Bearer(reader))) == 404);

  // The default threshold (k = 5): cells of fewer than five citizens are withheld.
  stack.SetEnv("submission", "STADTPORTAL_KPI_MIN_CITIZENS", "");
  REQUIRE(stack.Restart(stack.instance("submission")));
  REQUIRE(stack.WaitReady(60s));
  auto safe = c.Get(KpiPath().c_str(), Bearer(reader));
  REQUIRE(Status(safe) == 200);
  const json protected_kpis = json::parse(safe->body);
  CHECK(protected_kpis["min_citizens"] == 5);
  const auto shown = Figures(protected_kpis["periods"][0]);
  CHECK(shown.at("views") == 10);
  CHECK(shown.at("drafts_started") == 6);
  CHECK(shown.at("drafts_saved") == 5);
  CHECK(shown.at("decisions/rejected") == 0);
  for (const char* hidden : {"submissions!", "drafts_abandoned!", "abandonment_rate!", "rating_mean!", "ratings/5!",
                             "validation_errors/copies!", "time_to_submit_median_seconds!", "payments_completed!",
                             "payments_failed!", "payment_success_rate!", "payment_failures/declined!"}) {
    INFO(hidden);
    REQUIRE(shown.count(hidden) == 1);
    CHECK(shown.at(hidden).is_null());
  }
  CheckCsvEqualsJson(c, reader, protected_kpis);
}

}  // namespace
}  // namespace stadtportal::e2e

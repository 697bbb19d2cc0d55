// stadtportal-submission: catalogue, drafts and submissions. Wiring only; the logic is in service.cc and store.cc.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/app/retention.h"
#include "libs/events/events.h"
#include "libs/log/log.h"
#include "services/submission/catalogue.h"
#include "services/submission/consumers.h"
#include "services/submission/kpi.h"
#include "services/submission/retention.h"
#include "services/submission/service.h"

namespace {

constexpr char kRecomputeUsage[] =
    "usage: stadtportal-submission recompute-kpis --tenant TENANT --from YYYY-MM-DD --to YYYY-MM-DD\n";

// The operator command `stadtportal-submission recompute-kpis --tenant T --from D --to D`:
// computes the KPIs of every online service of the tenant for the days of the range anew
// from the sources, in one transaction, with the service's own configuration
// (STADTPORTAL_DATABASE_URL, also as _FILE). Exit codes: 0 done, 1 failed, 2 configuration
// error, 64 usage.
int RecomputeKpis(const std::vector<std::string>& args) {
  using namespace stadtportal;
  std::map<std::string, std::string> flags;
  for (size_t i = 0; i + 1 < args.size(); i += 2) flags[args[i]] = args[i + 1];
  if (args.size() != 6 || flags.size() != 3 || !flags.count("--tenant") || !flags.count("--from") ||
      !flags.count("--to")) {
    std::fputs(kRecomputeUsage, stderr);
    return 64;
  }
  if (!config::IsTenantKey(flags["--tenant"])) {
    std::fprintf(stderr, "stadtportal-submission: --tenant takes an eight-digit municipality key\n");
    return 64;
  }
  submission::KpiQuery range;
  // At most ten years, the longest range the API reads.
  if (auto s = submission::ParseKpiRange(flags["--from"], flags["--to"], "month", &range); !s.ok()) {
    std::fprintf(stderr, "stadtportal-submission: %s\n", std::string(s.message()).c_str());
    return 64;
  }
  return app::Main("submission", [&](const config::Env& env) -> int {
    auto pool_options = db::PoolOptions::FromEnv(env, "submission");
    pool_options.size = 1;
    db::Pool pool(pool_options, submission::Store::Prepare);
    submission::Kpis kpis(pool);
    if (auto s = kpis.Recompute(flags["--tenant"], range.from, range.to); !s.ok()) {
      std::fprintf(stderr, "stadtportal-submission: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("recomputed the KPIs of %s from %s to %s\n", flags["--tenant"].c_str(), flags["--from"].c_str(),
                flags["--to"].c_str());
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  using namespace stadtportal;
  if (argc > 1 && std::strcmp(argv[1], "recompute-kpis") == 0) {
    return RecomputeKpis(std::vector<std::string>(argv + 2, argv + argc));
  }
  return app::RunService(argc, argv, {"submission", 50053, 9103}, [](app::ServiceContext& ctx) {
    auto options = submission::Options::FromEnv(ctx.env(), ctx.tenant());
    const auto purge_every = ctx.env().Millis("STADTPORTAL_DRAFT_PURGE_INTERVAL_MS", std::chrono::minutes(10));
    auto& db = ctx.Database(submission::Store::Prepare);
    auto store = std::make_shared<submission::Store>(db);
    auto relay =
        std::make_shared<events::Relay>(db, ctx.Redis(), "submission", events::EventRetention::FromEnv(ctx.env()));
    auto consumer = std::make_shared<events::Consumer>(db, redis::Options::FromEnv(ctx.env()), "submission",
                                                       submission::Consumers());
    // The catalogue files in the binary are published before the first call is served.
    auto catalogue = submission::LoadCatalogue();
    if (!catalogue.ok()) throw config::Error(std::string(catalogue.status().message()));
    ctx.OnStarting([store, catalogue = *std::move(catalogue)] { return store->SyncCatalogue(catalogue); });
    const auto clock = app::ClockFromEnv(ctx.env());
    auto purge = std::make_shared<app::Periodic>("purge-expired-drafts", purge_every, [store, clock] {
      auto now = clock();
      if (!now.ok()) {
        log::Warn("draft purge skipped", {{"error", std::string(now.status().message())}});
        return;
      }
      auto n = store->PurgeExpiredDrafts(1000, *now);
      if (!n.ok()) {
        log::Warn("draft purge failed", {{"error", std::string(n.status().message())}});
      } else if (*n > 0) {
        log::Info("expired drafts purged", {{"count", std::to_string(*n)}});
      }
    });
    // Closed submissions whose retention ended: handed to the archive, anonymised.
    auto retention_job =
        std::make_shared<submission::RetentionJob>(store, clock, submission::ArchiveDirFromEnv(ctx.env()));
    auto retention = app::RetentionPeriodic("submission", app::RetentionInterval(ctx.env()),
                                            [retention_job] { return retention_job->RunOnce(); });
    // The KPIs: the days new events marked stale, computed anew (docs/operations.md, "KPIs").
    const auto kpi_every = ctx.env().Millis("STADTPORTAL_KPI_INTERVAL_MS", std::chrono::minutes(1));
    auto kpis = std::make_shared<submission::Kpis>(db);
    auto kpi_job = std::make_shared<app::Periodic>("compute-kpis", kpi_every, [kpis] {
      for (int round = 0; round < 20; ++round) {
        auto n = kpis->RunOnce();
        if (!n.ok()) {
          log::Warn("KPI computation failed", {{"error", std::string(n.status().message())}});
          return;
        }
        if (*n == 0) return;
      }
    });
    auto service = std::make_unique<submission::Service>(store, options);
    auto* views = service.get();  // Owned by the server, which outlives the jobs.
    auto flush = std::make_shared<app::Periodic>("flush-catalogue-views", std::chrono::seconds(10),
                                                 [views] { views->FlushViews(); });
    ctx.OnServing([purge, flush, relay, consumer, retention, kpi_job] {
      purge->Start();
      kpi_job->Start();
      retention->Start();
      flush->Start();
      relay->Start();
      consumer->Start();
    });
    ctx.OnStopping([purge, flush, views, relay, consumer, retention, kpi_job] {
      consumer->Stop();
      kpi_job->Stop();
      relay->Stop();
      purge->Stop();
      retention->Stop();
      flush->Stop();
      views->FlushViews();
    });
    ctx.AddService<submission::v1::SubmissionService>(std::move(service));
  });
}

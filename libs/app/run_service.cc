// RunService lives apart from Main: only service binaries link the embedded migrations.
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "libs/app/app.h"
#include "libs/db/migrate.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::app {

ServiceContext::ServiceContext(const config::Env& env, ServiceSpec spec, grpcx::ServerOptions server_options)
    : env_(env),
      spec_(std::move(spec)),
      tenant_(env.TenantKey("STADTPORTAL_TENANT", config::kDefaultTenant)),
      server_(std::move(server_options)) {}

redis::Client& ServiceContext::Redis() {
  if (redis_ == nullptr) redis_ = std::make_unique<redis::Client>(redis::Options::FromEnv(env_));
  return *redis_;
}

absl::Status ServiceContext::Starting() {
  for (auto& step : on_starting_) {
    if (auto s = step(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ServiceContext::Serving() {
  for (auto& f : on_serving_) f();
}

void ServiceContext::Stopping() {
  for (auto it = on_stopping_.rbegin(); it != on_stopping_.rend(); ++it) (*it)();
}

db::Pool& ServiceContext::Database(db::Prepare prepare) {
  if (pool_ == nullptr)
    pool_ = std::make_unique<db::Pool>(db::PoolOptions::FromEnv(env_, spec_.name), std::move(prepare));
  return *pool_;
}

namespace {

// Applies the embedded migrations, waiting up to `patience` for the database to come up.
bool ApplyMigrations(const std::string& url, const std::string& schema, std::chrono::milliseconds patience) {
  const auto until = std::chrono::steady_clock::now() + patience;
  for (;;) {
    auto r = db::Migrate(url, schema, db::EmbeddedMigrations());
    if (r.ok()) {
      log::Info("migrations up to date",
                {{"schema", schema}, {"applied", r->applied}, {"already_applied", r->already_applied}});
      return true;
    }
    if (r.status().code() != absl::StatusCode::kUnavailable || std::chrono::steady_clock::now() >= until) {
      log::Error("migrations failed", {{"schema", schema}, {"error", std::string(r.status().message())}});
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

int RunService(int argc, char** argv, const ServiceSpec& spec, const std::function<void(ServiceContext&)>& wire) {
  bool migrate_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--migrate-only") == 0) {
      migrate_only = true;
    } else {
      std::fprintf(stderr, "stadtportal-%s: unknown argument %s (only --migrate-only)\n", spec.name.c_str(), argv[i]);
      return 2;
    }
  }
  return Main(spec.name, [&](const config::Env& env) -> int {
    const auto db = db::PoolOptions::FromEnv(env, spec.name);
    const bool migrate = migrate_only || env.Bool("STADTPORTAL_MIGRATE_ON_START", true);
    const auto patience = env.Millis("STADTPORTAL_DB_STARTUP_TIMEOUT_MS", std::chrono::milliseconds(30000));
    const std::string listen_host = env.String("STADTPORTAL_LISTEN_HOST", "0.0.0.0");
    const uint16_t admin_port = env.Port("STADTPORTAL_ADMIN_PORT", spec.admin_port);
    ServiceContext ctx(env, spec, grpcx::ServerOptions::FromEnv(env, spec.grpc_port));
    // A migration Job needs only the database: no caller keys, no service configuration
    // (it runs before the release's ConfigMaps exist). A serving process needs all of it.
    if (!migrate_only) {
      grpcx::SetCallerVerifier(std::make_shared<const auth::Verifier>(auth::Verifier::FromEnv(env, spec.name)));
      wire(ctx);  // Reads the service's own configuration: fails before anything starts.
    }

    if (migrate && !ApplyMigrations(db.url, spec.name, patience)) return 1;
    if (migrate_only) return 0;

    if (auto s = ctx.Starting(); !s.ok()) {
      log::Error("cannot start", {{"error", std::string(s.message())}});
      return 1;
    }
    metrics::AdminServer admin(listen_host, admin_port);
    log::Info("metrics listening", {{"port", admin.port()}});
    if (auto s = ctx.server().Start(); !s.ok()) {
      log::Error("cannot start", {{"error", std::string(s.message())}});
      return 1;
    }
    ctx.Serving();
    const int sig = grpcx::WaitForTerminationSignal();
    log::Info("signal received", {{"signal", strsignal(sig)}});
    ctx.Stopping();
    ctx.server().Shutdown();
    return 0;
  });
}

}  // namespace stadtportal::app

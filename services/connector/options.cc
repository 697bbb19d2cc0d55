#include "services/connector/options.h"

namespace stadtportal::connector {

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.egress.allow_http = env.Bool("STADTPORTAL_CONNECTOR_ALLOW_HTTP", false);
  auto allowed = net::ParseNetworks(env.String("STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS", ""));
  if (!allowed.ok()) {
    throw config::Error("STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS: " + std::string(allowed.status().message()));
  }
  o.egress.allowed = *std::move(allowed);
  o.max_attempts = static_cast<int>(env.Int("STADTPORTAL_CONNECTOR_MAX_ATTEMPTS", o.max_attempts, 1, 1000));
  o.max_age = std::chrono::seconds(env.Int("STADTPORTAL_CONNECTOR_MAX_AGE_S", o.max_age.count(), 1, 30 * 86400));
  o.backoff_base = env.Millis("STADTPORTAL_CONNECTOR_BACKOFF_BASE_MS", o.backoff_base);
  o.backoff_max = env.Millis("STADTPORTAL_CONNECTOR_BACKOFF_MAX_MS", o.backoff_max);
  o.breaker_threshold =
      static_cast<int>(env.Int("STADTPORTAL_CONNECTOR_BREAKER_THRESHOLD", o.breaker_threshold, 1, 1000));
  o.breaker_open =
      std::chrono::seconds(env.Int("STADTPORTAL_CONNECTOR_BREAKER_OPEN_S", o.breaker_open.count(), 1, 3600));
  o.http_timeout = env.Millis("STADTPORTAL_CONNECTOR_HTTP_TIMEOUT_MS", o.http_timeout);
  o.parallel = static_cast<int>(env.Int("STADTPORTAL_CONNECTOR_PARALLEL", o.parallel, 1, 64));
  o.poll = env.Millis("STADTPORTAL_CONNECTOR_POLL_MS", o.poll);
  o.snapshot_days = static_cast<int>(env.Int("STADTPORTAL_DELIVERY_SNAPSHOT_DAYS", o.snapshot_days, 1, 3650));
  return o;
}

}  // namespace stadtportal::connector

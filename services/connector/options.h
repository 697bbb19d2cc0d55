#pragma once

#include <chrono>
#include <string>

#include "libs/config/config.h"
#include "services/connector/egress.h"

namespace stadtportal::connector {

struct Options {
  std::string default_tenant = config::kDefaultTenant;
  // Where push deliveries may go: public addresses, and the networks operators allow.
  EgressPolicy egress;
  int max_attempts = 10;
  std::chrono::seconds max_age{24 * 60 * 60};
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_max{5 * 60 * 1000};
  int breaker_threshold = 5;
  std::chrono::seconds breaker_open{30};
  std::chrono::milliseconds http_timeout{10000};
  // Deliveries pushed at the same time (worker threads), and how often they look for due ones.
  int parallel = 4;
  std::chrono::milliseconds poll{200};
  // How long fetching a submission's snapshot may take.
  std::chrono::milliseconds snapshot_deadline{10000};
  // A delivery's snapshot (the submission as pushed, kept for retries) is cleared this many
  // days after the department acknowledged it (docs/data-protection.md, "Retention").
  int snapshot_days = 30;
  // How long a worker may take for a delivery it claimed before another may claim it
  // again: fetching the snapshot, the request, and kLeaseMargin for the rest (resolving the
  // endpoint, recording the outcome, the clocks' difference). A request that could not end
  // within the lease is not started.
  std::chrono::milliseconds lease() const { return snapshot_deadline + http_timeout + kLeaseMargin; }
  static constexpr std::chrono::seconds kLeaseMargin{5};

  // STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS, _ALLOW_HTTP, _MAX_ATTEMPTS, _MAX_AGE_S, _BACKOFF_BASE_MS, _BACKOFF_MAX_MS,
  // _BREAKER_THRESHOLD, _BREAKER_OPEN_S, _HTTP_TIMEOUT_MS, _PARALLEL, _POLL_MS;
  // STADTPORTAL_DELIVERY_SNAPSHOT_DAYS (1–3650).
  static Options FromEnv(const config::Env& env, const std::string& tenant);
};

}  // namespace stadtportal::connector

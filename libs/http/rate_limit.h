#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "libs/redis/client.h"

namespace stadtportal::http {

// A rate: `requests` per `period`, as a token bucket that refills continuously.
struct Rate {
  int requests = 100;
  std::chrono::seconds period{60};
  // "20/60" = 20 requests per 60 seconds.
  static absl::StatusOr<Rate> Parse(const std::string& text);
};

struct Decision {
  bool allowed;
  int limit;
  int remaining;
  int reset_seconds;  // Until the bucket is full again.
  int retry_after;    // Seconds until the next request is allowed (when refused).
};

// Token buckets in Redis, one per (group, key), shared by all gateway replicas; the
// bucket is updated atomically by a Lua script using Redis' clock.
class RateLimiter {
 public:
  explicit RateLimiter(redis::Client& redis) : redis_(redis) {}
  absl::StatusOr<Decision> Take(const std::string& group, const std::string& key, const Rate& rate);

 private:
  redis::Client& redis_;
};

}  // namespace stadtportal::http

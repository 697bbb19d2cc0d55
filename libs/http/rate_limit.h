#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

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
//
// A busy client does not cost a Redis round trip per request: a replica takes tokens
// from the shared bucket in leases (1 token at first, doubling while the client keeps
// using them up, at most a twentieth of the bucket and kLeaseMax) and hands them out
// locally. A token is taken from the shared bucket before it is handed out, so all
// replicas together never admit more than the bucket allows; tokens a lease still holds
// when it lapses (kLeaseLifetime) are dropped, which can only admit fewer. A bucket of
// fewer than 40 requests is always asked token by token (log-in, registration). A
// refused client is refused locally until the shared bucket has its next token (at
// most kLeaseLifetime), so a flood costs Redis one round trip per client and second.
class RateLimiter {
 public:
  static constexpr int kLeaseMax = 1000;
  static constexpr std::chrono::milliseconds kLeaseLifetime{1000};
  // Leases held at once; beyond it the lapsed ones are dropped, then all of them.
  static constexpr size_t kMaxLeases = 100000;

  explicit RateLimiter(redis::Client& redis) : redis_(redis) {}
  absl::StatusOr<Decision> Take(const std::string& group, const std::string& key, const Rate& rate);

  // Round trips to Redis so far (for tests and the benchmark's explanation).
  uint64_t redis_calls() const { return redis_calls_.load(); }

 private:
  struct Lease {
    int tokens = 0;  // Taken from the shared bucket, not yet handed out.
    int next = 1;    // Tokens the next lease asks for.
    std::chrono::steady_clock::time_point lapses;
    // Refused by the shared bucket: no token there before this.
    std::chrono::steady_clock::time_point refused_until;
    int remaining = 0;  // The shared bucket's tokens after the last lease.
    int reset_seconds = 0;
  };
  // Takes up to `want` tokens from the shared bucket; the decision counts the first.
  // `next_ms`: until the bucket's next token when none was taken.
  absl::StatusOr<Decision> TakeShared(const std::string& bucket, const Rate& rate, int want, int* granted,
                                      int64_t* next_ms);

  redis::Client& redis_;
  std::mutex mu_;
  std::unordered_map<std::string, Lease> leases_;
  std::atomic<uint64_t> redis_calls_{0};
};

}  // namespace stadtportal::http

#include "libs/http/rate_limit.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::http {
namespace {

std::string UniqueKey(const std::string& name) {
  return name + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

int Admitted(RateLimiter& limiter, const std::string& key, const Rate& rate, int attempts) {
  int admitted = 0;
  for (int i = 0; i < attempts; ++i) {
    auto d = limiter.Take("test", key, rate);
    REQUIRE(d.ok());
    if (d->allowed) ++admitted;
  }
  return admitted;
}

}  // namespace

TEST_CASE("a small bucket admits exactly its size, token by token", "[integration]") {
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  RateLimiter limiter(redis);
  const Rate rate{20, std::chrono::seconds(3600)};
  const std::string key = UniqueKey("small");
  CHECK(Admitted(limiter, key, rate, 30) == 20);
  // Each admitted request asked Redis (no lease for a bucket this small); the first
  // refusal did, the later ones were refused locally until a token is due.
  CHECK(limiter.redis_calls() == 21);
  auto refused = limiter.Take("test", key, rate);
  REQUIRE(refused.ok());
  CHECK_FALSE(refused->allowed);
  CHECK(refused->retry_after >= 1);
  CHECK(refused->remaining == 0);
}

TEST_CASE("a busy client is served from leases, and replicas together never exceed the bucket", "[integration]") {
  redis::Client redis_a(*redis::Options::FromUrl(testing::RedisUrl()));
  redis::Client redis_b(*redis::Options::FromUrl(testing::RedisUrl()));
  RateLimiter a(redis_a), b(redis_b);
  const Rate rate{2000, std::chrono::seconds(3600)};
  const std::string key = UniqueKey("busy");
  int admitted = 0;
  for (int round = 0; round < 100; ++round) {
    admitted += Admitted(a, key, rate, 15);
    admitted += Admitted(b, key, rate, 15);
  }
  // 3,000 requests against a bucket of 2,000: at most 2,000 pass, and the leases lose
  // at most one lease each (a twentieth of the bucket) per replica.
  CHECK(admitted <= 2000);
  CHECK(admitted >= 2000 - 2 * 100);
  // Far fewer round trips than requests, refusals included.
  CHECK(a.redis_calls() + b.redis_calls() < 3000 / 20);
  // The headers' remaining count stays within the bucket.
  auto d = a.Take("test", key, rate);
  REQUIRE(d.ok());
  CHECK(d->remaining >= 0);
  CHECK(d->remaining <= 2000);
}

TEST_CASE("clients have their own buckets", "[integration]") {
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  RateLimiter limiter(redis);
  const Rate rate{100, std::chrono::seconds(3600)};
  const std::string first = UniqueKey("first"), second = UniqueKey("second");
  CHECK(Admitted(limiter, first, rate, 150) == 100);
  // The first client's leases do not spend the second's tokens.
  CHECK(Admitted(limiter, second, rate, 100) == 100);
  CHECK(Admitted(limiter, first, rate, 10) == 0);
}

TEST_CASE("an unreachable Redis is an error, not a decision", "[integration]") {
  auto options = *redis::Options::FromUrl("redis://127.0.0.1:" + std::to_string(testing::FreePort()));
  options.max_attempts = 1;
  redis::Client redis(options);
  RateLimiter limiter(redis);
  CHECK_FALSE(limiter.Take("test", "k", Rate{1000, std::chrono::seconds(60)}).ok());
}

}  // namespace stadtportal::http

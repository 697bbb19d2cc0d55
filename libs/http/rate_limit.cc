#include "libs/http/rate_limit.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stadtportal::http {
namespace {

// KEYS[1]: bucket. ARGV: capacity, period in ms. Returns {allowed, tokens left, ms to full, ms to next}.
constexpr char kScript[] = R"lua(
local cap = tonumber(ARGV[1])
local rate = cap / tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
local full = math.ceil((cap - tokens) / rate)
redis.call('PEXPIRE', KEYS[1], full + 1000)
local wait = 0
if allowed == 0 then wait = math.ceil((1 - tokens) / rate) end
return {allowed, math.floor(tokens), full, wait}
)lua";

}  // namespace

absl::StatusOr<Rate> Rate::Parse(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  Rate r;
  int64_t period = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &r.requests) || !absl::SimpleAtoi(parts[1], &period) ||
      r.requests < 1 || period < 1 || period > 86400) {
    return absl::InvalidArgumentError("expected REQUESTS/SECONDS, e.g. 20/60");
  }
  r.period = std::chrono::seconds(period);
  return r;
}

absl::StatusOr<Decision> RateLimiter::Take(const std::string& group, const std::string& key, const Rate& rate) {
  const std::string period_ms = std::to_string(rate.period.count() * 1000);
  // The rate is part of the bucket's name: a changed limit starts with full buckets.
  const std::string bucket =
      absl::StrCat("sp:ratelimit:", group, ":", rate.requests, "/", rate.period.count(), ":", key);
  auto r = redis_.Command({"EVAL", kScript, "1", bucket, std::to_string(rate.requests), period_ms});
  if (!r.ok()) return r.status();
  const redisReply* raw = r->raw();
  if (raw->type != REDIS_REPLY_ARRAY || raw->elements != 4) return absl::InternalError("unexpected rate-limit reply");
  Decision d;
  d.allowed = raw->element[0]->integer == 1;
  d.limit = rate.requests;
  d.remaining = static_cast<int>(raw->element[1]->integer);
  d.reset_seconds = static_cast<int>(std::ceil(static_cast<double>(raw->element[2]->integer) / 1000.0));
  d.retry_after = std::max(1, static_cast<int>(std::ceil(static_cast<double>(raw->element[3]->integer) / 1000.0)));
  return d;
}

}  // namespace stadtportal::http

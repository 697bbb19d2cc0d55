#include "libs/http/rate_limit.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stadtportal::http {
namespace {

// KEYS[1]: bucket. ARGV: capacity, period in ms, tokens wanted. Takes up to that many
// (at least one, or none when the bucket has less than one). Returns {tokens taken,
// tokens left, ms to full, ms to next}.
constexpr char kScript[] = R"lua(
local cap = tonumber(ARGV[1])
local rate = cap / tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local taken = 0
if tokens >= 1 then
  taken = math.min(want, math.floor(tokens))
  tokens = tokens - taken
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
local full = math.ceil((cap - tokens) / rate)
redis.call('PEXPIRE', KEYS[1], full + 1000)
local wait = 0
if taken == 0 then wait = math.ceil((1 - tokens) / rate) end
return {taken, math.floor(tokens), full, wait}
)lua";

}  // namespace

absl::StatusOr<Rate> Rate::Parse(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  Rate r;
  int64_t period = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &r.requests) || !absl::SimpleAtoi(parts[1], &period) ||
      r.requests < 1 || r.requests > 1000000000 || period < 1 || period > 86400) {
    return absl::InvalidArgumentError("expected REQUESTS/SECONDS, e.g. 20/60 (at most 1000000000 requests)");
  }
  r.period = std::chrono::seconds(period);
  return r;
}

absl::StatusOr<Decision> RateLimiter::Take(const std::string& group, const std::string& key, const Rate& rate) {
  // The rate is part of the bucket's name: a changed limit starts with full buckets.
  std::string bucket = absl::StrCat("sp:ratelimit:", group, ":", rate.requests, "/", rate.period.count(), ":", key);
  const auto now = std::chrono::steady_clock::now();
  const auto seconds_until = [now](std::chrono::steady_clock::time_point t) {
    return std::max(1, static_cast<int>(std::ceil(std::chrono::duration<double>(t - now).count())));
  };
  int want = 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = leases_.find(bucket); it != leases_.end()) {
      Lease& l = it->second;
      if (now < l.refused_until) {
        return Decision{false, rate.requests, 0, l.reset_seconds, seconds_until(l.refused_until)};
      }
      if (now < l.lapses && l.tokens > 0) {
        --l.tokens;
        return Decision{true, rate.requests, l.remaining + l.tokens, l.reset_seconds, 0};
      }
      // A lease used up within its lifetime: a busy client, so a larger one.
      if (now < l.lapses) want = l.next;
    }
  }
  const int most = std::max(1, std::min(kLeaseMax, rate.requests / 20));
  want = std::clamp(want, 1, most);
  int granted = 0;
  int64_t next_ms = 0;
  auto d = TakeShared(bucket, rate, want, &granted, &next_ms);
  if (!d.ok()) return d;
  std::lock_guard<std::mutex> lock(mu_);
  if (leases_.size() >= kMaxLeases && leases_.find(bucket) == leases_.end()) {
    for (auto it = leases_.begin(); it != leases_.end();) {
      it = now >= it->second.lapses && now >= it->second.refused_until ? leases_.erase(it) : ++it;
    }
    if (leases_.size() >= kMaxLeases) leases_.clear();
  }
  Lease& l = leases_[bucket];
  l.remaining = d->remaining;
  l.reset_seconds = d->reset_seconds;
  if (granted == 0) {
    // Another thread of this client may have just taken a lease: its tokens serve first.
    if (now < l.lapses && l.tokens > 0) {
      --l.tokens;
      return Decision{true, rate.requests, l.remaining + l.tokens, l.reset_seconds, 0};
    }
    // No token in the shared bucket before next_ms, whatever other replicas do: refused
    // here without asking again until then (at most the lease lifetime).
    l.refused_until =
        now + std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(next_ms), kLeaseLifetime);
    return d;
  }
  if (now >= l.lapses) l.tokens = 0;
  l.tokens += granted - 1;
  l.next = std::min(most, granted * 2);
  l.lapses = now + kLeaseLifetime;
  d->remaining += l.tokens;
  return d;
}

absl::StatusOr<Decision> RateLimiter::TakeShared(const std::string& bucket, const Rate& rate, int want, int* granted,
                                                 int64_t* next_ms) {
  ++redis_calls_;
  auto r = redis_.Command({"EVAL", kScript, "1", bucket, std::to_string(rate.requests),
                           std::to_string(rate.period.count() * 1000), std::to_string(want)});
  if (!r.ok()) return r.status();
  const redisReply* raw = r->raw();
  if (raw->type != REDIS_REPLY_ARRAY || raw->elements != 4) return absl::InternalError("unexpected rate-limit reply");
  for (size_t i = 0; i < 4; ++i) {
    if (raw->element[i]->type != REDIS_REPLY_INTEGER) return absl::InternalError("unexpected rate-limit reply");
  }
  *granted = static_cast<int>(std::clamp<long long>(raw->element[0]->integer, 0, want));
  *next_ms = std::max<long long>(1, raw->element[3]->integer);
  Decision d;
  d.allowed = *granted > 0;
  d.limit = rate.requests;
  d.remaining = static_cast<int>(raw->element[1]->integer);
  d.reset_seconds = static_cast<int>(std::ceil(static_cast<double>(raw->element[2]->integer) / 1000.0));
  d.retry_after = std::max(1, static_cast<int>(std::ceil(static_cast<double>(raw->element[3]->integer) / 1000.0)));
  return d;
}

}  // namespace stadtportal::http

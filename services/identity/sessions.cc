#include "services/identity/sessions.h"

#include "libs/http/client_address.h"

#include <algorithm>

#include <sodium.h>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "services/identity/federation/providers.h"

namespace stadtportal::identity {
namespace {

using auth::RandomToken;
using auth::Sha256;

using google::protobuf::util::TimeUtil;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A session's key in Redis, by its reference (the SHA-256 of its id), or by its id.
std::string RefKey(const std::string& session_ref) { return "sp:session:" + session_ref; }
std::string SessionKey(const std::string& session_id) { return RefKey(SessionStore::Ref(session_id)); }
std::string AccountKey(const std::string& account_id) { return "sp:account-sessions:" + account_id; }

// A session's level as stored; a session always has one (low at the least).
v1::AssuranceLevel ParseLevel(const std::string& s) {
  const auto level = federation::LevelOf(s);
  return level == v1::ASSURANCE_LEVEL_UNSPECIFIED ? v1::ASSURANCE_LEVEL_LOW : level;
}

const char* SecondFactorName(v1::SecondFactor f) {
  switch (f) {
    case v1::SECOND_FACTOR_PASSED: return "passed";
    case v1::SECOND_FACTOR_REQUIRED: return "required";
    default: return "";
  }
}

v1::SecondFactor ParseSecondFactor(const std::string& s) {
  if (s == "passed") return v1::SECOND_FACTOR_PASSED;
  if (s == "required") return v1::SECOND_FACTOR_REQUIRED;
  return v1::SECOND_FACTOR_NOT_ENROLLED;
}

}  // namespace

std::string SessionStore::Ref(const std::string& session_id) { return absl::BytesToHexString(Sha256(session_id)); }

absl::StatusOr<v1::LoginResponse> SessionStore::Create(const std::string& account_id, const std::string& tenant,
                                                       const std::vector<std::string>& roles, v1::AssuranceLevel level,
                                                       const std::string& method, const std::string& acting_party,
                                                       int64_t absolute_at, const std::string& sid,
                                                       int64_t authenticated_at) {
  const std::string id = RandomToken(32);
  const std::string csrf = RandomToken(32);
  const std::string session_sid = sid.empty() ? RandomToken(16) : sid;
  const int64_t now = Now();
  const int64_t auth_at = authenticated_at > 0 ? authenticated_at : now;
  const int64_t longest = now + options_.absolute.count();
  const int64_t absolute = absolute_at > 0 ? std::min(absolute_at, longest) : longest;
  if (absolute <= now) return absl::UnauthenticatedError("session unknown or expired");
  const std::string key = SessionKey(id);
  auto r = redis_.Command({"HSET",    key,
                           "account", account_id,
                           "tenant",  tenant,
                           "acr",     federation::LevelName(level),
                           "amr",     method,
                           "roles",   absl::StrJoin(roles, ","),
                           "csrf",    csrf,
                           "created", std::to_string(now),
                           "abs",     std::to_string(absolute),
                           "act",     acting_party,
                           "auth",    std::to_string(auth_at),
                           "sid",     session_sid});
  if (!r.ok()) return r.status();
  const int64_t idle = std::min<int64_t>(options_.idle.count(), absolute - now);
  if (auto e = redis_.Command({"EXPIRE", key, std::to_string(idle)}); !e.ok()) return e.status();
  const std::string akey = AccountKey(account_id);
  if (auto a = redis_.Command({"SADD", akey, Ref(id)}); !a.ok()) return a.status();
  if (auto e = redis_.Command({"EXPIRE", akey, std::to_string(options_.absolute.count())}); !e.ok()) return e.status();

  v1::LoginResponse out;
  out.set_session_id(id);
  auto* s = out.mutable_session();
  s->set_account_id(account_id);
  s->mutable_tenant()->set_key(tenant);
  s->set_assurance_level(level);
  s->set_auth_method(method);
  for (const auto& role : roles) s->add_roles(role);
  s->set_csrf_token(csrf);
  *s->mutable_expires_at() = TimeUtil::SecondsToTimestamp(absolute);
  *s->mutable_idle_expires_at() = TimeUtil::SecondsToTimestamp(std::min(absolute, now + options_.idle.count()));
  s->set_session_ref(Ref(id));
  s->set_acting_party_id(acting_party);
  *s->mutable_authenticated_at() = TimeUtil::SecondsToTimestamp(auth_at);
  s->set_sid(session_sid);
  return out;
}

absl::StatusOr<v1::Session> SessionStore::Resolve(const std::string& session_id) {
  if (session_id.empty() || session_id.size() > 128) return absl::UnauthenticatedError("session unknown or expired");
  return ResolveRef(Ref(session_id));
}

absl::StatusOr<v1::Session> SessionStore::ResolveRef(const std::string& session_ref) {
  const auto unknown = absl::UnauthenticatedError("session unknown or expired");
  if (session_ref.size() != 64 || !std::all_of(session_ref.begin(), session_ref.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return unknown;
  }
  const std::string key = RefKey(session_ref);
  // Read and, while within its absolute lifetime, extended by the idle time: one round
  // trip (this runs for every request of every session).
  static constexpr char kResolve[] =
      "local f = redis.call('HGETALL', KEYS[1]) "
      "for i = 1, #f, 2 do "
      "  if f[i] == 'abs' then "
      "    local left = (tonumber(f[i + 1]) or 0) - tonumber(ARGV[2]) "
      "    if left > 0 then redis.call('EXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), left)) end "
      "  end "
      "end "
      "return f";
  const int64_t now = Now();
  auto r = redis_.Command({"EVAL", kResolve, "1", key, std::to_string(options_.idle.count()), std::to_string(now)});
  if (!r.ok()) return r.status();
  if (r->type() != REDIS_REPLY_ARRAY) return absl::InternalError("unexpected session reply");
  std::map<std::string, std::string> f;
  const redisReply* raw = r->raw();
  for (size_t i = 0; i + 1 < raw->elements; i += 2) {
    f[std::string(raw->element[i]->str, raw->element[i]->len)] =
        std::string(raw->element[i + 1]->str, raw->element[i + 1]->len);
  }
  int64_t absolute = 0;
  if (f.empty() || !absl::SimpleAtoi(f["abs"], &absolute)) return unknown;
  if (absolute <= now) {
    if (auto d = DeleteRef(session_ref); !d.ok()) return d;
    return unknown;
  }
  v1::Session s;
  s.set_account_id(f["account"]);
  s.mutable_tenant()->set_key(f["tenant"]);
  s.set_assurance_level(ParseLevel(f["acr"]));
  s.set_auth_method(f["amr"]);
  for (absl::string_view role : absl::StrSplit(f["roles"], ',', absl::SkipEmpty())) s.add_roles(std::string(role));
  s.set_csrf_token(f["csrf"]);
  *s.mutable_expires_at() = TimeUtil::SecondsToTimestamp(absolute);
  *s.mutable_idle_expires_at() = TimeUtil::SecondsToTimestamp(std::min(absolute, now + options_.idle.count()));
  s.set_session_ref(session_ref);
  s.set_acting_party_id(f["act"]);
  s.set_second_factor(ParseSecondFactor(f["mfa"]));
  // Sessions begun before the authentication time was kept: their creation.
  int64_t auth_at = 0;
  if (!absl::SimpleAtoi(f["auth"], &auth_at) && !absl::SimpleAtoi(f["created"], &auth_at)) auth_at = 0;
  *s.mutable_authenticated_at() = TimeUtil::SecondsToTimestamp(auth_at);
  s.set_sid(f["sid"]);
  return s;
}

absl::Status SessionStore::SetFields(const std::string& session_id, const std::vector<std::string>& fields) {
  static constexpr char kScript[] =
      "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], unpack(ARGV)) end "
      "return -1";
  std::vector<std::string> command = {"EVAL", kScript, "1", SessionKey(session_id)};
  command.insert(command.end(), fields.begin(), fields.end());
  auto r = redis_.Command(command);
  if (!r.ok()) return r.status();
  if (r->integer() < 0) return absl::UnauthenticatedError("session unknown or expired");
  return absl::OkStatus();
}

absl::Status SessionStore::SetSecondFactor(const std::string& session_id, v1::SecondFactor state) {
  return SetFields(session_id, {"mfa", SecondFactorName(state)});
}

absl::Status SessionStore::SetUpstream(const std::string& session_id, const SessionUpstream& upstream) {
  return SetFields(session_id, {"up", upstream.provider, "up_sub", upstream.subject, "up_hint", upstream.logout_hint});
}

absl::StatusOr<SessionUpstream> SessionStore::GetUpstream(const std::string& session_id) {
  auto r = redis_.Command({"HMGET", SessionKey(session_id), "up", "up_sub", "up_hint"});
  if (!r.ok()) return r.status();
  SessionUpstream out;
  const redisReply* raw = r->raw();
  auto field = [&](size_t i) {
    const redisReply* e = i < raw->elements ? raw->element[i] : nullptr;
    return e != nullptr && e->type == REDIS_REPLY_STRING ? std::string(e->str, e->len) : std::string();
  };
  out.provider = field(0);
  out.subject = field(1);
  out.logout_hint = field(2);
  return out;
}

absl::Status SessionStore::Delete(const std::string& session_id) { return DeleteRef(Ref(session_id)); }

absl::Status SessionStore::DeleteRef(const std::string& session_ref) {
  const std::string key = RefKey(session_ref);
  auto account = redis_.Command({"HGET", key, "account"});
  if (!account.ok()) return account.status();
  if (auto d = redis_.Command({"DEL", key}); !d.ok()) return d.status();
  if (account->is_nil()) return absl::OkStatus();
  auto r = redis_.Command({"SREM", AccountKey(account->str()), session_ref});
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::StatusOr<v1::LoginResponse> SessionStore::Rotate(const std::string& session_id, const v1::Session& current,
                                                       const std::string& acting_party) {
  return Renew(Ref(session_id), current, acting_party, current.assurance_level(), current.auth_method(),
               TimeUtil::TimestampToSeconds(current.authenticated_at()));
}

absl::StatusOr<v1::LoginResponse> SessionStore::StepUp(const v1::Session& current, v1::AssuranceLevel level,
                                                       const std::string& method, int64_t until) {
  v1::Session capped = current;
  if (until > 0 && until < TimeUtil::TimestampToSeconds(current.expires_at())) {
    *capped.mutable_expires_at() = TimeUtil::SecondsToTimestamp(until);
  }
  return Renew(current.session_ref(), capped, current.acting_party_id(), level, method, 0);
}

absl::StatusOr<v1::LoginResponse> SessionStore::Renew(const std::string& session_ref, const v1::Session& current,
                                                      const std::string& acting_party, v1::AssuranceLevel level,
                                                      const std::string& method, int64_t authenticated_at) {
  std::vector<std::string> roles(current.roles().begin(), current.roles().end());
  auto fresh = Create(current.account_id(), current.tenant().key(), roles, level, method, acting_party,
                      TimeUtil::TimestampToSeconds(current.expires_at()), current.sid(), authenticated_at);
  if (!fresh.ok()) return fresh.status();
  // The second factor passed stays passed for the session under its new id.
  if (current.second_factor() != v1::SECOND_FACTOR_NOT_ENROLLED) {
    if (auto m = SetSecondFactor(fresh->session_id(), current.second_factor()); !m.ok()) return m;
    fresh->mutable_session()->set_second_factor(current.second_factor());
  }
  if (auto d = DeleteRef(session_ref); !d.ok()) return d;
  return fresh;
}

absl::Status SessionStore::DeleteAllOf(const std::string& account_id) {
  auto members = redis_.Command({"SMEMBERS", AccountKey(account_id)});
  if (!members.ok()) return members.status();
  std::vector<std::string> del = {"DEL", AccountKey(account_id)};
  const redisReply* raw = members->raw();
  for (size_t i = 0; i < raw->elements; ++i) {
    del.push_back(RefKey(std::string(raw->element[i]->str, raw->element[i]->len)));
  }
  auto d = redis_.Command(del);
  return d.ok() ? absl::OkStatus() : d.status();
}

absl::StatusOr<std::vector<SessionSummary>> SessionStore::ListOf(const std::string& account_id) {
  auto members = redis_.Command({"SMEMBERS", AccountKey(account_id)});
  if (!members.ok()) return members.status();
  const int64_t now = Now();
  std::vector<SessionSummary> out;
  const redisReply* raw = members->raw();
  for (size_t i = 0; i < raw->elements; ++i) {
    const std::string key = RefKey(std::string(raw->element[i]->str, raw->element[i]->len));
    auto fields = redis_.Command({"HMGET", key, "account", "created", "auth", "abs", "amr", "acr", "act"});
    if (!fields.ok()) return fields.status();
    auto ttl = redis_.Command({"TTL", key});
    if (!ttl.ok()) return ttl.status();
    const redisReply* f = fields->raw();
    auto field = [&](size_t n) {
      const redisReply* e = n < f->elements ? f->element[n] : nullptr;
      return e != nullptr && e->type == REDIS_REPLY_STRING ? std::string(e->str, e->len) : std::string();
    };
    SessionSummary s;
    if (field(0) != account_id || !absl::SimpleAtoi(field(3), &s.expires) || s.expires <= now) continue;  // Gone.
    if (!absl::SimpleAtoi(field(1), &s.created)) s.created = 0;
    if (!absl::SimpleAtoi(field(2), &s.authenticated)) s.authenticated = s.created;
    s.method = field(4);
    s.level = ParseLevel(field(5));
    s.acting_party = field(6);
    // Each use sets the idle expiry anew (capped by the absolute end).
    const int64_t left = ttl->integer();
    const int64_t idle = std::min<int64_t>(options_.idle.count(), s.expires - now);
    s.last_used = left > 0 ? std::max(s.created, now - std::max<int64_t>(0, idle - left)) : s.created;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const SessionSummary& a, const SessionSummary& b) { return a.created < b.created; });
  return out;
}

absl::Status SessionStore::DeleteFromUpstream(const std::string& account_id, const std::string& provider,
                                              const std::string& keep_session_id,
                                              std::vector<std::string>* ended_sids) {
  auto members = redis_.Command({"SMEMBERS", AccountKey(account_id)});
  if (!members.ok()) return members.status();
  const std::string keep = Ref(keep_session_id);
  const redisReply* raw = members->raw();
  for (size_t i = 0; i < raw->elements; ++i) {
    const std::string ref(raw->element[i]->str, raw->element[i]->len);
    if (ref == keep) continue;
    auto up = redis_.Command({"HMGET", RefKey(ref), "up", "sid"});
    if (!up.ok()) return up.status();
    const redisReply* fields = up->raw();
    if (fields->elements < 2 || fields->element[0]->type != REDIS_REPLY_STRING ||
        std::string(fields->element[0]->str, fields->element[0]->len) != provider) {
      continue;
    }
    if (ended_sids != nullptr && fields->element[1]->type == REDIS_REPLY_STRING) {
      ended_sids->emplace_back(fields->element[1]->str, fields->element[1]->len);
    }
    if (auto d = DeleteRef(ref); !d.ok()) return d;
  }
  return absl::OkStatus();
}

namespace {

// Per account and client: a stranger's failures delay only the stranger, never the
// account's owner logging in from elsewhere (no lock-out by someone else).
std::string AccountThrottleKey(const std::string& email, const std::string& ip) {
  return "sp:throttle:login:account:" + absl::BytesToHexString(Sha256(email + "\n" + http::ClientKey(ip)));
}
std::string IpThrottleKey(const std::string& ip) {
  return "sp:throttle:login:ip:" + absl::BytesToHexString(Sha256(http::ClientKey(ip)));
}

// The delay after `n` failures, as Lua: base · 2^(n - free - 1), capped; 0 for the free ones.
constexpr char kDelayLua[] = R"lua(
local function delay(n, free, base, max)
  if n <= free then return 0 end
  return math.floor(math.min(max, base * 2 ^ math.min(n - free - 1, 40)))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
)lua";

// KEYS[1]: account. ARGV: free, base ms, max ms, window s. Returns ms to wait, 0 to go on.
// An attempt that would be delayed if it failed reserves that delay now.
const std::string kCheckScript = std::string(kDelayLua) + R"lua(
local free, base, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'n', 'until')
local n, until_ms = tonumber(f[1]) or 0, tonumber(f[2]) or 0
if until_ms > now then return until_ms - now end
local d = delay(n + 1, free, base, max)
if d > 0 then
  redis.call('HSET', KEYS[1], 'until', now + d)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 0
)lua";

// KEYS[1]: account. ARGV as above. Counts a failure; returns the delay it starts (ms).
const std::string kFailedScript = std::string(kDelayLua) + R"lua(
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local d = delay(n, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'until', now + d)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return d
)lua";

absl::Status RetryAfter(int64_t ms) {
  return absl::ResourceExhaustedError(absl::StrCat("too many failed log-ins; retry after ", (ms + 999) / 1000, " s"));
}

}  // namespace

absl::Status LoginThrottle::Check(const std::string& email, const std::string& ip) {
  // The client first: an address over its limit reserves no account delay.
  const std::string ip_key = IpThrottleKey(ip);
  auto count = redis_.Command({"GET", ip_key});
  if (!count.ok()) return count.status();
  int64_t n = 0;
  if (!count->is_nil() && absl::SimpleAtoi(count->str(), &n) && n >= options_.max_failures_per_ip) {
    auto ttl = redis_.Command({"PTTL", ip_key});
    return RetryAfter(ttl.ok() && ttl->integer() > 0 ? ttl->integer() : options_.window.count() * 1000);
  }
  auto wait = redis_.Command({"EVAL", kCheckScript, "1", AccountThrottleKey(email, ip),
                              std::to_string(options_.free_failures), std::to_string(options_.base_delay.count()),
                              std::to_string(options_.max_delay.count()), std::to_string(options_.window.count())});
  if (!wait.ok()) return wait.status();
  if (wait->integer() > 0) return RetryAfter(wait->integer());
  return absl::OkStatus();
}

absl::Status LoginThrottle::Failed(const std::string& email, const std::string& ip) {
  auto d = redis_.Command({"EVAL", kFailedScript, "1", AccountThrottleKey(email, ip),
                           std::to_string(options_.free_failures), std::to_string(options_.base_delay.count()),
                           std::to_string(options_.max_delay.count()), std::to_string(options_.window.count())});
  if (!d.ok()) return d.status();
  const std::string ip_key = IpThrottleKey(ip);
  auto n = redis_.Command({"INCR", ip_key});
  if (!n.ok()) return n.status();
  // The client's window starts with its first failure (NX keeps it from sliding).
  auto e = redis_.Command({"EXPIRE", ip_key, std::to_string(options_.window.count()), "NX"});
  return e.ok() ? absl::OkStatus() : e.status();
}

absl::Status LoginThrottle::Succeeded(const std::string& email, const std::string& ip) {
  auto r = redis_.Command({"DEL", AccountThrottleKey(email, ip)});
  return r.ok() ? absl::OkStatus() : r.status();
}

}  // namespace stadtportal::identity

#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "libs/redis/client.h"
#include "stadtportal/identity/v1/identity.pb.h"

namespace stadtportal::identity {

// The upstream provider a session came from: its single log-out is asked for when the
// session ends.
struct SessionUpstream {
  std::string provider;  // "" when the session did not come from one.
  std::string subject;
  std::string logout_hint;
};

// What the export shows of a session: when and how, never its id, reference or tokens.
struct SessionSummary {
  int64_t created = 0;        // Unix seconds.
  int64_t authenticated = 0;  // The last log-in or step-up.
  int64_t last_used = 0;      // From its idle expiry (renewed at each use), to the second.
  int64_t expires = 0;        // Its absolute end.
  std::string method;         // "password", "saml:bundid", …
  v1::AssuranceLevel level = v1::ASSURANCE_LEVEL_LOW;
  std::string acting_party;
};

struct SessionOptions {
  std::chrono::seconds idle{30 * 60};
  std::chrono::seconds absolute{12 * 60 * 60};
};

// Sessions in Redis under the SHA-256 of their id (a copy of Redis holds no usable
// session ids), with idle expiry (key TTL, renewed on use) and absolute expiry.
class SessionStore {
 public:
  SessionStore(redis::Client& redis, SessionOptions options) : redis_(redis), options_(options) {}

  // A new session (new random id ≥ 256 bit) for the account. It ends after the absolute
  // lifetime from now, or at `absolute_at` (Unix seconds) when given and earlier. Its
  // `sid` (towards partner portals) is `sid`, or a new random one; the person
  // authenticated at `authenticated_at` (Unix seconds), or now.
  absl::StatusOr<v1::LoginResponse> Create(const std::string& account_id, const std::string& tenant,
                                           const std::vector<std::string>& roles, v1::AssuranceLevel level,
                                           const std::string& method, const std::string& acting_party = "",
                                           int64_t absolute_at = 0, const std::string& sid = "",
                                           int64_t authenticated_at = 0);
  // UNAUTHENTICATED if unknown or expired; renews the idle expiry.
  absl::StatusOr<v1::Session> Resolve(const std::string& session_id);
  // The same by the session's reference (Ref(), v1::Session::session_ref).
  absl::StatusOr<v1::Session> ResolveRef(const std::string& session_ref);
  absl::Status Delete(const std::string& session_id);
  // The same by the session's reference (an unknown one is no error).
  absl::Status DeleteRef(const std::string& session_ref);
  // A new session id for `current` (the session behind `session_id` as just resolved,
  // with the account's current roles), acting for `acting_party` ("" = oneself); the old
  // id ends. The new id keeps the session's absolute expiry (rotating never extends it),
  // its sid and its authentication time.
  absl::StatusOr<v1::LoginResponse> Rotate(const std::string& session_id, const v1::Session& current,
                                           const std::string& acting_party);
  // A new session id for `current` (as just resolved) at `level`, reached by `method`
  // ("saml:bundid"); the old id ends, the acting party, the second factor, the sid and
  // the absolute expiry stay; the authentication time is now.
  // It ends at `until` (Unix seconds) instead when given and earlier.
  absl::StatusOr<v1::LoginResponse> StepUp(const v1::Session& current, v1::AssuranceLevel level,
                                           const std::string& method, int64_t until = 0);
  absl::Status DeleteAllOf(const std::string& account_id);
  // The account's live sessions, oldest first, read without renewing them.
  absl::StatusOr<std::vector<SessionSummary>> ListOf(const std::string& account_id);
  // Ends the account's sessions that came from `provider` (SetUpstream), except
  // `keep_session_id`'s; their sids go into `ended_sids` when given.
  absl::Status DeleteFromUpstream(const std::string& account_id, const std::string& provider,
                                  const std::string& keep_session_id, std::vector<std::string>* ended_sids = nullptr);
  // Records where the session stands with the second factor (UNAUTHENTICATED if the
  // session is gone).
  absl::Status SetSecondFactor(const std::string& session_id, v1::SecondFactor state);
  // Records (UNAUTHENTICATED if the session is gone) and reads the session's upstream.
  absl::Status SetUpstream(const std::string& session_id, const SessionUpstream& upstream);
  absl::StatusOr<SessionUpstream> GetUpstream(const std::string& session_id);

  static std::string Ref(const std::string& session_id);

 private:
  // HSET of `fields` (name, value, …) on an existing session only: a plain HSET would
  // bring back an expired one without expiry.
  absl::Status SetFields(const std::string& session_id, const std::vector<std::string>& fields);
  // Rotate and StepUp: `current` under a new id with these.
  absl::StatusOr<v1::LoginResponse> Renew(const std::string& session_ref, const v1::Session& current,
                                          const std::string& acting_party, v1::AssuranceLevel level,
                                          const std::string& method, int64_t authenticated_at);

  redis::Client& redis_;
  SessionOptions options_;
};

struct ThrottleOptions {
  // Per account: failures without a delay; each further failure makes the next attempt
  // wait base_delay, doubling per failure up to max_delay. Never a lock-out: whoever
  // fails, the owner waits at most max_delay after the last attempt.
  int free_failures = 2;
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{60000};
  // Per client address: failures (any accounts) before it is refused for the window.
  int max_failures_per_ip = 50;
  // Failures count this long (per account: after the last one; per client: the first).
  std::chrono::seconds window{15 * 60};
};

// Failed log-ins: a progressive delay per account (by e-mail, known or not) and client,
// and a limit per client (address; IPv6 per /64). Keys hold SHA-256 digests, not
// addresses or e-mails.
class LoginThrottle {
 public:
  LoginThrottle(redis::Client& redis, ThrottleOptions options) : redis_(redis), options_(options) {}
  // RESOURCE_EXHAUSTED "retry after N s" while the account's delay runs or the client
  // is over its limit. An attempt that may fail into a delay reserves it at once, so
  // attempts in parallel do not get around it.
  absl::Status Check(const std::string& email, const std::string& ip);
  absl::Status Failed(const std::string& email, const std::string& ip);
  absl::Status Succeeded(const std::string& email, const std::string& ip);

 private:
  redis::Client& redis_;
  ThrottleOptions options_;
};

}  // namespace stadtportal::identity

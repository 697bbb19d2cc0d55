#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "libs/redis/client.h"

namespace stadtportal::web {

// The browser's session with the web part: the cookie holds only its random id; the
// rest lives in Redis under sp:web:session:<SHA-256 of the id, hex>, so that a copy of
// Redis names no cookie.
struct WebSession {
  std::string id;         // The cookie's value (never stored, never logged).
  std::string api_token;  // The API session (bearer token); "" before log-in.
  std::string csrf;       // Every form of this session carries it.
  std::string lang;       // "de" or "en" as chosen ("" for none).
  int64_t expires_at = 0;  // Unix seconds; the API session's expiry once logged in.
  std::string flash;      // A one-time notice for the next page (a key of the texts).
  // The submission whose fee was just paid, until the submission says so itself (its
  // status follows the payment's event): its page offers no second payment meanwhile.
  std::string paid_submission;

  bool logged_in() const { return !api_token.empty(); }
};

class Sessions {
 public:
  // `redis` outlives this. Anonymous sessions live `anonymous_ttl`.
  Sessions(redis::Client* redis, std::chrono::seconds anonymous_ttl) : redis_(redis), anonymous_ttl_(anonymous_ttl) {}

  // A new anonymous session (a fresh id and CSRF token), saved.
  absl::StatusOr<WebSession> Create(const std::string& lang);
  // The session of a cookie value; nullopt when unknown, expired or malformed.
  absl::StatusOr<std::optional<WebSession>> Load(const std::string& id);
  // Saves it until its expiry (anonymous: the anonymous lifetime from now).
  absl::Status Save(WebSession& session);
  absl::Status Drop(const std::string& id);

  // A cookie value is 43 base64url characters; anything else is never looked up.
  static bool IsWellFormedId(const std::string& id);

 private:
  static std::string Key(const std::string& id);
  redis::Client* redis_;
  std::chrono::seconds anonymous_ttl_;
};

}  // namespace stadtportal::web

#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace stadtportal::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Called once in main: the service name on every line and the lowest level written.
void Init(std::string service, Level min_level);
Level ParseLevel(std::string_view s);  // "debug" | "info" | "warn" | "error"; throws on others.

// Writes one JSON object per line to stdout:
// {"ts":"…","level":"info","service":"…","msg":"…","request_id":"…", …fields}.
// Never pass secrets (passwords, tokens, session ids) as fields. Whatever a field holds,
// the line carries no raw control character (C0, DEL, C1, U+2028/U+2029: all escaped)
// and no invalid UTF-8 (replaced), so a value from outside cannot forge or split lines.
void Write(Level level, std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

inline void Debug(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kDebug, m, f);
}
inline void Info(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kInfo, m, f); }
inline void Warn(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) { Write(Level::kWarn, m, f); }
inline void Error(std::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kError, m, f);
}

// Binds a request id and W3C traceparent to the current thread for the scope's
// lifetime; every line written meanwhile carries them.
class RequestScope {
 public:
  RequestScope(std::string request_id, std::string traceparent);
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

 private:
  std::string prev_request_id_;
  std::string prev_traceparent_;
};

const std::string& CurrentRequestId();
const std::string& CurrentTraceparent();

// A fresh random request id (32 hex characters).
std::string NewRequestId();
// Accepts a caller-given id only if it is 1–64 characters of [A-Za-z0-9._-].
bool IsValidRequestId(std::string_view id);

// A W3C Trace Context traceparent in its version-00 form
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower-case hex, neither id
// all zeros), or "" when `value` is none. A later version (not "ff") is read by the
// spec's rules — its first four fields as in version 00, anything after a "-" ignored —
// and returned as version 00.
std::string NormalizeTraceparent(std::string_view value);
// A fresh random version-00 traceparent (flags 00: not sampled).
std::string NewTraceparent();
// A new span of the trace of `parent` (same trace id and flags, a fresh parent id); a
// fresh traceparent when `parent` is not a valid one.
std::string ChildTraceparent(std::string_view parent);

}  // namespace stadtportal::log

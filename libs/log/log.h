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
// Never pass secrets (passwords, tokens, session ids) as fields.
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

}  // namespace stadtportal::log

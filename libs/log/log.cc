#include "libs/log/log.h"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace stadtportal::log {
namespace {

std::mutex g_mu;
std::string g_service = "stadtportal";
Level g_min = Level::kInfo;
thread_local std::string t_request_id;
thread_local std::string t_traceparent;

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

void Init(std::string service, Level min_level) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_service = std::move(service);
  g_min = min_level;
}

Level ParseLevel(std::string_view s) {
  if (s == "debug") return Level::kDebug;
  if (s == "info") return Level::kInfo;
  if (s == "warn") return Level::kWarn;
  if (s == "error") return Level::kError;
  throw std::invalid_argument(absl::StrCat("unknown log level \"", std::string(s), "\" (debug, info, warn, error)"));
}

void Write(Level level, std::string_view msg, const nlohmann::json& fields) {
  if (level < g_min) return;
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  line["level"] = LevelName(level);
  line["service"] = g_service;
  line["msg"] = msg;
  if (!t_request_id.empty()) line["request_id"] = t_request_id;
  if (!t_traceparent.empty()) line["traceparent"] = t_traceparent;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  }
  // Invalid UTF-8 in a field must never break logging: replace it.
  std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.push_back('\n');
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

RequestScope::RequestScope(std::string request_id, std::string traceparent)
    : prev_request_id_(std::move(t_request_id)), prev_traceparent_(std::move(t_traceparent)) {
  t_request_id = std::move(request_id);
  t_traceparent = std::move(traceparent);
}

RequestScope::~RequestScope() {
  t_request_id = std::move(prev_request_id_);
  t_traceparent = std::move(prev_traceparent_);
}

const std::string& CurrentRequestId() { return t_request_id; }
const std::string& CurrentTraceparent() { return t_traceparent; }

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (i * 4)) & 0xf];
    id[16 + i] = kHex[(b >> (i * 4)) & 0xf];
  }
  return id;
}

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace stadtportal::log

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

// JSON escaping (nlohmann) covers U+0000–U+001F; a log line must not carry DEL, the C1
// controls (U+0080–U+009F, e.g. NEL) or the Unicode line and paragraph separators either:
// terminals and log shippers act on them. The input is valid UTF-8 (dumped with
// replacement), so these are exactly the byte sequences 7F, C2 80–9F, E2 80 A8–A9.
void EscapeControls(std::string& out) {
  size_t i = 0;
  while (i < out.size() && static_cast<unsigned char>(out[i]) < 0x7F) ++i;
  if (i == out.size()) return;  // Plain ASCII: nothing to do (most lines).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string escaped(out, 0, i);
  escaped.reserve(out.size() + 12);
  auto escape = [&](unsigned cp) {
    escaped += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) escaped.push_back(kHex[(cp >> shift) & 0xf]);
  };
  for (; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    const auto next = i + 1 < out.size() ? static_cast<unsigned char>(out[i + 1]) : 0;
    if (c == 0x7F) {
      escape(0x7F);
    } else if (c == 0xC2 && next >= 0x80 && next <= 0x9F) {
      escape(next);
      ++i;
    } else if (c == 0xE2 && next == 0x80 && i + 2 < out.size() &&
               (static_cast<unsigned char>(out[i + 2]) == 0xA8 || static_cast<unsigned char>(out[i + 2]) == 0xA9)) {
      escape(static_cast<unsigned char>(out[i + 2]) == 0xA8 ? 0x2028 : 0x2029);
      i += 2;
    } else {
      escaped.push_back(out[i]);
    }
  }
  out = std::move(escaped);
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZeros(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

std::string RandomHex(size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n, '0');
  uint64_t bits = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i % 16 == 0) bits = rng();
    out[i] = kHex[bits & 0xf];
    bits >>= 4;
  }
  return out;
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
  if (!t_traceparent.empty()) {
    // The trace id of a well-formed traceparent; whatever else was bound is written only
    // as it came (escaped below).
    if (NormalizeTraceparent(t_traceparent) == t_traceparent) line["trace_id"] = t_traceparent.substr(3, 32);
    line["traceparent"] = t_traceparent;
  }
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  }
  // Invalid UTF-8 in a field must never break logging: replace it.
  std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  EscapeControls(out);
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

std::string NewRequestId() { return RandomHex(32); }

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string NormalizeTraceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  constexpr size_t kLength = 55;
  if (v.size() < kLength || v[2] != '-' || v[35] != '-' || v[52] != '-') return "";
  const std::string_view version = v.substr(0, 2), trace_id = v.substr(3, 32), parent_id = v.substr(36, 16),
                         flags = v.substr(53, 2);
  if (!IsLowerHex(version) || version == "ff") return "";
  // Version 00 is exactly 55 characters; a later one may append fields after a "-".
  if (v.size() > kLength && (version == "00" || v[kLength] != '-')) return "";
  if (!IsLowerHex(trace_id) || !IsLowerHex(parent_id) || !IsLowerHex(flags)) return "";
  if (AllZeros(trace_id) || AllZeros(parent_id)) return "";
  std::string out = "00-";
  out.append(trace_id).append("-").append(parent_id).append("-").append(flags);
  return out;
}

std::string NewTraceparent() { return absl::StrCat("00-", RandomHex(32), "-", RandomHex(16), "-00"); }

std::string ChildTraceparent(std::string_view parent) {
  const std::string valid = NormalizeTraceparent(parent);
  if (valid.empty()) return NewTraceparent();
  std::string span = RandomHex(16);
  while (span == std::string(16, '0')) span = RandomHex(16);
  return absl::StrCat(valid.substr(0, 36), span, valid.substr(52));
}

}  // namespace stadtportal::log

#include "libs/config/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace stadtportal::config {

Env::Env()
    : lookup_([](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) return std::nullopt;
        return std::string(v);
      }) {}

Env::Env(Lookup lookup) : lookup_(std::move(lookup)) {}

Env::Env(std::map<std::string, std::string> values)
    : lookup_([values = std::move(values)](const std::string& name) -> std::optional<std::string> {
        auto it = values.find(name);
        if (it == values.end()) return std::nullopt;
        return it->second;
      }) {}

std::optional<std::string> Env::Get(const std::string& name) const {
  auto v = lookup_(name);
  if (v && v->empty()) return std::nullopt;  // An empty variable counts as unset.
  return v;
}

std::string Env::Required(const std::string& name) const {
  auto v = Get(name);
  if (!v) throw Error(absl::StrCat(name, ": required but not set"));
  return *v;
}

std::string Env::String(const std::string& name, const std::string& fallback) const {
  return Get(name).value_or(fallback);
}

std::string Env::Secret(const std::string& name) const {
  if (auto v = Get(name)) return *v;
  const std::string file_var = name + "_FILE";
  auto path = Get(file_var);
  if (!path) throw Error(absl::StrCat(name, ": required but neither ", name, " nor ", file_var, " is set"));
  std::ifstream in(*path);
  if (!in) throw Error(absl::StrCat(file_var, ": cannot read file (path not logged)"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) throw Error(absl::StrCat(file_var, ": file is empty"));
  return s;
}

int64_t Env::Int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const {
  auto v = Get(name);
  if (!v) return fallback;
  int64_t out = 0;
  if (!absl::SimpleAtoi(*v, &out) || out < min || out > max) {
    throw Error(absl::StrCat(name, ": expected an integer in [", min, ", ", max, "], got \"", *v, "\""));
  }
  return out;
}

uint16_t Env::Port(const std::string& name, uint16_t fallback) const {
  return static_cast<uint16_t>(Int(name, fallback, 0, 65535));
}

bool Env::Bool(const std::string& name, bool fallback) const {
  auto v = Get(name);
  if (!v) return fallback;
  const std::string s = absl::AsciiStrToLower(*v);
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "off") return false;
  throw Error(absl::StrCat(name, ": expected true or false, got \"", *v, "\""));
}

std::chrono::milliseconds Env::Millis(const std::string& name, std::chrono::milliseconds fallback) const {
  return std::chrono::milliseconds(Int(name, fallback.count(), 0, 86'400'000));
}

bool IsTenantKey(const std::string& key) {
  if (key.size() != 8) return false;
  for (char c : key) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string Env::TenantKey(const std::string& name, const std::string& fallback) const {
  std::string v = String(name, fallback);
  if (!IsTenantKey(v)) throw Error(absl::StrCat(name, ": expected an eight-digit municipality key, got \"", v, "\""));
  return v;
}

}  // namespace stadtportal::config

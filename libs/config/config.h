#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace stadtportal::config {

// Thrown for a missing or invalid variable; what() is one line naming it.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads STADTPORTAL_* environment variables once, in main. Every accessor fails
// fast with an Error naming the variable and what was expected.
class Env {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string&)>;

  // Reads the process environment.
  Env();
  // Reads from the given lookup (tests).
  explicit Env(Lookup lookup);
  explicit Env(std::map<std::string, std::string> values);

  std::string Required(const std::string& name) const;
  std::string String(const std::string& name, const std::string& fallback) const;
  // A secret: from NAME, or from the file named by NAME_FILE (Kubernetes secrets).
  std::string Secret(const std::string& name) const;
  int64_t Int(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
  uint16_t Port(const std::string& name, uint16_t fallback) const;
  bool Bool(const std::string& name, bool fallback) const;
  std::chrono::milliseconds Millis(const std::string& name, std::chrono::milliseconds fallback) const;
  // A municipality key (Amtlicher Gemeindeschlüssel): eight digits.
  std::string TenantKey(const std::string& name, const std::string& fallback) const;

 private:
  std::optional<std::string> Get(const std::string& name) const;
  Lookup lookup_;
};

// The tenant of a deployment that serves one municipality: Nuremberg.
inline constexpr char kDefaultTenant[] = "09564000";

bool IsTenantKey(const std::string& key);

}  // namespace stadtportal::config

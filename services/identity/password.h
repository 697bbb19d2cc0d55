#pragma once

#include <string>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace stadtportal::identity {

// Argon2id cost; stored inside every hash, so raising it applies at the next log-in.
struct HashParams {
  unsigned long long opslimit = 3;
  size_t memlimit = 64 * 1024 * 1024;
};

// NIST SP 800-63B rules: 10–128 characters, no composition rules, not a common
// password (list shipped in data/common-passwords.txt) and not the e-mail address.
class PasswordPolicy {
 public:
  PasswordPolicy();
  // INVALID_ARGUMENT "password: too_short" | "too_long" | "common_password" | "invalid".
  absl::Status Check(const std::string& password, const std::string& email) const;

 private:
  std::unordered_set<std::string> common_;
};

class PasswordHasher {
 public:
  explicit PasswordHasher(HashParams params);
  absl::StatusOr<std::string> Hash(const std::string& password) const;
  bool Verify(const std::string& hash, const std::string& password) const;
  // True when `hash` was made with other parameters than the current ones.
  bool NeedsRehash(const std::string& hash) const;
  // Spends the time of one verification, for unknown accounts (no timing oracle).
  void VerifyDummy(const std::string& password) const;

 private:
  HashParams params_;
  std::string dummy_hash_;
};

}  // namespace stadtportal::identity

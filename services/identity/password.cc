#include "services/identity/password.h"

#include <sodium.h>

#include <sstream>

#include "absl/strings/ascii.h"
#include "libs/api/api.h"

namespace stadtportal::identity {

// data/common-passwords.txt, compiled in (see CMakeLists.txt).
extern const char kCommonPasswords[];

PasswordPolicy::PasswordPolicy() {
  std::istringstream in(kCommonPasswords);
  std::string line;
  while (std::getline(in, line)) {
    line = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line));
    if (!line.empty() && line[0] != '#') common_.insert(line);
  }
}

absl::Status PasswordPolicy::Check(const std::string& password, const std::string& email) const {
  if (!api::ValidateText(password + "x", "password", 1000).ok()) return absl::InvalidArgumentError("password: invalid");
  size_t chars = 0;
  for (unsigned char c : password) chars += (c & 0xC0) != 0x80;  // Code points of valid UTF-8.
  if (chars < 10) return absl::InvalidArgumentError("password: too_short");
  if (chars > 128) return absl::InvalidArgumentError("password: too_long");
  const std::string lower = absl::AsciiStrToLower(password);
  if (common_.count(lower) > 0 || lower == absl::AsciiStrToLower(email)) {
    return absl::InvalidArgumentError("password: common_password");
  }
  return absl::OkStatus();
}

PasswordHasher::PasswordHasher(HashParams params) : params_(params) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  auto dummy = Hash("dummy password for unknown accounts");
  if (!dummy.ok()) throw std::runtime_error("cannot hash with the configured Argon2id parameters");
  dummy_hash_ = *dummy;
}

absl::StatusOr<std::string> PasswordHasher::Hash(const std::string& password) const {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params_.opslimit, params_.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("password hashing ran out of memory");
  }
  return std::string(out);
}

bool PasswordHasher::Verify(const std::string& hash, const std::string& password) const {
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  char buf[crypto_pwhash_STRBYTES] = {};
  hash.copy(buf, hash.size());
  return crypto_pwhash_str_verify(buf, password.data(), password.size()) == 0;
}

bool PasswordHasher::NeedsRehash(const std::string& hash) const {
  if (hash.size() >= crypto_pwhash_STRBYTES) return true;
  char buf[crypto_pwhash_STRBYTES] = {};
  hash.copy(buf, hash.size());
  return crypto_pwhash_str_needs_rehash(buf, params_.opslimit, params_.memlimit) != 0;
}

void PasswordHasher::VerifyDummy(const std::string& password) const { Verify(dummy_hash_, password); }

}  // namespace stadtportal::identity

#include "services/identity/password.h"

#include <sodium.h>

#include <algorithm>
#include <sstream>

#include "absl/strings/ascii.h"
#include "libs/api/api.h"
#include "libs/status/status.h"

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
  // Any valid UTF-8: a password is never shown or written into a line of text.
  if (api::Utf8Length(password) < 0) return status::FieldError("password", "invalid");
  size_t chars = 0;
  for (unsigned char c : password) chars += (c & 0xC0) != 0x80;  // Code points of valid UTF-8.
  if (chars < 10) return status::FieldError("password", "too_short");
  if (chars > 128) return status::FieldError("password", "too_long");
  const std::string lower = absl::AsciiStrToLower(password);
  if (common_.count(lower) > 0 || lower == absl::AsciiStrToLower(email)) {
    return status::FieldError("password", "common_password");
  }
  return absl::OkStatus();
}

absl::Status HashGate::Acquire(Clock::time_point deadline) {
  const auto busy = absl::UnavailableError("password hashing busy; retry after 1 s");
  std::unique_lock<std::mutex> lock(mu_);
  if (running_ < slots_) {
    ++running_;
    return absl::OkStatus();
  }
  if (waiting_ >= queue_) return busy;
  const auto now = Clock::now();
  auto until = now + max_wait_;
  if (deadline != Clock::time_point::max() && deadline - typical_run_ < until) until = deadline - typical_run_;
  if (until <= now) return busy;
  ++waiting_;
  const bool got = free_.wait_until(lock, until, [&] { return running_ < slots_; });
  --waiting_;
  if (!got) return busy;
  ++running_;
  return absl::OkStatus();
}

void HashGate::Release(Clock::duration ran) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
    // Rises at once with a slower run (the machine got busy), falls back slowly.
    if (ran > typical_run_) {
      typical_run_ = ran;
    } else if (ran > Clock::duration::zero()) {
      typical_run_ = (typical_run_ * 7 + ran) / 8;
    }
  }
  free_.notify_one();
}

namespace {

// Holds a gate slot for one scope.
class Permit {
 public:
  Permit(HashGate& gate, Clock::time_point deadline) : gate_(gate), status_(gate.Acquire(deadline)) {}
  ~Permit() {
    if (status_.ok()) gate_.Release(Clock::now() - start_);
  }
  const absl::Status& status() const { return status_; }

 private:
  HashGate& gate_;
  absl::Status status_;
  Clock::time_point start_ = Clock::now();  // After status_: the run, not the wait.
};

}  // namespace

PasswordHasher::PasswordHasher(HashParams params)
    : params_(params),
      gate_(std::make_unique<HashGate>(std::max(1, params.concurrency), std::max(0, params.queue), params.max_wait)) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  auto dummy = Hash("dummy password for unknown accounts");
  if (!dummy.ok()) throw std::runtime_error("cannot hash with the configured Argon2id parameters");
  dummy_hash_ = *dummy;
}

absl::StatusOr<std::string> PasswordHasher::Hash(const std::string& password, Clock::time_point deadline) const {
  Permit permit(*gate_, deadline);
  if (!permit.status().ok()) return permit.status();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params_.opslimit, params_.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return absl::ResourceExhaustedError("password hashing ran out of memory");
  }
  return std::string(out);
}

absl::StatusOr<bool> PasswordHasher::Verify(const std::string& hash, const std::string& password,
                                            Clock::time_point deadline) const {
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) {
    // An account without a usable hash answers as slowly as any other wrong password.
    if (auto s = Verify(dummy_hash_, password, deadline); !s.ok()) return s.status();
    return false;
  }
  Permit permit(*gate_, deadline);
  if (!permit.status().ok()) return permit.status();
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

absl::Status PasswordHasher::VerifyDummy(const std::string& password, Clock::time_point deadline) const {
  return Verify(dummy_hash_, password, deadline).status();
}

}  // namespace stadtportal::identity

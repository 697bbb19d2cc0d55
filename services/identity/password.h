#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace stadtportal::identity {

// Argon2id cost; stored inside every hash, so raising it applies at the next log-in.
struct HashParams {
  unsigned long long opslimit = 3;
  size_t memlimit = 64 * 1024 * 1024;
  // Each run takes memlimit bytes: at most `concurrency` at once per process, at most
  // `queue` more waiting, none longer than `max_wait`; beyond, UNAVAILABLE (HTTP 503).
  int concurrency = 2;
  int queue = 16;
  std::chrono::milliseconds max_wait{2000};
};

using Clock = std::chrono::steady_clock;

// A counting semaphore with a bounded queue and a bounded wait.
class HashGate {
 public:
  HashGate(int slots, int queue, std::chrono::milliseconds max_wait)
      : slots_(slots), queue_(queue), max_wait_(max_wait) {}
  // UNAVAILABLE "password hashing busy; retry after 1 s" when the queue is full or the
  // wait too long; otherwise the caller holds a slot until it calls Release. A caller
  // waits at most until its `deadline` less a typical run: a run that could not finish
  // in time is refused at once (a clear 503) instead of spending its memory for nothing.
  absl::Status Acquire(Clock::time_point deadline = Clock::time_point::max());
  // `ran`: how long the slot was held, for the typical run.
  void Release(Clock::duration ran = Clock::duration::zero());

 private:
  const int slots_;
  const int queue_;
  const std::chrono::milliseconds max_wait_;
  std::mutex mu_;
  std::condition_variable free_;
  int running_ = 0;
  int waiting_ = 0;
  Clock::duration typical_run_ = Clock::duration::zero();  // Recent runs, the slowest weighing most.
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

// Argon2id hashing and verification, through a HashGate: a burst of log-ins waits or is
// refused instead of taking the pod's memory.
class PasswordHasher {
 public:
  explicit PasswordHasher(HashParams params);
  // UNAVAILABLE when the gate refuses (as Verify and VerifyDummy); `deadline`: the
  // calling request's, beyond which the result is of no use.
  absl::StatusOr<std::string> Hash(const std::string& password,
                                   Clock::time_point deadline = Clock::time_point::max()) const;
  absl::StatusOr<bool> Verify(const std::string& hash, const std::string& password,
                              Clock::time_point deadline = Clock::time_point::max()) const;
  // True when `hash` was made with other parameters than the current ones.
  bool NeedsRehash(const std::string& hash) const;
  // Spends the time (and memory) of one verification, for unknown accounts (no timing oracle).
  absl::Status VerifyDummy(const std::string& password, Clock::time_point deadline = Clock::time_point::max()) const;

 private:
  HashParams params_;
  std::string dummy_hash_;
  std::unique_ptr<HashGate> gate_;
};

}  // namespace stadtportal::identity

// Raw Argon2id verifications per second with libsodium on THREADS threads, the
// reference for log-ins per second: verifies PASSWORD against HASH (an identity
// account's stored hash, so the parameters are those services/identity/password.cc
// hashed with) for SECONDS. Prints
//   calls=N errors=N rate=R/s p50_ms=… p90_ms=… p99_ms=… params=$argon2id$v=19$m=…,t=…,p=…
//
//   stadtportal-bench-argon2 HASH PASSWORD SECONDS THREADS
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s HASH PASSWORD SECONDS THREADS\n", argv[0]);
    return 2;
  }
  const std::string hash = argv[1], password = argv[2];
  const int seconds = std::atoi(argv[3]), threads = std::atoi(argv[4]);
  if (sodium_init() < 0 || seconds <= 0 || threads <= 0 || hash.size() >= crypto_pwhash_STRBYTES) {
    std::fprintf(stderr, "needs libsodium, a stored Argon2id hash and positive numbers\n");
    return 2;
  }
  std::atomic<long> errors{0};
  std::vector<std::vector<double>> latencies(threads);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      char buf[crypto_pwhash_STRBYTES] = {};
      hash.copy(buf, hash.size());
      while (std::chrono::steady_clock::now() < until) {
        const auto start = std::chrono::steady_clock::now();
        if (crypto_pwhash_str_verify(buf, password.data(), password.size()) != 0) {
          ++errors;
          continue;
        }
        latencies[t].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      }
    });
  }
  for (auto& w : workers) w.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  // The parameters: the hash up to its salt.
  const std::string params = hash.substr(0, hash.find('$', hash.find("t=")));
  std::printf("calls=%zu errors=%ld rate=%.1f/s p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f params=%s\n", all.size(),
              errors.load(), all.size() / static_cast<double>(seconds), pct(0.50), pct(0.90), pct(0.99),
              params.c_str());
  return errors > 0 || all.empty() ? 1 : 0;
}

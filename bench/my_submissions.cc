// Drives SubmissionService.ListSubmissions ("my submissions", first page of 20) for
// random parties of the bench data set, as the gateway would, and prints throughput and
// latency percentiles of the calls.
//
//   stadtportal-bench-submissions TARGET PARTIES SECONDS CONCURRENCY
//
// STADTPORTAL_CALLER_SIGNING_KEY must be the key the submission service trusts. Party n
// (1..PARTIES) has the id 00000000-0000-4000-8000-<n, 12 digits> (bench/sql/seed-submissions.sql).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "libs/auth/caller.h"
#include "libs/grpc/client.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

using namespace stadtportal;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s TARGET PARTIES SECONDS CONCURRENCY\n", argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  const int parties = std::atoi(argv[2]);
  const auto duration = std::chrono::seconds(std::atoi(argv[3]));
  const int concurrency = std::atoi(argv[4]);
  const char* key = std::getenv("STADTPORTAL_CALLER_SIGNING_KEY");
  if (key == nullptr || parties <= 0 || concurrency <= 0) {
    std::fprintf(stderr, "needs STADTPORTAL_CALLER_SIGNING_KEY and positive numbers\n");
    return 2;
  }
  auto signer = auth::Signer::FromKey(key, std::chrono::seconds(300));
  if (!signer.ok()) {
    std::fprintf(stderr, "signing key: %s\n", std::string(signer.status().message()).c_str());
    return 2;
  }
  auto channel = grpcx::MakeChannel(target);
  auto stub = submission::v1::SubmissionService::NewStub(channel);

  std::atomic<long> errors{0}, rows{0};
  std::vector<std::vector<double>> latencies(concurrency);
  const auto until = std::chrono::steady_clock::now() + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t * 7919 + 1));
      std::uniform_int_distribution<int> pick(1, parties);
      while (std::chrono::steady_clock::now() < until) {
        auth::Caller caller;
        caller.account_id = absl::StrFormat("00000000-0000-4000-8000-%012d", pick(rng));
        caller.tenant = "09564000";
        caller.assurance = "low";
        auto ctx = grpcx::NewClientContext(std::chrono::milliseconds(5000), signer->Sign(caller, "submission"));
        submission::v1::ListSubmissionsRequest req;
        req.mutable_page()->set_page_size(20);
        submission::v1::ListSubmissionsResponse resp;
        const auto start = std::chrono::steady_clock::now();
        auto s = stub->ListSubmissions(ctx.get(), req, &resp);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        if (!s.ok()) {
          ++errors;
          continue;
        }
        rows += resp.submissions_size();
        latencies[t].push_back(ms);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  if (all.empty()) {
    std::fprintf(stderr, "no successful call (%ld errors)\n", errors.load());
    return 1;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))]; };
  std::printf("calls=%zu errors=%ld rows_per_call=%.1f rate=%.0f/s p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n", all.size(),
              errors.load(), static_cast<double>(rows) / all.size(), all.size() / static_cast<double>(duration.count()),
              pct(0.50), pct(0.90), pct(0.99));
  return errors > 0 ? 1 : 0;
}

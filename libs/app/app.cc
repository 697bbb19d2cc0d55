#include "libs/app/app.h"

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/db/network_guard.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

#ifndef STADTPORTAL_VERSION
#define STADTPORTAL_VERSION "dev"
#endif

namespace stadtportal::app {

int Main(const std::string& service, const std::function<int(const config::Env&)>& body) {
  grpcx::BlockTerminationSignals();
  // A peer that closes a socket (Redis, SMTP, a client) is an error return, never the end of the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Large buffers (request bodies, attachments, Argon2 memory) are mapped and given back
  // to the system when freed. glibc's default raises this threshold after the first
  // large free, after which every thread's arena keeps such buffers: a burst of 21 MiB
  // uploads then held over 700 MiB instead of 120 MiB (tests/e2e/limits_test.cc).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // Debian's Abseil is built with the Mutex deadlock detector on, which records every
  // lock gRPC takes in a graph (a few per cent of a service's CPU under load). Lock order
  // is a property of the code, checked in the tests and sanitizer builds, not in service.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string binary = "stadtportal-" + service;
  try {
    config::Env env;
    log::Level level;
    try {
      level = log::ParseLevel(env.String("STADTPORTAL_LOG_LEVEL", "info"));
    } catch (const std::invalid_argument& e) {
      throw config::Error(absl::StrCat("STADTPORTAL_LOG_LEVEL: ", e.what()));
    }
    log::Init(service, level);
    db::SetStrictTransactions(env.Bool("STADTPORTAL_STRICT_TRANSACTIONS", false));
    db::ExportGuardMetrics();
    metrics::RegisterBuildInfo(service, STADTPORTAL_VERSION);
    return body(env);
  } catch (const config::Error& e) {
    std::fprintf(stderr, "%s: configuration error: %s\n", binary.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    log::Error("fatal error", {{"error", e.what()}});
    return 1;
  }
}

}  // namespace stadtportal::app

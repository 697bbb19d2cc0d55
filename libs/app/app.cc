#include "libs/app/app.h"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

#ifndef STADTPORTAL_VERSION
#define STADTPORTAL_VERSION "dev"
#endif

namespace stadtportal::app {

int Main(const std::string& service, const std::function<int(const config::Env&)>& body) {
  grpcx::BlockTerminationSignals();
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

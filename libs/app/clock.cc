#include "libs/app/clock.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"

namespace stadtportal::app {

Clock SystemClock() {
  return []() -> absl::StatusOr<absl::Time> { return absl::Now(); };
}

Clock FileClock(std::string path) {
  return [path = std::move(path)]() -> absl::StatusOr<absl::Time> {
    // At most 128 bytes are read: a time is far shorter.
    std::ifstream in(path, std::ios::binary);
    std::string text(128, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    absl::Time t;
    std::string err;
    const std::string value(absl::StripAsciiWhitespace(text));
    if (value.empty() || value.size() > 64 || !absl::ParseTime(absl::RFC3339_full, value, &t, &err)) {
      return absl::FailedPreconditionError("the clock file holds no RFC 3339 time");
    }
    return t;
  };
}

Clock FixedClock(absl::Time t) {
  return [t]() -> absl::StatusOr<absl::Time> { return t; };
}

Clock ClockFromEnv(const config::Env& env) {
  if (!env.String("STADTPORTAL_REMINDER_CLOCK_FILE", "").empty()) {
    throw config::Error("STADTPORTAL_REMINDER_CLOCK_FILE was renamed to STADTPORTAL_CLOCK_FILE");
  }
  const std::string path = env.String("STADTPORTAL_CLOCK_FILE", "");
  if (path.empty()) return SystemClock();
  if (!env.Bool("STADTPORTAL_ALLOW_TEST_PROVIDERS", false)) {
    throw config::Error(
        "STADTPORTAL_CLOCK_FILE sets the periodic jobs' time for tests; it is refused unless "
        "STADTPORTAL_ALLOW_TEST_PROVIDERS=true marks a development or test deployment");
  }
  return FileClock(path);
}

}  // namespace stadtportal::app

#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/config.h"

namespace stadtportal::app {

// What time it is for a periodic job (reminders, retention). Production: the system
// clock. Tests set it: a function of their own (unit and integration tests), or a file
// the jobs read at every run (STADTPORTAL_CLOCK_FILE, for the processes of the end-to-end
// tests). An error means the run does nothing.
using Clock = std::function<absl::StatusOr<absl::Time>()>;

Clock SystemClock();
// The time in the file at `path` (RFC 3339, e.g. "2027-03-01T08:00:00Z"), read anew at
// every call; an unreadable or malformed file is an error.
Clock FileClock(std::string path);
// A clock that always says `t`.
Clock FixedClock(absl::Time t);
// STADTPORTAL_CLOCK_FILE, allowed only where STADTPORTAL_ALLOW_TEST_PROVIDERS marks a
// development or test deployment (else config::Error: the service does not start);
// without it, SystemClock(). The one setting for every job of a process.
Clock ClockFromEnv(const config::Env& env);

}  // namespace stadtportal::app

#include "services/accounts/reminders.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "libs/api/text.h"

namespace stadtportal::accounts {

Clock SystemClock() {
  return []() -> absl::StatusOr<absl::Time> { return absl::Now(); };
}

Clock FileClock(std::string path) {
  return [path = std::move(path)]() -> absl::StatusOr<absl::Time> {
    std::ifstream in(path);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    absl::Time t;
    std::string err;
    const std::string value(absl::StripAsciiWhitespace(text.str()));
    if (!in || value.size() > 64 || !absl::ParseTime(absl::RFC3339_full, value, &t, &err)) {
      return absl::FailedPreconditionError("the reminder clock file holds no RFC 3339 time");
    }
    return t;
  };
}

Clock ClockFromEnv(const config::Env& env) {
  const std::string path = env.String("STADTPORTAL_REMINDER_CLOCK_FILE", "");
  if (path.empty()) return SystemClock();
  if (!env.Bool("STADTPORTAL_ALLOW_TEST_PROVIDERS", false)) {
    throw config::Error(
        "STADTPORTAL_REMINDER_CLOCK_FILE sets the reminder job's time for tests; it is refused unless "
        "STADTPORTAL_ALLOW_TEST_PROVIDERS=true marks a development or test deployment");
  }
  return FileClock(path);
}

absl::StatusOr<int> ReminderJob::RunOnce() {
  auto now = clock_();
  if (!now.ok()) return now.status();
  const std::string today = absl::FormatTime("%Y-%m-%d", *now, absl::UTCTimeZone());
  int total = 0;
  for (;;) {
    auto sent = store_->SendDueReminders(today, batch_, *types_);
    if (!sent.ok()) return sent.status();
    total += *sent;
    if (*sent < batch_) return total;
  }
}

}  // namespace stadtportal::accounts

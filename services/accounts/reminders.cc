#include "services/accounts/reminders.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "libs/api/text.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::accounts {
namespace {

prometheus::Family<prometheus::Counter>& RemindersTotal() {
  static auto& family = metrics::CounterFamily(
      "stadtportal_accounts_reminders_total",
      "Runs of the reminder job's batches: reminders sent (committed with their events), and failed runs.");
  return family;
}

}  // namespace

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
  if (!now.ok()) {
    RemindersTotal().Add({{"outcome", "failed"}}).Increment();
    return now.status();
  }
  const std::string today = absl::FormatTime("%Y-%m-%d", *now, absl::UTCTimeZone());
  int total = 0;
  for (;;) {
    auto sent = store_->SendDueReminders(today, batch_, *types_);
    if (!sent.ok()) {
      RemindersTotal().Add({{"outcome", "failed"}}).Increment();
      return sent.status();
    }
    // Counted once committed.
    RemindersTotal().Add({{"outcome", "sent"}}).Increment(*sent);
    total += *sent;
    if (*sent < batch_) return total;
  }
}

}  // namespace stadtportal::accounts

#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/config.h"
#include "services/accounts/document_types.h"
#include "services/accounts/store.h"

namespace stadtportal::accounts {

// What time it is for the reminder job. Production: the system clock. Tests set it: a
// function of their own (unit and integration tests), or a file the job reads at every
// run (STADTPORTAL_REMINDER_CLOCK_FILE, for the processes of the end-to-end tests).
using Clock = std::function<absl::StatusOr<absl::Time>()>;

Clock SystemClock();
// The time in the file at `path` (RFC 3339, e.g. "2027-03-01T08:00:00Z"), read anew at
// every call; an unreadable or malformed file is an error (the run sends nothing).
Clock FileClock(std::string path);
// STADTPORTAL_REMINDER_CLOCK_FILE, allowed only where STADTPORTAL_ALLOW_TEST_PROVIDERS
// marks a development or test deployment (else config::Error: the service does not
// start); without it, SystemClock().
Clock ClockFromEnv(const config::Env& env);

// The periodic job on every replica: sends the reminders due today (the clock's date in
// UTC) in batches of `batch`, each batch one transaction (Store::SendDueReminders): a
// reminder is sent exactly once however many replicas run it, and a replica that dies
// mid-batch has sent nothing of it.
class ReminderJob {
 public:
  ReminderJob(std::shared_ptr<Store> store, std::shared_ptr<const DocumentTypes> types, Clock clock, int batch = 100)
      : store_(std::move(store)), types_(std::move(types)), clock_(std::move(clock)), batch_(batch) {}

  // One run; returns how many reminders it sent.
  absl::StatusOr<int> RunOnce();

 private:
  std::shared_ptr<Store> store_;
  std::shared_ptr<const DocumentTypes> types_;
  Clock clock_;
  int batch_;
};

}  // namespace stadtportal::accounts

#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/app/clock.h"
#include "services/accounts/document_types.h"
#include "services/accounts/store.h"

namespace stadtportal::accounts {

// The job's "now": app::ClockFromEnv (STADTPORTAL_CLOCK_FILE in end-to-end tests).
using Clock = app::Clock;

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

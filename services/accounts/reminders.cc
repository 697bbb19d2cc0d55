#include "services/accounts/reminders.h"

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

absl::StatusOr<int> ReminderJob::RunOnce() {
  auto now = clock_();
  if (!now.ok()) {
    RemindersTotal().Add({{"outcome", "failed"}}).Increment();
    return now.status();
  }
  int total = 0;
  for (;;) {
    auto sent = store_->SendDueReminders(*now, batch_, *types_);
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

#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "libs/app/clock.h"
#include "libs/config/config.h"
#include "services/submission/store.h"

// Archive and retention of submissions (docs/data-protection.md, "Retention"): a closed
// submission is kept until its retain_until; then records of lasting value are handed
// over to the archive — written into the hand-off folder the archive collects from — and
// every one is anonymised.
namespace stadtportal::submission {

// STADTPORTAL_ARCHIVE_DIR: the archive's hand-off folder (an absolute path to an existing
// directory; a volume the archive collects from). Unset: records of lasting value wait.
std::string ArchiveDirFromEnv(const config::Env& env);

// Writes `record` into <dir>/<tenant>/<reference>/: submission.json (the submission with
// its answers, status history, rule and the list of files) and files/NN-<safe name> —
// first into a hidden temporary folder beside it, synced, then renamed into place, so
// the archive never sees a half-written record. A record written before (a transaction
// that did not commit) is replaced.
absl::Status WriteArchiveRecord(const std::string& dir, const ArchiveRecord& record, absl::Time handed_over_at);

// A file name the archive's file system takes whatever the applicant called the file:
// letters, digits, '.', '-' and '_' only (others become '_'), no leading dot, at most
// 100 bytes keeping the end (the extension).
std::string SafeFileName(const std::string& name);

// One run ends the retention of every submission due by the clock's "now", one
// transaction each (Store::EndRetention), at most `limit` per run; returns how many.
class RetentionJob {
 public:
  RetentionJob(std::shared_ptr<Store> store, app::Clock clock, std::string archive_dir, int limit = 500)
      : store_(std::move(store)), clock_(std::move(clock)), archive_dir_(std::move(archive_dir)), limit_(limit) {}

  absl::StatusOr<int> RunOnce();

 private:
  std::shared_ptr<Store> store_;
  app::Clock clock_;
  std::string archive_dir_;
  int limit_;
};

}  // namespace stadtportal::submission

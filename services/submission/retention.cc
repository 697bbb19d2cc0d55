#include "services/submission/retention.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>
#include <system_error>

#include <google/protobuf/util/time_util.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "libs/app/retention.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"

namespace stadtportal::submission {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

absl::Status IoError(const std::string& what, int error) {
  return absl::InternalError(absl::StrCat("archive hand-off: ", what, ": ", std::strerror(error)));
}

// Creates `path` (which must not exist) with `content`, and syncs it to the disk.
absl::Status WriteSynced(const fs::path& path, const std::string& content, const std::string& what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return IoError(absl::StrCat("cannot create ", what), errno);
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return IoError(absl::StrCat("cannot write ", what), error);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    return IoError(absl::StrCat("cannot sync ", what), error);
  }
  if (::close(fd) != 0) return IoError(absl::StrCat("cannot close ", what), errno);
  return absl::OkStatus();
}

// Syncs a directory, so the names created or renamed in it survive a crash.
absl::Status SyncDirectory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open a folder", errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : IoError("cannot sync a folder", error);
}

// The record's folder name: its reference, or its id if the reference is not of the
// platform's shape (never a path of the caller's choosing).
std::string FolderName(const v1::Submission& s) {
  static const std::regex reference("^[A-Z]{2,6}-[0-9]{4}-[0-9]{6,12}$");
  static const std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  if (std::regex_match(s.reference(), reference)) return s.reference();
  if (std::regex_match(s.id(), uuid)) return s.id();
  return "";
}

nlohmann::json RecordJson(const ArchiveRecord& r, const std::vector<std::string>& file_names,
                          absl::Time handed_over_at) {
  const auto& s = r.snapshot.submission();
  nlohmann::json history = nlohmann::json::array();
  for (const auto& h : s.history()) {
    history.push_back({{"status", h.status()}, {"at", TimeUtil::ToString(h.at())}, {"note", h.note()}});
  }
  nlohmann::json attachments = nlohmann::json::array();
  for (int i = 0; i < r.snapshot.files_size(); ++i) {
    const auto& a = r.snapshot.files(i).attachment();
    attachments.push_back({{"file", "files/" + file_names[i]},
                           {"field", a.field()},
                           {"filename", a.filename()},
                           {"media_type", a.media_type()},
                           {"size", a.size()},
                           {"sha256", a.sha256()}});
  }
  auto answers = nlohmann::json::parse(s.data_json(), nullptr, false);
  return {
      {"format", "stadtportal.archive.submission/1"},
      {"tenant", r.tenant},
      {"id", s.id()},
      {"reference", s.reference()},
      {"service",
       {{"id", s.service_id()},
        {"name", {{"de", s.service_name().de()}, {"en", s.service_name().en()}}},
        {"form_version", s.form_version()},
        {"destination", r.snapshot.destination()}}},
      {"status", s.status()},
      {"fee", {{"amount_minor", s.fee().amount_minor()}, {"currency", s.fee().currency()}}},
      {"submitted_at", TimeUtil::ToString(s.submitted_at())},
      {"closed_at", s.has_closed_at() ? nlohmann::json(TimeUtil::ToString(s.closed_at())) : nlohmann::json()},
      {"retain_until", s.has_retain_until() ? nlohmann::json(TimeUtil::ToString(s.retain_until())) : nlohmann::json()},
      {"retention", {{"years", r.retention_years}, {"legal_basis", r.legal_basis}}},
      {"handed_over_at", absl::FormatTime(absl::RFC3339_sec, handed_over_at, absl::UTCTimeZone())},
      {"answers", answers.is_discarded() ? nlohmann::json::object() : answers},
      {"history", history},
      {"attachments", attachments}};
}

}  // namespace

std::string ArchiveDirFromEnv(const config::Env& env) {
  const std::string dir = env.String("STADTPORTAL_ARCHIVE_DIR", "");
  if (dir.empty()) return dir;
  std::error_code ec;
  if (!fs::path(dir).is_absolute() || !fs::is_directory(dir, ec)) {
    throw config::Error("STADTPORTAL_ARCHIVE_DIR: must be the absolute path of an existing folder");
  }
  return dir;
}

std::string SafeFileName(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    out += (std::isalnum(c) != 0 && c < 0x80) || c == '.' || c == '-' || c == '_' ? static_cast<char>(c) : '_';
  }
  if (!out.empty() && out[0] == '.') out[0] = '_';
  if (out.size() > 100) out = out.substr(out.size() - 100);
  return out.empty() ? "file" : out;
}

absl::Status WriteArchiveRecord(const std::string& dir, const ArchiveRecord& record, absl::Time handed_over_at) {
  static const std::regex tenant_key("^[0-9]{8}$");
  const std::string folder = FolderName(record.snapshot.submission());
  if (!std::regex_match(record.tenant, tenant_key) || folder.empty()) {
    return absl::InternalError(absl::StrCat("archive hand-off: submission ", record.snapshot.submission().id(),
                                            " has no usable tenant or reference"));
  }
  const fs::path base = fs::path(dir) / record.tenant;
  const fs::path target = base / folder;
  const fs::path temp = base / absl::StrCat(".incoming-", folder, "-", auth::RandomToken(6));
  std::error_code ec;
  fs::create_directories(base, ec);
  if (ec) return IoError("cannot create the tenant's folder", ec.value());
  fs::create_directory(temp, ec);
  if (!ec) fs::create_directory(temp / "files", ec);
  if (ec) return IoError("cannot create a temporary folder", ec.value());
  auto written = [&]() -> absl::Status {
    std::vector<std::string> names;
    for (int i = 0; i < record.snapshot.files_size(); ++i) {
      const auto& f = record.snapshot.files(i);
      names.push_back(absl::StrFormat("%02d-%s", i + 1, SafeFileName(f.attachment().filename())));
      if (auto s = WriteSynced(temp / "files" / names.back(), f.content(), absl::StrCat("file ", i + 1)); !s.ok()) {
        return s;
      }
    }
    if (auto s = SyncDirectory(temp / "files"); !s.ok()) return s;
    if (auto s = WriteSynced(temp / "submission.json", RecordJson(record, names, handed_over_at).dump(2) + "\n",
                             "submission.json");
        !s.ok()) {
      return s;
    }
    if (auto s = SyncDirectory(temp); !s.ok()) return s;
    // A record written by an attempt that did not commit is replaced as a whole.
    if (fs::exists(target, ec)) {
      const fs::path old = base / absl::StrCat(".replaced-", folder, "-", auth::RandomToken(6));
      fs::rename(target, old, ec);
      if (ec) return IoError("cannot move an earlier hand-off aside", ec.value());
      fs::rename(temp, target, ec);
      if (ec) return IoError("cannot move the record into place", ec.value());
      fs::remove_all(old, ec);
    } else {
      fs::rename(temp, target, ec);
      if (ec) return IoError("cannot move the record into place", ec.value());
    }
    return SyncDirectory(base);
  }();
  if (!written.ok()) fs::remove_all(temp, ec);
  return written;
}

absl::StatusOr<int> RetentionJob::RunOnce() {
  auto now = clock_();
  if (!now.ok()) return now.status();
  const bool archive = !archive_dir_.empty();
  int ended = 0;
  while (ended < limit_) {
    auto one = store_->EndRetention(
        *now, archive, [&](const ArchiveRecord& r) { return WriteArchiveRecord(archive_dir_, r, absl::Now()); });
    if (!one.ok()) return one.status();
    if (!one->has_value()) break;
    // Counted once committed.
    if ((*one)->handed_over) app::CountRetention("submission", "handed_over");
    app::CountRetention("submission", "anonymised");
    ++ended;
  }
  if (!archive) {
    auto waiting = store_->WaitingForArchive(*now);
    if (waiting.ok() && *waiting > 0) {
      log::Warn("submissions of lasting value wait for the archive: STADTPORTAL_ARCHIVE_DIR is not set",
                {{"count", std::to_string(*waiting)}});
    }
  }
  return ended;
}

}  // namespace stadtportal::submission

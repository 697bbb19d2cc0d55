#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace stadtportal::api {

// A ZIP archive written as a stream (the GDPR export, GET /api/v1/me/export?format=zip):
// each entry is stored (no compression) and handed to the sink as soon as it is added,
// so only the entry being added is in memory; the central directory follows on Finish.
// Names are "export.json" or export paths (privacy::ParseExportPath); no ZIP64, so the
// archive stays below 2 GiB and 65535 entries.
class ZipWriter {
 public:
  // Receives the archive's bytes in order; false stops the writer (the client went away).
  using Sink = std::function<bool(const char* data, size_t size)>;

  // The largest archive written, central directory included.
  static constexpr uint64_t kMaxBytes = uint64_t{2} * 1024 * 1024 * 1024;

  // `modified` is every entry's time (UTC, to the two seconds DOS times have).
  ZipWriter(Sink sink, absl::Time modified);

  // Writes one entry. INVALID_ARGUMENT for a name that is not an export path or that was
  // added before; RESOURCE_EXHAUSTED when the archive would pass kMaxBytes or 65535
  // entries; UNAVAILABLE when the sink refused; FAILED_PRECONDITION after Finish or a
  // failure. A refused entry writes nothing.
  absl::Status Add(std::string_view name, std::string_view content);
  // Writes the central directory; no entry can be added after it.
  absl::Status Finish();

  // Bytes handed to the sink so far.
  uint64_t bytes_written() const { return offset_; }

 private:
  absl::Status Write(const std::string& bytes);

  Sink sink_;
  uint16_t dos_time_ = 0;
  uint16_t dos_date_ = 0;
  uint64_t offset_ = 0;
  std::string central_;
  uint32_t entries_ = 0;
  std::set<std::string, std::less<>> names_;
  bool done_ = false;
};

}  // namespace stadtportal::api

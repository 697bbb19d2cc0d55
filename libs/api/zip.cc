#include "libs/api/zip.h"

#include <zlib.h>

#include <algorithm>
#include <utility>

#include "libs/privacy/privacy.h"

namespace stadtportal::api {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentral = 0x06054b50;
constexpr uint16_t kVersion = 20;  // 2.0: stored entries, directories of files
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr uint32_t kMaxEntries = 65535;

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void Put32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t Crc32(std::string_view content) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes at most uInt bytes at once.
  constexpr size_t kChunk = 1u << 30;
  for (size_t at = 0; at < content.size(); at += kChunk) {
    const size_t n = std::min(kChunk, content.size() - at);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(content.data() + at), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

ZipWriter::ZipWriter(Sink sink, absl::Time modified) : sink_(std::move(sink)) {
  const auto c = absl::ToCivilSecond(modified, absl::UTCTimeZone());
  const int year = std::max<int>(1980, std::min<int>(2107, static_cast<int>(c.year())));
  dos_time_ = static_cast<uint16_t>((c.hour() << 11) | (c.minute() << 5) | (c.second() / 2));
  dos_date_ = static_cast<uint16_t>(((year - 1980) << 9) | (c.month() << 5) | c.day());
}

absl::Status ZipWriter::Write(const std::string& bytes) {
  if (!sink_(bytes.data(), bytes.size())) {
    done_ = true;
    return absl::UnavailableError("the archive's receiver went away");
  }
  offset_ += bytes.size();
  return absl::OkStatus();
}

absl::Status ZipWriter::Add(std::string_view name, std::string_view content) {
  if (done_) return absl::FailedPreconditionError("the archive is finished");
  if (name != "export.json" && !privacy::ParseExportPath(name).ok()) {
    return absl::InvalidArgumentError("zip: the entry's name is not an export path");
  }
  if (names_.count(name) > 0) return absl::InvalidArgumentError("zip: an entry of that name was added before");
  if (entries_ + 1 > kMaxEntries) return absl::ResourceExhaustedError("zip: too many entries");
  // This entry, its central directory record, the records before it and the end record
  // must all fit.
  const uint64_t after = offset_ + kLocalHeaderSize + name.size() + content.size() + central_.size() +
                         kCentralHeaderSize + name.size() + kEndSize;
  if (after > kMaxBytes) return absl::ResourceExhaustedError("zip: the archive would pass 2 GiB");

  const uint32_t crc = Crc32(content);
  const auto size = static_cast<uint32_t>(content.size());
  const auto local_offset = static_cast<uint32_t>(offset_);

  std::string header;
  header.reserve(kLocalHeaderSize + name.size());
  Put32(header, kLocalHeader);
  Put16(header, kVersion);
  Put16(header, 0);  // flags
  Put16(header, 0);  // stored
  Put16(header, dos_time_);
  Put16(header, dos_date_);
  Put32(header, crc);
  Put32(header, size);  // compressed
  Put32(header, size);  // uncompressed
  Put16(header, static_cast<uint16_t>(name.size()));
  Put16(header, 0);  // extra field
  header.append(name);
  if (auto s = Write(header); !s.ok()) return s;
  if (!content.empty()) {
    if (!sink_(content.data(), content.size())) {
      done_ = true;
      return absl::UnavailableError("the archive's receiver went away");
    }
    offset_ += content.size();
  }

  Put32(central_, kCentralHeader);
  Put16(central_, kVersion);  // made by: MS-DOS attributes, 2.0
  Put16(central_, kVersion);
  Put16(central_, 0);
  Put16(central_, 0);
  Put16(central_, dos_time_);
  Put16(central_, dos_date_);
  Put32(central_, crc);
  Put32(central_, size);
  Put32(central_, size);
  Put16(central_, static_cast<uint16_t>(name.size()));
  Put16(central_, 0);  // extra field
  Put16(central_, 0);  // comment
  Put16(central_, 0);  // disk
  Put16(central_, 0);  // internal attributes
  Put32(central_, 0);  // external attributes
  Put32(central_, local_offset);
  central_.append(name);
  names_.emplace(name);
  ++entries_;
  return absl::OkStatus();
}

absl::Status ZipWriter::Finish() {
  if (done_) return absl::FailedPreconditionError("the archive is finished");
  const auto central_offset = static_cast<uint32_t>(offset_);
  std::string end = std::move(central_);
  central_.clear();
  const auto central_size = static_cast<uint32_t>(end.size());
  Put32(end, kEndOfCentral);
  Put16(end, 0);  // this disk
  Put16(end, 0);  // disk of the central directory
  Put16(end, static_cast<uint16_t>(entries_));
  Put16(end, static_cast<uint16_t>(entries_));
  Put32(end, central_size);
  Put32(end, central_offset);
  Put16(end, 0);  // comment
  auto s = Write(end);
  done_ = true;
  return s;
}

}  // namespace stadtportal::api

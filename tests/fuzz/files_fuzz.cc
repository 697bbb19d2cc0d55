// Attachments (libs/api/files): the media type sniffed from the first bytes, and the
// file name kept and sent back in Content-Disposition. A safe name is plain text without
// quotes or separators, at most 120 characters, whatever the client sent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "libs/api/api.h"
#include "libs/api/files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string type = stadtportal::api::SniffMediaType(input);
  if (!type.empty() && type != "application/pdf" && type != "image/png" && type != "image/jpeg") std::abort();
  const std::string name = stadtportal::api::SafeFilename(input);
  if (!stadtportal::api::IsPlainText(name)) std::abort();
  if (name.find_first_of("\"\\/") != std::string::npos) std::abort();
  if (stadtportal::api::Utf8Length(name) > 120) std::abort();
  return 0;
}

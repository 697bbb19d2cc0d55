#include "libs/api/files.h"

#include <string_view>

#include "libs/api/api.h"

namespace stadtportal::api {

std::string SniffMediaType(const std::string& c) {
  if (c.rfind("%PDF-", 0) == 0) return "application/pdf";
  if (c.rfind("\x89PNG\r\n\x1a\n", 0) == 0) return "image/png";
  if (c.size() >= 3 && static_cast<unsigned char>(c[0]) == 0xFF && static_cast<unsigned char>(c[1]) == 0xD8 &&
      static_cast<unsigned char>(c[2]) == 0xFF) {
    return "image/jpeg";
  }
  return "";
}

std::string SafeFilename(const std::string& name) {
  const size_t slash = name.find_last_of("/\\");
  const std::string_view base = std::string_view(name).substr(slash == std::string::npos ? 0 : slash + 1);
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < base.size() && chars < 120; ++chars) {
    // One character at a time: a whole valid UTF-8 sequence that is not a control
    // character is kept; anything else (controls, quotes, broken sequences) becomes "_".
    const auto c = static_cast<unsigned char>(base[i]);
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    const absl::string_view one(base.data() + i, std::min(len, base.size() - i));
    if (one.size() == len && IsPlainText(one) && one != "\"" && one != ";") {
      out.append(one.data(), one.size());
      i += len;
    } else {
      out += '_';
      i += one.size() == len && IsPlainText(one) ? len : 1;
    }
  }
  return out.empty() || out == "." || out == ".." ? "attachment" : out;
}

}  // namespace stadtportal::api

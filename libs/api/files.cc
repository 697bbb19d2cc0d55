#include "libs/api/files.h"

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
  std::string base = name.substr(name.find_last_of("/\\") == std::string::npos ? 0 : name.find_last_of("/\\") + 1);
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < base.size() && chars < 120; ++i) {
    const unsigned char c = static_cast<unsigned char>(base[i]);
    if (c < 0x20 || c == 0x7F || c == '"' || c == ';' || c == '\\') {
      out += '_';
    } else {
      out += static_cast<char>(c);
    }
    if ((c & 0xC0) != 0x80) ++chars;
  }
  // Never end inside a UTF-8 sequence.
  while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0xC0) out.pop_back();
  return out.empty() || out == "." || out == ".." ? "attachment" : out;
}

}  // namespace stadtportal::api

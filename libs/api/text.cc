#include "libs/api/text.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/status/status.h"

namespace stadtportal::api {
namespace {

constexpr uint32_t kInvalid = 0xFFFFFFFF;
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Decodes the code point at s[i]; sets `len` to its byte length. kInvalid (len 1) for
// malformed UTF-8, overlongs, surrogates and values beyond U+10FFFF.
uint32_t Decode(absl::string_view s, size_t i, size_t& len) {
  const auto c = static_cast<unsigned char>(s[i]);
  uint32_t cp;
  len = 1;
  if (c < 0x80) return c;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return kInvalid;
  }
  if (i + len > s.size()) {
    len = 1;
    return kInvalid;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      len = 1;
      return kInvalid;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    len = 1;
    return kInvalid;
  }
  return cp;
}

}  // namespace

long Utf8Length(absl::string_view s) {
  long n = 0;
  for (size_t i = 0, len = 0; i < s.size(); i += len, ++n) {
    if (Decode(s, i, len) == kInvalid) return -1;
  }
  return n;
}

bool IsForbiddenInLine(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

bool HasControlCharacters(absl::string_view text, TextKind kind) {
  for (size_t i = 0, len = 0; i < text.size(); i += len) {
    const uint32_t cp = Decode(text, i, len);
    if (cp == kInvalid || !IsForbiddenInLine(cp)) continue;
    if (kind == TextKind::kMultiline) {
      // LF, CRLF and TAB make lines; a lone CR (an old line end, or a bare-CR header
      // break) does not.
      if (cp == '\n' || cp == '\t') continue;
      if (cp == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    }
    return true;
  }
  return false;
}

absl::Status ValidateText(absl::string_view text, const std::string& field, size_t max_chars, TextKind kind) {
  const long n = Utf8Length(text);
  if (n < 0) return status::FieldError(field, "invalid", "not valid UTF-8");
  if (absl::StripAsciiWhitespace(text).empty()) return status::FieldError(field, "required");
  if (static_cast<size_t>(n) > max_chars) {
    return status::FieldError(field, "invalid", absl::StrCat("at most ", max_chars, " characters"));
  }
  if (HasControlCharacters(text, kind)) return status::FieldError(field, "control_characters");
  return absl::OkStatus();
}

bool IsPlainText(absl::string_view text, TextKind kind) {
  return Utf8Length(text) >= 0 && !HasControlCharacters(text, kind);
}

std::string PlainLine(absl::string_view s, size_t max_chars) {
  std::string out;
  out.reserve(s.size());
  size_t n = 0;
  bool space = false;  // The last character written was a replacement space.
  for (size_t i = 0, len = 0; i < s.size() && n < max_chars; i += len) {
    const uint32_t cp = Decode(s, i, len);
    if (cp == kInvalid) {
      out += kReplacement;
    } else if (IsForbiddenInLine(cp)) {
      // "a\r\nb" becomes "a b", not "a  b".
      if ((cp == '\r' || cp == '\n') && space) continue;
      out += ' ';
      ++n;
      space = cp == '\r' || cp == '\n';
      continue;
    } else {
      out.append(s.data() + i, len);
    }
    ++n;
    space = false;
  }
  return out;
}

std::string PlainLines(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = Decode(s, i, len);
    if (cp == kInvalid) {
      out += kReplacement;
    } else if (cp == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++len;
      out += "\r\n";
    } else if (cp == '\n') {
      out += "\r\n";
    } else if (cp == '\t' || !IsForbiddenInLine(cp)) {
      out.append(s.data() + i, len);
    }
  }
  return out;
}

bool IsMailAddress(absl::string_view address) {
  static const std::regex kAddress(
      "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
      "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$");
  if (address.size() > 254) return false;
  const size_t at = address.find('@');
  if (at == absl::string_view::npos || at == 0 || at > 64) return false;
  return std::regex_match(address.begin(), address.end(), kAddress);
}

}  // namespace stadtportal::api

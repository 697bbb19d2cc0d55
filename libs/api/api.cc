#include "libs/api/api.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/config/config.h"

namespace stadtportal::api {

absl::StatusOr<std::string> ResolveTenant(const common::v1::TenantRef& ref, const std::string& default_tenant) {
  if (ref.key().empty()) return default_tenant;
  if (!config::IsTenantKey(ref.key()))
    return absl::InvalidArgumentError("tenant.key: expected an eight-digit municipality key");
  return ref.key();
}

absl::StatusOr<Page> ParsePage(const common::v1::PageRequest& req) {
  Page p{20, ""};
  if (req.page_size() < 0) return absl::InvalidArgumentError("page.page_size: must not be negative");
  if (req.page_size() > 0) p.size = std::min(req.page_size(), 100);
  if (!req.page_token().empty()) {
    if (!absl::WebSafeBase64Unescape(req.page_token(), &p.after) || p.after.empty()) {
      return absl::InvalidArgumentError("page.page_token: not a token this service issued");
    }
  }
  return p;
}

std::string NextPageToken(const std::string& last_key) { return absl::WebSafeBase64Escape(last_key); }

absl::Status ValidateMoney(const common::v1::Money& m, const std::string& field) {
  if (m.amount_minor() < 0)
    return absl::InvalidArgumentError(absl::StrCat(field, ".amount_minor: must not be negative"));
  const auto& c = m.currency();
  if (c.size() != 3 || !absl::ascii_isupper(c[0]) || !absl::ascii_isupper(c[1]) || !absl::ascii_isupper(c[2])) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".currency: expected an ISO 4217 code such as EUR"));
  }
  return absl::OkStatus();
}

absl::Status CheckId(const std::string& id, const std::string& what) {
  if (!ValidateUuid(id, "id").ok()) return absl::NotFoundError(what + " not found");
  return absl::OkStatus();
}

absl::Status ValidateUuid(const std::string& id, const std::string& field) {
  static const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  if (!std::regex_match(id, kUuid)) return absl::InvalidArgumentError(absl::StrCat(field, ": expected a UUID"));
  return absl::OkStatus();
}

long Utf8Length(const std::string& s) {
  long n = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += len;
    ++n;
  }
  return n;
}

absl::Status ValidateText(const std::string& text, const std::string& field, size_t max_chars) {
  const long n = Utf8Length(text);
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  if (absl::StripAsciiWhitespace(text).empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (static_cast<size_t>(n) > max_chars) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", max_chars, " characters"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NormalizeEmail(const std::string& email, const std::string& field) {
  std::string e = absl::AsciiStrToLower(absl::StripAsciiWhitespace(email));
  static const std::regex kEmail(R"(^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$)");
  if (e.size() > 254 || !ValidateText(e, field, 254).ok() || !std::regex_match(e, kEmail)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": invalid_email"));
  }
  return e;
}

absl::Status ValidateSlug(const std::string& id, const std::string& field) {
  static const std::regex kSlug("^[a-z][a-z0-9-]{0,63}$");
  if (!std::regex_match(id, kSlug)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected 1-64 characters of a-z, 0-9 and -"));
  }
  return absl::OkStatus();
}

}  // namespace stadtportal::api

#include "libs/api/api.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/config/config.h"
#include "libs/status/status.h"

namespace stadtportal::api {

absl::StatusOr<std::string> ResolveTenant(const common::v1::TenantRef& ref, const std::string& default_tenant) {
  if (ref.key().empty()) return default_tenant;
  if (!config::IsTenantKey(ref.key()))
    return status::MalformedField("tenant.key", "invalid", "expected an eight-digit municipality key");
  return ref.key();
}

absl::StatusOr<Page> ParsePage(const common::v1::PageRequest& req) {
  Page p{20, ""};
  if (req.page_size() < 0) return status::MalformedField("page.page_size", "invalid", "must not be negative");
  if (req.page_size() > 0) p.size = std::min(req.page_size(), 100);
  if (!req.page_token().empty()) {
    if (!absl::WebSafeBase64Unescape(req.page_token(), &p.after) || p.after.empty()) {
      return status::MalformedField("page.page_token", "invalid", "not a token this service issued");
    }
  }
  return p;
}

std::string NextPageToken(const std::string& last_key) { return absl::WebSafeBase64Escape(last_key); }

absl::Status ValidateMoney(const common::v1::Money& m, const std::string& field) {
  if (m.amount_minor() < 0)
    return status::FieldError(absl::StrCat(field, ".amount_minor"), "invalid", "must not be negative");
  const auto& c = m.currency();
  if (c.size() != 3 || !absl::ascii_isupper(c[0]) || !absl::ascii_isupper(c[1]) || !absl::ascii_isupper(c[2])) {
    return status::FieldError(absl::StrCat(field, ".currency"), "invalid", "expected an ISO 4217 code such as EUR");
  }
  return absl::OkStatus();
}

absl::Status CheckId(const std::string& id, const std::string& what) {
  if (!ValidateUuid(id, "id").ok()) return absl::NotFoundError(what + " not found");
  return absl::OkStatus();
}

absl::Status ValidateUuid(const std::string& id, const std::string& field) {
  static const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  if (!std::regex_match(id, kUuid)) return status::MalformedField(field, "invalid", "expected a UUID");
  return absl::OkStatus();
}

absl::StatusOr<std::string> NormalizeEmail(const std::string& email, const std::string& field) {
  std::string e = absl::AsciiStrToLower(absl::StripAsciiWhitespace(email));
  if (!IsMailAddress(e)) {
    return status::FieldError(field, "invalid_email");
  }
  return e;
}

absl::Status ValidateSlug(const std::string& id, const std::string& field) {
  static const std::regex kSlug("^[a-z][a-z0-9-]{0,63}$");
  if (!std::regex_match(id, kSlug)) {
    return status::FieldError(field, "invalid", "expected 1-64 characters of a-z, 0-9 and -");
  }
  return absl::OkStatus();
}

}  // namespace stadtportal::api

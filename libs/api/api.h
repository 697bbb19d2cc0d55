#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "libs/api/text.h"
#include "stadtportal/common/v1/common.pb.h"

// Shared handling of the common.v1 request parts, so every service treats tenants,
// pages, money and ids alike.
namespace stadtportal::api {

// The tenant a request acts in: the given key, or the deployment's default when empty.
absl::StatusOr<std::string> ResolveTenant(const common::v1::TenantRef& ref, const std::string& default_tenant);

struct Page {
  int size;           // 1..100, default 20.
  std::string after;  // Keyset cursor: the last sort key of the previous page ("" = start).
};
absl::StatusOr<Page> ParsePage(const common::v1::PageRequest& req);
// The token a client sends to get the page after `last_key`.
std::string NextPageToken(const std::string& last_key);

// Amount ≥ 0 and a three-letter upper-case ISO 4217 code.
absl::Status ValidateMoney(const common::v1::Money& m, const std::string& field);
// A canonical UUID (what every stadtportal id is).
absl::Status ValidateUuid(const std::string& id, const std::string& field);
// ValidateText (text fields), Utf8Length and the other text helpers: libs/api/text.h.
// "  Anna.Muster@Example.DE " → "anna.muster@example.de"; INVALID_ARGUMENT
// "<field>: invalid_email" unless it is an address a mail can be sent to as it is
// (IsMailAddress: one @, ASCII, a dot in the domain, no spaces or controls, at most
// 254 characters; the mail to it proves the rest).
absl::StatusOr<std::string> NormalizeEmail(const std::string& email, const std::string& field);
// A slug: 1–64 of [a-z0-9-], starting with a letter.
absl::Status ValidateSlug(const std::string& id, const std::string& field);
// An id from a path: a malformed one cannot name anything of the caller's, so it gets
// the same answer as an unknown one, NOT_FOUND "<what> not found".
absl::Status CheckId(const std::string& id, const std::string& what);

}  // namespace stadtportal::api

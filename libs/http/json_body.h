#pragma once

#include <map>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/status/status.h"

namespace stadtportal::http {

// One field-level validation error of a request.
using FieldError = status::FieldViolation;

enum class FieldType { kString, kInteger, kBoolean, kObject, kArray };

struct FieldSpec {
  FieldType type;
  bool required = true;
};

// Parses a JSON object body strictly: Content-Type application/json, valid UTF-8, at
// most 16 levels deep, an object whose fields are all known and of the declared type.
// A body that cannot be read is refused with status::MalformedField (field "", 400); an
// object with unknown, missing or mistyped fields with status::InvalidFields (422), every
// offending field listed.
absl::StatusOr<nlohmann::json> ParseJsonBody(const httplib::Request& req,
                                             const std::map<std::string, FieldSpec>& fields);

// "de" or "en" from Accept-Language (German unless English is preferred).
std::string Language(const httplib::Request& req);

// The user-facing message for an error code in "de" or "en"; unknown codes get a
// generic text.
std::string Message(const std::string& code, const std::string& language);

}  // namespace stadtportal::http

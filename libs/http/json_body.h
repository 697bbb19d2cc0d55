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
// On failure returns INVALID_ARGUMENT (or OUT_OF_RANGE for nesting) and fills `errors`.
absl::StatusOr<nlohmann::json> ParseJsonBody(const httplib::Request& req,
                                             const std::map<std::string, FieldSpec>& fields,
                                             std::vector<FieldError>* errors);

// "de" or "en" from Accept-Language (German unless English is preferred).
std::string Language(const httplib::Request& req);

// The user-facing message for an error code in "de" or "en"; unknown codes get a
// generic text.
std::string Message(const std::string& code, const std::string& language);

// Field errors carried by a service's INVALID_ARGUMENT message "field: code[; …]".
std::vector<FieldError> FieldErrorsFromMessage(const std::string& message);

}  // namespace stadtportal::http

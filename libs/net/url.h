#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace stadtportal::net {

// Percent-encodes everything but the unreserved characters of RFC 3986 (§2.3): for URI
// components, query strings and application/x-www-form-urlencoded bodies alike.
std::string PercentEncode(absl::string_view s);

}  // namespace stadtportal::net

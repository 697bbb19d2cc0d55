#pragma once

#include <cstdint>
#include <string>
#include <string_view>

// The reference a citizen quotes: PREFIX-YEAR-NUMBER, e.g. "NUE-2026-000042". The
// prefix names the municipality (2 to 6 capital letters, configured), the number counts
// per tenant and year from 1 and has at least six digits.
namespace stadtportal::submission {

bool IsReferencePrefix(std::string_view prefix);
std::string FormatReference(std::string_view prefix, int year, int64_t number);

}  // namespace stadtportal::submission

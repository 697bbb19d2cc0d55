#include "services/submission/reference.h"

#include "absl/strings/str_cat.h"

namespace stadtportal::submission {

bool IsReferencePrefix(std::string_view prefix) {
  if (prefix.size() < 2 || prefix.size() > 6) return false;
  for (char c : prefix) {
    if (c < 'A' || c > 'Z') return false;
  }
  return true;
}

std::string FormatReference(std::string_view prefix, int year, int64_t number) {
  const std::string digits = std::to_string(number);
  return absl::StrCat(std::string(prefix), "-", year, "-", std::string(digits.size() < 6 ? 6 - digits.size() : 0, '0'),
                      digits);
}

}  // namespace stadtportal::submission

#include "services/submission/reference.h"

#include <catch2/catch.hpp>

using namespace stadtportal::submission;

TEST_CASE("a reference is PREFIX-YEAR-NUMBER with at least six digits", "[reference]") {
  CHECK(FormatReference("NUE", 2026, 1) == "NUE-2026-000001");
  CHECK(FormatReference("NUE", 2026, 42) == "NUE-2026-000042");
  CHECK(FormatReference("ABCDEF", 2027, 999999) == "ABCDEF-2027-999999");
  CHECK(FormatReference("NUE", 2026, 1234567) == "NUE-2026-1234567");
}

TEST_CASE("a reference prefix is 2 to 6 capital letters", "[reference]") {
  CHECK(IsReferencePrefix("NU"));
  CHECK(IsReferencePrefix("NUE"));
  CHECK(IsReferencePrefix("ABCDEF"));
  for (const char* bad : {"", "N", "ABCDEFG", "nue", "NÜ", "NU1", "NU-", "N E"}) {
    INFO(bad);
    CHECK_FALSE(IsReferencePrefix(bad));
  }
}

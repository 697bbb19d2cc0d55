#include "services/payment/states.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace stadtportal::payment {
namespace {

const std::vector<std::string> kStates = {"created", "started", "submitted", "success", "failed", "cancelled", "error"};

}  // namespace

TEST_CASE("a payment moves only forward, and a final state never changes", "[unit]") {
  const std::vector<std::pair<std::string, std::string>> allowed = {
      {"created", "started"},   {"created", "error"},     {"created", "cancelled"}, {"created", "failed"},
      {"started", "submitted"}, {"started", "success"},   {"started", "failed"},    {"started", "cancelled"},
      {"started", "error"},     {"submitted", "success"}, {"submitted", "failed"},  {"submitted", "cancelled"},
      {"submitted", "error"},
  };
  for (const auto& from : kStates) {
    for (const auto& to : kStates) {
      const bool expected = std::find(allowed.begin(), allowed.end(), std::make_pair(from, to)) != allowed.end();
      INFO(from << " → " << to);
      CHECK(Allowed(from, to) == expected);
    }
  }
  for (const auto& s : kStates) {
    INFO(s);
    CHECK(Final(s) == (s == "success" || s == "failed" || s == "cancelled" || s == "error"));
  }
  CHECK_FALSE(Allowed("unknown", "success"));
  CHECK_FALSE(Final(""));
}

}  // namespace stadtportal::payment

#include "services/submission/status.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace stadtportal::submission;

namespace {

const std::vector<std::string> kAll = {
    "submitted",   "awaiting_payment",      "paid",     "delivered", "received_by_department",
    "in_progress", "information_requested", "approved", "rejected",  "withdrawn",
    "closed"};

}  // namespace

TEST_CASE("the eleven statuses, and nothing else", "[status]") {
  for (const auto& s : kAll) CHECK(IsStatus(s));
  CHECK_FALSE(IsStatus(""));
  CHECK_FALSE(IsStatus("Submitted"));
  CHECK_FALSE(IsStatus("deleted"));
  CHECK(InitialStatus(true) == "awaiting_payment");
  CHECK(InitialStatus(false) == "submitted");
}

TEST_CASE("which status may follow which", "[status]") {
  // Every edge of the machine, and only these.
  const std::vector<std::pair<std::string, std::string>> edges = {
      {"awaiting_payment", "paid"},
      {"submitted", "delivered"},
      {"paid", "delivered"},
      {"submitted", "received_by_department"},
      {"paid", "received_by_department"},
      {"delivered", "received_by_department"},
      {"received_by_department", "in_progress"},
      {"information_requested", "in_progress"},
      {"received_by_department", "information_requested"},
      {"in_progress", "information_requested"},
      {"received_by_department", "approved"},
      {"in_progress", "approved"},
      {"information_requested", "approved"},
      {"received_by_department", "rejected"},
      {"in_progress", "rejected"},
      {"information_requested", "rejected"},
      {"received_by_department", "closed"},
      {"in_progress", "closed"},
      {"information_requested", "closed"},
      {"approved", "closed"},
      {"rejected", "closed"},
      {"submitted", "withdrawn"},
      {"awaiting_payment", "withdrawn"},
      {"paid", "withdrawn"},
      {"delivered", "withdrawn"},
      {"received_by_department", "withdrawn"},
      {"in_progress", "withdrawn"},
      {"information_requested", "withdrawn"},
  };
  for (const auto& from : kAll) {
    for (const auto& to : kAll) {
      const bool edge = std::find(edges.begin(), edges.end(), std::make_pair(from, to)) != edges.end();
      INFO(from << " → " << to);
      CHECK(Follows(from, to) == edge);
    }
  }
  // Nothing leaves a final status, nothing returns to a first one.
  for (const auto& to : kAll) {
    CHECK_FALSE(Follows("withdrawn", to));
    CHECK_FALSE(Follows("closed", to));
    CHECK_FALSE(Follows(to, "submitted"));
    CHECK_FALSE(Follows(to, "awaiting_payment"));
  }
}

TEST_CASE("the applicant may withdraw until a decision", "[status]") {
  for (const auto& s : kAll) {
    const bool decided = s == "approved" || s == "rejected" || s == "withdrawn" || s == "closed";
    INFO(s);
    CHECK(Withdrawable(s) == !decided);
    CHECK(Closed(s) == decided);
    CHECK(MayMove(Actor::kApplicant, s, "withdrawn") == !decided);
  }
  // Withdrawing is all the applicant may do.
  CHECK_FALSE(MayMove(Actor::kApplicant, "awaiting_payment", "paid"));
  CHECK_FALSE(MayMove(Actor::kApplicant, "in_progress", "approved"));
  CHECK_FALSE(Closed(""));
}

TEST_CASE("who may cause which status", "[status]") {
  CHECK(MayMove(Actor::kPayment, "awaiting_payment", "paid"));
  CHECK_FALSE(MayMove(Actor::kPayment, "withdrawn", "paid"));
  CHECK_FALSE(MayMove(Actor::kPayment, "submitted", "delivered"));
  CHECK_FALSE(MayMove(Actor::kPayment, "paid", "withdrawn"));

  CHECK(MayMove(Actor::kDelivery, "submitted", "delivered"));
  CHECK(MayMove(Actor::kDelivery, "paid", "delivered"));
  CHECK(MayMove(Actor::kDelivery, "delivered", "received_by_department"));
  // A delivery never skips payment nor overrides the department's answer.
  CHECK_FALSE(MayMove(Actor::kDelivery, "awaiting_payment", "delivered"));
  CHECK_FALSE(MayMove(Actor::kDelivery, "in_progress", "received_by_department"));
  CHECK_FALSE(MayMove(Actor::kDelivery, "received_by_department", "approved"));

  for (const char* to :
       {"received_by_department", "in_progress", "information_requested", "approved", "rejected", "closed"}) {
    CHECK(MayCause(Actor::kDepartment, to));
  }
  for (const char* to : {"submitted", "awaiting_payment", "paid", "delivered", "withdrawn"}) {
    CHECK_FALSE(MayCause(Actor::kDepartment, to));
  }
  CHECK(MayMove(Actor::kDepartment, "in_progress", "approved"));
  CHECK_FALSE(MayMove(Actor::kDepartment, "submitted", "approved"));
  CHECK_FALSE(MayMove(Actor::kDepartment, "approved", "rejected"));
  CHECK_FALSE(MayMove(Actor::kDepartment, "in_progress", "withdrawn"));
  CHECK_FALSE(MayMove(Actor::kDepartment, "awaiting_payment", "received_by_department"));
}

#include "services/submission/status.h"

#include <algorithm>
#include <initializer_list>

namespace stadtportal::submission {
namespace {

bool OneOf(std::string_view s, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

}  // namespace

bool IsStatus(std::string_view status) {
  return OneOf(status, {"submitted", "awaiting_payment", "paid", "delivered", "received_by_department", "in_progress",
                        "information_requested", "approved", "rejected", "withdrawn", "closed"});
}

std::string_view InitialStatus(bool fee_due) { return fee_due ? "awaiting_payment" : "submitted"; }

bool Withdrawable(std::string_view status) {
  return OneOf(status, {"submitted", "awaiting_payment", "paid", "delivered", "received_by_department", "in_progress",
                        "information_requested"});
}

bool Closed(std::string_view status) { return OneOf(status, {"approved", "rejected", "withdrawn", "closed"}); }

bool MayCause(Actor actor, std::string_view to) {
  switch (actor) {
    case Actor::kApplicant: return to == "withdrawn";
    case Actor::kPayment: return to == "paid";
    case Actor::kDelivery: return OneOf(to, {"delivered", "received_by_department"});
    case Actor::kDepartment:
      return OneOf(
          to, {"received_by_department", "in_progress", "information_requested", "approved", "rejected", "closed"});
  }
  return false;
}

bool Follows(std::string_view from, std::string_view to) {
  if (to == "paid") return from == "awaiting_payment";
  if (to == "withdrawn") return Withdrawable(from);
  if (to == "delivered") return OneOf(from, {"submitted", "paid"});
  if (to == "received_by_department") return OneOf(from, {"submitted", "paid", "delivered"});
  if (to == "in_progress") return OneOf(from, {"received_by_department", "information_requested"});
  if (to == "information_requested") return OneOf(from, {"received_by_department", "in_progress"});
  if (to == "approved" || to == "rejected") {
    return OneOf(from, {"received_by_department", "in_progress", "information_requested"});
  }
  if (to == "closed") {
    return OneOf(from, {"received_by_department", "in_progress", "information_requested", "approved", "rejected"});
  }
  return false;  // submitted and awaiting_payment only begin.
}

bool MayMove(Actor actor, std::string_view from, std::string_view to) {
  return MayCause(actor, to) && Follows(from, to);
}

}  // namespace stadtportal::submission

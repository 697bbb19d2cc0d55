#include "services/payment/states.h"

namespace stadtportal::payment {

bool Final(std::string_view s) { return s == "success" || s == "failed" || s == "cancelled" || s == "error"; }

bool Allowed(std::string_view from, std::string_view to) {
  if (from == "created") return to == "started" || to == "error" || to == "cancelled" || to == "failed";
  if (from == "started") {
    return to == "submitted" || to == "success" || to == "failed" || to == "cancelled" || to == "error";
  }
  if (from == "submitted") return to == "success" || to == "failed" || to == "cancelled" || to == "error";
  return false;
}

}  // namespace stadtportal::payment

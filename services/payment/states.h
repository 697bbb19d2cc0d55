#pragma once

#include <string_view>

// The states of a payment and which follows which:
//   created → started → submitted → success | failed | cancelled | error
// (created and started may also end directly). Final states never change.
namespace stadtportal::payment {

bool Final(std::string_view state);
bool Allowed(std::string_view from, std::string_view to);

}  // namespace stadtportal::payment

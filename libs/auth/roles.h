#pragma once

#include <string>
#include <vector>

namespace stadtportal::auth {

// Reads the business KPIs of the tenant's online services: aggregated figures only,
// small numbers suppressed (submission GetKpis, GetFunnel).
inline constexpr char kKpiReader[] = "kpi-reader";

// The roles an account can be granted by the operator command (tools/admin.cc
// grant-role). Each is administrative (IsAdminRole): a session acts with it only after
// passing the second factor. Supersedes caller.h's kAccountRoles.
inline const std::vector<std::string>& GrantableRoles() {
  static const std::vector<std::string> kRoles = {"tenant-admin", kKpiReader};
  return kRoles;
}

}  // namespace stadtportal::auth

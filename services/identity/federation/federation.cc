#include "services/identity/federation/federation.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::identity::federation {
namespace {

constexpr char kPrefix[] = "federation: ";

}  // namespace

absl::Status Refused(const std::string& reason) { return absl::PermissionDeniedError(absl::StrCat(kPrefix, reason)); }

std::string RefusalReason(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kPermissionDenied || !absl::StartsWith(status.message(), kPrefix)) return "";
  return std::string(status.message().substr(sizeof(kPrefix) - 1));
}

void CountRefusal(const std::string& provider, const std::string& reason) {
  static auto& family = metrics::CounterFamily("stadtportal_identity_federation_refusals_total",
                                               "Upstream identity provider answers refused, by provider and reason");
  family.Add({{"provider", provider}, {"reason", reason}}).Increment();
}

}  // namespace stadtportal::identity::federation

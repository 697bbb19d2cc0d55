#include "services/identity/federation/federation.h"

#include <set>

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

namespace {

prometheus::Family<prometheus::Counter>& Refusals() {
  static auto& family = metrics::CounterFamily("stadtportal_identity_federation_refusals_total",
                                               "Upstream identity provider answers refused, by provider and reason");
  return family;
}

// The reasons of federation.h's list.
const std::set<std::string>& Reasons() {
  static const std::set<std::string> k = {
      "unsigned", "bad_signature", "wrapped",   "doctype",     "audience",    "destination",   "recipient",
      "expired",  "not_yet_valid", "replayed",  "unsolicited", "level_below", "level_unknown", "malformed",
      "status",   "decrypt",       "transform", "state",       "nonce",       "azp",           "issuer",
      "alg",      "kid",           "code",      "subject",     "upstream",    "other"};
  return k;
}

}  // namespace

void CountRefusal(const std::string& provider, const std::string& reason) {
  Refusals().Add({{"provider", provider}, {"reason", Reasons().count(reason) ? reason : "other"}}).Increment();
}

void RegisterRefusals(const std::string& provider) {
  for (const auto& reason : Reasons()) Refusals().Add({{"provider", provider}, {"reason", reason}});
}

}  // namespace stadtportal::identity::federation

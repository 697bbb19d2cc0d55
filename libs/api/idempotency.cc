#include "libs/api/idempotency.h"

#include "libs/status/status.h"

namespace stadtportal::api {

absl::Status ValidateIdempotencyKey(std::string_view key) {
  bool ok = key.size() >= 8 && key.size() <= 255;
  for (char c : key) ok = ok && c >= 0x21 && c <= 0x7E;
  if (!ok) return status::FieldError("idempotency_key", "invalid");
  return absl::OkStatus();
}

KeyUse ClassifyKeyUse(const std::optional<std::string>& earlier, std::string_view fingerprint) {
  if (!earlier.has_value()) return KeyUse::kFirst;
  return *earlier == fingerprint ? KeyUse::kRepeat : KeyUse::kReused;
}

absl::Status CheckRepeat(std::string_view earlier, std::string_view fingerprint) {
  if (ClassifyKeyUse(std::string(earlier), fingerprint) == KeyUse::kReused) {
    return status::FieldError("idempotency_key", "reused");
  }
  return absl::OkStatus();
}

}  // namespace stadtportal::api

#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

// Idempotency keys: the client's name for one request that changes something
// (submitting a draft, starting a payment), so a retry after a lost answer does it once.
// A key is scoped by the store to the tenant and party that sent it. The rules, the same
// in every service that takes a key:
//   - a key is 8–255 printable ASCII characters, no spaces (ValidateIdempotencyKey);
//   - the same key with the same request is a repeat: it gets the first answer again;
//   - the same key with another request is refused, INVALID_ARGUMENT
//     "idempotency_key: reused", and changes nothing.
// What "the same request" means is the service's fingerprint of what it was asked to do
// (the draft submitted; the payment's content without the key).
namespace stadtportal::api {

// INVALID_ARGUMENT "idempotency_key: invalid" unless `key` is a well-formed key.
absl::Status ValidateIdempotencyKey(std::string_view key);

enum class KeyUse {
  kFirst,   // Not seen before: do the work.
  kRepeat,  // Seen with the same request: answer as the first time.
  kReused,  // Seen with another request: refuse.
};

// `earlier`: the fingerprint stored with the key (nullopt: the key is new).
KeyUse ClassifyKeyUse(const std::optional<std::string>& earlier, std::string_view fingerprint);

// OK for a repeat, INVALID_ARGUMENT "idempotency_key: reused" for a key seen with
// another request (`earlier` is the fingerprint stored with the key).
absl::Status CheckRepeat(std::string_view earlier, std::string_view fingerprint);

}  // namespace stadtportal::api

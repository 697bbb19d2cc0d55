#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/config/config.h"

namespace stadtportal::payment {

// What the provider says about a payment.
enum class Outcome {
  kPending,    // Open: the payer has not finished.
  kApproved,   // The payer approved; the money is taken by Capture().
  kSucceeded,  // Paid.
  kDeclined,   // The provider refused the payment.
  kCancelled,  // The payer cancelled.
  kError,      // The provider failed.
};

struct CheckoutRequest {
  std::string payment_id;  // Also the provider-side idempotency key.
  int64_t amount_minor = 0;
  std::string currency;
  std::string reference;  // Shown to the payer (the submission's reference).
  std::string description;
  std::string return_url;  // Where the provider sends the payer back.
  std::string cancel_url;
  std::string webhook_url;  // Where the provider notifies (providers configured per call).
};

struct Checkout {
  std::string provider_ref;
  std::string next_url;  // The payer's checkout page.
};

struct ProviderState {
  Outcome outcome = Outcome::kPending;
  std::string reason;  // declined, cancelled_by_user, provider_error…
};

// A verified provider notification.
struct WebhookEvent {
  std::string event_id;      // The provider's id: notifications are deduplicated by it.
  std::string provider_ref;  // The payment at the provider.
  Outcome outcome = Outcome::kPending;
  int64_t created_unix = 0;  // When the provider sent it (checked against a window).
};

struct RefundResult {
  bool succeeded = false;
  std::string provider_ref;
  std::string reason;
};

// A payment provider. Implementations speak the provider's published protocol; the
// core (service.cc, store.cc, states.h) owns states, history, idempotency and events. A
// new provider is a new implementation registered in providers.cc.
class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string name() const = 0;
  virtual absl::StatusOr<Checkout> Start(const CheckoutRequest& request) = 0;
  virtual absl::StatusOr<ProviderState> Query(const std::string& provider_ref) = 0;
  // Takes the money of an approved payment; providers that settle on approval answer
  // like Query.
  virtual absl::StatusOr<ProviderState> Capture(const std::string& provider_ref) = 0;
  // UNAUTHENTICATED when the notification is not the provider's (signature, format).
  virtual absl::StatusOr<WebhookEvent> VerifyWebhook(const std::map<std::string, std::string>& headers,
                                                     const std::string& body) = 0;
  // `refund_id` (the platform's refund id) is also the provider-side idempotency key: the
  // same id answers the same refund, so a refund whose outcome was never recorded can be
  // asked again without giving the money back twice.
  virtual absl::StatusOr<RefundResult> Refund(const std::string& provider_ref, int64_t amount_minor,
                                              const std::string& currency, const std::string& refund_id) = 0;
};

// The providers named in STADTPORTAL_PAYMENT_PROVIDERS (default testpay), in that order
// (the first is the default), with their settings. testpay is a simulator anyone can
// make "pay": it is refused (config::Error, so the service does not start) unless
// STADTPORTAL_ALLOW_TEST_PROVIDERS=true marks a development or test deployment.
std::vector<std::shared_ptr<Provider>> ProvidersFromEnv(const config::Env& env);

}  // namespace stadtportal::payment

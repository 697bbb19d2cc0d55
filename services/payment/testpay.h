#pragma once

#include <string>

#include "services/payment/provider.h"

namespace stadtportal::payment {

// testpay: a simulated hosted checkout (tools/testpay.cc, `stadtportal-testpay`) for local
// runs and tests, with a protocol like real providers (docs/providers/testpay.md):
//   POST /v1/checkouts, GET /v1/checkouts/{id}, POST /v1/checkouts/{id}/refunds
//   (Authorization: Bearer <api key>); the payer's page /pay/{id}; webhooks signed with
//   "Testpay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
struct TestpayOptions {
  std::string base_url;  // http://127.0.0.1:7070
  std::string api_key;
  std::string webhook_secret;
};

class TestpayProvider final : public Provider {
 public:
  explicit TestpayProvider(TestpayOptions options) : options_(std::move(options)) {}
  std::string name() const override { return "testpay"; }
  absl::StatusOr<Checkout> Start(const CheckoutRequest& request) override;
  absl::StatusOr<ProviderState> Query(const std::string& provider_ref) override;
  absl::StatusOr<ProviderState> Capture(const std::string& provider_ref) override { return Query(provider_ref); }
  absl::StatusOr<WebhookEvent> VerifyWebhook(const std::map<std::string, std::string>& headers,
                                             const std::string& body) override;
  absl::StatusOr<RefundResult> Refund(const std::string& provider_ref, int64_t amount_minor,
                                      const std::string& currency, const std::string& refund_id) override;

 private:
  TestpayOptions options_;
};

// Hex HMAC-SHA256(secret, timestamp + "." + body): the testpay webhook signature.
std::string TestpaySignature(const std::string& secret, int64_t timestamp, const std::string& body);

}  // namespace stadtportal::payment

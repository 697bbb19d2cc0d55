#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/time/time.h"

#include "services/payment/provider.h"

namespace stadtportal::payment {

// PayPal, written against PayPal's published REST APIs: OAuth 2.0 client credentials
// (/v1/oauth2/token), Orders v2 (create with intent CAPTURE, get, capture), Webhooks v1
// (verify-webhook-signature) and Payments v2 (refund a capture).
struct PaypalOptions {
  std::string base_url = "https://api-m.paypal.com";  // Sandbox: https://api-m.sandbox.paypal.com
  std::string client_id;
  std::string client_secret;
  std::string webhook_id;  // The webhook's id at PayPal, part of the signature check.
  // Where payers approve an order when PayPal's answer carries no approval link.
  std::string checkout_url = "https://www.paypal.com/checkoutnow?token=";
};

class PaypalProvider final : public Provider {
 public:
  explicit PaypalProvider(PaypalOptions options) : options_(std::move(options)) {}
  std::string name() const override { return "paypal"; }
  absl::StatusOr<Checkout> Start(const CheckoutRequest& request) override;
  absl::StatusOr<ProviderState> Query(const std::string& order_id) override;
  absl::StatusOr<ProviderState> Capture(const std::string& order_id) override;
  absl::StatusOr<WebhookEvent> VerifyWebhook(const std::map<std::string, std::string>& headers,
                                             const std::string& body) override;
  absl::StatusOr<RefundResult> Refund(const std::string& order_id, int64_t amount_minor, const std::string& currency,
                                      const std::string& refund_id) override;

 private:
  // A cached access token, renewed a minute before it expires.
  absl::StatusOr<std::string> Token();
  // A client of the API carrying the access token.
  absl::StatusOr<httplib::Client> Api();

  PaypalOptions options_;
  std::mutex mu_;
  std::string token_;
  std::chrono::steady_clock::time_point token_until_;
};

// "24.00" for 2400 minor units (currencies with two decimals).
std::string PaypalAmount(int64_t amount_minor);

// The event of a PayPal notification whose signature PayPal confirmed (Webhooks v1
// event body), sent at `sent`.
absl::StatusOr<WebhookEvent> PaypalEvent(const nlohmann::json& event, absl::Time sent);

}  // namespace stadtportal::payment

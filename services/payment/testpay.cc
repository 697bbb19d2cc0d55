#include "services/payment/testpay.h"

#include <sodium.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/tokens.h"
#include "libs/db/network_guard.h"

namespace stadtportal::payment {
namespace {

constexpr auto kTimeout = std::chrono::seconds(10);

httplib::Client Client(const TestpayOptions& o) {
  db::ExpectNoTransaction("http");
  httplib::Client c(o.base_url);
  c.set_connection_timeout(kTimeout);
  c.set_read_timeout(kTimeout);
  c.set_bearer_token_auth(o.api_key);
  return c;
}

absl::Status Failed(const httplib::Result& r, const std::string& what) {
  if (!r) return absl::UnavailableError(absl::StrCat("testpay ", what, ": ", httplib::to_string(r.error())));
  return absl::UnavailableError(absl::StrCat("testpay ", what, ": HTTP ", r->status));
}

ProviderState FromState(const std::string& state) {
  if (state == "succeeded") return {Outcome::kSucceeded, ""};
  if (state == "declined") return {Outcome::kDeclined, "declined"};
  if (state == "cancelled") return {Outcome::kCancelled, "cancelled_by_user"};
  return {Outcome::kPending, ""};
}

}  // namespace

std::string TestpaySignature(const std::string& secret, int64_t timestamp, const std::string& body) {
  return auth::HmacSha256Hex(secret, absl::StrCat(timestamp, ".", body));
}

absl::StatusOr<Checkout> TestpayProvider::Start(const CheckoutRequest& req) {
  auto c = Client(options_);
  const nlohmann::json body = {{"amount_minor", req.amount_minor},   {"currency", req.currency},
                               {"reference", req.reference},         {"description", req.description},
                               {"return_url", req.return_url},       {"webhook_url", req.webhook_url},
                               {"merchant_order_id", req.payment_id}};
  auto r = c.Post("/v1/checkouts", body.dump(), "application/json");
  if (!r || r->status != 201) return Failed(r, "create checkout");
  const auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("id") || !j.contains("checkout_url")) {
    return absl::UnavailableError("testpay create checkout: unexpected answer");
  }
  return Checkout{j["id"], j["checkout_url"]};
}

absl::StatusOr<ProviderState> TestpayProvider::Query(const std::string& ref) {
  auto c = Client(options_);
  auto r = c.Get(("/v1/checkouts/" + ref).c_str());
  if (!r || r->status != 200) return Failed(r, "get checkout");
  const auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("state"))
    return absl::UnavailableError("testpay get checkout: unexpected answer");
  return FromState(j["state"]);
}

absl::StatusOr<WebhookEvent> TestpayProvider::VerifyWebhook(const std::map<std::string, std::string>& headers,
                                                            const std::string& body) {
  auto it = headers.find("testpay-signature");
  if (it == headers.end()) return absl::UnauthenticatedError("missing Testpay-Signature");
  int64_t t = 0;
  std::string v1;
  for (absl::string_view part : absl::StrSplit(it->second, ',')) {
    if (absl::StartsWith(part, "t=")) (void)absl::SimpleAtoi(part.substr(2), &t);
    if (absl::StartsWith(part, "v1=")) v1 = std::string(part.substr(3));
  }
  const std::string expected = TestpaySignature(options_.webhook_secret, t, body);
  if (t == 0 || v1.size() != expected.size() || sodium_memcmp(v1.data(), expected.data(), v1.size()) != 0) {
    return absl::UnauthenticatedError("testpay signature does not verify");
  }
  const auto j = nlohmann::json::parse(body, nullptr, false);
  const auto string = [&j](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (j.is_discarded() || !j.is_object() || string("id").empty() || string("type").empty() ||
      string("checkout_id").empty()) {
    return absl::UnauthenticatedError("testpay notification malformed");
  }
  WebhookEvent e;
  e.event_id = string("id");
  e.provider_ref = string("checkout_id");
  e.created_unix = t;
  const std::string type = string("type");
  e.outcome = type == "checkout.succeeded"   ? Outcome::kSucceeded
              : type == "checkout.declined"  ? Outcome::kDeclined
              : type == "checkout.cancelled" ? Outcome::kCancelled
                                             : Outcome::kPending;
  return e;
}

absl::StatusOr<RefundResult> TestpayProvider::Refund(const std::string& ref, int64_t amount_minor,
                                                     const std::string& currency, const std::string& refund_id) {
  auto c = Client(options_);
  const nlohmann::json body = {{"amount_minor", amount_minor}, {"currency", currency}, {"refund_id", refund_id}};
  auto r = c.Post(("/v1/checkouts/" + ref + "/refunds").c_str(), body.dump(), "application/json");
  if (!r) return Failed(r, "refund");
  const auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status == 201 && !j.is_discarded()) return RefundResult{true, j.value("id", ""), ""};
  return RefundResult{false, "", j.is_discarded() ? absl::StrCat("HTTP ", r->status) : j.value("error", "refused")};
}

}  // namespace stadtportal::payment

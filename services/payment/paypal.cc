#include "services/payment/paypal.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "libs/db/network_guard.h"

namespace stadtportal::payment {
namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
// PayPal's Orders v2 description requires Content-Type on every call, reads included.
const httplib::Headers kJsonHeaders = {{"Content-Type", "application/json"}};

httplib::Client Client(const std::string& base) {
  db::ExpectNoTransaction("http");
  httplib::Client c(base);
  c.set_connection_timeout(kTimeout);
  c.set_read_timeout(kTimeout);
  return c;
}

absl::Status Failed(const httplib::Result& r, const std::string& what) {
  if (!r) return absl::UnavailableError(absl::StrCat("paypal ", what, ": ", httplib::to_string(r.error())));
  return absl::UnavailableError(absl::StrCat("paypal ", what, ": HTTP ", r->status, " ", r->body.substr(0, 300)));
}

absl::StatusOr<nlohmann::json> Json(const httplib::Result& r, const std::string& what) {
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::UnavailableError("paypal " + what + ": unexpected answer");
  return j;
}

// The state of an order (Orders v2 `status`), with the capture's outcome when captured.
ProviderState FromOrder(const nlohmann::json& order) {
  const std::string status = order.value("status", "");
  if (status == "APPROVED") return {Outcome::kApproved, ""};
  if (status == "VOIDED") return {Outcome::kCancelled, "cancelled_by_user"};
  if (status == "COMPLETED") {
    // A completed order whose capture was declined did not pay.
    for (const auto& unit : order.value("purchase_units", nlohmann::json::array())) {
      if (!unit.is_object() || !unit.contains("payments") || !unit["payments"].is_object()) continue;
      for (const auto& c : unit["payments"].value("captures", nlohmann::json::array())) {
        if (c.is_object() && (c.value("status", "") == "DECLINED" || c.value("status", "") == "FAILED")) {
          return {Outcome::kDeclined, "declined"};
        }
      }
    }
    return {Outcome::kSucceeded, ""};
  }
  return {Outcome::kPending, ""};  // CREATED, SAVED, PAYER_ACTION_REQUIRED
}

std::string Header(const std::map<std::string, std::string>& h, const std::string& name) {
  auto it = h.find(name);
  return it == h.end() ? "" : it->second;
}

}  // namespace

std::string PaypalAmount(int64_t amount_minor) {
  return absl::StrFormat("%d.%02d", amount_minor / 100, amount_minor % 100);
}

absl::StatusOr<std::string> PaypalProvider::Token() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!token_.empty() && std::chrono::steady_clock::now() < token_until_) return token_;
  auto c = Client(options_.base_url);
  c.set_basic_auth(options_.client_id, options_.client_secret);
  auto r = c.Post("/v1/oauth2/token", "grant_type=client_credentials", "application/x-www-form-urlencoded");
  if (!r || r->status != 200) return Failed(r, "token");
  auto j = Json(r, "token");
  if (!j.ok()) return j.status();
  if (!j->contains("access_token") || !(*j)["access_token"].is_string()) {
    return absl::UnavailableError("paypal token: no access_token");
  }
  token_ = (*j)["access_token"];
  const int64_t expires = j->value("expires_in", 300);
  token_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(std::max<int64_t>(expires - 60, 1));
  return token_;
}

absl::StatusOr<httplib::Client> PaypalProvider::Api() {
  auto token = Token();
  if (!token.ok()) return token.status();
  auto c = Client(options_.base_url);
  c.set_bearer_token_auth(*token);
  return c;
}

absl::StatusOr<Checkout> PaypalProvider::Start(const CheckoutRequest& req) {
  auto api = Api();
  if (!api.ok()) return api.status();
  auto& c = *api;
  const nlohmann::json order = {
      {"intent", "CAPTURE"},
      {"purchase_units",
       {{{"reference_id", req.payment_id},
         {"custom_id", req.reference},
         {"description", req.description.substr(0, 127)},
         {"amount", {{"currency_code", req.currency}, {"value", PaypalAmount(req.amount_minor)}}}}}},
      {"payment_source",
       {{"paypal",
         {{"experience_context",
           {{"user_action", "PAY_NOW"},
            {"shipping_preference", "NO_SHIPPING"},
            {"return_url", req.return_url},
            {"cancel_url", req.cancel_url}}}}}}}};
  // PayPal-Request-Id makes the create idempotent at PayPal.
  auto r = c.Post("/v2/checkout/orders", {{"PayPal-Request-Id", "create-" + req.payment_id}}, order.dump(),
                  "application/json");
  if (!r || (r->status != 200 && r->status != 201)) return Failed(r, "create order");
  auto j = Json(r, "create order");
  if (!j.ok()) return j.status();
  if (!j->contains("id") || !(*j)["id"].is_string()) return absl::UnavailableError("paypal create order: no id");
  Checkout out{(*j)["id"], ""};
  for (const auto& link : j->value("links", nlohmann::json::array())) {
    if (link.is_object() && (link.value("rel", "") == "payer-action" || link.value("rel", "") == "approve")) {
      out.next_url = link.value("href", "");
    }
  }
  if (out.next_url.empty()) out.next_url = options_.checkout_url + out.provider_ref;
  return out;
}

absl::StatusOr<ProviderState> PaypalProvider::Query(const std::string& order_id) {
  auto api = Api();
  if (!api.ok()) return api.status();
  auto& c = *api;
  auto r = c.Get(("/v2/checkout/orders/" + order_id).c_str(), kJsonHeaders);
  if (r && r->status == 404) return ProviderState{Outcome::kCancelled, "expired"};
  if (!r || r->status != 200) return Failed(r, "get order");
  auto j = Json(r, "get order");
  if (!j.ok()) return j.status();
  return FromOrder(*j);
}

absl::StatusOr<ProviderState> PaypalProvider::Capture(const std::string& order_id) {
  auto api = Api();
  if (!api.ok()) return api.status();
  auto& c = *api;
  auto r = c.Post(("/v2/checkout/orders/" + order_id + "/capture").c_str(),
                  {{"PayPal-Request-Id", "capture-" + order_id}}, "{}", "application/json");
  if (r && r->status == 422) {
    // Already captured, or the instrument was declined: the order tells which.
    return Query(order_id);
  }
  if (!r || (r->status != 200 && r->status != 201)) return Failed(r, "capture");
  auto j = Json(r, "capture");
  if (!j.ok()) return j.status();
  return FromOrder(*j);
}

absl::StatusOr<WebhookEvent> PaypalEvent(const nlohmann::json& event, absl::Time sent) {
  // Members read by type: a number where PayPal sends a string is a malformed event,
  // not an exception.
  const auto member = [](const nlohmann::json& object, const char* key) -> const nlohmann::json* {
    if (!object.is_object()) return nullptr;
    auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  };
  const auto string = [&](const nlohmann::json& object, const char* key) {
    const nlohmann::json* v = member(object, key);
    return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
  };
  WebhookEvent e;
  e.event_id = string(event, "id");
  const std::string type = string(event, "event_type");
  if (e.event_id.empty() || type.empty()) return absl::UnauthenticatedError("paypal notification malformed");
  e.created_unix = absl::ToUnixSeconds(sent);
  static const nlohmann::json kNone = nlohmann::json::object();
  const nlohmann::json* resource = member(event, "resource");
  if (resource == nullptr) resource = &kNone;
  if (absl::StartsWith(type, "CHECKOUT.ORDER.")) {
    e.provider_ref = string(*resource, "id");
  } else if (const nlohmann::json* supplementary = member(*resource, "supplementary_data")) {
    const nlohmann::json* related = member(*supplementary, "related_ids");
    if (related != nullptr) e.provider_ref = string(*related, "order_id");
  }
  e.outcome = type == "CHECKOUT.ORDER.APPROVED"     ? Outcome::kApproved
              : type == "PAYMENT.CAPTURE.COMPLETED" ? Outcome::kSucceeded
              : type == "PAYMENT.CAPTURE.DENIED"    ? Outcome::kDeclined
              : type == "CHECKOUT.ORDER.VOIDED"     ? Outcome::kCancelled
                                                    : Outcome::kPending;
  return e;
}

absl::StatusOr<WebhookEvent> PaypalProvider::VerifyWebhook(const std::map<std::string, std::string>& headers,
                                                           const std::string& body) {
  const auto event = nlohmann::json::parse(body, nullptr, false);
  if (event.is_discarded() || !event.is_object() || !event.contains("id") || !event.contains("event_type")) {
    return absl::UnauthenticatedError("paypal notification malformed");
  }
  for (const char* h : {"paypal-auth-algo", "paypal-cert-url", "paypal-transmission-id", "paypal-transmission-sig"}) {
    if (Header(headers, h).empty()) return absl::UnauthenticatedError(absl::StrCat("paypal notification without ", h));
  }
  const std::string time = Header(headers, "paypal-transmission-time");
  absl::Time sent;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, time, &sent, &error)) {
    return absl::UnauthenticatedError("paypal notification without a valid transmission time");
  }
  auto api = Api();
  if (!api.ok()) return api.status();
  auto& c = *api;
  // PayPal checks the signature over transmission id, time, webhook id and body CRC.
  const nlohmann::json verify = {{"auth_algo", Header(headers, "paypal-auth-algo")},
                                 {"cert_url", Header(headers, "paypal-cert-url")},
                                 {"transmission_id", Header(headers, "paypal-transmission-id")},
                                 {"transmission_sig", Header(headers, "paypal-transmission-sig")},
                                 {"transmission_time", time},
                                 {"webhook_id", options_.webhook_id},
                                 {"webhook_event", event}};
  auto r = c.Post("/v1/notifications/verify-webhook-signature", verify.dump(), "application/json");
  if (!r || r->status != 200) return Failed(r, "verify webhook");
  auto j = Json(r, "verify webhook");
  if (!j.ok()) return j.status();
  if (j->value("verification_status", "") != "SUCCESS") {
    return absl::UnauthenticatedError("paypal signature does not verify");
  }
  return PaypalEvent(event, sent);
}

absl::StatusOr<RefundResult> PaypalProvider::Refund(const std::string& order_id, int64_t amount_minor,
                                                    const std::string& currency, const std::string& refund_id) {
  auto api = Api();
  if (!api.ok()) return api.status();
  auto& c = *api;
  // The refund is of the order's capture.
  auto order = c.Get(("/v2/checkout/orders/" + order_id).c_str(), kJsonHeaders);
  if (!order || order->status != 200) return Failed(order, "get order");
  auto j = Json(order, "get order");
  if (!j.ok()) return j.status();
  std::string capture;
  for (const auto& unit : j->value("purchase_units", nlohmann::json::array())) {
    if (!unit.is_object() || !unit.contains("payments") || !unit["payments"].is_object()) continue;
    for (const auto& cap : unit["payments"].value("captures", nlohmann::json::array())) {
      if (cap.is_object() && cap.contains("id")) capture = cap["id"];
    }
  }
  if (capture.empty()) return RefundResult{false, "", "no capture to refund"};
  const nlohmann::json body = {{"amount", {{"value", PaypalAmount(amount_minor)}, {"currency_code", currency}}}};
  // PayPal-Request-Id makes the refund idempotent at PayPal: asked again, it answers the same.
  auto r = c.Post(("/v2/payments/captures/" + capture + "/refund").c_str(),
                  {{"PayPal-Request-Id", "refund-" + refund_id}}, body.dump(), "application/json");
  if (!r) return Failed(r, "refund");
  auto refund = Json(r, "refund");
  if ((r->status == 200 || r->status == 201) && refund.ok() && refund->value("status", "") != "CANCELLED" &&
      refund->value("status", "") != "FAILED") {
    return RefundResult{true, refund->value("id", ""), ""};
  }
  return RefundResult{false, "", absl::StrCat("HTTP ", r->status)};
}

}  // namespace stadtportal::payment

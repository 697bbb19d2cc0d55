// The gateway's routes for paying fees: checkout, the payer's return, provider webhooks,
// refunds and reconciliation for tenant admins.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace pv1 = payment::v1;

std::string StateName(pv1::PaymentState s) {
  switch (s) {
    case pv1::PAYMENT_STATE_CREATED: return "created";
    case pv1::PAYMENT_STATE_STARTED: return "started";
    case pv1::PAYMENT_STATE_SUBMITTED: return "submitted";
    case pv1::PAYMENT_STATE_SUCCESS: return "success";
    case pv1::PAYMENT_STATE_FAILED: return "failed";
    case pv1::PAYMENT_STATE_CANCELLED: return "cancelled";
    case pv1::PAYMENT_STATE_ERROR: return "error";
    default: return "unknown";
  }
}

nlohmann::json RefundJson(const pv1::Refund& r) {
  return {{"id", r.id()},       {"payment_id", r.payment_id()}, {"amount", json::Money(r.amount())},
          {"state", r.state()}, {"reason", r.reason()},         {"created_at", json::Time(r.created_at())}};
}

nlohmann::json PaymentJson(const pv1::Payment& p) {
  nlohmann::json j = {
      {"id", p.id()},
      {"submission_id", p.submission_id()},
      {"amount", json::Money(p.amount())},
      {"description", p.description()},
      {"reference", p.reference()},
      {"provider", p.provider()},
      {"provider_reference", p.provider_reference()},
      {"state", StateName(p.state())},
      {"finished", p.finished()},
      {"reason", p.reason()},
      {"refund_amount_available", p.refund_amount_available()},
      {"created_at", json::Time(p.created_at())},
      {"updated_at", json::Time(p.updated_at())},
      {"events",
       json::Array(
           p.events(),
           [](const pv1::PaymentEvent& e) -> nlohmann::json {
             return {{"state", e.state()}, {"reason", e.reason()}, {"source", e.source()}, {"at", json::Time(e.at())}};
           })},
      {"refunds", json::Array(p.refunds(), RefundJson)}};
  j["next_url"] = p.next_url().empty() ? nlohmann::json(nullptr) : nlohmann::json(p.next_url());
  return j;
}

}  // namespace

void Service::AddPaymentRoutes() {
  Add({"POST", "/api/v1/submissions/{id}/payment", Who::kSession}, [this](Req req, Res res, P p,
                                                                          const Authenticated& a) {
    if (!req.has_header("Idempotency-Key")) {
      return Fail(req, res, status::MalformedField("Idempotency-Key", "required", "send an Idempotency-Key header"));
    }
    std::string provider;
    if (!req.body.empty()) {
      auto body = Body(req, res, {{"provider", {http::FieldType::kString, false}}});
      if (!body) return;
      provider = body->value("provider", "");
    }
    // The payment service asks the submission service for the fee and status itself.
    pv1::CreatePaymentRequest in;
    in.set_submission_id(p.at("id"));
    in.set_idempotency_key(req.get_header_value("Idempotency-Key"));
    in.set_provider(provider);
    pv1::Payment out;
    if (!Call(req, res, a, *payment_, &pv1::PaymentService::Stub::CreatePayment, in, &out)) return;
    res.set_header("Location", "/api/v1/payments/" + out.id());
    http::WriteJson(res, 201, PaymentJson(out));
  });

  Add({"GET", "/api/v1/payments/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    pv1::GetPaymentRequest in;
    in.set_id(p.at("id"));
    pv1::Payment out;
    if (!Call(req, res, a, *payment_, &pv1::PaymentService::Stub::GetPayment, in, &out)) return;
    http::WriteJson(res, 200, PaymentJson(out));
  });

  // The provider sends the payer's browser here; it carries no session, so the answer
  // tells only whether the payment went through.
  Add({"GET", "/api/v1/payments/{id}/return"}, [this](Req req, Res res, P p) {
    pv1::CompleteReturnRequest in;
    in.set_id(p.at("id"));
    pv1::Payment out;
    if (!Call(req, res, *payment_, &pv1::PaymentService::Stub::CompleteReturn, in, &out)) return;
    const std::string state = StateName(out.state());
    const bool de = http::Language(req) == "de";
    const std::string text =
        state == "success"
            ? (de ? "Vielen Dank, Ihre Zahlung ist eingegangen." : "Thank you, your payment was received.")
        : out.finished() ? (de ? "Die Zahlung wurde nicht abgeschlossen. Sie können es erneut versuchen."
                               : "The payment was not completed. You can try again.")
                         : (de ? "Ihre Zahlung wird noch bestätigt." : "Your payment is being confirmed.");
    res.set_header("Cache-Control", "no-store");
    res.set_content(absl::StrCat("<!doctype html><html lang=\"", de ? "de" : "en",
                                 "\"><meta charset=\"utf-8\"><title>stadtportal</title><p data-state=\"", state, "\">",
                                 text, "</p></html>"),
                    "text/html; charset=utf-8");
  });

  Add({"POST", "/api/v1/payment-webhooks/{provider}", Who::kAnyone, ""}, [this](Req req, Res res, P p) {
    pv1::HandleWebhookRequest in;
    in.set_provider(p.at("provider"));
    for (const auto& [name, value] : req.headers) (*in.mutable_headers())[absl::AsciiStrToLower(name)] = value;
    in.set_body(req.body);
    pv1::HandleWebhookResponse out;
    if (!Call(req, res, *payment_, &pv1::PaymentService::Stub::HandleWebhook, in, &out)) return;
    http::WriteJson(res, 200, {{"outcome", out.outcome()}});
  });

  Add({"POST", "/api/v1/payments/{id}/refunds", Who::kAdmin}, [this](Req req, Res res, P p, const Authenticated& a) {
    auto body = Body(req, res,
                     {{"amount_minor", {http::FieldType::kInteger}},
                      {"refund_amount_available", {http::FieldType::kInteger}},
                      {"currency", {http::FieldType::kString, false}},
                      {"reason", {http::FieldType::kString, false}}});
    if (!body) return;
    pv1::CreateRefundRequest in;
    in.set_payment_id(p.at("id"));
    in.mutable_amount()->set_amount_minor((*body)["amount_minor"].get<int64_t>());
    in.mutable_amount()->set_currency(body->value("currency", ""));
    in.set_refund_amount_available((*body)["refund_amount_available"].get<int64_t>());
    in.set_reason(body->value("reason", ""));
    pv1::Refund out;
    if (!Call(req, res, a, *payment_, &pv1::PaymentService::Stub::CreateRefund, in, &out)) return;
    http::WriteJson(res, 201, RefundJson(out));
  });

  Add({"POST", "/api/v1/admin/payments/reconcile", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res, {{"older_than_seconds", {http::FieldType::kInteger, false}}});
    if (!body) return;
    pv1::ReconcileRequest in;
    in.set_older_than_seconds(body->value("older_than_seconds", 300));
    pv1::ReconcileResponse out;
    if (!Call(req, res, a, *payment_, &pv1::PaymentService::Stub::Reconcile, in, &out)) return;
    http::WriteJson(res, 200, {{"checked", out.checked()}, {"settled", out.settled()}, {"expired", out.expired()}});
  });

  Add({"GET", "/api/v1/admin/payments/report", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    pv1::GetReportRequest in;
    in.set_day(req.get_param_value("day"));
    pv1::Report out;
    if (!Call(req, res, a, *payment_, &pv1::PaymentService::Stub::GetReport, in, &out)) return;
    http::WriteJson(res, 200,
                    {{"day", out.day()},
                     {"providers", json::Array(out.providers(), [](const pv1::ProviderReport& pr) -> nlohmann::json {
                        return {{"provider", pr.provider()},
                                {"successes", pr.successes()},
                                {"success_amount_minor", pr.success_amount_minor()},
                                {"refunds", pr.refunds()},
                                {"refund_amount_minor", pr.refund_amount_minor()},
                                {"open", pr.open()},
                                {"failed", pr.failed()}};
                      })}});
  });
}

}  // namespace stadtportal::gateway

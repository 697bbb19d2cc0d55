// My submissions and drafts, one submission's status and timeline, paying its fee,
// the receipt, and feedback after submitting.
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "services/web/service.h"

namespace stadtportal::web {

namespace {

bool IsId(const std::string& id) {
  static const std::regex kUuid("^[0-9a-fA-F-]{36}$");
  return std::regex_match(id, kUuid);
}

std::string Str(const nlohmann::json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

std::string Localized(const nlohmann::json& t, const std::string& lang) {
  if (t.is_string()) return t.get<std::string>();
  if (!t.is_object()) return "";
  if (t.contains(lang) && t[lang].is_string()) return t[lang].get<std::string>();
  return Str(t, "de");
}

std::string StatusBadge(const std::string& status) {
  if (status == "approved" || status == "paid" || status == "delivered" || status == "received_by_department") {
    return "success";
  }
  if (status == "rejected") return "danger";
  if (status == "awaiting_payment" || status == "information_requested") return "warning";
  return "info";
}

}  // namespace

void Service::AddSubmissionRoutes() {
  Get("/submissions", [this](Req req, Res res, P, Visit& v) { SubmissionsPage(req, res, v); });
  Get("/submissions/{id}", [this](Req req, Res res, P p, Visit& v) { SubmissionPage(req, res, p.at("id"), v); });
  Post("/submissions/{id}/pay", [this](Req req, Res res, P p, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    Pay(req, res, p.at("id"), v, *form);
  });
  Get("/submissions/{id}/paid", [this](Req req, Res res, P p, Visit& v) { Paid(req, res, p.at("id"), v); });
  Get("/submissions/{id}/receipt", [this](Req req, Res res, P p, Visit& v) { Receipt(req, res, p.at("id"), v); });
  Post("/submissions/{id}/feedback", [this](Req req, Res res, P p, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    const std::string id = p.at("id");
    if (!IsId(id)) return ErrorPage(res, v, 404);
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    int rating = 0;
    const std::string r = form->Get("rating");
    if (r.size() == 1 && r[0] >= '1' && r[0] <= '5') rating = r[0] - '0';
    std::string comment = form->Get("comment");
    if (rating == 0) {
      Flash(v, res, "feedback_rating_missing");
      return SeeOther(res, "/submissions/" + id + "#feedback");
    }
    if (comment.size() > 4000) comment.resize(4000);
    nlohmann::json body = {{"rating", rating}};
    if (!comment.empty()) body["comment"] = comment;
    const ApiResult out = api_.Send(v.caller, "POST", "/api/v1/submissions/" + id + "/feedback", body);
    if (out.ok() || out.status == 409) {
      Flash(v, res, "feedback_thanks");
      return SeeOther(res, "/submissions/" + id);
    }
    if (out.status == 422) {
      Flash(v, res, "feedback_invalid");
      return SeeOther(res, "/submissions/" + id + "#feedback");
    }
    ApiFailure(res, v, out);
  });
}

void Service::SubmissionsPage(Req req, Res res, Visit& v) {
  if (!RequireLogin(req, res, v)) return;
  const ApiResult drafts = api_.Get(v.caller, "/api/v1/drafts?page_size=50");
  if (!drafts.ok() || !drafts.body.is_object()) return ApiFailure(res, v, drafts);
  const ApiResult open = api_.Get(v.caller, "/api/v1/submissions?archived=false&page_size=50");
  if (!open.ok() || !open.body.is_object()) return ApiFailure(res, v, open);
  const ApiResult closed = api_.Get(v.caller, "/api/v1/submissions?archived=true&page_size=50");
  if (!closed.ok() || !closed.body.is_object()) return ApiFailure(res, v, closed);
  nlohmann::json draft_items = nlohmann::json::array();
  for (const auto& d : drafts.body.value("items", nlohmann::json::array())) {
    const std::string id = Str(d, "id");
    if (!IsId(id)) continue;
    // Continue where it stopped: the step after the last one completed.
    size_t next = 1;
    const std::string last = Str(d, "last_completed_step");
    size_t total = 0;
    if (auto service = FormOf(v, Str(d, "service_id"), d.value("form_version", int64_t{0}))) {
      const auto form = service->value("form", nlohmann::json::object());
      const auto steps = form.is_object() ? form.value("steps", nlohmann::json::array()) : nlohmann::json::array();
      total = steps.size();
      for (size_t i = 0; i < steps.size(); ++i) {
        if (!last.empty() && Str(steps[i], "id") == last) next = i + 2;
      }
    }
    const std::string href = total != 0 && next > total ? absl::StrCat("/drafts/", id, "/check")
                                                         : absl::StrCat("/drafts/", id, "/steps/", next);
    draft_items.push_back({{"name", Localized(d.value("service_name", nlohmann::json()), v.lang)},
                           {"href", href},
                           {"updated", FormatTimestamp(Str(d, "updated_at"), v.lang)},
                           {"expires", FormatTimestamp(Str(d, "expires_at"), v.lang, false)},
                           {"step", total != 0 ? absl::StrCat(T(v, "step"), " ", std::min(next, total), " ", T(v, "of"),
                                                              " ", total)
                                               : ""}});
  }
  auto list = [&](const ApiResult& r) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& s : r.body.value("items", nlohmann::json::array())) {
      const std::string id = Str(s, "id");
      if (!IsId(id)) continue;
      const std::string status = Str(s, "status");
      items.push_back({{"name", Localized(s.value("service_name", nlohmann::json()), v.lang)},
                       {"href", "/submissions/" + id},
                       {"reference", Str(s, "reference")},
                       {"status", T(v, "status_" + status)},
                       {"badge", StatusBadge(status)},
                       {"submitted", FormatTimestamp(Str(s, "submitted_at"), v.lang, false)}});
    }
    return items;
  };
  nlohmann::json open_items = list(open);
  nlohmann::json closed_items = list(closed);
  Page(res, v, 200, "submissions",
       {{"title", T(v, "submissions_title")},
        {"drafts", draft_items},
        {"has_drafts", !draft_items.empty()},
        {"open", open_items},
        {"has_open", !open_items.empty()},
        {"closed", closed_items},
        {"has_closed", !closed_items.empty()}});
}

void Service::SubmissionPage(Req req, Res res, const std::string& id, Visit& v) {
  if (!RequireLogin(req, res, v)) return;
  if (!IsId(id)) return ErrorPage(res, v, 404);
  const ApiResult r = api_.Get(v.caller, "/api/v1/submissions/" + id);
  if (!r.ok() || !r.body.is_object()) return ApiFailure(res, v, r);
  const auto& s = r.body;
  const std::string status = Str(s, "status");
  nlohmann::json timeline = nlohmann::json::array();
  for (const auto& h : s.value("history", nlohmann::json::array())) {
    const std::string st = Str(h, "status");
    timeline.push_back({{"status", T(v, "status_" + st)},
                        {"at", FormatTimestamp(Str(h, "at"), v.lang)},
                        {"note", Str(h, "note")}});
  }
  const auto fee = s.value("fee", nlohmann::json::object());
  const int64_t amount = fee.is_object() ? fee.value("amount_minor", int64_t{0}) : 0;
  const std::string name = Localized(s.value("service_name", nlohmann::json()), v.lang);
  // Paid a moment ago in this session, and the submission has not heard yet: no second payment.
  const bool paid_just_now = v.session && v.session->paid_submission == id;
  if (paid_just_now && status != "awaiting_payment") {
    v.session->paid_submission.clear();
    SaveSession(v);
  }
  Page(res, v, 200, "submission",
       {{"title", T(v, "submission_title") + " " + Str(s, "reference")},
        {"name", name},
        {"reference", Str(s, "reference")},
        {"status", T(v, "status_" + status)},
        {"badge", StatusBadge(status)},
        {"submitted", FormatTimestamp(Str(s, "submitted_at"), v.lang)},
        {"timeline", timeline},
        {"has_fee", amount > 0},
        {"fee", FormatMoney(amount, fee.is_object() ? fee.value("currency", "EUR") : "EUR", v.lang)},
        {"awaiting_payment", status == "awaiting_payment" && !paid_just_now},
        {"payment_processing", status == "awaiting_payment" && paid_just_now},
        {"pay_action", "/submissions/" + id + "/pay"},
        {"payment_key", auth::RandomToken(24)},
        {"receipt_href", "/submissions/" + id + "/receipt"},
        {"feedback_action", "/submissions/" + id + "/feedback"},
        {"ratings", {{{"value", "5"}, {"label", T(v, "rating_5")}},
                     {{"value", "4"}, {"label", T(v, "rating_4")}},
                     {{"value", "3"}, {"label", T(v, "rating_3")}},
                     {{"value", "2"}, {"label", T(v, "rating_2")}},
                     {{"value", "1"}, {"label", T(v, "rating_1")}}}}});
}

void Service::Pay(Req req, Res res, const std::string& id, Visit& v, const Form& form) {
  if (!RequireLogin(req, res, v)) return;
  if (!IsId(id)) return ErrorPage(res, v, 404);
  const std::string key = form.Get("payment_key");
  static const std::regex kKey("^[A-Za-z0-9_-]{16,64}$");
  if (!std::regex_match(key, kKey)) return ErrorPage(res, v, 400);
  const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/submissions/" + id + "/payment", nlohmann::json::object(),
                                {{"Idempotency-Key", "web-pay-" + key}});
  if (r.status == 409) return SeeOther(res, "/submissions/" + id);
  if (!r.ok() || !r.body.is_object()) return ApiFailure(res, v, r);
  const std::string next = Str(r.body, "next_url");
  // The provider's checkout: an http(s) address, shown as a link (a redirect answering a
  // form may not lead to another origin under form-action 'self').
  static const std::regex kUrl(R"(^https?://[^\s"<>]{1,2000}$)");
  if (!std::regex_match(next, kUrl)) {
    log::Warn("payment without checkout address", {{"state", Str(r.body, "state")}});
    Flash(v, res, "payment_failed");
    return SeeOther(res, "/submissions/" + id);
  }
  const auto amount = r.body.value("amount", nlohmann::json::object());
  Page(res, v, 200, "pay",
       {{"title", T(v, "pay_title")},
        {"next_url", next},
        {"amount", FormatMoney(amount.is_object() ? amount.value("amount_minor", int64_t{0}) : 0,
                               amount.is_object() ? amount.value("currency", "EUR") : "EUR", v.lang)},
        {"back_href", "/submissions/" + id}});
}

void Service::Paid(Req req, Res res, const std::string& id, Visit& v) {
  if (!IsId(id)) return ErrorPage(res, v, 404);
  const std::string payment = req.get_param_value("payment");
  if (IsId(payment)) {
    // Settles the payment with the provider (the API's return step; it needs no session).
    const ApiResult settled = api_.Download(ApiCaller{"", v.lang, v.caller.client_address},
                                            "/api/v1/payments/" + payment + "/return");
    if (!settled.ok()) log::Warn("payment return not settled", {{"status", settled.status}});
  }
  if (!RequireLogin(req, res, v)) return;
  std::string notice = "payment_pending";
  if (IsId(payment)) {
    const ApiResult p = api_.Get(v.caller, "/api/v1/payments/" + payment);
    if (p.ok()) {
      const std::string state = Str(p.body, "state");
      notice = state == "success" ? "payment_received" : p.body.value("finished", false) ? "payment_failed" : "payment_pending";
    }
  }
  if (notice == "payment_received") {
    // The submission learns of the payment by an event: wait a little for it (bounded),
    // so that its page does not offer to pay again.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < until) {
      const ApiResult s = api_.Get(v.caller, "/api/v1/submissions/" + id);
      if (!s.ok() || Str(s.body, "status") != "awaiting_payment") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    EnsureSession(v, res).paid_submission = id;
  }
  Flash(v, res, notice);
  SeeOther(res, "/submissions/" + id);
}

void Service::Receipt(Req req, Res res, const std::string& id, Visit& v) {
  if (!RequireLogin(req, res, v)) return;
  if (!IsId(id)) return ErrorPage(res, v, 404);
  const ApiResult r = api_.Download(v.caller, "/api/v1/submissions/" + id + "/receipt");
  if (!r.ok()) return ApiFailure(res, v, r);
  if (!absl::StartsWith(r.content_type, "application/pdf") || !absl::StartsWith(r.raw, "%PDF")) {
    log::Warn("receipt is no PDF");
    return ErrorPage(res, v, 503);
  }
  res.status = 200;
  res.set_header("Content-Disposition", "attachment; filename=\"receipt-" + id.substr(0, 8) + ".pdf\"");
  res.set_content(r.raw, "application/pdf");
}

}  // namespace stadtportal::web

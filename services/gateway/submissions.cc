// The gateway's routes for applying: drafts, attachments, submissions, receipts,
// feedback, publishing form versions (tenant admins) and the KPIs (kpi-readers).
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace sv1 = submission::v1;

nlohmann::json DraftJson(const sv1::Draft& d) {
  return {{"id", d.id()},
          {"service_id", d.service_id()},
          {"service_name", json::Text(d.service_name())},
          {"form_version", d.form_version()},
          {"version", d.version()},
          {"data", nlohmann::json::parse(d.data_json())},
          {"read_only_fields", std::vector<std::string>(d.read_only_fields().begin(), d.read_only_fields().end())},
          {"attachments", json::Array(d.attachments(), json::SubmissionAttachment)},
          {"fee", json::Money(d.fee())},
          {"last_completed_step", d.last_completed_step()},
          {"created_at", json::Time(d.created_at())},
          {"updated_at", json::Time(d.updated_at())},
          {"expires_at", json::Time(d.expires_at())}};
}

// `full`: with answers, attachments and history (one submission), else a list entry.
nlohmann::json SubmissionJson(const sv1::Submission& s, bool full) {
  nlohmann::json j = {{"id", s.id()},
                      {"reference", s.reference()},
                      {"service_id", s.service_id()},
                      {"service_name", json::Text(s.service_name())},
                      {"form_version", s.form_version()},
                      {"status", s.status()},
                      {"fee", json::Money(s.fee())},
                      {"submitted_at", json::Time(s.submitted_at())},
                      {"withdrawable", s.withdrawable()},
                      {"delivery_delayed", s.delivery_delayed()}};
  if (s.has_closed_at()) {
    j["closed_at"] = json::Time(s.closed_at());
    j["retain_until"] = json::Time(s.retain_until());
  }
  if (!full) return j;
  j["data"] = nlohmann::json::parse(s.data_json());
  j["attachments"] = json::Array(s.attachments(), json::SubmissionAttachment);
  j["history"] = json::Array(s.history(), [](const sv1::StatusChange& h) -> nlohmann::json {
    return {{"status", h.status()}, {"at", json::Time(h.at())}, {"note", h.note()}};
  });
  return j;
}

// The draft version from If-Match ("3", W/"3" or 3); 0 when absent or unreadable.
int64_t IfMatchVersion(const std::string& header) {
  std::string v(absl::StripAsciiWhitespace(header));
  if (absl::StartsWith(v, "W/")) v = v.substr(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  int64_t version = 0;
  return absl::SimpleAtoi(v, &version) && version > 0 ? version : 0;
}

void SetETag(Res res, int64_t version) { res.set_header("ETag", absl::StrCat("\"", version, "\"")); }

// A KPI figure's number as JSON: integral values as integers (the CSV writes the same text).
nlohmann::json KpiNumber(double v) {
  if (std::trunc(v) == v && std::fabs(v) < 9007199254740992.0) return static_cast<int64_t>(v);
  return v;
}

// One CSV text field (RFC 4180): quoted when it holds a comma, a quote or a line break.
// Text a spreadsheet would run as a formula (= + - @, a tab or carriage return first) is
// written with a leading apostrophe, quoted. Numbers are written by the caller, as numbers.
std::string CsvField(const std::string& s) {
  if (!s.empty() && std::string_view("=+-@\t\r").find(s[0]) != std::string_view::npos) {
    return "\"'" + absl::StrReplaceAll(s, {{"\"", "\"\""}}) + "\"";
  }
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  return "\"" + absl::StrReplaceAll(s, {{"\"", "\"\""}}) + "\"";
}

nlohmann::json KpisJson(const sv1::GetKpisResponse& k) {
  return {{"service_id", k.service_id()},
          {"from", k.from()},
          {"to", k.to()},
          {"granularity", k.granularity()},
          {"min_citizens", k.min_citizens()},
          {"periods", json::Array(k.periods(), [](const sv1::KpiPeriod& p) -> nlohmann::json {
             return {{"start", p.start()},
                     {"end", p.end()},
                     {"figures", json::Array(p.figures(), [](const sv1::KpiFigure& f) -> nlohmann::json {
                        return {{"metric", f.metric()},
                                {"dim", f.dim()},
                                {"value", f.has_value() ? KpiNumber(f.value()) : nlohmann::json()},
                                {"suppressed", f.suppressed()}};
                      })}};
           })}};
}

// The same figures as CSV: one row per period and figure; numbers as in the JSON.
std::string KpisCsv(const sv1::GetKpisResponse& k) {
  std::string out = "period_start,period_end,metric,dim,value,suppressed\r\n";
  for (const auto& p : k.periods()) {
    for (const auto& f : p.figures()) {
      absl::StrAppend(&out, CsvField(p.start()), ",", CsvField(p.end()), ",", CsvField(f.metric()), ",",
                      CsvField(f.dim()), ",", f.has_value() ? KpiNumber(f.value()).dump() : "", ",",
                      f.suppressed() ? "true" : "false", "\r\n");
    }
  }
  return out;
}

}  // namespace

void Service::AddSubmissionRoutes() {
  Add({"POST", "/api/v1/services/{id}/drafts", Who::kSession, "default", 0, false, "drafts:write"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        sv1::CreateDraftRequest in;
        in.set_service_id(p.at("id"));
        // Prefill from the profile: a convenience, so an unavailable profile does not block.
        accounts::v1::Profile profile;
        if (auto s =
                Invoke(a.Token("accounts"), *accounts_, &accounts::v1::AccountsService::Stub::GetProfile, {}, &profile);
            !s.ok()) {
          log::Warn("profile for prefill unavailable", {{"error", std::string(s.message())}});
        }
        for (const auto& attr : profile.attributes()) {
          auto& v = (*in.mutable_profile())[attr.name()];
          v.set_value(attr.value());
          v.set_verified(attr.source() == "provider");
        }
        sv1::Draft out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::CreateDraft, in, &out)) return;
        SetETag(res, out.version());
        res.set_header("Location", "/api/v1/drafts/" + out.id());
        http::WriteJson(res, 201, DraftJson(out));
      });

  Add({"GET", "/api/v1/drafts", Who::kSession, "default", 0, false, "drafts:write"},
      [this](Req req, Res res, P, const Authenticated& a) {
        sv1::ListDraftsRequest in;
        if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
        sv1::ListDraftsResponse out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::ListDrafts, in, &out)) return;
        http::WriteJson(res, 200, json::Page(json::Array(out.drafts(), DraftJson), out.page()));
      });

  Add({"GET", "/api/v1/drafts/{id}", Who::kSession, "default", 0, false, "drafts:write"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        sv1::GetDraftRequest in;
        in.set_id(p.at("id"));
        sv1::Draft out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GetDraft, in, &out)) return;
        SetETag(res, out.version());
        http::WriteJson(res, 200, DraftJson(out));
      });

  Add({"PATCH", "/api/v1/drafts/{id}", Who::kSession, "default", kMaxDraftBody, false, "drafts:write"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        const int64_t version = IfMatchVersion(req.get_header_value("If-Match"));
        if (version == 0) {
          http::WriteHttpProblem(res, 428, "send If-Match with the draft's ETag");
          return;
        }
        auto body = Body(req, res,
                         {{"data", {http::FieldType::kObject}}, {"completed_step", {http::FieldType::kString, false}}},
                         kMaxDraftBody);
        if (!body) return;
        sv1::UpdateDraftRequest in;
        in.set_id(p.at("id"));
        in.set_expected_version(version);
        in.set_data_json((*body)["data"].dump());
        in.set_completed_step(body->value("completed_step", ""));
        sv1::Draft out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::UpdateDraft, in, &out)) return;
        SetETag(res, out.version());
        http::WriteJson(res, 200, DraftJson(out));
      });

  Add({"DELETE", "/api/v1/drafts/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    sv1::DeleteDraftRequest in;
    in.set_id(p.at("id"));
    sv1::DeleteDraftResponse out;
    if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::DeleteDraft, in, &out)) return;
    res.status = 204;
  });

  Add({"POST", "/api/v1/drafts/{id}/validate", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    sv1::ValidateDraftRequest in;
    in.set_id(p.at("id"));
    in.set_step(req.get_param_value("step"));
    sv1::ValidateDraftResponse out;
    if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::ValidateDraft, in, &out)) return;
    const std::string lang = http::Language(req);
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& e : out.errors()) {
      errors.push_back({{"field", e.field()}, {"code", e.code()}, {"message", http::Message(e.code(), lang)}});
    }
    http::WriteJson(res, 200, {{"valid", out.valid()}, {"errors", errors}});
  });

  Add({"POST", "/api/v1/drafts/{id}/attachments", Who::kSession, "default", 0, /*upload=*/true},
      [this](Req req, Res res, P p, const Authenticated& a) {
        if (!req.is_multipart_form_data() || !req.has_file("file")) {
          return Fail(req, res,
                      status::MalformedField("file", "required", "send multipart/form-data with a part named file"));
        }
        const auto file = req.get_file_value("file");
        sv1::AddAttachmentRequest in;
        in.set_draft_id(p.at("id"));
        in.set_field(req.get_param_value("field"));
        in.set_filename(file.filename);
        in.set_content(file.content);
        sv1::Attachment out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::AddAttachment, in, &out)) return;
        res.set_header("Location", "/api/v1/attachments/" + out.id());
        http::WriteJson(res, 201, json::SubmissionAttachment(out));
      });

  Add({"GET", "/api/v1/attachments/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    sv1::GetAttachmentRequest in;
    in.set_id(p.at("id"));
    sv1::AttachmentContent out;
    if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GetAttachment, in, &out)) return;
    // Always a download, typed by the sniffed content, never rendered inline.
    res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", out.attachment().filename(), "\""));
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "private, no-store");
    res.set_content(out.content(), out.attachment().media_type().c_str());
  });

  Add({"DELETE", "/api/v1/attachments/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    sv1::DeleteAttachmentRequest in;
    in.set_id(p.at("id"));
    sv1::DeleteAttachmentResponse out;
    if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::DeleteAttachment, in, &out)) return;
    res.status = 204;
  });

  Add({"POST", "/api/v1/drafts/{id}/submit", Who::kSession, "default", 0, false, "drafts:write"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        if (!req.has_header("Idempotency-Key")) {
          return Fail(req, res,
                      status::MalformedField("Idempotency-Key", "required", "send an Idempotency-Key header"));
        }
        sv1::SubmitDraftRequest in;
        in.set_draft_id(p.at("id"));
        in.set_idempotency_key(req.get_header_value("Idempotency-Key"));
        sv1::Submission out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::SubmitDraft, in, &out)) return;
        res.set_header("Location", "/api/v1/submissions/" + out.id());
        http::WriteJson(res, 201, SubmissionJson(out, true));
      });

  Add({"GET", "/api/v1/submissions", Who::kSession, "default", 0, false, "submissions:read"},
      [this](Req req, Res res, P, const Authenticated& a) {
        sv1::ListSubmissionsRequest in;
        in.set_status(req.get_param_value("status"));
        // Unset: all (as before the archive view); false: open ones; true: closed ones.
        if (const std::string v = req.get_param_value("archived"); !v.empty()) {
          if (v != "true" && v != "false") {
            return Fail(req, res, status::MalformedField("archived", "invalid", "true or false"));
          }
          in.set_archived(v == "true");
        }
        if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
        sv1::ListSubmissionsResponse out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::ListSubmissions, in, &out)) return;
        http::WriteJson(res, 200,
                        json::Page(json::Array(out.submissions(),
                                               [](const sv1::Submission& s) { return SubmissionJson(s, false); }),
                                   out.page()));
      });

  Add({"GET", "/api/v1/submissions/{id}", Who::kSession, "default", 0, false, "submissions:read"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        sv1::GetSubmissionRequest in;
        in.set_id(p.at("id"));
        sv1::Submission out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GetSubmission, in, &out)) return;
        http::WriteJson(res, 200, SubmissionJson(out, true));
      });

  Add({"POST", "/api/v1/submissions/{id}/withdraw", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        sv1::WithdrawSubmissionRequest in;
        in.set_id(p.at("id"));
        sv1::Submission out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::WithdrawSubmission, in, &out)) return;
        http::WriteJson(res, 200, SubmissionJson(out, true));
      });

  Add({"GET", "/api/v1/submissions/{id}/receipt", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        sv1::GetReceiptRequest in;
        in.set_id(p.at("id"));
        in.set_language(http::Language(req));
        sv1::Receipt out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GetReceipt, in, &out)) return;
        res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", out.filename(), "\""));
        res.set_header("Cache-Control", "private, no-store");
        res.set_content(out.pdf(), "application/pdf");
      });

  Add({"POST", "/api/v1/submissions/{id}/feedback", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        auto body =
            Body(req, res, {{"rating", {http::FieldType::kInteger}}, {"comment", {http::FieldType::kString, false}}});
        if (!body) return;
        sv1::GiveFeedbackRequest in;
        in.set_submission_id(p.at("id"));
        const int64_t rating = (*body)["rating"];
        in.set_rating(rating < 0 || rating > 100 ? 0 : static_cast<int32_t>(rating));
        in.set_comment(body->value("comment", ""));
        sv1::Feedback out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GiveFeedback, in, &out)) return;
        http::WriteJson(
            res, 201, {{"rating", out.rating()}, {"comment", out.comment()}, {"given_at", json::Time(out.given_at())}});
      });

  Add({"POST", "/api/v1/admin/services/{id}/versions", Who::kAdmin, "default", kMaxFormDefinitionBody},
      [this](Req req, Res res, P p, const Authenticated& a) {
        auto body = Body(req, res, {{"definition", {http::FieldType::kObject}}}, kMaxFormDefinitionBody);
        if (!body) return;
        // The service checks the caller's role before the definition, its id included.
        sv1::PublishOnlineServiceRequest in;
        in.set_definition_json((*body)["definition"].dump());
        in.set_service_id(p.at("id"));
        sv1::OnlineService out;
        if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::PublishOnlineService, in, &out)) return;
        // This replica serves the new version at once; the others on its event.
        DropCatalogue();
        http::WriteJson(res, 201,
                        {{"id", out.id()}, {"form_version", out.form_version()}, {"destination", out.destination()}});
      });

  // Business KPIs of one online service (role kpi-reader; the submission service checks it).
  Add({"GET", "/api/v1/admin/kpis", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    sv1::GetKpisRequest in;
    in.set_service_id(req.get_param_value("service"));
    in.set_from(req.get_param_value("from"));
    in.set_to(req.get_param_value("to"));
    in.set_granularity(req.get_param_value("granularity"));
    sv1::GetKpisResponse out;
    if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GetKpis, in, &out)) return;
    if (absl::StrContains(req.get_header_value("Accept"), "text/csv")) {
      res.status = 200;
      res.set_header("Cache-Control", "no-store");
      res.set_header("Content-Disposition", "attachment; filename=\"kpis.csv\"");
      res.set_content(KpisCsv(out), "text/csv; charset=utf-8");
      return;
    }
    http::WriteJson(res, 200, KpisJson(out));
  });

  Add({"GET", "/api/v1/admin/kpis/funnel", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    sv1::GetFunnelRequest in;
    in.set_service_id(req.get_param_value("service"));
    in.set_from(req.get_param_value("from"));
    in.set_to(req.get_param_value("to"));
    sv1::GetFunnelResponse out;
    if (!Call(req, res, a, *submission_, &sv1::SubmissionService::Stub::GetFunnel, in, &out)) return;
    http::WriteJson(res, 200,
                    {{"service_id", out.service_id()},
                     {"from", out.from()},
                     {"to", out.to()},
                     {"min_citizens", out.min_citizens()},
                     {"steps", json::Array(out.steps(), [](const sv1::FunnelStep& s) -> nlohmann::json {
                        return {{"step", s.step()},
                                {"count", s.has_count() ? nlohmann::json(s.count()) : nlohmann::json()},
                                {"drop_off", s.has_drop_off() ? nlohmann::json(s.drop_off()) : nlohmann::json()},
                                {"suppressed", s.suppressed()}};
                      })}});
  });
}

}  // namespace stadtportal::gateway

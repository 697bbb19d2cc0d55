// The gateway's routes for applying: drafts, attachments, submissions, receipts,
// feedback, and publishing form versions (tenant admins).
#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace sv1 = submission::v1;
using google::protobuf::util::TimeUtil;
using Req = const httplib::Request&;
using Res = httplib::Response&;
using P = const http::Params&;

nlohmann::json MoneyJson(const common::v1::Money& m) {
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency()}};
}

nlohmann::json AttachmentJson(const sv1::Attachment& a) {
  return {{"id", a.id()},
          {"field", a.field()},
          {"filename", a.filename()},
          {"media_type", a.media_type()},
          {"size", a.size()},
          {"sha256", a.sha256()},
          {"created_at", TimeUtil::ToString(a.created_at())}};
}

nlohmann::json DraftJson(const sv1::Draft& d) {
  nlohmann::json attachments = nlohmann::json::array();
  for (const auto& a : d.attachments()) attachments.push_back(AttachmentJson(a));
  return {{"id", d.id()},
          {"service_id", d.service_id()},
          {"service_name", {{"de", d.service_name().de()}, {"en", d.service_name().en()}}},
          {"form_version", d.form_version()},
          {"version", d.version()},
          {"data", nlohmann::json::parse(d.data_json())},
          {"read_only_fields", std::vector<std::string>(d.read_only_fields().begin(), d.read_only_fields().end())},
          {"attachments", attachments},
          {"fee", MoneyJson(d.fee())},
          {"last_completed_step", d.last_completed_step()},
          {"created_at", TimeUtil::ToString(d.created_at())},
          {"updated_at", TimeUtil::ToString(d.updated_at())},
          {"expires_at", TimeUtil::ToString(d.expires_at())}};
}

// `full`: with answers, attachments and history (one submission), else a list entry.
nlohmann::json SubmissionJson(const sv1::Submission& s, bool full) {
  nlohmann::json j = {{"id", s.id()},
                      {"reference", s.reference()},
                      {"service_id", s.service_id()},
                      {"service_name", {{"de", s.service_name().de()}, {"en", s.service_name().en()}}},
                      {"form_version", s.form_version()},
                      {"status", s.status()},
                      {"fee", MoneyJson(s.fee())},
                      {"submitted_at", TimeUtil::ToString(s.submitted_at())},
                      {"withdrawable", s.withdrawable()},
                      {"delivery_delayed", s.delivery_delayed()}};
  if (!full) return j;
  j["data"] = nlohmann::json::parse(s.data_json());
  j["attachments"] = nlohmann::json::array();
  for (const auto& a : s.attachments()) j["attachments"].push_back(AttachmentJson(a));
  j["history"] = nlohmann::json::array();
  for (const auto& h : s.history()) {
    j["history"].push_back({{"status", h.status()}, {"at", TimeUtil::ToString(h.at())}, {"note", h.note()}});
  }
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

}  // namespace

void Service::AddSubmissionRoutes() {
  // Calls submission as the authenticated caller; on failure writes the (form) problem.
  auto call = [this](Req req, Res res, const Authenticated& a, auto rpc, const auto& in, auto* out) {
    auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a.Token("submission"));
    absl::Status s = status::FromGrpc(((*submission_).*rpc)(ctx.get(), in, out));
    if (!s.ok()) Fail(req, res, s);
    return s.ok();
  };
  router_.Add("POST", "/api/v1/services/{id}/drafts", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::CreateDraftRequest in;
                in.set_service_id(p.at("id"));
                // Prefill from the profile: a convenience, so an unavailable profile does not block.
                accounts::v1::Profile profile;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("accounts"));
                if (auto s = status::FromGrpc(accounts_->GetProfile(ctx.get(), {}, &profile)); !s.ok()) {
                  log::Warn("profile for prefill unavailable", {{"error", std::string(s.message())}});
                }
                for (const auto& attr : profile.attributes()) {
                  auto& v = (*in.mutable_profile())[attr.name()];
                  v.set_value(attr.value());
                  v.set_verified(attr.source() == "provider");
                }
                sv1::Draft out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::CreateDraft, in, &out)) return;
                SetETag(res, out.version());
                res.set_header("Location", "/api/v1/drafts/" + out.id());
                http::WriteJson(res, 201, DraftJson(out));
              }));

  router_.Add("GET", "/api/v1/drafts", Limited("default", [this, call](Req req, Res res, P) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::ListDraftsRequest in;
                if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
                sv1::ListDraftsResponse out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::ListDrafts, in, &out)) return;
                nlohmann::json items = nlohmann::json::array();
                for (const auto& d : out.drafts()) items.push_back(DraftJson(d));
                nlohmann::json body = {{"items", items}};
                if (!out.page().next_page_token().empty()) body["next_page_token"] = out.page().next_page_token();
                http::WriteJson(res, 200, body);
              }));

  router_.Add("GET", "/api/v1/drafts/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::GetDraftRequest in;
                in.set_id(p.at("id"));
                sv1::Draft out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::GetDraft, in, &out)) return;
                SetETag(res, out.version());
                http::WriteJson(res, 200, DraftJson(out));
              }));

  router_.Add("PATCH", "/api/v1/drafts/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                const int64_t version = IfMatchVersion(req.get_header_value("If-Match"));
                if (version == 0) {
                  http::WriteHttpProblem(res, 428, "send If-Match with the draft's ETag");
                  return;
                }
                auto body =
                    Body(req, res,
                         {{"data", {http::FieldType::kObject}}, {"completed_step", {http::FieldType::kString, false}}},
                         kMaxDraftBody);
                if (!body) return;
                sv1::UpdateDraftRequest in;
                in.set_id(p.at("id"));
                in.set_expected_version(version);
                in.set_data_json((*body)["data"].dump());
                in.set_completed_step(body->value("completed_step", ""));
                sv1::Draft out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::UpdateDraft, in, &out)) return;
                SetETag(res, out.version());
                http::WriteJson(res, 200, DraftJson(out));
              }));

  router_.Add("DELETE", "/api/v1/drafts/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::DeleteDraftRequest in;
                in.set_id(p.at("id"));
                sv1::DeleteDraftResponse out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::DeleteDraft, in, &out)) return;
                res.status = 204;
              }));

  router_.Add(
      "POST", "/api/v1/drafts/{id}/validate", Limited("default", [this, call](Req req, Res res, P p) {
        auto a = Authenticate(req, res);
        if (!a) return;
        sv1::ValidateDraftRequest in;
        in.set_id(p.at("id"));
        in.set_step(req.get_param_value("step"));
        sv1::ValidateDraftResponse out;
        if (!call(req, res, *a, &sv1::SubmissionService::Stub::ValidateDraft, in, &out)) return;
        const std::string lang = http::Language(req);
        nlohmann::json errors = nlohmann::json::array();
        for (const auto& e : out.errors()) {
          errors.push_back({{"field", e.field()}, {"code", e.code()}, {"message", http::Message(e.code(), lang)}});
        }
        http::WriteJson(res, 200, {{"valid", out.valid()}, {"errors", errors}});
      }));

  router_.Add("POST", "/api/v1/drafts/{id}/attachments", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                if (!req.is_multipart_form_data() || !req.has_file("file")) {
                  return Fail(
                      req, res,
                      status::MalformedField("file", "required", "send multipart/form-data with a part named file"));
                }
                const auto file = req.get_file_value("file");
                sv1::AddAttachmentRequest in;
                in.set_draft_id(p.at("id"));
                in.set_field(req.get_param_value("field"));
                in.set_filename(file.filename);
                in.set_content(file.content);
                sv1::Attachment out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::AddAttachment, in, &out)) return;
                res.set_header("Location", "/api/v1/attachments/" + out.id());
                http::WriteJson(res, 201, AttachmentJson(out));
              }));

  router_.Add("GET", "/api/v1/attachments/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::GetAttachmentRequest in;
                in.set_id(p.at("id"));
                sv1::AttachmentContent out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::GetAttachment, in, &out)) return;
                // Always a download, typed by the sniffed content, never rendered inline.
                res.set_header("Content-Disposition",
                               absl::StrCat("attachment; filename=\"", out.attachment().filename(), "\""));
                res.set_header("X-Content-Type-Options", "nosniff");
                res.set_header("Cache-Control", "private, no-store");
                res.set_content(out.content(), out.attachment().media_type().c_str());
              }));

  router_.Add("DELETE", "/api/v1/attachments/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::DeleteAttachmentRequest in;
                in.set_id(p.at("id"));
                sv1::DeleteAttachmentResponse out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::DeleteAttachment, in, &out)) return;
                res.status = 204;
              }));

  router_.Add("POST", "/api/v1/drafts/{id}/submit", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                if (!req.has_header("Idempotency-Key")) {
                  return Fail(req, res,
                              status::MalformedField("Idempotency-Key", "required", "send an Idempotency-Key header"));
                }
                sv1::SubmitDraftRequest in;
                in.set_draft_id(p.at("id"));
                in.set_idempotency_key(req.get_header_value("Idempotency-Key"));
                sv1::Submission out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::SubmitDraft, in, &out)) return;
                res.set_header("Location", "/api/v1/submissions/" + out.id());
                http::WriteJson(res, 201, SubmissionJson(out, true));
              }));

  router_.Add("GET", "/api/v1/submissions", Limited("default", [this, call](Req req, Res res, P) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::ListSubmissionsRequest in;
                in.set_status(req.get_param_value("status"));
                if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
                sv1::ListSubmissionsResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("submission"));
                if (auto s = status::FromGrpc(submission_->ListSubmissions(ctx.get(), in, &out)); !s.ok()) {
                  return Fail(req, res, s);
                }
                nlohmann::json items = nlohmann::json::array();
                for (const auto& s : out.submissions()) items.push_back(SubmissionJson(s, false));
                nlohmann::json body = {{"items", items}};
                if (!out.page().next_page_token().empty()) body["next_page_token"] = out.page().next_page_token();
                http::WriteJson(res, 200, body);
              }));

  router_.Add("GET", "/api/v1/submissions/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::GetSubmissionRequest in;
                in.set_id(p.at("id"));
                sv1::Submission out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::GetSubmission, in, &out)) return;
                http::WriteJson(res, 200, SubmissionJson(out, true));
              }));

  router_.Add("POST", "/api/v1/submissions/{id}/withdraw", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::WithdrawSubmissionRequest in;
                in.set_id(p.at("id"));
                sv1::Submission out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::WithdrawSubmission, in, &out)) return;
                http::WriteJson(res, 200, SubmissionJson(out, true));
              }));

  router_.Add("GET", "/api/v1/submissions/{id}/receipt", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                sv1::GetReceiptRequest in;
                in.set_id(p.at("id"));
                in.set_language(http::Language(req));
                sv1::Receipt out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::GetReceipt, in, &out)) return;
                res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", out.filename(), "\""));
                res.set_header("Cache-Control", "private, no-store");
                res.set_content(out.pdf(), "application/pdf");
              }));

  router_.Add(
      "POST", "/api/v1/submissions/{id}/feedback", Limited("default", [this, call](Req req, Res res, P p) {
        auto a = Authenticate(req, res);
        if (!a) return;
        auto body =
            Body(req, res, {{"rating", {http::FieldType::kInteger}}, {"comment", {http::FieldType::kString, false}}});
        if (!body) return;
        sv1::GiveFeedbackRequest in;
        in.set_submission_id(p.at("id"));
        const int64_t rating = (*body)["rating"];
        in.set_rating(rating < 0 || rating > 100 ? 0 : static_cast<int32_t>(rating));
        in.set_comment(body->value("comment", ""));
        sv1::Feedback out;
        if (!call(req, res, *a, &sv1::SubmissionService::Stub::GiveFeedback, in, &out)) return;
        http::WriteJson(
            res, 201,
            {{"rating", out.rating()}, {"comment", out.comment()}, {"given_at", TimeUtil::ToString(out.given_at())}});
      }));

  router_.Add("POST", "/api/v1/admin/services/{id}/versions", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                auto body = Body(req, res, {{"definition", {http::FieldType::kObject}}}, kMaxFormDefinitionBody);
                if (!body) return;
                // The service checks the caller's role before the definition, its id included.
                sv1::PublishOnlineServiceRequest in;
                in.set_definition_json((*body)["definition"].dump());
                in.set_service_id(p.at("id"));
                sv1::OnlineService out;
                if (!call(req, res, *a, &sv1::SubmissionService::Stub::PublishOnlineService, in, &out)) return;
                http::WriteJson(
                    res, 201,
                    {{"id", out.id()}, {"form_version", out.form_version()}, {"destination", out.destination()}});
              }));
}

}  // namespace stadtportal::gateway

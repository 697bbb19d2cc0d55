// The gateway's routes for the secure mailbox (Postfach) of the acting party.
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace mv1 = messaging::v1;

nlohmann::json MessageJson(const mv1::Message& m) {
  return {{"id", m.id()},
          {"thread_id", m.thread_id()},
          {"sender_kind", json::SenderKind(m.sender_kind())},
          {"sender_name", m.sender_name()},
          {"body", m.body()},
          {"notice", m.notice()},
          {"attachments", json::Array(m.attachments(), json::MessageAttachment)},
          {"created_at", json::Time(m.created_at())},
          {"first_read_at", json::TimeOrNull(m.has_first_read_at(), m.first_read_at())}};
}

nlohmann::json ThreadJson(const mv1::Thread& t) {
  nlohmann::json j = {{"id", t.id()},
                      {"subject", t.subject()},
                      {"submission_id", t.submission_id()},
                      {"department", t.department()},
                      {"archived", t.archived()},
                      {"unread", t.unread()},
                      {"has_notice", t.has_notice()},
                      {"created_at", json::Time(t.created_at())},
                      {"last_message_at", json::Time(t.last_message_at())}};
  if (t.messages_size() > 0) j["messages"] = json::Array(t.messages(), MessageJson);
  return j;
}

}  // namespace

void Service::AddMailboxRoutes() {
  Add({"GET", "/api/v1/mailbox/threads", Who::kSession, "default", 0, false, "mailbox:read"},
      [this](Req req, Res res, P, const Authenticated& a) {
        mv1::ListThreadsRequest in;
        for (const auto& [name, field] : {std::make_pair("archived", &mv1::ListThreadsRequest::set_archived),
                                          std::make_pair("unread", &mv1::ListThreadsRequest::set_unread_only)}) {
          const std::string v = req.get_param_value(name);
          if (v.empty()) continue;
          if (v != "true" && v != "false") {
            return Fail(req, res, status::MalformedField(name, "invalid", "true or false"));
          }
          (in.*field)(v == "true");
        }
        if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
        mv1::ListThreadsResponse out;
        if (!Call(req, res, a, *messaging_, &mv1::MessagingService::Stub::ListThreads, in, &out)) return;
        nlohmann::json body = json::Page(json::Array(out.threads(), ThreadJson), out.page());
        body["unread_total"] = out.unread_total();
        http::WriteJson(res, 200, body);
      });

  Add({"GET", "/api/v1/mailbox/threads/{id}", Who::kSession, "default", 0, false, "mailbox:read"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        mv1::GetThreadRequest in;
        in.set_id(p.at("id"));
        mv1::Thread out;
        if (!Call(req, res, a, *messaging_, &mv1::MessagingService::Stub::GetThread, in, &out)) return;
        http::WriteJson(res, 200, ThreadJson(out));
      });

  // A reply: JSON {"body"} or multipart/form-data with a "body" field and "files" parts.
  Add({"POST", "/api/v1/mailbox/threads/{id}/messages", Who::kSession, "default", 0, /*upload=*/true},
      [this](Req req, Res res, P p, const Authenticated& a) {
        mv1::ReplyRequest in;
        in.set_thread_id(p.at("id"));
        if (req.is_multipart_form_data()) {
          if (!req.has_file("body")) {
            return Fail(req, res, status::FieldError("body", "required"));
          }
          const std::string text = req.get_file_value("body").content;
          // Goes on as a proto3 string: valid UTF-8, no control characters but line breaks.
          if (!api::IsPlainText(text, api::TextKind::kMultiline)) {
            return Fail(req, res, status::FieldError("body", "invalid"));
          }
          in.set_body(text);
          for (const auto& [name, part] : req.files) {
            if (name != "files") continue;
            auto* att = in.add_attachments();
            att->set_filename(part.filename);
            att->set_content(part.content);
          }
        } else {
          auto body = Body(req, res, {{"body", {http::FieldType::kString}}});
          if (!body) return;
          in.set_body((*body)["body"]);
        }
        mv1::Message out;
        if (!Call(req, res, a, *messaging_, &mv1::MessagingService::Stub::Reply, in, &out)) return;
        http::WriteJson(res, 201, MessageJson(out));
      });

  Add({"POST", "/api/v1/mailbox/messages/{id}/read", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        mv1::MarkReadRequest in;
        in.set_message_id(p.at("id"));
        mv1::Message out;
        if (!Call(req, res, a, *messaging_, &mv1::MessagingService::Stub::MarkRead, in, &out)) return;
        http::WriteJson(res, 200, MessageJson(out));
      });

  Add({"GET", "/api/v1/mailbox/attachments/{id}", Who::kSession, "default", 0, false, "mailbox:read"},
      [this](Req req, Res res, P p, const Authenticated& a) {
        mv1::GetAttachmentRequest in;
        in.set_id(p.at("id"));
        mv1::AttachmentContent out;
        if (!Call(req, res, a, *messaging_, &mv1::MessagingService::Stub::GetAttachment, in, &out)) return;
        res.set_header("Content-Disposition",
                       absl::StrCat("attachment; filename=\"", out.attachment().filename(), "\""));
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("Cache-Control", "private, no-store");
        res.set_content(out.content(), out.attachment().media_type().c_str());
      });

  for (const bool archive : {true, false}) {
    Add({"POST", archive ? "/api/v1/mailbox/threads/{id}/archive" : "/api/v1/mailbox/threads/{id}/unarchive",
         Who::kSession},
        [this, archive](Req req, Res res, P p, const Authenticated& a) {
          mv1::SetArchivedRequest in;
          in.set_thread_id(p.at("id"));
          in.set_archived(archive);
          mv1::Thread out;
          if (!Call(req, res, a, *messaging_, &mv1::MessagingService::Stub::SetArchived, in, &out)) return;
          http::WriteJson(res, 200, ThreadJson(out));
        });
  }
}

}  // namespace stadtportal::gateway

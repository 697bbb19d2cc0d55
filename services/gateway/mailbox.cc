// The gateway's routes for the secure mailbox (Postfach) of the acting party.
#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/grpc/client.h"
#include "libs/status/status.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace mv1 = messaging::v1;
using google::protobuf::util::TimeUtil;
using Req = const httplib::Request&;
using Res = httplib::Response&;
using P = const http::Params&;

nlohmann::json MessageJson(const mv1::Message& m) {
  nlohmann::json attachments = nlohmann::json::array();
  for (const auto& a : m.attachments()) {
    attachments.push_back({{"id", a.id()},
                           {"filename", a.filename()},
                           {"media_type", a.media_type()},
                           {"size", a.size()},
                           {"sha256", a.sha256()}});
  }
  const char* sender = m.sender_kind() == mv1::SENDER_KIND_CITIZEN      ? "citizen"
                       : m.sender_kind() == mv1::SENDER_KIND_DEPARTMENT ? "department"
                                                                        : "system";
  nlohmann::json j = {{"id", m.id()},
                      {"thread_id", m.thread_id()},
                      {"sender_kind", sender},
                      {"sender_name", m.sender_name()},
                      {"body", m.body()},
                      {"notice", m.notice()},
                      {"attachments", attachments},
                      {"created_at", TimeUtil::ToString(m.created_at())}};
  j["first_read_at"] = m.has_first_read_at() ? nlohmann::json(TimeUtil::ToString(m.first_read_at())) : nullptr;
  return j;
}

nlohmann::json ThreadJson(const mv1::Thread& t) {
  nlohmann::json j = {{"id", t.id()},
                      {"subject", t.subject()},
                      {"submission_id", t.submission_id()},
                      {"department", t.department()},
                      {"archived", t.archived()},
                      {"unread", t.unread()},
                      {"has_notice", t.has_notice()},
                      {"created_at", TimeUtil::ToString(t.created_at())},
                      {"last_message_at", TimeUtil::ToString(t.last_message_at())}};
  if (t.messages_size() > 0) {
    j["messages"] = nlohmann::json::array();
    for (const auto& m : t.messages()) j["messages"].push_back(MessageJson(m));
  }
  return j;
}

}  // namespace

void Service::AddMailboxRoutes() {
  auto call = [this](Req req, Res res, const Authenticated& a, auto rpc, const auto& in, auto* out) {
    auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a.Token("messaging"));
    absl::Status s = status::FromGrpc(((*messaging_).*rpc)(ctx.get(), in, out));
    if (!s.ok()) Fail(req, res, s);
    return s.ok();
  };

  router_.Add(
      "GET", "/api/v1/mailbox/threads", Limited("default", [this, call](Req req, Res res, P) {
        auto a = Authenticate(req, res);
        if (!a) return;
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
        auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("messaging"));
        if (auto s = status::FromGrpc(messaging_->ListThreads(ctx.get(), in, &out)); !s.ok()) {
          return Fail(req, res, s);
        }
        nlohmann::json items = nlohmann::json::array();
        for (const auto& t : out.threads()) items.push_back(ThreadJson(t));
        nlohmann::json body = {{"items", items}, {"unread_total", out.unread_total()}};
        if (!out.page().next_page_token().empty()) body["next_page_token"] = out.page().next_page_token();
        http::WriteJson(res, 200, body);
      }));

  router_.Add("GET", "/api/v1/mailbox/threads/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                mv1::GetThreadRequest in;
                in.set_id(p.at("id"));
                mv1::Thread out;
                if (!call(req, res, *a, &mv1::MessagingService::Stub::GetThread, in, &out)) return;
                http::WriteJson(res, 200, ThreadJson(out));
              }));

  // A reply: JSON {"body"} or multipart/form-data with a "body" field and "files" parts.
  router_.Add("POST", "/api/v1/mailbox/threads/{id}/messages", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
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
                if (!call(req, res, *a, &mv1::MessagingService::Stub::Reply, in, &out)) return;
                http::WriteJson(res, 201, MessageJson(out));
              }));

  router_.Add("POST", "/api/v1/mailbox/messages/{id}/read", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                mv1::MarkReadRequest in;
                in.set_message_id(p.at("id"));
                mv1::Message out;
                if (!call(req, res, *a, &mv1::MessagingService::Stub::MarkRead, in, &out)) return;
                http::WriteJson(res, 200, MessageJson(out));
              }));

  router_.Add("GET", "/api/v1/mailbox/attachments/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = Authenticate(req, res);
                if (!a) return;
                mv1::GetAttachmentRequest in;
                in.set_id(p.at("id"));
                mv1::AttachmentContent out;
                if (!call(req, res, *a, &mv1::MessagingService::Stub::GetAttachment, in, &out)) return;
                res.set_header("Content-Disposition",
                               absl::StrCat("attachment; filename=\"", out.attachment().filename(), "\""));
                res.set_header("X-Content-Type-Options", "nosniff");
                res.set_header("Cache-Control", "private, no-store");
                res.set_content(out.content(), out.attachment().media_type().c_str());
              }));

  for (const bool archive : {true, false}) {
    router_.Add("POST", archive ? "/api/v1/mailbox/threads/{id}/archive" : "/api/v1/mailbox/threads/{id}/unarchive",
                Limited("default", [this, call, archive](Req req, Res res, P p) {
                  auto a = Authenticate(req, res);
                  if (!a) return;
                  mv1::SetArchivedRequest in;
                  in.set_thread_id(p.at("id"));
                  in.set_archived(archive);
                  mv1::Thread out;
                  if (!call(req, res, *a, &mv1::MessagingService::Stub::SetArchived, in, &out)) return;
                  http::WriteJson(res, 200, ThreadJson(out));
                }));
  }
}

}  // namespace stadtportal::gateway

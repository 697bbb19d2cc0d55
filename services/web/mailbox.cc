// The mailbox: threads, one thread (its messages marked read), replies with files.
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

}  // namespace

void Service::AddMailboxRoutes() {
  Get("/mailbox", [this](Req req, Res res, P, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    const bool archived = req.get_param_value("archived") == "1";
    const ApiResult r =
        api_.Get(v.caller, std::string("/api/v1/mailbox/threads?page_size=50&archived=") + (archived ? "true" : "false"));
    if (!r.ok() || !r.body.is_object()) return ApiFailure(res, v, r);
    nlohmann::json threads = nlohmann::json::array();
    for (const auto& t : r.body.value("items", nlohmann::json::array())) {
      const std::string id = Str(t, "id");
      if (!IsId(id)) continue;
      const int64_t unread = t.value("unread", int64_t{0});
      threads.push_back({{"href", "/mailbox/" + id},
                         {"subject", Str(t, "subject")},
                         {"department", Str(t, "department")},
                         {"last", FormatTimestamp(Str(t, "last_message_at"), v.lang)},
                         {"unread", unread > 0},
                         {"unread_count", std::to_string(unread)},
                         {"notice", t.value("has_notice", false)}});
    }
    Page(res, v, 200, "mailbox",
         {{"title", T(v, "mailbox_title")},
          {"threads", threads},
          {"none", threads.empty()},
          {"archived", archived},
          {"unread_total", std::to_string(r.body.value("unread_total", int64_t{0}))}});
  });
  Get("/mailbox/{thread}", [this](Req req, Res res, P p, Visit& v) { ThreadPage(req, res, p.at("thread"), v, {}, ""); });
  Get("/mailbox/attachments/{id}", [this](Req req, Res res, P p, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    const std::string id = p.at("id");
    if (!IsId(id)) return ErrorPage(res, v, 404);
    const ApiResult r = api_.Download(v.caller, "/api/v1/mailbox/attachments/" + id);
    if (!r.ok()) return ApiFailure(res, v, r);
    static const std::set<std::string> kTypes = {"application/pdf", "image/png", "image/jpeg"};
    const std::string type = r.content_type.substr(0, r.content_type.find(';'));
    if (kTypes.count(type) == 0) return ErrorPage(res, v, 503);
    res.status = 200;
    res.set_header("Content-Disposition", "attachment; filename=\"attachment-" + id.substr(0, 8) +
                                              (type == "application/pdf" ? ".pdf" : type == "image/png" ? ".png" : ".jpg") +
                                              "\"");
    res.set_content(r.raw, type);
  });
  Post(
      "/mailbox/{thread}/reply",
      [this](Req req, Res res, P p, Visit& v) {
        if (!RequireLogin(req, res, v)) return;
        const std::string thread = p.at("thread");
        if (!IsId(thread)) return ErrorPage(res, v, 404);
        auto form = ParseForm(req);
        if (!form) return ErrorPage(res, v, 400);
        const std::string body = form->Get("body");
        std::map<std::string, std::string> errors;
        if (body.find_first_not_of(" \t\r\n") == std::string::npos) errors["body"] = T(v, "error_reply_empty");
        std::vector<ApiFile> files;
        for (auto [it, end] = req.files.equal_range("files"); it != end; ++it) {
          if (it->second.filename.empty() && it->second.content.empty()) continue;
          files.push_back({"files", it->second.filename.substr(0, 200), it->second.content_type, it->second.content});
        }
        if (files.size() > 5) errors["files"] = T(v, "error_too_many_files");
        if (errors.empty()) {
          const ApiResult r = api_.Upload(v.caller, "/api/v1/mailbox/threads/" + thread + "/messages", files,
                                          {{"body", body}});
          if (r.ok()) {
            Flash(v, res, "reply_sent");
            return SeeOther(res, "/mailbox/" + thread);
          }
          if (r.status == 422 || r.status == 400 || r.status == 413) {
            const auto codes = r.FieldCodes();
            for (const auto& [field, message] : r.FieldErrors()) {
              errors[field == "body" ? "body" : "files"] =
                  FieldMessage(v, codes.count(field) ? codes.at(field) : "", message);
            }
            if (r.status == 413) errors["files"] = T(v, "error_file_too_large");
            if (errors.empty()) errors["body"] = T(v, "error_check_input");
          } else {
            return ApiFailure(res, v, r);
          }
        }
        ThreadPage(req, res, thread, v, errors, body);
      },
      /*upload=*/true);
}

void Service::ThreadPage(Req req, Res res, const std::string& thread, Visit& v,
                         const std::map<std::string, std::string>& errors, const std::string& draft) {
  if (!RequireLogin(req, res, v)) return;
  if (!IsId(thread)) return ErrorPage(res, v, 404);
  const ApiResult r = api_.Get(v.caller, "/api/v1/mailbox/threads/" + thread);
  if (!r.ok() || !r.body.is_object()) return ApiFailure(res, v, r);
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : r.body.value("messages", nlohmann::json::array())) {
    const std::string id = Str(m, "id");
    const std::string kind = Str(m, "sender_kind");
    // Opening the thread reads its messages: the first read is recorded (the department sees it).
    if (kind != "citizen" && m.contains("first_read_at") && m["first_read_at"].is_null() && IsId(id)) {
      const ApiResult read = api_.Send(v.caller, "POST", "/api/v1/mailbox/messages/" + id + "/read", nullptr);
      if (!read.ok()) log::Warn("message not marked read", {{"status", read.status}});
    }
    nlohmann::json attachments = nlohmann::json::array();
    for (const auto& a : m.value("attachments", nlohmann::json::array())) {
      if (!IsId(Str(a, "id"))) continue;
      attachments.push_back({{"href", "/mailbox/attachments/" + Str(a, "id")},
                             {"filename", Str(a, "filename")},
                             {"size", std::to_string((a.value("size", int64_t{0}) + 1023) / 1024) + " KB"}});
    }
    messages.push_back({{"from", kind == "citizen" ? T(v, "from_you")
                                                   : (Str(m, "sender_name").empty() ? T(v, "from_city") : Str(m, "sender_name"))},
                        {"mine", kind == "citizen"},
                        {"notice", m.value("notice", false)},
                        {"body", Str(m, "body")},
                        {"at", FormatTimestamp(Str(m, "created_at"), v.lang)},
                        {"attachments", attachments},
                        {"has_attachments", !attachments.empty()}});
  }
  nlohmann::json summary = nlohmann::json::array();
  for (const auto& id : {"body", "files"}) {
    auto it = errors.find(id);
    if (it != errors.end()) {
      summary.push_back({{"href", std::string("#") + id},
                         {"text", T(v, std::string(id) == "body" ? "reply_label" : "reply_files") + ": " + it->second}});
    }
  }
  Page(res, v, errors.empty() ? 200 : 422, "thread",
       {{"title", Str(r.body, "subject")},
        {"subject", Str(r.body, "subject")},
        {"department", Str(r.body, "department")},
        {"messages", messages},
        {"errors", summary},
        {"reply_action", "/mailbox/" + thread + "/reply"},
        {"draft", draft},
        {"body_error", errors.count("body") ? errors.at("body") : ""},
        {"files_error", errors.count("files") ? errors.at("files") : ""}});
}

}  // namespace stadtportal::web

// The gateway's routes for back offices (OAuth 2.0 client credentials, the back-office
// API) and for operators of deliveries.
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/api/delivery.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace cv1 = connector::v1;
namespace idv1 = identity::v1;

nlohmann::json DeliveryJson(const cv1::Delivery& d) {
  nlohmann::json j = {{"submission_id", d.submission_id()},
                      {"destination", d.destination()},
                      {"reference", d.reference()},
                      {"service_id", d.service_id()},
                      {"state", d.state()},
                      {"attempts", d.attempts()},
                      {"last_error", d.last_error()},
                      {"created_at", json::Time(d.created_at())},
                      {"delivered_at", json::TimeOrNull(d.has_delivered_at(), d.delivered_at())},
                      {"acknowledged_at", json::TimeOrNull(d.has_acknowledged_at(), d.acknowledged_at())}};
  return j;
}

// A citizen's reply as back offices read it (attachments by id, name and digest).
nlohmann::json ReplyJson(const messaging::v1::Message& m) {
  return {{"id", m.id()},
          {"sequence", m.sequence()},
          {"thread_id", m.thread_id()},
          {"body", m.body()},
          {"attachments", json::Array(m.attachments(),
                                      [](const messaging::v1::Attachment& at) -> nlohmann::json {
                                        return {{"id", at.id()}, {"filename", at.filename()}, {"sha256", at.sha256()}};
                                      })},
          {"created_at", json::Time(m.created_at())}};
}

// RFC 6749 section 5.2 error answers of the token endpoint.
void OAuthError(Res res, int status, const std::string& error, const std::string& description) {
  res.status = status;
  if (status == 401) res.set_header("WWW-Authenticate", "Basic realm=\"stadtportal\"");
  res.set_header("Cache-Control", "no-store");
  res.set_content(nlohmann::json{{"error", error}, {"error_description", description}}.dump(), "application/json");
}

}  // namespace

void Service::AddBackofficeRoutes() {
  Add({"POST", "/api/v1/oauth/token", Who::kAnyone, "auth"}, [this](Req req, Res res, P) {
    if (req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) != 0) {
      return OAuthError(res, 400, "invalid_request", "send application/x-www-form-urlencoded");
    }
    httplib::Params form;
    httplib::detail::parse_query_text(req.body, form);
    // URL-decoded bytes that go on into a gRPC message: valid UTF-8, no controls.
    for (const auto& [name, value] : form) {
      if (!api::IsPlainText(name) || !api::IsPlainText(value)) {
        return OAuthError(res, 400, "invalid_request", "a form field holds control characters or invalid UTF-8");
      }
    }
    auto field = [&](const std::string& name) {
      auto it = form.find(name);
      return it == form.end() ? std::string() : it->second;
    };
    if (field("grant_type") != "client_credentials") {
      return OAuthError(res, 400, "unsupported_grant_type", "only client_credentials");
    }
    idv1::IssueClientTokenRequest in;
    in.set_client_id(field("client_id"));
    in.set_client_secret(field("client_secret"));
    const std::string basic = req.get_header_value("Authorization");
    if (absl::StartsWith(basic, "Basic ")) {
      std::string decoded;
      if (!absl::Base64Unescape(basic.substr(6), &decoded) || decoded.find(':') == std::string::npos ||
          !api::IsPlainText(decoded)) {
        return OAuthError(res, 401, "invalid_client", "malformed Basic credentials");
      }
      in.set_client_id(decoded.substr(0, decoded.find(':')));
      in.set_client_secret(decoded.substr(decoded.find(':') + 1));
    }
    if (!field("client_assertion").empty()) {
      if (field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return OAuthError(res, 400, "invalid_request", "unsupported client_assertion_type");
      }
      in.set_client_assertion(field("client_assertion"));
    }
    in.set_audience(options_.token_url);
    idv1::ClientToken out;
    auto s = Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::IssueClientToken, in, &out);
    if (s.code() == absl::StatusCode::kUnauthenticated) {
      return OAuthError(res, 401, "invalid_client", "client authentication failed");
    }
    if (!s.ok()) return Fail(req, res, s);
    res.set_header("Cache-Control", "no-store");
    http::WriteJson(res, 200,
                    {{"access_token", out.access_token()},
                     {"token_type", "Bearer"},
                     {"expires_in", out.expires_in()},
                     {"scope", out.scope()}});
  });

  Add({"GET", "/api/v1/backoffice/submissions", Who::kBackoffice}, [this](Req req, Res res, P, const Authenticated& a) {
    cv1::ListNewRequest in;
    cv1::ListDeliveriesResponse out;
    if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::ListNew, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.deliveries(), DeliveryJson)}});
  });

  Add({"GET", "/api/v1/backoffice/submissions/{id}", Who::kBackoffice},
      [this](Req req, Res res, P p, const Authenticated& a) {
        cv1::FetchRequest in;
        in.set_submission_id(p.at("id"));
        submission::v1::DeliverySnapshot out;
        if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::Fetch, in, &out)) return;
        // The one delivery document, as push destinations receive it.
        auto document = api::DeliveryDocument(out);
        if (!document.ok()) return Fail(req, res, document.status());
        http::WriteJson(res, 200, *document);
      });

  Add({"POST", "/api/v1/backoffice/submissions/{id}/acknowledge", Who::kBackoffice},
      [this](Req req, Res res, P p, const Authenticated& a) {
        cv1::AcknowledgeRequest in;
        in.set_submission_id(p.at("id"));
        cv1::Delivery out;
        if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::Acknowledge, in, &out)) return;
        http::WriteJson(res, 200, DeliveryJson(out));
      });

  Add({"POST", "/api/v1/backoffice/submissions/{id}/status", Who::kBackoffice},
      [this](Req req, Res res, P p, const Authenticated& a) {
        auto body = Body(req, res,
                         {{"status", {http::FieldType::kString}},
                          {"message", {http::FieldType::kString, false}},
                          {"document", {http::FieldType::kObject, false}}});
        if (!body) return;
        cv1::BackofficeStatusRequest in;
        in.set_submission_id(p.at("id"));
        in.set_status((*body)["status"]);
        in.set_message(body->value("message", ""));
        if (body->contains("document")) {
          // The document issued on approval: {type, expires_on, label?}, each a string.
          const auto& d = (*body)["document"];
          std::vector<status::FieldViolation> errors;
          for (const auto& [key, value] : d.items()) {
            if (key != "type" && key != "expires_on" && key != "label") {
              errors.push_back({"document." + key, "unknown_field"});
            } else if (!value.is_string()) {
              errors.push_back({"document." + key, "wrong_type_string"});
            }
          }
          for (const char* key : {"type", "expires_on"}) {
            if (!d.contains(key)) errors.push_back({std::string("document.") + key, "required"});
          }
          if (!errors.empty()) return Fail(req, res, status::InvalidFields(std::move(errors), "invalid document"));
          in.mutable_document()->set_type(d["type"].get<std::string>());
          in.mutable_document()->set_expires_on(d["expires_on"].get<std::string>());
          in.mutable_document()->set_label(d.value("label", ""));
        }
        submission::v1::Submission out;
        if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::SetStatus, in, &out)) return;
        http::WriteJson(res, 200, {{"submission_id", out.id()}, {"status", out.status()}});
      });

  Add({"POST", "/api/v1/backoffice/submissions/{id}/messages", Who::kBackoffice, "default", 0, /*upload=*/true},
      [this](Req req, Res res, P p, const Authenticated& a) {
        auto body = Body(req, res,
                         {{"body", {http::FieldType::kString}},
                          {"message_key", {http::FieldType::kString}},
                          {"notice", {http::FieldType::kBoolean, false}},
                          {"attachments", {http::FieldType::kArray, false}}},
                         options_.edge.max_upload_bytes);
        if (!body) return;
        cv1::BackofficeMessageRequest in;
        in.set_submission_id(p.at("id"));
        in.set_body((*body)["body"]);
        in.set_message_key((*body)["message_key"]);
        in.set_notice(body->value("notice", false));
        for (const auto& f : body->value("attachments", nlohmann::json::array())) {
          std::string content;
          if (!f.is_object() || !f.contains("content_base64") || !f["content_base64"].is_string() ||
              (f.contains("filename") && !f["filename"].is_string()) ||
              !absl::Base64Unescape(f["content_base64"].get<std::string>(), &content)) {
            return Fail(req, res, status::FieldError("attachments", "wrong_type"));
          }
          auto* att = in.add_attachments();
          att->set_filename(f.value("filename", "document.pdf"));
          att->set_content(content);
        }
        cv1::BackofficeMessageResponse out;
        if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::SendMessage, in, &out)) return;
        http::WriteJson(res, 201, {{"message_id", out.message_id()}, {"thread_id", out.thread_id()}});
      });

  Add({"GET", "/api/v1/backoffice/submissions/{id}/messages", Who::kBackoffice},
      [this](Req req, Res res, P p, const Authenticated& a) {
        cv1::FetchRequest in;
        in.set_submission_id(p.at("id"));
        messaging::v1::ListRepliesResponse out;
        if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::ListMessages, in, &out)) return;
        http::WriteJson(res, 200,
                        {{"items", json::Array(out.messages(), [](const messaging::v1::Message& m) -> nlohmann::json {
                            return {{"id", m.id()},
                                    {"sender_kind", json::SenderKind(m.sender_kind())},
                                    {"body", m.body()},
                                    {"notice", m.notice()},
                                    {"created_at", json::Time(m.created_at())},
                                    {"first_read_at", json::TimeOrNull(m.has_first_read_at(), m.first_read_at())}};
                          })}});
      });

  Add({"GET", "/api/v1/backoffice/replies", Who::kBackoffice}, [this](Req req, Res res, P, const Authenticated& a) {
    int64_t after = 0;
    if (req.has_param("after") && !absl::SimpleAtoi(req.get_param_value("after"), &after)) {
      return Fail(req, res, status::MalformedField("after", "invalid"));
    }
    // Scoped by the destination the client's token names (messaging takes it from there).
    messaging::v1::ListRepliesRequest in;
    in.set_after_sequence(after);
    messaging::v1::ListRepliesResponse out;
    if (!Call(req, res, a, *messaging_, &messaging::v1::MessagingService::Stub::ListReplies, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.messages(), ReplyJson)}});
  });

  // Operators (tenant admins).
  Add({"POST", "/api/v1/admin/backoffice-clients", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res,
                     {{"destination", {http::FieldType::kString}},
                      {"department", {http::FieldType::kString}},
                      {"public_key", {http::FieldType::kString, false}}});
    if (!body) return;
    idv1::CreateClientRequest in;
    in.set_destination((*body)["destination"]);
    in.set_department((*body)["department"]);
    in.set_public_key(body->value("public_key", ""));
    idv1::CreateClientResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::CreateClient, in, &out)) return;
    nlohmann::json j = {{"client_id", out.client_id()}};
    if (!out.client_secret().empty()) j["client_secret"] = out.client_secret();
    res.set_header("Cache-Control", "no-store");
    http::WriteJson(res, 201, j);
  });

  Add({"PUT", "/api/v1/admin/destinations/{id}", Who::kAdmin}, [this](Req req, Res res, P p, const Authenticated& a) {
    auto body = Body(req, res,
                     {{"name", {http::FieldType::kString}},
                      {"mode", {http::FieldType::kString}},
                      {"endpoint_url", {http::FieldType::kString, false}},
                      {"secret", {http::FieldType::kString, false}}});
    if (!body) return;
    cv1::PutDestinationRequest in;
    in.set_id(p.at("id"));
    in.set_name((*body)["name"]);
    const std::string mode = (*body)["mode"];
    in.set_mode(mode == "push"   ? cv1::DELIVERY_MODE_PUSH
                : mode == "pull" ? cv1::DELIVERY_MODE_PULL
                                 : cv1::DELIVERY_MODE_UNSPECIFIED);
    in.set_endpoint_url(body->value("endpoint_url", ""));
    in.set_secret(body->value("secret", ""));
    cv1::Destination out;
    if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::PutDestination, in, &out)) return;
    http::WriteJson(res, 200,
                    {{"id", out.id()},
                     {"name", out.name()},
                     {"mode", out.mode() == cv1::DELIVERY_MODE_PUSH ? "push" : "pull"},
                     {"endpoint_url", out.endpoint_url()},
                     {"has_secret", out.has_secret()}});
  });

  Add({"GET", "/api/v1/admin/dead-letters", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    cv1::ListDeadLettersRequest in;
    in.set_destination(req.get_param_value("destination"));
    cv1::ListDeliveriesResponse out;
    if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::ListDeadLetters, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.deliveries(), DeliveryJson)}});
  });

  Add({"GET", "/api/v1/admin/deliveries/{id}/attempts", Who::kAdmin},
      [this](Req req, Res res, P p, const Authenticated& a) {
        cv1::ListAttemptsRequest in;
        in.set_submission_id(p.at("id"));
        cv1::ListAttemptsResponse out;
        if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::ListAttempts, in, &out)) return;
        http::WriteJson(res, 200, {{"items", json::Array(out.attempts(), [](const cv1::Attempt& at) -> nlohmann::json {
                                      return {{"at", json::Time(at.at())},
                                              {"http_status", at.http_status()},
                                              {"error", at.error()},
                                              {"duration_ms", at.duration_ms()}};
                                    })}});
      });

  Add({"POST", "/api/v1/admin/dead-letters/replay", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(
        req, res,
        {{"submission_id", {http::FieldType::kString, false}}, {"destination", {http::FieldType::kString, false}}});
    if (!body) return;
    cv1::ReplayRequest in;
    in.set_submission_id(body->value("submission_id", ""));
    in.set_destination(body->value("destination", ""));
    cv1::ReplayResponse out;
    if (!Call(req, res, a, *connector_, &cv1::ConnectorService::Stub::Replay, in, &out)) return;
    http::WriteJson(res, 200, {{"replayed", out.replayed()}});
  });
}

}  // namespace stadtportal::gateway

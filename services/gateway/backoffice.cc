// The gateway's routes for back offices (OAuth 2.0 client credentials, the back-office
// API) and for operators of deliveries.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace cv1 = connector::v1;
namespace idv1 = identity::v1;
using google::protobuf::util::TimeUtil;
using Req = const httplib::Request&;
using Res = httplib::Response&;
using P = const http::Params&;

nlohmann::json DeliveryJson(const cv1::Delivery& d) {
  nlohmann::json j = {{"submission_id", d.submission_id()},
                      {"destination", d.destination()},
                      {"reference", d.reference()},
                      {"service_id", d.service_id()},
                      {"state", d.state()},
                      {"attempts", d.attempts()},
                      {"last_error", d.last_error()},
                      {"created_at", TimeUtil::ToString(d.created_at())}};
  j["delivered_at"] = d.has_delivered_at() ? nlohmann::json(TimeUtil::ToString(d.delivered_at())) : nullptr;
  j["acknowledged_at"] = d.has_acknowledged_at() ? nlohmann::json(TimeUtil::ToString(d.acknowledged_at())) : nullptr;
  return j;
}

nlohmann::json ProtoJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return nlohmann::json::parse(out);
}

// RFC 6749 section 5.2 error answers of the token endpoint.
void OAuthError(Res res, int status, const std::string& error, const std::string& description) {
  res.status = status;
  if (status == 401) res.set_header("WWW-Authenticate", "Basic realm=\"stadtportal\"");
  res.set_header("Cache-Control", "no-store");
  res.set_content(nlohmann::json{{"error", error}, {"error_description", description}}.dump(), "application/json");
}

}  // namespace

std::optional<Authenticated> Service::AuthenticateClient(const httplib::Request& req, httplib::Response& res) {
  const std::string authorization = req.get_header_value("Authorization");
  if (!absl::StartsWith(authorization, "Bearer ") || authorization.size() <= 7) {
    res.set_header("WWW-Authenticate", "Bearer");
    Fail(req, res, absl::UnauthenticatedError("back offices send Authorization: Bearer <access token>"));
    return std::nullopt;
  }
  idv1::ResolveClientTokenRequest in;
  in.set_access_token(authorization.substr(7));
  idv1::ClientInfo client;
  auto ctx = grpcx::NewClientContext(options_.grpc_deadline, AnonymousToken("identity"));
  if (auto s = status::FromGrpc(identity_->ResolveClientToken(ctx.get(), in, &client)); !s.ok()) {
    res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    Fail(req, res,
         s.code() == absl::StatusCode::kUnauthenticated ? absl::UnauthenticatedError("invalid or expired token") : s);
    return std::nullopt;
  }
  Authenticated a;
  a.caller.account_id = client.client_id();
  a.caller.tenant = client.tenant();
  a.caller.acting_party = client.department();
  a.caller.roles = {"department", "destination:" + client.destination()};
  a.signer = &signer_;
  a.department = client.department();
  return a;
}

void Service::AddBackofficeRoutes() {
  // Back-office and operator calls to the connector; content problems answer 422.
  auto call = [this](Req req, Res res, const Authenticated& a, auto rpc, const auto& in, auto* out) {
    auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a.Token("connector"));
    absl::Status s = status::FromGrpc(((*connector_).*rpc)(ctx.get(), in, out));
    if (!s.ok()) Fail(req, res, s);
    return s.ok();
  };

  router_.Add("POST", "/api/v1/oauth/token", Limited("auth", [this](Req req, Res res, P) {
                if (req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) != 0) {
                  return OAuthError(res, 400, "invalid_request", "send application/x-www-form-urlencoded");
                }
                httplib::Params form;
                httplib::detail::parse_query_text(req.body, form);
                // URL-decoded bytes that go on into a gRPC message: valid UTF-8, no controls.
                for (const auto& [name, value] : form) {
                  if (!api::IsPlainText(name) || !api::IsPlainText(value)) {
                    return OAuthError(res, 400, "invalid_request",
                                      "a form field holds control characters or invalid UTF-8");
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
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, AnonymousToken("identity"));
                auto s = status::FromGrpc(identity_->IssueClientToken(ctx.get(), in, &out));
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
              }));

  router_.Add("GET", "/api/v1/backoffice/submissions", Limited("default", [this, call](Req req, Res res, P) {
                auto a = AuthenticateClient(req, res);
                if (!a) return;
                cv1::ListNewRequest in;
                cv1::ListDeliveriesResponse out;
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::ListNew, in, &out)) return;
                nlohmann::json items = nlohmann::json::array();
                for (const auto& d : out.deliveries()) items.push_back(DeliveryJson(d));
                http::WriteJson(res, 200, {{"items", items}});
              }));

  router_.Add("GET", "/api/v1/backoffice/submissions/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = AuthenticateClient(req, res);
                if (!a) return;
                cv1::FetchRequest in;
                in.set_submission_id(p.at("id"));
                submission::v1::DeliverySnapshot out;
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::Fetch, in, &out)) return;
                nlohmann::json files = nlohmann::json::array();
                for (const auto& f : out.files()) {
                  files.push_back({{"id", f.attachment().id()},
                                   {"field", f.attachment().field()},
                                   {"filename", f.attachment().filename()},
                                   {"media_type", f.attachment().media_type()},
                                   {"sha256", f.attachment().sha256()},
                                   {"content_base64", absl::Base64Escape(f.content())}});
                }
                nlohmann::json submission = ProtoJson(out.submission());
                submission["data"] = nlohmann::json::parse(out.submission().data_json());
                submission.erase("data_json");
                http::WriteJson(res, 200, {{"submission", submission}, {"files", files}});
              }));

  router_.Add("POST", "/api/v1/backoffice/submissions/{id}/acknowledge",
              Limited("default", [this, call](Req req, Res res, P p) {
                auto a = AuthenticateClient(req, res);
                if (!a) return;
                cv1::AcknowledgeRequest in;
                in.set_submission_id(p.at("id"));
                cv1::Delivery out;
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::Acknowledge, in, &out)) return;
                http::WriteJson(res, 200, DeliveryJson(out));
              }));

  router_.Add(
      "POST", "/api/v1/backoffice/submissions/{id}/status", Limited("default", [this, call](Req req, Res res, P p) {
        auto a = AuthenticateClient(req, res);
        if (!a) return;
        auto body =
            Body(req, res, {{"status", {http::FieldType::kString}}, {"message", {http::FieldType::kString, false}}});
        if (!body) return;
        cv1::BackofficeStatusRequest in;
        in.set_submission_id(p.at("id"));
        in.set_status((*body)["status"]);
        in.set_message(body->value("message", ""));
        submission::v1::Submission out;
        if (!call(req, res, *a, &cv1::ConnectorService::Stub::SetStatus, in, &out)) return;
        http::WriteJson(res, 200, {{"submission_id", out.id()}, {"status", out.status()}});
      }));

  router_.Add("POST", "/api/v1/backoffice/submissions/{id}/messages",
              Limited("default", [this, call](Req req, Res res, P p) {
                auto a = AuthenticateClient(req, res);
                if (!a) return;
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
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::SendMessage, in, &out)) return;
                http::WriteJson(res, 201, {{"message_id", out.message_id()}, {"thread_id", out.thread_id()}});
              }));

  router_.Add(
      "GET", "/api/v1/backoffice/submissions/{id}/messages", Limited("default", [this, call](Req req, Res res, P p) {
        auto a = AuthenticateClient(req, res);
        if (!a) return;
        cv1::FetchRequest in;
        in.set_submission_id(p.at("id"));
        messaging::v1::ListRepliesResponse out;
        if (!call(req, res, *a, &cv1::ConnectorService::Stub::ListMessages, in, &out)) return;
        nlohmann::json items = nlohmann::json::array();
        for (const auto& m : out.messages()) {
          nlohmann::json j = {{"id", m.id()},
                              {"sender_kind", m.sender_kind() == messaging::v1::SENDER_KIND_CITIZEN      ? "citizen"
                                              : m.sender_kind() == messaging::v1::SENDER_KIND_DEPARTMENT ? "department"
                                                                                                         : "system"},
                              {"body", m.body()},
                              {"notice", m.notice()},
                              {"created_at", TimeUtil::ToString(m.created_at())}};
          j["first_read_at"] = m.has_first_read_at() ? nlohmann::json(TimeUtil::ToString(m.first_read_at())) : nullptr;
          items.push_back(j);
        }
        http::WriteJson(res, 200, {{"items", items}});
      }));

  router_.Add("GET", "/api/v1/backoffice/replies", Limited("default", [this](Req req, Res res, P) {
                auto a = AuthenticateClient(req, res);
                if (!a) return;
                int64_t after = 0;
                if (req.has_param("after") && !absl::SimpleAtoi(req.get_param_value("after"), &after)) {
                  return Fail(req, res, status::MalformedField("after", "invalid"));
                }
                // Scoped by the destination the client's token names (messaging takes it from there).
                messaging::v1::ListRepliesRequest in;
                in.set_after_sequence(after);
                messaging::v1::ListRepliesResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("messaging"));
                if (auto s = status::FromGrpc(messaging_->ListReplies(ctx.get(), in, &out)); !s.ok()) {
                  return Fail(req, res, s);
                }
                nlohmann::json items = nlohmann::json::array();
                for (const auto& m : out.messages()) {
                  nlohmann::json attachments = nlohmann::json::array();
                  for (const auto& at : m.attachments()) {
                    attachments.push_back({{"id", at.id()}, {"filename", at.filename()}, {"sha256", at.sha256()}});
                  }
                  items.push_back({{"id", m.id()},
                                   {"sequence", m.sequence()},
                                   {"thread_id", m.thread_id()},
                                   {"body", m.body()},
                                   {"attachments", attachments},
                                   {"created_at", TimeUtil::ToString(m.created_at())}});
                }
                http::WriteJson(res, 200, {{"items", items}});
              }));

  // Operators (tenant admins).
  router_.Add("POST", "/api/v1/admin/backoffice-clients", Limited("default", [this](Req req, Res res, P) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
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
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                if (auto s = status::FromGrpc(identity_->CreateClient(ctx.get(), in, &out)); !s.ok()) {
                  return Fail(req, res, s);
                }
                nlohmann::json j = {{"client_id", out.client_id()}};
                if (!out.client_secret().empty()) j["client_secret"] = out.client_secret();
                res.set_header("Cache-Control", "no-store");
                http::WriteJson(res, 201, j);
              }));

  router_.Add("PUT", "/api/v1/admin/destinations/{id}", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
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
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::PutDestination, in, &out)) return;
                http::WriteJson(res, 200,
                                {{"id", out.id()},
                                 {"name", out.name()},
                                 {"mode", out.mode() == cv1::DELIVERY_MODE_PUSH ? "push" : "pull"},
                                 {"endpoint_url", out.endpoint_url()},
                                 {"has_secret", out.has_secret()}});
              }));

  router_.Add("GET", "/api/v1/admin/dead-letters", Limited("default", [this, call](Req req, Res res, P) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                cv1::ListDeadLettersRequest in;
                in.set_destination(req.get_param_value("destination"));
                cv1::ListDeliveriesResponse out;
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::ListDeadLetters, in, &out)) return;
                nlohmann::json items = nlohmann::json::array();
                for (const auto& d : out.deliveries()) items.push_back(DeliveryJson(d));
                http::WriteJson(res, 200, {{"items", items}});
              }));

  router_.Add("GET", "/api/v1/admin/deliveries/{id}/attempts", Limited("default", [this, call](Req req, Res res, P p) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                cv1::ListAttemptsRequest in;
                in.set_submission_id(p.at("id"));
                cv1::ListAttemptsResponse out;
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::ListAttempts, in, &out)) return;
                nlohmann::json items = nlohmann::json::array();
                for (const auto& at : out.attempts()) {
                  items.push_back({{"at", TimeUtil::ToString(at.at())},
                                   {"http_status", at.http_status()},
                                   {"error", at.error()},
                                   {"duration_ms", at.duration_ms()}});
                }
                http::WriteJson(res, 200, {{"items", items}});
              }));

  router_.Add("POST", "/api/v1/admin/dead-letters/replay", Limited("default", [this, call](Req req, Res res, P) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                auto body = Body(req, res,
                                 {{"submission_id", {http::FieldType::kString, false}},
                                  {"destination", {http::FieldType::kString, false}}});
                if (!body) return;
                cv1::ReplayRequest in;
                in.set_submission_id(body->value("submission_id", ""));
                in.set_destination(body->value("destination", ""));
                cv1::ReplayResponse out;
                if (!call(req, res, *a, &cv1::ConnectorService::Stub::Replay, in, &out)) return;
                http::WriteJson(res, 200, {{"replayed", out.replayed()}});
              }));
}

}  // namespace stadtportal::gateway

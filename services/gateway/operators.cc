// The gateway's routes for administrators themselves: the second factor (TOTP) of the
// session's account, the audit log, and the life cycle of back-office clients.
#include <google/protobuf/util/time_util.h>

#include "libs/grpc/client.h"
#include "libs/status/status.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
using google::protobuf::util::TimeUtil;
using Req = const httplib::Request&;
using Res = httplib::Response&;
using P = const http::Params&;

const char* SecondFactor(idv1::SecondFactor f) {
  switch (f) {
    case idv1::SECOND_FACTOR_PASSED: return "passed";
    case idv1::SECOND_FACTOR_REQUIRED: return "required";
    default: return "not_enrolled";
  }
}

}  // namespace

void Service::AddOperatorRoutes() {
  router_.Add("POST", "/api/v1/auth/totp/enrol", Limited("auth", [this](Req req, Res res, P) {
                auto a = Authenticate(req, res);
                if (!a) return;
                auto body = Body(req, res, {{"enrolment_code", {http::FieldType::kString}}});
                if (!body) return;
                idv1::EnrolTotpRequest in;
                in.set_session_id(a->session_id);
                in.set_enrolment_code((*body)["enrolment_code"]);
                idv1::EnrolTotpResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                if (auto s = status::FromGrpc(identity_->EnrolTotp(ctx.get(), in, &out)); !s.ok()) {
                  return Fail(req, res, s);
                }
                // Shown once: the secret is never returned again.
                res.set_header("Cache-Control", "no-store");
                http::WriteJson(res, 201, {{"secret", out.secret()}, {"otpauth_uri", out.otpauth_uri()}});
              }));

  for (const bool confirm : {true, false}) {
    router_.Add("POST", confirm ? "/api/v1/auth/totp/confirm" : "/api/v1/auth/totp/verify",
                Limited("auth", [this, confirm](Req req, Res res, P) {
                  auto a = Authenticate(req, res);
                  if (!a) return;
                  auto body = Body(req, res, {{"code", {http::FieldType::kString}}});
                  if (!body) return;
                  idv1::TotpCodeRequest in;
                  in.set_session_id(a->session_id);
                  in.set_code((*body)["code"]);
                  idv1::Session out;
                  auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                  absl::Status s = status::FromGrpc(confirm ? identity_->ConfirmTotp(ctx.get(), in, &out)
                                                            : identity_->VerifyTotp(ctx.get(), in, &out));
                  if (!s.ok()) return Fail(req, res, s);
                  http::WriteJson(res, 200, {{"second_factor", SecondFactor(out.second_factor())}});
                }));
  }

  router_.Add("GET", "/api/v1/admin/audit-log", Limited("default", [this](Req req, Res res, P) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                idv1::ListAuditLogRequest in;
                if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
                in.set_actor(req.get_param_value("actor"));
                in.set_action(req.get_param_value("action"));
                idv1::ListAuditLogResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                if (auto s = status::FromGrpc(identity_->ListAuditLog(ctx.get(), in, &out)); !s.ok()) {
                  return Fail(req, res, s);
                }
                nlohmann::json items = nlohmann::json::array();
                for (const auto& e : out.entries()) {
                  items.push_back({{"id", e.id()},
                                   {"at", TimeUtil::ToString(e.at())},
                                   {"service", e.service()},
                                   {"actor", e.actor()},
                                   {"session_ref", e.session_ref()},
                                   {"action", e.action()},
                                   {"targets", nlohmann::json::parse(e.targets_json(), nullptr, false)},
                                   {"outcome", e.outcome()},
                                   {"request_id", e.request_id()}});
                }
                nlohmann::json body = {{"items", items}};
                if (!out.page().next_page_token().empty()) body["next_page_token"] = out.page().next_page_token();
                http::WriteJson(res, 200, body);
              }));

  for (const char* verb : {"disable", "enable"}) {
    const bool disable = std::string(verb) == "disable";
    router_.Add("POST", std::string("/api/v1/admin/backoffice-clients/{id}/") + verb,
                Limited("default", [this, disable](Req req, Res res, P p) {
                  auto a = AuthenticateAdmin(req, res);
                  if (!a) return;
                  idv1::SetClientDisabledRequest in;
                  in.set_client_id(p.at("id"));
                  in.set_disabled(disable);
                  idv1::BackofficeClient out;
                  auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                  if (auto s = status::FromGrpc(identity_->SetClientDisabled(ctx.get(), in, &out)); !s.ok()) {
                    return Fail(req, res, s);
                  }
                  http::WriteJson(res, 200,
                                  {{"client_id", out.client_id()},
                                   {"destination", out.destination()},
                                   {"department", out.department()},
                                   {"disabled", out.disabled()}});
                }));
  }

  router_.Add("POST", "/api/v1/admin/backoffice-clients/{id}/rotate-secret",
              Limited("default", [this](Req req, Res res, P p) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                idv1::RotateClientSecretRequest in;
                in.set_client_id(p.at("id"));
                idv1::CreateClientResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                if (auto s = status::FromGrpc(identity_->RotateClientSecret(ctx.get(), in, &out)); !s.ok()) {
                  return Fail(req, res, s);
                }
                res.set_header("Cache-Control", "no-store");
                http::WriteJson(res, 200, {{"client_id", out.client_id()}, {"client_secret", out.client_secret()}});
              }));
}

}  // namespace stadtportal::gateway

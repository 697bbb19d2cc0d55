// The gateway's routes for administrators themselves: the second factor (TOTP) of the
// session's account, the audit log, and the life cycle of back-office clients.
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;

const char* SecondFactor(idv1::SecondFactor f) {
  switch (f) {
    case idv1::SECOND_FACTOR_PASSED: return "passed";
    case idv1::SECOND_FACTOR_REQUIRED: return "required";
    default: return "not_enrolled";
  }
}

}  // namespace

void Service::AddOperatorRoutes() {
  Add({"POST", "/api/v1/auth/totp/enrol", Who::kSession, "auth"}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res, {{"enrolment_code", {http::FieldType::kString}}});
    if (!body) return;
    idv1::EnrolTotpRequest in;
    in.set_session_id(a.session_id);
    in.set_enrolment_code((*body)["enrolment_code"]);
    idv1::EnrolTotpResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::EnrolTotp, in, &out)) return;
    // Shown once: the secret is never returned again.
    res.set_header("Cache-Control", "no-store");
    http::WriteJson(res, 201, {{"secret", out.secret()}, {"otpauth_uri", out.otpauth_uri()}});
  });

  for (const bool confirm : {true, false}) {
    Add({"POST", confirm ? "/api/v1/auth/totp/confirm" : "/api/v1/auth/totp/verify", Who::kSession, "auth"},
        [this, confirm](Req req, Res res, P, const Authenticated& a) {
          auto body = Body(req, res, {{"code", {http::FieldType::kString}}});
          if (!body) return;
          idv1::TotpCodeRequest in;
          in.set_session_id(a.session_id);
          in.set_code((*body)["code"]);
          idv1::Session out;
          if (!Call(req, res, a, *identity_,
                    confirm ? &idv1::IdentityService::Stub::ConfirmTotp : &idv1::IdentityService::Stub::VerifyTotp, in,
                    &out))
            return;
          http::WriteJson(res, 200, {{"second_factor", SecondFactor(out.second_factor())}});
        });
  }

  Add({"GET", "/api/v1/admin/audit-log", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    idv1::ListAuditLogRequest in;
    if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
    in.set_actor(req.get_param_value("actor"));
    in.set_action(req.get_param_value("action"));
    idv1::ListAuditLogResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::ListAuditLog, in, &out)) return;
    http::WriteJson(res, 200,
                    json::Page(json::Array(out.entries(),
                                           [](const idv1::AuditEntry& e) -> nlohmann::json {
                                             return {
                                                 {"id", e.id()},
                                                 {"at", json::Time(e.at())},
                                                 {"service", e.service()},
                                                 {"actor", e.actor()},
                                                 {"session_ref", e.session_ref()},
                                                 {"action", e.action()},
                                                 {"targets", nlohmann::json::parse(e.targets_json(), nullptr, false)},
                                                 {"outcome", e.outcome()},
                                                 {"request_id", e.request_id()}};
                                           }),
                               out.page()));
  });

  for (const char* verb : {"disable", "enable"}) {
    const bool disable = std::string(verb) == "disable";
    Add({"POST", std::string("/api/v1/admin/backoffice-clients/{id}/") + verb, Who::kAdmin},
        [this, disable](Req req, Res res, P p, const Authenticated& a) {
          idv1::SetClientDisabledRequest in;
          in.set_client_id(p.at("id"));
          in.set_disabled(disable);
          idv1::BackofficeClient out;
          if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::SetClientDisabled, in, &out)) return;
          http::WriteJson(res, 200,
                          {{"client_id", out.client_id()},
                           {"destination", out.destination()},
                           {"department", out.department()},
                           {"disabled", out.disabled()}});
        });
  }

  Add({"POST", "/api/v1/admin/backoffice-clients/{id}/rotate-secret", Who::kAdmin},
      [this](Req req, Res res, P p, const Authenticated& a) {
        idv1::RotateClientSecretRequest in;
        in.set_client_id(p.at("id"));
        idv1::CreateClientResponse out;
        if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::RotateClientSecret, in, &out)) return;
        res.set_header("Cache-Control", "no-store");
        http::WriteJson(res, 200, {{"client_id", out.client_id()}, {"client_secret", out.client_secret()}});
      });
}

}  // namespace stadtportal::gateway

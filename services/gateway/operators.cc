// The gateway's routes for administrators themselves: the second factor (TOTP) of the
// session's account, the audit log, and the life cycle of back-office clients and of
// partner portals (the relying parties of the OpenID Provider to come).
#include "absl/strings/str_cat.h"
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

nlohmann::json PartnerClientJson(const idv1::PartnerClient& c) {
  const auto strings = [](const google::protobuf::RepeatedPtrField<std::string>& values) {
    return nlohmann::json(std::vector<std::string>(values.begin(), values.end()));
  };
  const auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  return {{"client_id", c.client_id()},
          {"name", c.name()},
          {"redirect_uris", strings(c.redirect_uris())},
          {"post_logout_redirect_uris", strings(c.post_logout_redirect_uris())},
          {"backchannel_logout_uri", or_null(c.backchannel_logout_uri())},
          {"scopes", strings(c.scopes())},
          {"token_endpoint_auth_method", c.token_endpoint_auth_method()},
          {"jwks", c.jwks_json().empty() ? nlohmann::json() : nlohmann::json::parse(c.jwks_json(), nullptr, false)},
          {"jwks_uri", or_null(c.jwks_uri())},
          {"disabled", c.disabled()},
          {"created_at", json::Time(c.created_at())},
          {"updated_at", json::Time(c.updated_at())}};
}

// The credentials answer: the client, and its new secret when it has one (shown once).
nlohmann::json PartnerCredentialsJson(const idv1::PartnerClientCredentials& out) {
  nlohmann::json j = PartnerClientJson(out.client());
  if (!out.client_secret().empty()) j["client_secret"] = out.client_secret();
  return j;
}

// The strings of a JSON array field into `out`; INVALID_ARGUMENT naming each element
// that is not a string.
absl::Status Strings(const nlohmann::json& body, const std::string& field,
                     google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!body.contains(field)) return absl::OkStatus();
  std::vector<status::FieldViolation> bad;
  const auto& values = body[field];
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].is_string()) {
      out->Add(values[i].get<std::string>());
    } else {
      bad.push_back({absl::StrCat(field, "[", i, "]"), "invalid"});
    }
  }
  return bad.empty() ? absl::OkStatus() : status::InvalidFields(std::move(bad));
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

  // Partner portals (Portalverbund).
  Add({"POST", "/api/v1/admin/partner-clients", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res,
                     {{"name", {http::FieldType::kString}},
                      {"redirect_uris", {http::FieldType::kArray}},
                      {"post_logout_redirect_uris", {http::FieldType::kArray, false}},
                      {"backchannel_logout_uri", {http::FieldType::kString, false}},
                      {"scopes", {http::FieldType::kArray}},
                      {"token_endpoint_auth_method", {http::FieldType::kString}},
                      {"jwks", {http::FieldType::kObject, false}},
                      {"jwks_uri", {http::FieldType::kString, false}}});
    if (!body) return;
    idv1::CreatePartnerClientRequest in;
    in.set_name((*body)["name"]);
    using Field = std::pair<std::string, google::protobuf::RepeatedPtrField<std::string>*>;
    for (const Field& f : {Field{"redirect_uris", in.mutable_redirect_uris()},
                           Field{"post_logout_redirect_uris", in.mutable_post_logout_redirect_uris()},
                           Field{"scopes", in.mutable_scopes()}}) {
      if (auto s = Strings(*body, f.first, f.second); !s.ok()) return Fail(req, res, s);
    }
    in.set_backchannel_logout_uri(body->value("backchannel_logout_uri", ""));
    in.set_token_endpoint_auth_method((*body)["token_endpoint_auth_method"]);
    if (body->contains("jwks")) in.set_jwks_json((*body)["jwks"].dump());
    in.set_jwks_uri(body->value("jwks_uri", ""));
    idv1::PartnerClientCredentials out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::CreatePartnerClient, in, &out)) return;
    res.set_header("Cache-Control", "no-store");
    http::WriteJson(res, 201, PartnerCredentialsJson(out));
  });

  Add({"GET", "/api/v1/admin/partner-clients", Who::kAdmin}, [this](Req req, Res res, P, const Authenticated& a) {
    idv1::ListPartnerClientsRequest in;
    if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
    idv1::ListPartnerClientsResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::ListPartnerClients, in, &out)) return;
    http::WriteJson(res, 200, json::Page(json::Array(out.clients(), PartnerClientJson), out.page()));
  });

  Add({"GET", "/api/v1/admin/partner-clients/{id}", Who::kAdmin},
      [this](Req req, Res res, P p, const Authenticated& a) {
        idv1::GetPartnerClientRequest in;
        in.set_client_id(p.at("id"));
        idv1::PartnerClient out;
        if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::GetPartnerClient, in, &out)) return;
        http::WriteJson(res, 200, PartnerClientJson(out));
      });

  for (const char* verb : {"disable", "enable"}) {
    const bool disable = std::string(verb) == "disable";
    Add({"POST", std::string("/api/v1/admin/partner-clients/{id}/") + verb, Who::kAdmin},
        [this, disable](Req req, Res res, P p, const Authenticated& a) {
          idv1::SetPartnerClientDisabledRequest in;
          in.set_client_id(p.at("id"));
          in.set_disabled(disable);
          idv1::PartnerClient out;
          if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::SetPartnerClientDisabled, in, &out)) return;
          http::WriteJson(res, 200, PartnerClientJson(out));
        });
  }

  // A secret client gets a new secret (no body); a private_key_jwt client sends its new
  // key set or key set URL.
  Add({"POST", "/api/v1/admin/partner-clients/{id}/rotate-credentials", Who::kAdmin},
      [this](Req req, Res res, P p, const Authenticated& a) {
        idv1::RotatePartnerClientCredentialsRequest in;
        in.set_client_id(p.at("id"));
        if (!req.body.empty()) {
          auto body = Body(
              req, res, {{"jwks", {http::FieldType::kObject, false}}, {"jwks_uri", {http::FieldType::kString, false}}});
          if (!body) return;
          if (body->contains("jwks")) in.set_jwks_json((*body)["jwks"].dump());
          in.set_jwks_uri(body->value("jwks_uri", ""));
        }
        idv1::PartnerClientCredentials out;
        if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::RotatePartnerClientCredentials, in, &out)) {
          return;
        }
        res.set_header("Cache-Control", "no-store");
        http::WriteJson(res, 200, PartnerCredentialsJson(out));
      });
}

}  // namespace stadtportal::gateway

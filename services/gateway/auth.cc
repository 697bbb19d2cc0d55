// The gateway's routes for registration, log-in, sessions and the accounts tenant
// admins look after (callers are resolved by the route table, routes.cc).
#include <algorithm>

#include <google/protobuf/util/time_util.h>

#include "libs/api/text.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
using google::protobuf::util::TimeUtil;
using http::FieldSpec;
using http::FieldType;

// An administrator's reason, as identity bounds it.
constexpr size_t kMaxReason = 500;

idv1::Language ParseLanguage(const nlohmann::json& body) {
  return body.value("language", "de") == "en" ? idv1::LANGUAGE_EN : idv1::LANGUAGE_DE;
}

}  // namespace

nlohmann::json Service::StartSession(Res res, const idv1::LoginResponse& login) {
  const auto& s = login.session();
  const int64_t max_age = std::max<int64_t>(
      0, TimeUtil::TimestampToSeconds(s.expires_at()) - TimeUtil::TimestampToSeconds(TimeUtil::GetCurrentTime()));
  res.set_header("Set-Cookie", std::string(kSessionCookie) + "=" + login.session_id() +
                                   "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age));
  return {{"token", login.session_id()},
          {"expires_at", json::Time(s.expires_at())},
          {"assurance_level", json::AssuranceLevel(s.assurance_level())},
          {"csrf_token", s.csrf_token()}};
}

void Service::AddAuthRoutes() {
  // Calls identity anonymously and answers with `status` (204/202) or the problem.
  auto answer = [this](Req req, Res res, auto rpc, const auto& in, auto* out, int status) {
    if (!Call(req, res, *identity_, rpc, in, out)) return;
    if (status == 202)
      http::WriteJson(res, 202, {{"status", "accepted"}});
    else
      res.status = status;
  };

  Add({"POST", "/api/v1/auth/register", Who::kAnyone, "auth"}, [this, answer](Req req, Res res, P) {
    auto body = Body(req, res,
                     {{"email", {FieldType::kString}},
                      {"password", {FieldType::kString}},
                      {"display_name", {FieldType::kString}},
                      {"language", {FieldType::kString, false}}});
    if (!body) return;
    const std::string lang = body->value("language", "de");
    if (lang != "de" && lang != "en") return Fail(req, res, status::FieldError("language", "invalid"));
    idv1::RegisterRequest in;
    in.mutable_tenant()->set_key(options_.tenant);
    in.set_email((*body)["email"]);
    in.set_password((*body)["password"]);
    in.set_display_name((*body)["display_name"]);
    in.set_language(ParseLanguage(*body));
    idv1::RegisterResponse out;
    answer(req, res, &idv1::IdentityService::Stub::Register, in, &out, 202);
  });

  Add({"POST", "/api/v1/auth/verify-email", Who::kAnyone, "auth"}, [this, answer](Req req, Res res, P) {
    auto body = Body(req, res, {{"token", {FieldType::kString}}});
    if (!body) return;
    idv1::VerifyEmailRequest in;
    in.set_token((*body)["token"]);
    idv1::VerifyEmailResponse out;
    answer(req, res, &idv1::IdentityService::Stub::VerifyEmail, in, &out, 204);
  });

  Add({"POST", "/api/v1/auth/login", Who::kAnyone, "auth"}, [this](Req req, Res res, P) {
    auto body = Body(req, res, {{"email", {FieldType::kString}}, {"password", {FieldType::kString}}});
    if (!body) return;
    idv1::LoginRequest in;
    in.mutable_tenant()->set_key(options_.tenant);
    in.set_email((*body)["email"]);
    in.set_password((*body)["password"]);
    in.set_client_ip(Client(req));
    idv1::LoginResponse out;
    if (!Call(req, res, *identity_, &idv1::IdentityService::Stub::Login, in, &out)) return;
    http::WriteJson(res, 200, StartSession(res, out));
  });

  for (const bool everywhere : {false, true}) {
    Add({"POST", everywhere ? "/api/v1/auth/logout-all" : "/api/v1/auth/logout", Who::kSession},
        [this, everywhere](Req req, Res res, P, const Authenticated& a) {
          idv1::LogoutRequest in;
          in.set_session_id(a.session_id);
          idv1::LogoutResponse out;
          if (!Call(req, res, a, *identity_,
                    everywhere ? &idv1::IdentityService::Stub::LogoutAll : &idv1::IdentityService::Stub::Logout, in,
                    &out))
            return;
          res.set_header("Set-Cookie",
                         std::string(kSessionCookie) + "=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
          // A session from a provider with single log-out: the browser ends it there too.
          if (!out.upstream_logout_url().empty()) {
            return http::WriteJson(res, 200, {{"upstream_logout_url", out.upstream_logout_url()}});
          }
          res.status = 204;
        });
  }

  Add({"POST", "/api/v1/auth/password-reset", Who::kAnyone, "auth"}, [this, answer](Req req, Res res, P) {
    auto body = Body(req, res, {{"email", {FieldType::kString}}});
    if (!body) return;
    idv1::RequestPasswordResetRequest in;
    in.mutable_tenant()->set_key(options_.tenant);
    in.set_email((*body)["email"]);
    idv1::RequestPasswordResetResponse out;
    answer(req, res, &idv1::IdentityService::Stub::RequestPasswordReset, in, &out, 202);
  });

  Add({"POST", "/api/v1/auth/password-reset/confirm", Who::kAnyone, "auth"}, [this, answer](Req req, Res res, P) {
    auto body = Body(req, res, {{"token", {FieldType::kString}}, {"new_password", {FieldType::kString}}});
    if (!body) return;
    idv1::ConfirmPasswordResetRequest in;
    in.set_token((*body)["token"]);
    in.set_new_password((*body)["new_password"]);
    idv1::ConfirmPasswordResetResponse out;
    answer(req, res, &idv1::IdentityService::Stub::ConfirmPasswordReset, in, &out, 204);
  });

  Add({"POST", "/api/v1/auth/password-change", Who::kSession, "auth"}, [this](Req req, Res res, P,
                                                                              const Authenticated& a) {
    auto body = Body(req, res, {{"current_password", {FieldType::kString}}, {"new_password", {FieldType::kString}}});
    if (!body) return;
    idv1::ChangePasswordRequest in;
    in.set_session_id(a.session_id);
    in.set_current_password((*body)["current_password"]);
    in.set_new_password((*body)["new_password"]);
    idv1::LoginResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::ChangePassword, in, &out)) return;
    http::WriteJson(res, 200, StartSession(res, out));
  });

  auto account_json = [](const idv1::Account& a) {
    const char* state = a.state() == idv1::ACCOUNT_STATE_LOCKED   ? "locked"
                        : a.state() == idv1::ACCOUNT_STATE_ACTIVE ? "active"
                                                                  : "pending_verification";
    return nlohmann::json{{"id", a.id()},
                          {"email", a.email()},
                          {"display_name", a.display_name()},
                          {"state", state},
                          {"created_at", json::Time(a.created_at())}};
  };

  Add({"GET", "/api/v1/admin/accounts", Who::kAdmin},
      [this, account_json](Req req, Res res, P, const Authenticated& a) {
        // The reason is recorded and shown to every person found (their access log): a
        // look-up without a readable one is a malformed request, and nothing is looked up.
        const std::string reason = req.get_param_value("reason");
        if (reason.empty() || req.get_param_value_count("reason") != 1) {
          return Fail(req, res, status::MalformedField("reason", "required", "say why you look (recorded)"));
        }
        if (!api::ValidateText(reason, "reason", kMaxReason).ok()) {
          return Fail(req, res,
                      status::MalformedField("reason", "invalid", "1 to 500 characters without control characters"));
        }
        idv1::FindAccountsRequest in;
        in.set_query(req.get_param_value("q"));
        in.set_reason(reason);
        idv1::FindAccountsResponse out;
        if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::FindAccounts, in, &out)) return;
        http::WriteJson(res, 200, {{"items", json::Array(out.accounts(), account_json)}});
      });

  for (const bool lock : {true, false}) {
    Add({"POST", lock ? "/api/v1/admin/accounts/{id}/lock" : "/api/v1/admin/accounts/{id}/unlock", Who::kAdmin},
        [this, lock, account_json](Req req, Res res, P p, const Authenticated& a) {
          auto body = Body(req, res, {{"reason", {FieldType::kString}}});
          if (!body) return;
          idv1::SetAccountLockedRequest in;
          in.set_account_id(p.at("id"));
          in.set_locked(lock);
          in.set_reason((*body)["reason"]);
          idv1::Account out;
          if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::SetAccountLocked, in, &out)) return;
          http::WriteJson(res, 200, account_json(out));
        });
  }

  Add({"GET", "/api/v1/me", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    idv1::GetAccountRequest in;
    in.set_id(a.session.account_id());
    idv1::Account account;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::GetAccount, in, &account)) return;
    http::WriteJson(res, 200,
                    {{"account_id", account.id()},
                     {"email", account.email()},
                     {"display_name", account.display_name()},
                     {"language", account.language() == idv1::LANGUAGE_EN ? "en" : "de"},
                     {"tenant", account.tenant().key()},
                     {"roles", a.session.roles()},
                     {"assurance_level", json::AssuranceLevel(a.session.assurance_level())},
                     {"auth_method", a.session.auth_method()},
                     {"session_expires_at", json::Time(a.session.expires_at())}});
  });
}

}  // namespace stadtportal::gateway

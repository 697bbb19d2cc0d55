// The gateway's log-in routes and session resolution.
#include <algorithm>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
namespace acv1 = accounts::v1;
using google::protobuf::util::TimeUtil;
using http::FieldSpec;
using http::FieldType;

const char* Level(idv1::AssuranceLevel l) {
  switch (l) {
    case idv1::ASSURANCE_LEVEL_HIGH: return "high";
    case idv1::ASSURANCE_LEVEL_SUBSTANTIAL: return "substantial";
    default: return "low";
  }
}

bool IsUnsafe(const std::string& method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

std::string CookieValue(const httplib::Request& req, const std::string& name) {
  for (absl::string_view header : absl::StrSplit(req.get_header_value("Cookie"), ';')) {
    header = absl::StripAsciiWhitespace(header);
    if (absl::StartsWith(header, name + "=")) return std::string(header.substr(name.size() + 1));
  }
  return "";
}

// Compares without an early exit, so timing tells nothing about the token.
bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

idv1::Language ParseLanguage(const nlohmann::json& body) {
  return body.value("language", "de") == "en" ? idv1::LANGUAGE_EN : idv1::LANGUAGE_DE;
}

}  // namespace

bool Service::NamesCaller(const httplib::Request& req) {
  const std::string authorization = req.get_header_value("Authorization");
  return (authorization.size() > 7 && absl::StartsWith(authorization, "Bearer ")) ||
         !CookieValue(req, kSessionCookie).empty();
}

std::optional<Authenticated> Service::Authenticate(const httplib::Request& req, httplib::Response& res,
                                                   bool acting_party_checked) {
  Authenticated a;
  bool from_cookie = false;
  const std::string authorization = req.get_header_value("Authorization");
  if (!authorization.empty()) {
    if (!absl::StartsWith(authorization, "Bearer ")) {
      Fail(req, res, absl::UnauthenticatedError("use Authorization: Bearer <token>"));
      return std::nullopt;
    }
    a.session_id = authorization.substr(7);
  } else {
    a.session_id = CookieValue(req, kSessionCookie);
    from_cookie = true;
  }
  if (a.session_id.empty()) {
    res.set_header("WWW-Authenticate", "Bearer");
    Fail(req, res, absl::UnauthenticatedError("log-in required"));
    return std::nullopt;
  }
  idv1::ResolveSessionRequest in;
  in.set_session_id(a.session_id);
  auto ctx = grpcx::NewClientContext(options_.grpc_deadline, AnonymousToken("identity"));
  absl::Status s = status::FromGrpc(identity_->ResolveSession(ctx.get(), in, &a.session));
  // A session of another municipality is no session here.
  if (s.ok() && a.session.tenant().key() != options_.tenant)
    s = absl::UnauthenticatedError("session unknown or expired");
  if (!s.ok()) {
    if (s.code() == absl::StatusCode::kUnauthenticated)
      res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    Fail(req, res, s);
    return std::nullopt;
  }
  // Browsers send cookies on their own: unsafe requests must prove they come from our pages.
  if (from_cookie && IsUnsafe(req.method) && !SameToken(req.get_header_value("X-CSRF-Token"), a.session.csrf_token())) {
    Fail(req, res, absl::PermissionDeniedError("X-CSRF-Token missing or wrong"));
    return std::nullopt;
  }
  // Per account too, so that one account cannot spread its load over many addresses.
  if (limiter_ != nullptr) {
    auto d = limiter_->Take("account", a.session.account_id(), options_.default_rate);
    if (d.ok() && !d->allowed) {
      res.set_header("Retry-After", std::to_string(d->retry_after));
      Fail(req, res, absl::ResourceExhaustedError("too many requests for this account; retry later"));
      return std::nullopt;
    }
    if (!d.ok()) log::Warn("rate limit unavailable", {{"error", std::string(d.status().message())}});
  }
  auth::Caller& caller = a.caller;
  caller.account_id = a.session.account_id();
  caller.acting_party = a.session.acting_party_id();
  caller.tenant = a.session.tenant().key();
  caller.assurance = Level(a.session.assurance_level());
  for (const auto& role : a.session.roles()) {
    // Administrative roles only with the second factor passed, so that no service acts
    // on them for a session that has only the password.
    if (!auth::IsAdminRole(role) || a.session.second_factor() == idv1::SECOND_FACTOR_PASSED) {
      caller.roles.push_back(role);
    }
  }
  caller.session_ref = a.session.session_ref();
  a.signer = &signer_;
  // Acting for an organisation lasts only as long as the membership: asked at every
  // request (only sessions acting for an organisation pay for it), so a removal applies
  // to the removed member's next call to any service.
  if (acting_party_checked && !caller.acting_party.empty()) {
    acv1::CheckActingPartyRequest check;
    check.set_party_id(caller.acting_party);
    acv1::Party party;
    auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a.Token("accounts"));
    absl::Status m = status::FromGrpc(accounts_->CheckActingParty(ctx.get(), check, &party));
    if (m.code() == absl::StatusCode::kNotFound) m = absl::PermissionDeniedError("acting_party: not_a_member");
    if (!m.ok()) {
      Fail(req, res, m);
      return std::nullopt;
    }
  }
  return a;
}

std::optional<Authenticated> Service::AuthenticateAdmin(const httplib::Request& req, httplib::Response& res) {
  auto a = Authenticate(req, res);
  if (!a) return a;
  const bool admin = std::any_of(a->session.roles().begin(), a->session.roles().end(), auth::IsAdminRole);
  if (!admin || a->session.second_factor() == idv1::SECOND_FACTOR_PASSED) return a;
  const bool enrolled = a->session.second_factor() == idv1::SECOND_FACTOR_REQUIRED;
  Fail(req, res,
       absl::PermissionDeniedError(enrolled ? "second factor required: send a code to POST /api/v1/auth/totp/verify"
                                            : "second factor required: enrol at POST /api/v1/auth/totp/enrol"),
       {{"second_factor", enrolled ? "verify" : "enrol"}});
  return std::nullopt;
}

void Service::WriteSession(httplib::Response& res, const idv1::LoginResponse& login) {
  const auto& s = login.session();
  const int64_t max_age = std::max<int64_t>(
      0, TimeUtil::TimestampToSeconds(s.expires_at()) - TimeUtil::TimestampToSeconds(TimeUtil::GetCurrentTime()));
  res.set_header("Set-Cookie", std::string(kSessionCookie) + "=" + login.session_id() +
                                   "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age));
  http::WriteJson(res, 200,
                  {{"token", login.session_id()},
                   {"expires_at", TimeUtil::ToString(s.expires_at())},
                   {"assurance_level", Level(s.assurance_level())},
                   {"csrf_token", s.csrf_token()}});
}

void Service::AddAuthRoutes() {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  using P = const http::Params&;

  // Calls identity anonymously and answers with `status` (204/202) or the problem.
  auto call = [this](Req req, Res res, auto rpc, const auto& in, auto* out, int status) {
    auto ctx = grpcx::NewClientContext(options_.grpc_deadline, AnonymousToken("identity"));
    absl::Status s = status::FromGrpc(((*identity_).*rpc)(ctx.get(), in, out));
    if (!s.ok()) return Fail(req, res, s);
    if (status == 202)
      http::WriteJson(res, 202, {{"status", "accepted"}});
    else
      res.status = status;
  };

  router_.Add("POST", "/api/v1/auth/register", Limited("auth", [this, call](Req req, Res res, P) {
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
                call(req, res, &idv1::IdentityService::Stub::Register, in, &out, 202);
              }));

  router_.Add("POST", "/api/v1/auth/verify-email", Limited("auth", [this, call](Req req, Res res, P) {
                auto body = Body(req, res, {{"token", {FieldType::kString}}});
                if (!body) return;
                idv1::VerifyEmailRequest in;
                in.set_token((*body)["token"]);
                idv1::VerifyEmailResponse out;
                call(req, res, &idv1::IdentityService::Stub::VerifyEmail, in, &out, 204);
              }));

  router_.Add("POST", "/api/v1/auth/login", Limited("auth", [this](Req req, Res res, P) {
                auto body = Body(req, res, {{"email", {FieldType::kString}}, {"password", {FieldType::kString}}});
                if (!body) return;
                idv1::LoginRequest in;
                in.mutable_tenant()->set_key(options_.tenant);
                in.set_email((*body)["email"]);
                in.set_password((*body)["password"]);
                in.set_client_ip(Client(req));
                idv1::LoginResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, AnonymousToken("identity"));
                absl::Status s = status::FromGrpc(identity_->Login(ctx.get(), in, &out));
                if (!s.ok()) return Fail(req, res, s);
                WriteSession(res, out);
              }));

  for (const bool everywhere : {false, true}) {
    router_.Add("POST", everywhere ? "/api/v1/auth/logout-all" : "/api/v1/auth/logout",
                Limited("default", [this, everywhere](Req req, Res res, P) {
                  auto a = Authenticate(req, res);
                  if (!a) return;
                  idv1::LogoutRequest in;
                  in.set_session_id(a->session_id);
                  idv1::LogoutResponse out;
                  auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                  absl::Status s = status::FromGrpc(everywhere ? identity_->LogoutAll(ctx.get(), in, &out)
                                                               : identity_->Logout(ctx.get(), in, &out));
                  if (!s.ok()) return Fail(req, res, s);
                  res.set_header("Set-Cookie",
                                 std::string(kSessionCookie) + "=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
                  res.status = 204;
                }));
  }

  router_.Add("POST", "/api/v1/auth/password-reset", Limited("auth", [this, call](Req req, Res res, P) {
                auto body = Body(req, res, {{"email", {FieldType::kString}}});
                if (!body) return;
                idv1::RequestPasswordResetRequest in;
                in.mutable_tenant()->set_key(options_.tenant);
                in.set_email((*body)["email"]);
                idv1::RequestPasswordResetResponse out;
                call(req, res, &idv1::IdentityService::Stub::RequestPasswordReset, in, &out, 202);
              }));

  router_.Add("POST", "/api/v1/auth/password-reset/confirm", Limited("auth", [this, call](Req req, Res res, P) {
                auto body = Body(req, res, {{"token", {FieldType::kString}}, {"new_password", {FieldType::kString}}});
                if (!body) return;
                idv1::ConfirmPasswordResetRequest in;
                in.set_token((*body)["token"]);
                in.set_new_password((*body)["new_password"]);
                idv1::ConfirmPasswordResetResponse out;
                call(req, res, &idv1::IdentityService::Stub::ConfirmPasswordReset, in, &out, 204);
              }));

  router_.Add("POST", "/api/v1/auth/password-change", Limited("auth", [this](Req req, Res res, P) {
                auto a = Authenticate(req, res);
                if (!a) return;
                auto body = Body(req, res,
                                 {{"current_password", {FieldType::kString}}, {"new_password", {FieldType::kString}}});
                if (!body) return;
                idv1::ChangePasswordRequest in;
                in.set_session_id(a->session_id);
                in.set_current_password((*body)["current_password"]);
                in.set_new_password((*body)["new_password"]);
                idv1::LoginResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                absl::Status s = status::FromGrpc(identity_->ChangePassword(ctx.get(), in, &out));
                if (!s.ok()) return Fail(req, res, s);
                WriteSession(res, out);
              }));

  auto account_json = [](const idv1::Account& a) {
    const char* state = a.state() == idv1::ACCOUNT_STATE_LOCKED   ? "locked"
                        : a.state() == idv1::ACCOUNT_STATE_ACTIVE ? "active"
                                                                  : "pending_verification";
    return nlohmann::json{{"id", a.id()},
                          {"email", a.email()},
                          {"display_name", a.display_name()},
                          {"state", state},
                          {"created_at", TimeUtil::ToString(a.created_at())}};
  };

  router_.Add("GET", "/api/v1/admin/accounts", Limited("default", [this, account_json](Req req, Res res, P) {
                auto a = AuthenticateAdmin(req, res);
                if (!a) return;
                idv1::FindAccountsRequest in;
                in.set_query(req.get_param_value("q"));
                in.set_reason(req.get_param_value("reason"));
                idv1::FindAccountsResponse out;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                absl::Status s = status::FromGrpc(identity_->FindAccounts(ctx.get(), in, &out));
                if (!s.ok()) return Fail(req, res, s);
                nlohmann::json items = nlohmann::json::array();
                for (const auto& account : out.accounts()) items.push_back(account_json(account));
                http::WriteJson(res, 200, {{"items", items}});
              }));

  for (const bool lock : {true, false}) {
    router_.Add("POST", lock ? "/api/v1/admin/accounts/{id}/lock" : "/api/v1/admin/accounts/{id}/unlock",
                Limited("default", [this, lock, account_json](Req req, Res res, P p) {
                  auto a = AuthenticateAdmin(req, res);
                  if (!a) return;
                  auto body = Body(req, res, {{"reason", {FieldType::kString}}});
                  if (!body) return;
                  idv1::SetAccountLockedRequest in;
                  in.set_account_id(p.at("id"));
                  in.set_locked(lock);
                  in.set_reason((*body)["reason"]);
                  idv1::Account out;
                  auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                  absl::Status s = status::FromGrpc(identity_->SetAccountLocked(ctx.get(), in, &out));
                  if (!s.ok()) return Fail(req, res, s);
                  http::WriteJson(res, 200, account_json(out));
                }));
  }

  router_.Add("GET", "/api/v1/me", Limited("default", [this](Req req, Res res, P) {
                auto a = Authenticate(req, res);
                if (!a) return;
                idv1::GetAccountRequest in;
                in.set_id(a->session.account_id());
                idv1::Account account;
                auto ctx = grpcx::NewClientContext(options_.grpc_deadline, a->Token("identity"));
                absl::Status s = status::FromGrpc(identity_->GetAccount(ctx.get(), in, &account));
                if (!s.ok()) return Fail(req, res, s);
                http::WriteJson(res, 200,
                                {{"account_id", account.id()},
                                 {"email", account.email()},
                                 {"display_name", account.display_name()},
                                 {"language", account.language() == idv1::LANGUAGE_EN ? "en" : "de"},
                                 {"tenant", account.tenant().key()},
                                 {"roles", a->session.roles()},
                                 {"assurance_level", Level(a->session.assurance_level())},
                                 {"auth_method", a->session.auth_method()},
                                 {"session_expires_at", TimeUtil::ToString(a->session.expires_at())}});
              }));
}

}  // namespace stadtportal::gateway

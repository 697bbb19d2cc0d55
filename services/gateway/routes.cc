// The gateway's route table: the rate limit, the caller each route asks for, then the
// handler. The only place that resolves callers.
#include <algorithm>
#include <stdexcept>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
namespace acv1 = accounts::v1;

bool IsUnsafe(const std::string& method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

std::string CookieValue(Req req, const std::string& name) {
  for (absl::string_view header : absl::StrSplit(req.get_header_value("Cookie"), ';')) {
    header = absl::StripAsciiWhitespace(header);
    if (absl::StartsWith(header, name + "=")) return std::string(header.substr(name.size() + 1));
  }
  return "";
}

// Compares without an early exit, so timing tells nothing about the token.
bool SameToken(const std::string& a, const std::string& b) { return !a.empty() && auth::ConstantTimeEqual(a, b); }

}  // namespace

std::string Service::SessionOf(Req req) {
  const std::string authorization = req.get_header_value("Authorization");
  if (absl::StartsWith(authorization, "Bearer ") && authorization.size() > 7) return authorization.substr(7);
  return CookieValue(req, kSessionCookie);
}

std::string Service::FlowOf(Req req) { return CookieValue(req, kFederationCookie); }

std::string Service::CookieOf(Req req, const std::string& name) { return CookieValue(req, name); }

bool Service::IsJwt(const std::string& token) {
  if (token.size() > 8192) return false;
  int dots = 0;
  size_t part = 0;
  for (char c : token) {
    if (c == '.') {
      if (part == 0) return false;
      ++dots;
      part = 0;
    } else if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
      ++part;
    } else {
      return false;
    }
  }
  return dots == 2 && part > 0;
}

std::string Service::LiveSessionOf(Req req) {
  const std::string session_id = SessionOf(req);
  if (session_id.empty()) return "";
  idv1::ResolveSessionRequest in;
  in.set_session_id(session_id);
  idv1::Session session;
  const absl::Status s =
      Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ResolveSession, in, &session);
  return s.ok() && session.tenant().key() == options_.tenant ? session_id : "";
}

void Service::Add(const Route& route, CallerHandler handler) {
  if (route.who == Who::kAnyone) throw std::logic_error("route without a caller: " + route.path);
  // Partner tokens act for the person only: never on administrative or back-office routes.
  if (!route.scope.empty() && route.who != Who::kSession && route.who != Who::kPartner)
    throw std::logic_error("a scope on a route not for sessions: " + route.path);
  Register(route, [this, who = route.who, scope = route.scope, handler = std::move(handler)](Req req, Res res, P p) {
    if (auto a = Resolve(req, res, who, scope)) handler(req, res, p, *a);
  });
}

void Service::Add(const Route& route, AnonymousHandler handler) {
  if (route.who != Who::kAnyone) throw std::logic_error("route needs a caller: " + route.path);
  if (!route.scope.empty()) throw std::logic_error("a scope without a caller: " + route.path);
  Register(route, std::move(handler));
}

void Service::Register(const Route& route, AnonymousHandler handler) {
  if (route.limit.empty()) {
    router_.Add(route.method, route.path, std::move(handler));
  } else {
    router_.Add(route.method, route.path,
                [this, group = route.limit, handler = std::move(handler)](Req req, Res res, P p) {
                  if (WithinRate(req, res, group)) handler(req, res, p);
                });
  }
  if (route.upload) {
    router_.SetUpload(route.method, route.path);
  } else if (route.max_body != 0) {
    router_.SetBodyLimit(route.method, route.path, route.max_body);
  }
}

bool Service::WithinRate(Req req, Res res, const std::string& group) {
  if (limiter_ == nullptr) return true;
  auto d =
      limiter_->Take(group, http::ClientKey(Client(req)), group == "auth" ? options_.auth_rate : options_.default_rate);
  if (!d.ok()) {
    // Rate limiting must not take the API down with Redis: let the request pass.
    log::Warn("rate limit unavailable", {{"error", std::string(d.status().message())}});
    return true;
  }
  res.set_header("RateLimit-Limit", std::to_string(d->limit));
  res.set_header("RateLimit-Remaining", std::to_string(d->remaining));
  res.set_header("RateLimit-Reset", std::to_string(d->reset_seconds));
  if (d->allowed) return true;
  res.set_header("Retry-After", std::to_string(d->retry_after));
  Fail(req, res, absl::ResourceExhaustedError("too many requests; retry later"));
  return false;
}

bool Service::WithinAccountRate(Req req, Res res, const std::string& account_id) {
  if (limiter_ == nullptr) return true;
  auto d = limiter_->Take("account", account_id, options_.default_rate);
  if (!d.ok()) {
    log::Warn("rate limit unavailable", {{"error", std::string(d.status().message())}});
    return true;
  }
  if (d->allowed) return true;
  res.set_header("Retry-After", std::to_string(d->retry_after));
  Fail(req, res, absl::ResourceExhaustedError("too many requests for this account; retry later"));
  return false;
}

std::optional<Authenticated> Service::Resolve(Req req, Res res, Who who, const std::string& scope) {
  // A partner portal's access token (a JWT; session ids never are one) goes to the OpenID
  // Provider, never to the sessions: on a route without a scope for it, 403 at best.
  const std::string authorization = req.get_header_value("Authorization");
  if (who != Who::kBackoffice && absl::StartsWith(authorization, "Bearer ") && IsJwt(authorization.substr(7))) {
    return AuthenticatePartner(req, res, authorization.substr(7),
                               who == Who::kSession || who == Who::kPartner ? scope : "");
  }
  switch (who) {
    case Who::kPartner:
      res.set_header("WWW-Authenticate", NamesCaller(req) ? "Bearer error=\"invalid_token\"" : "Bearer");
      Fail(req, res, absl::UnauthenticatedError("send a partner portal's access token: Authorization: Bearer <token>"));
      return std::nullopt;
    case Who::kBackoffice: return AuthenticateClient(req, res);
    case Who::kAdmin: return AuthenticateAdmin(req, res);
    case Who::kSessionAnyParty: return Authenticate(req, res, /*acting_party_checked=*/false);
    default: return Authenticate(req, res, /*acting_party_checked=*/true);
  }
}

bool Service::NamesCaller(Req req) {
  const std::string authorization = req.get_header_value("Authorization");
  return (authorization.size() > 7 && absl::StartsWith(authorization, "Bearer ")) ||
         !CookieValue(req, kSessionCookie).empty();
}

std::optional<Authenticated> Service::Authenticate(Req req, Res res, bool acting_party_checked) {
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
  absl::Status s =
      Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ResolveSession, in, &a.session);
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
  if (!WithinAccountRate(req, res, a.session.account_id())) return std::nullopt;
  auth::Caller& caller = a.caller;
  caller.account_id = a.session.account_id();
  caller.acting_party = a.session.acting_party_id();
  caller.tenant = a.session.tenant().key();
  caller.assurance = json::AssuranceLevel(a.session.assurance_level());
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
    absl::Status m =
        Invoke(a.Token("accounts"), *accounts_, &acv1::AccountsService::Stub::CheckActingParty, check, &party);
    if (m.code() == absl::StatusCode::kNotFound) m = absl::PermissionDeniedError("acting_party: not_a_member");
    if (!m.ok()) {
      Fail(req, res, m);
      return std::nullopt;
    }
  }
  return a;
}

std::optional<Authenticated> Service::AuthenticatePartner(Req req, Res res, const std::string& token,
                                                          const std::string& scope) {
  idv1::ResolveAccessTokenRequest in;
  in.set_access_token(token);
  idv1::AccessTokenInfo info;
  absl::Status s =
      Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ResolveAccessToken, in, &info);
  // Without an OpenID Provider (FAILED_PRECONDITION) a JWT is no credential here either;
  // a token of another municipality neither.
  if ((s.ok() && info.tenant() != options_.tenant) || s.code() == absl::StatusCode::kFailedPrecondition ||
      s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kNotFound) {
    s = absl::UnauthenticatedError("invalid or expired token");
  }
  if (!s.ok()) {
    if (s.code() == absl::StatusCode::kUnauthenticated) {
      res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      s = absl::UnauthenticatedError("invalid or expired token");
    }
    Fail(req, res, s);
    return std::nullopt;
  }
  if (scope.empty() || std::find(info.scopes().begin(), info.scopes().end(), scope) == info.scopes().end()) {
    res.set_header("WWW-Authenticate", scope.empty() ? std::string("Bearer error=\"insufficient_scope\"")
                                                     : "Bearer error=\"insufficient_scope\", scope=\"" + scope + "\"");
    Fail(req, res,
         absl::PermissionDeniedError(scope.empty() ? "insufficient_scope: not open to partner portals"
                                                   : "insufficient_scope: the token needs the scope " + scope),
         scope.empty() ? nlohmann::json::object() : nlohmann::json{{"scope", scope}});
    return std::nullopt;
  }
  if (!WithinAccountRate(req, res, info.account_id())) return std::nullopt;
  Authenticated a;
  // No session: the person acting as themself at the token's level, without any role.
  a.session.set_account_id(info.account_id());
  a.session.mutable_tenant()->set_key(info.tenant());
  a.session.set_assurance_level(info.assurance_level());
  a.session.set_session_ref("partner:" + info.token_id());
  a.caller.account_id = info.account_id();
  a.caller.tenant = info.tenant();
  a.caller.assurance = json::AssuranceLevel(info.assurance_level());
  a.caller.session_ref = a.session.session_ref();
  // The serving service records the read for the person's access log: by whom, and why.
  a.caller.partner_id = info.client_id();
  a.caller.partner_name = info.client_name();
  a.caller.partner_scope = scope;
  a.signer = &signer_;
  a.partner = std::move(info);
  return a;
}

std::optional<Authenticated> Service::AuthenticateAdmin(Req req, Res res) {
  auto a = Authenticate(req, res, /*acting_party_checked=*/true);
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

std::optional<Authenticated> Service::AuthenticateClient(Req req, Res res) {
  const std::string authorization = req.get_header_value("Authorization");
  if (!absl::StartsWith(authorization, "Bearer ") || authorization.size() <= 7) {
    res.set_header("WWW-Authenticate", "Bearer");
    Fail(req, res, absl::UnauthenticatedError("back offices send Authorization: Bearer <access token>"));
    return std::nullopt;
  }
  idv1::ResolveClientTokenRequest in;
  in.set_access_token(authorization.substr(7));
  idv1::ClientInfo client;
  if (auto s =
          Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ResolveClientToken, in, &client);
      !s.ok()) {
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

}  // namespace stadtportal::gateway

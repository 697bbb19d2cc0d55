// The gateway's endpoints of the OpenID Provider for partner portals
// (docs/openid-provider.md): discovery and keys passed through, the authorization
// endpoint with its page (log-in, step-up, consent), the token, userinfo, introspection
// and end-session endpoints, and the person's connected portals. The protocol is the
// identity service's; here the browser's and the partner's HTTP meets it.
#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "libs/api/text.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/pages.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
namespace acv1 = accounts::v1;
using google::protobuf::util::TimeUtil;

constexpr char kContinuePath[] = "/api/v1/oidc/authorize/continue";
// Bounds of what a browser or partner sends: parameters, names and values.
constexpr size_t kMaxParams = 32;
constexpr size_t kMaxName = 64;
constexpr size_t kMaxValue = 8192;

// The parameters as a map, each at most once and within the bounds; else the reason.
absl::StatusOr<std::map<std::string, std::string>> Single(const httplib::Params& params) {
  std::map<std::string, std::string> out;
  if (params.size() > kMaxParams) return absl::InvalidArgumentError("invalid_request: too many parameters");
  for (const auto& [name, value] : params) {
    if (name.empty() || name.size() > kMaxName) return absl::InvalidArgumentError("invalid_request: parameter name");
    for (char c : name) {
      if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
        return absl::InvalidArgumentError("invalid_request: parameter name");
      }
    }
    if (value.size() > kMaxValue) return absl::InvalidArgumentError("invalid_request: " + name + " too long");
    // Form bodies arrive URL-decoded and unchecked by the edge (queries are checked there).
    if (!api::IsPlainText(value)) {
      return absl::InvalidArgumentError("invalid_request: " + name + " holds control characters or invalid UTF-8");
    }
    if (!out.emplace(name, value).second) return absl::InvalidArgumentError("invalid_request: " + name + " repeated");
  }
  return out;
}

// A form body (application/x-www-form-urlencoded), each field once.
absl::StatusOr<std::map<std::string, std::string>> Form(const httplib::Request& req) {
  if (!absl::StartsWith(absl::AsciiStrToLower(req.get_header_value("Content-Type")),
                        "application/x-www-form-urlencoded")) {
    return absl::InvalidArgumentError("invalid_request: send application/x-www-form-urlencoded");
  }
  httplib::Params form;
  httplib::detail::parse_query_text(req.body, form);
  return Single(form);
}

std::string Field(const std::map<std::string, std::string>& form, const std::string& name) {
  auto it = form.find(name);
  return it == form.end() ? std::string() : it->second;
}

// Ids a browser brings in cookies (session, pending authorization): URL-safe and short;
// anything else is no id.
std::string Id(const std::string& value) {
  if (value.size() > 256) return "";
  for (char c : value) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return "";
  }
  return value;
}

// scheme://host[:port] of an absolute http(s) URL, "" unless plainly one (it goes into a
// Content-Security-Policy).
std::string OriginOf(const std::string& url) {
  size_t start = 0;
  if (absl::StartsWith(url, "https://")) {
    start = 8;
  } else if (absl::StartsWith(url, "http://")) {
    start = 7;
  } else {
    return "";
  }
  const size_t end = url.find_first_of("/?#", start);
  const std::string origin = url.substr(0, end);
  if (origin.size() == start || origin.size() > 300) return "";
  for (size_t i = start; i < origin.size(); ++i) {
    const char c = origin[i];
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' ||
          c == ']')) {
      return "";
    }
  }
  return origin;
}

// The pending authorization's cookie: its id, and the client's origin the page's forms
// may lead to (the 303 that answers the last form goes there).
std::string AuthorizeCookie(const std::string& pending_id, const std::string& origin, int max_age) {
  std::string value = pending_id;
  if (!pending_id.empty() && !origin.empty()) value += "." + absl::WebSafeBase64Escape(origin);
  return std::string(Service::kAuthorizeCookie) + "=" + value +
         "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age);
}

struct Pending {
  std::string id;
  std::string origin;
};

Pending PendingOf(const std::string& cookie) {
  Pending p;
  const auto dot = cookie.find('.');
  p.id = Id(cookie.substr(0, dot));
  if (dot != std::string::npos) {
    std::string origin;
    if (absl::WebSafeBase64Unescape(cookie.substr(dot + 1), &origin) && OriginOf(origin) == origin) p.origin = origin;
  }
  return p;
}

std::string LevelName(idv1::AssuranceLevel l) {
  switch (l) {
    case idv1::ASSURANCE_LEVEL_LOW: return "low";
    case idv1::ASSURANCE_LEVEL_SUBSTANTIAL: return "substantial";
    case idv1::ASSURANCE_LEVEL_HIGH: return "high";
    default: return "";
  }
}

// The OAuth error codes a status message may start with ("invalid_grant: …").
const std::vector<std::string>& OAuthErrors() {
  static const std::vector<std::string> kErrors = {"invalid_request",       "invalid_client",         "invalid_grant",
                                                   "unauthorized_client",   "unsupported_grant_type", "invalid_scope",
                                                   "unsupported_token_type"};
  return kErrors;
}

// RFC 6749 error_description: printable ASCII without '"' and '\'.
std::string Description(absl::string_view text) {
  std::string out;
  for (char c : text.substr(0, 300)) {
    if (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') out += c;
  }
  return out;
}

}  // namespace

void Service::FailOAuth(Req req, Res res, const absl::Status& s) {
  const std::string m(s.message());
  std::string error;
  for (const auto& e : OAuthErrors()) {
    if (absl::StartsWith(m, e + ":") || m == e) error = e;
  }
  if (error.empty() && s.code() == absl::StatusCode::kInvalidArgument) error = "invalid_request";
  if (error.empty() && s.code() == absl::StatusCode::kUnauthenticated) error = "invalid_client";
  if (error.empty()) return Fail(req, res, s);  // Unavailable, internal, throttled: the problem.
  nlohmann::json body = {{"error", error}};
  const std::string description = Description(absl::StripAsciiWhitespace(
      m.size() > error.size() ? absl::string_view(m).substr(error.size() + 1) : absl::string_view()));
  if (!description.empty()) body["error_description"] = description;
  if (error == "invalid_client") res.set_header("WWW-Authenticate", "Basic realm=\"stadtportal\"");
  http::WriteJson(res, error == "invalid_client" ? 401 : 400, body);
  res.set_header("Pragma", "no-cache");
}

void Service::AnswerAuthorization(Req req, Res res, const idv1::AuthorizeResponse& out, std::string form_origin) {
  if (out.has_login()) StartSession(res, out.login());
  const bool had_pending = !CookieOf(req, kAuthorizeCookie).empty();
  switch (out.result_case()) {
    case idv1::AuthorizeResponse::kRedirectUri:
      if (had_pending) res.set_header("Set-Cookie", AuthorizeCookie("", "", 0));
      res.status = 303;
      res.set_header("Location", out.redirect_uri());
      return;
    case idv1::AuthorizeResponse::kInteraction: {
      const auto& i = out.interaction();
      pages::Page page;
      page.lang = i.ui_locale() == "en" || i.ui_locale() == "de" ? i.ui_locale() : http::Language(req);
      page.csrf_token = i.csrf_token();
      page.client_name = i.client_name();
      page.scopes.assign(i.scopes().begin(), i.scopes().end());
      page.required_level = LevelName(i.required_level());
      page.problem = i.problem();
      page.retry_after_seconds = i.retry_after_seconds();
      page.email = i.login_hint();
      page.kind = i.kind() == idv1::Interaction::KIND_CONSENT   ? pages::Page::Kind::kConsent
                  : i.kind() == idv1::Interaction::KIND_STEP_UP ? pages::Page::Kind::kStepUp
                                                                : pages::Page::Kind::kLogin;
      if (page.kind != pages::Page::Kind::kConsent) {
        // Log in (or again, higher) with a provider, and come back to this authorization
        // with the page's CSRF token (the way back is a GET without our form).
        const std::string level = page.required_level.empty() ? "low" : page.required_level;
        const std::string back =
            httplib::detail::encode_query_param(std::string(kContinuePath) + "?csrf_token=" + i.csrf_token());
        for (const auto& p : StepUpProviders(level)) {
          page.providers.push_back(
              {p["name"].value(page.lang, ""), p["step_up_url"].get<std::string>() + "&return_to=" + back});
        }
      }
      if (!i.pending_id().empty()) res.set_header("Set-Cookie", AuthorizeCookie(i.pending_id(), form_origin, 600));
      int status = 200;
      if (page.problem == "throttled") {
        status = 429;
        res.set_header("Retry-After", std::to_string(std::max(1, page.retry_after_seconds)));
      }
      return pages::Write(res, status, page, form_origin);
    }
    default: {
      if (had_pending) res.set_header("Set-Cookie", AuthorizeCookie("", "", 0));
      pages::Page page;
      page.kind = pages::Page::Kind::kError;
      page.lang = http::Language(req);
      page.error = out.error().error().empty() ? "invalid_request" : out.error().error();
      page.error_description = out.error().description();
      return pages::Write(res, 400, page);
    }
  }
}

void Service::ContinueAuthorization(Req req, Res res, idv1::ContinueAuthorizationRequest in) {
  const Pending pending = PendingOf(CookieOf(req, kAuthorizeCookie));
  idv1::AuthorizeResponse out;
  if (pending.id.empty()) {
    // Another browser's page, or one kept too long: nothing to go on with.
    out.mutable_error()->set_error("expired");
    return AnswerAuthorization(req, res, out, "");
  }
  in.set_pending_id(pending.id);
  in.set_session_id(Id(CookieOf(req, kSessionCookie)));
  in.set_client_ip(Client(req));
  const absl::Status s =
      Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ContinueAuthorization, in, &out);
  if (!s.ok()) {
    pages::Page page;
    page.lang = http::Language(req);
    const int status = status::HttpStatus(s);
    page.error = status >= 500 ? "temporarily_unavailable" : "invalid_request";
    if (status < 500) page.error_description = std::string(s.message());
    if (status == 429 || s.code() == absl::StatusCode::kResourceExhausted) res.set_header("Retry-After", "60");
    return pages::Write(res, status, page);
  }
  AnswerAuthorization(req, res, out, pending.origin);
}

void Service::UserInfo(Req req, Res res, const Authenticated& a) {
  const auto& t = *a.partner;
  auto has = [&t](const std::string& scope) {
    return std::find(t.scopes().begin(), t.scopes().end(), scope) != t.scopes().end();
  };
  nlohmann::json claims = {{"sub", t.subject()}};
  if (has("email") && !t.email().empty()) {
    claims["email"] = t.email();
    claims["email_verified"] = t.email_verified();
  }
  if (has("profile") || has("address")) {
    // The profile the person keeps with us, read as the person for the partner, which
    // accounts records with the scopes it is read for.
    Authenticated reading;
    reading.caller = a.caller;
    reading.caller.partner_scope = has("profile") && has("address") ? "profile address"
                                   : has("profile")                 ? "profile"
                                                                    : "address";
    reading.signer = a.signer;
    acv1::Profile profile;
    if (!Call(req, res, reading, *accounts_, &acv1::AccountsService::Stub::GetProfile, {}, &profile)) return;
    std::map<std::string, std::string> v;
    for (const auto& attr : profile.attributes()) v[attr.name()] = attr.value();
    auto set = [&claims, &v](const char* claim, const char* attribute) {
      if (!v[attribute].empty()) claims[claim] = v[attribute];
    };
    if (has("profile")) {
      set("given_name", "given_name");
      set("family_name", "family_name");
      set("birthdate", "birth_date");
      std::string name = v["given_name"];
      if (!v["family_name"].empty()) name += (name.empty() ? "" : " ") + v["family_name"];
      if (!name.empty()) claims["name"] = name;
    }
    if (has("address")) {
      nlohmann::json address = nlohmann::json::object();
      std::string street = v["address.street"];
      if (!v["address.house_number"].empty()) street += (street.empty() ? "" : " ") + v["address.house_number"];
      if (!street.empty()) address["street_address"] = street;
      if (!v["address.postcode"].empty()) address["postal_code"] = v["address.postcode"];
      if (!v["address.city"].empty()) address["locality"] = v["address.city"];
      if (!v["address.country"].empty()) address["country"] = v["address.country"];
      if (!address.empty()) claims["address"] = address;
    }
  }
  http::WriteJson(res, 200, claims);
}

void Service::AddOpenIdRoutes() {
  // Discovery and keys, as identity made them, cacheable as long as it says.
  auto document = [this](auto rpc) {
    return [this, rpc](Req req, Res res, P) {
      idv1::JsonDocument out;
      absl::Status s = Invoke(AnonymousToken("identity"), *identity_, rpc, {}, &out);
      if (s.code() == absl::StatusCode::kFailedPrecondition) s = absl::NotFoundError("no OpenID Provider here");
      if (!Succeeded(req, res, s)) return;
      for (const char* name : {"Cache-Control", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                               "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"}) {
        res.headers.erase(name);
      }
      res.set_header("Cache-Control", "public, max-age=" + std::to_string(std::max(0, out.max_age_seconds())));
      // Relying parties read them from their own servers or, the keys, from browsers.
      res.set_header("Access-Control-Allow-Origin", "*");
      res.status = 200;
      res.set_content(out.json(), "application/json");
    };
  };
  Add({"GET", "/.well-known/openid-configuration"},
      AnonymousHandler(document(&idv1::IdentityService::Stub::GetOpenIdConfiguration)));
  Add({"GET", "/api/v1/oidc/jwks"}, AnonymousHandler(document(&idv1::IdentityService::Stub::GetProviderJwks)));

  // The authorization request (a browser, sent by the partner portal).
  Add({"GET", "/api/v1/oidc/authorize"}, [this](Req req, Res res, P) {
    auto params = Single(req.params);
    if (!params.ok()) {
      // Never to the redirect URI: which one holds is what a repeated parameter blurs.
      idv1::AuthorizeResponse out;
      out.mutable_error()->set_error("invalid_request");
      out.mutable_error()->set_description(std::string(params.status().message()).substr(17));
      return AnswerAuthorization(req, res, out, "");
    }
    idv1::AuthorizeRequest in;
    for (const auto& [name, value] : *params) (*in.mutable_params())[name] = value;
    in.set_session_id(Id(CookieOf(req, kSessionCookie)));
    idv1::AuthorizeResponse out;
    const absl::Status s =
        Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::Authorize, in, &out);
    if (!s.ok()) {
      pages::Page page;
      page.lang = http::Language(req);
      const int status = s.code() == absl::StatusCode::kFailedPrecondition ? 404 : status::HttpStatus(s);
      page.error = status >= 500 ? "temporarily_unavailable" : "invalid_request";
      return pages::Write(res, status, page);
    }
    // An interaction comes only for a client's registered redirect URI: its page's last
    // form may lead there.
    AnswerAuthorization(req, res, out, out.has_interaction() ? OriginOf(Field(*params, "redirect_uri")) : "");
  });

  // The page's log-in form: the same checks and throttling as the API's log-in.
  Add({"POST", "/api/v1/oidc/authorize/login", Who::kAnyone, "auth"}, [this](Req req, Res res, P) {
    auto form = Form(req);
    idv1::ContinueAuthorizationRequest in;
    if (form.ok()) {
      in.set_csrf_token(Field(*form, "csrf_token"));
      in.set_email(Field(*form, "email"));
      in.set_password(Field(*form, "password"));
    }
    if (!form.ok() || in.email().size() > 254 || in.password().size() > 1024 || in.csrf_token().size() > 256) {
      pages::Page page;
      page.lang = http::Language(req);
      page.error = "invalid_request";
      return pages::Write(res, 400, page);
    }
    ContinueAuthorization(req, res, std::move(in));
  });

  // The page's consent form.
  Add({"POST", "/api/v1/oidc/authorize/consent"}, [this](Req req, Res res, P) {
    auto form = Form(req);
    const std::string decision = form.ok() ? Field(*form, "decision") : "";
    if (!form.ok() || (decision != "allow" && decision != "deny") || Field(*form, "csrf_token").size() > 256) {
      pages::Page page;
      page.lang = http::Language(req);
      page.error = "invalid_request";
      return pages::Write(res, 400, page);
    }
    idv1::ContinueAuthorizationRequest in;
    in.set_csrf_token(Field(*form, "csrf_token"));
    in.set_decision(decision == "allow" ? idv1::ContinueAuthorizationRequest::DECISION_ALLOW
                                        : idv1::ContinueAuthorizationRequest::DECISION_DENY);
    ContinueAuthorization(req, res, std::move(in));
  });

  // Back from a log-in or step-up with a provider (its return_to): on with the session
  // the browser has now.
  Add({"GET", kContinuePath}, [this](Req req, Res res, P) {
    idv1::ContinueAuthorizationRequest in;
    const std::string csrf = req.get_param_value("csrf_token");
    if (csrf.size() <= 256) in.set_csrf_token(csrf);
    ContinueAuthorization(req, res, std::move(in));
  });

  // The token endpoint (RFC 6749 3.2): form fields, client authentication, JSON answers
  // never cached.
  Add({"POST", "/api/v1/oidc/token"}, [this](Req req, Res res, P) {
    res.set_header("Pragma", "no-cache");
    auto form = Form(req);
    if (!form.ok()) return FailOAuth(req, res, form.status());
    const std::string authorization = req.get_header_value("Authorization");
    if (authorization.size() > 4096) return FailOAuth(req, res, absl::UnauthenticatedError("invalid_client"));
    idv1::TokenRequest in;
    for (const auto& [name, value] : *form) (*in.mutable_params())[name] = value;
    in.set_authorization(authorization);
    in.set_client_ip(Client(req));
    idv1::TokenResponse out;
    const absl::Status s =
        Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ExchangeToken, in, &out);
    if (!s.ok()) return FailOAuth(req, res, s);
    nlohmann::json body = {{"access_token", out.access_token()},
                           {"token_type", out.token_type().empty() ? "Bearer" : out.token_type()},
                           {"expires_in", out.expires_in()}};
    if (!out.refresh_token().empty()) body["refresh_token"] = out.refresh_token();
    if (!out.id_token().empty()) body["id_token"] = out.id_token();
    if (!out.scope().empty()) body["scope"] = out.scope();
    http::WriteJson(res, 200, body);
  });

  // Token introspection (RFC 7662) for partner portals, authenticated as at the token endpoint.
  Add({"POST", "/api/v1/oidc/introspect"}, [this](Req req, Res res, P) {
    res.set_header("Pragma", "no-cache");
    auto form = Form(req);
    if (!form.ok()) return FailOAuth(req, res, form.status());
    const std::string authorization = req.get_header_value("Authorization");
    if (authorization.size() > 4096) return FailOAuth(req, res, absl::UnauthenticatedError("invalid_client"));
    const std::string token = Field(*form, "token");
    if (token.empty()) return FailOAuth(req, res, absl::InvalidArgumentError("invalid_request: token missing"));
    idv1::IntrospectTokenRequest in;
    for (const auto& [name, value] : *form) {
      if (name != "token" && name != "token_type_hint") (*in.mutable_params())[name] = value;
    }
    in.set_authorization(authorization);
    in.set_token(token);
    idv1::IntrospectTokenResponse out;
    const absl::Status s =
        Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::IntrospectToken, in, &out);
    if (!s.ok()) return FailOAuth(req, res, s);
    if (!out.active()) return http::WriteJson(res, 200, {{"active", false}});
    const auto& t = out.token();
    nlohmann::json body = {{"active", true},
                           {"token_type", "Bearer"},
                           {"client_id", t.client_id()},
                           {"sub", t.subject()},
                           {"scope", absl::StrJoin(t.scopes(), " ")},
                           {"acr", LevelName(t.assurance_level())},
                           {"iat", TimeUtil::TimestampToSeconds(t.issued_at())},
                           {"exp", TimeUtil::TimestampToSeconds(t.expires_at())}};
    if (!t.token_id().empty()) body["jti"] = t.token_id();
    http::WriteJson(res, 200, body);
  });

  // Userinfo (OpenID Connect Core 5.3): GET or POST with the access token as Bearer.
  for (const char* method : {"GET", "POST"}) {
    Add({method, "/api/v1/oidc/userinfo", Who::kPartner, "default", 0, false, "openid"},
        [this](Req req, Res res, P, const Authenticated& a) { UserInfo(req, res, a); });
  }

  // RP-initiated log-out (a browser, sent by the partner portal).
  Add({"GET", "/api/v1/oidc/logout"}, [this](Req req, Res res, P) {
    auto params = Single(req.params);
    std::string lang = http::Language(req);
    if (params.ok()) {
      const std::string locales = Field(*params, "ui_locales");
      if (absl::StartsWith(locales, "en")) lang = "en";
      if (absl::StartsWith(locales, "de")) lang = "de";
    }
    pages::Page page;
    page.lang = lang;
    if (!params.ok()) {
      page.error = "invalid_request";
      page.error_description = std::string(params.status().message()).substr(17);
      return pages::Write(res, 400, page);
    }
    idv1::EndSessionRequest in;
    for (const auto& [name, value] : *params) (*in.mutable_params())[name] = value;
    in.set_session_id(Id(CookieOf(req, kSessionCookie)));
    idv1::EndSessionResponse out;
    const absl::Status s =
        Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::EndSession, in, &out);
    if (!s.ok()) {
      const int status = s.code() == absl::StatusCode::kFailedPrecondition ? 404 : status::HttpStatus(s);
      page.error = status >= 500 ? "temporarily_unavailable" : "invalid_request";
      if (status < 500) page.error_description = std::string(s.message());
      return pages::Write(res, status, page);
    }
    if (out.session_ended()) {
      res.set_header("Set-Cookie",
                     std::string(kSessionCookie) + "=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
    }
    if (!out.redirect_uri().empty()) {
      res.status = 303;
      res.set_header("Location", out.redirect_uri());
      return;
    }
    page.kind = pages::Page::Kind::kLoggedOut;
    pages::Write(res, 200, page);
  });

  // The partner portals the person has let in, and withdrawing one.
  auto portals = [](const idv1::ListConnectedPortalsResponse& out) {
    return nlohmann::json{{"portals", json::Array(out.portals(), [](const idv1::ConnectedPortal& p) {
                             return nlohmann::json{{"client_id", p.client_id()},
                                                   {"name", p.name()},
                                                   {"scopes", p.scopes()},
                                                   {"consented_at", json::Time(p.consented_at())}};
                           })}};
  };
  Add({"GET", "/api/v1/me/connected-portals", Who::kSession},
      [this, portals](Req req, Res res, P, const Authenticated& a) {
        idv1::ListConnectedPortalsRequest in;
        in.set_session_id(a.session_id);
        idv1::ListConnectedPortalsResponse out;
        if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::ListConnectedPortals, in, &out)) return;
        http::WriteJson(res, 200, portals(out));
      });
  Add({"DELETE", "/api/v1/me/connected-portals/{client_id}", Who::kSession}, [this, portals](Req req, Res res, P p,
                                                                                             const Authenticated& a) {
    const std::string& client_id = p.at("client_id");
    // Client ids are UUIDs.
    bool uuid = client_id.size() == 36;
    for (size_t i = 0; uuid && i < client_id.size(); ++i) {
      uuid = (i == 8 || i == 13 || i == 18 || i == 23) ? client_id[i] == '-'
                                                       : absl::ascii_isxdigit(static_cast<unsigned char>(client_id[i]));
    }
    if (!uuid) return Fail(req, res, absl::NotFoundError("no such connected portal"));
    idv1::RevokeConnectedPortalRequest in;
    in.set_session_id(a.session_id);
    in.set_client_id(client_id);
    idv1::ListConnectedPortalsResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::RevokeConnectedPortal, in, &out)) return;
    http::WriteJson(res, 200, portals(out));
  });
}

}  // namespace stadtportal::gateway

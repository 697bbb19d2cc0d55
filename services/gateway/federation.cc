// The gateway's routes for log-in with upstream identity providers (the state ID accounts
// over SAML 2.0, further providers over OpenID Connect; docs/federation.md): the browser
// leaves for the provider with a flow cookie and comes back with the provider's answer,
// which identity checks.
#include <google/protobuf/util/time_util.h>

#include "absl/strings/match.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
using google::protobuf::util::TimeUtil;
using http::FieldSpec;
using http::FieldType;

// Provider ids are slugs; anything else never reaches identity or a log line.
bool IsProviderId(const std::string& id) {
  if (id.empty() || id.size() > 63) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

absl::StatusOr<idv1::AssuranceLevel> ParseLevel(const std::string& name) {
  if (name.empty()) return idv1::ASSURANCE_LEVEL_UNSPECIFIED;
  if (name == "low") return idv1::ASSURANCE_LEVEL_LOW;
  if (name == "substantial") return idv1::ASSURANCE_LEVEL_SUBSTANTIAL;
  if (name == "high") return idv1::ASSURANCE_LEVEL_HIGH;
  return status::FieldError("minimum_level", "invalid");
}

// A cross-site POST (the SAML response) must carry it back: SameSite=None. __Host- (so
// Path=/, no Domain): a neighbouring subdomain cannot plant its own flow in the browser
// (a log-in into the planter's account).
std::string FlowCookie(const std::string& value, int64_t max_age) {
  return std::string(Service::kFederationCookie) + "=" + value +
         "; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=" + std::to_string(max_age);
}

// A link followed from another site (Sec-Fetch-Site) begins a plain log-in: the
// browser's session would bind the flow to the account, and whoever the provider then
// names (an upstream session the other site planted) would be linked to it.
bool FromOurPages(const httplib::Request& req) {
  const std::string site = req.get_header_value("Sec-Fetch-Site");
  return site.empty() || site == "same-origin" || site == "none";
}

nlohmann::json LinkedProviders(const idv1::ListLinkedProvidersResponse& out) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& p : out.providers()) {
    list.push_back({{"provider", p.provider()},
                    {"assurance_level", json::AssuranceLevel(p.level())},
                    {"linked_at", json::Time(p.linked_at())},
                    {"last_login_at", json::Time(p.last_login_at())}});
  }
  return {{"providers", list}};
}

}  // namespace

void Service::StartFederatedLogin(Req req, Res res, const std::string& provider, const std::string& minimum_level,
                                  const std::string& return_to, const std::string& session_id, bool redirect) {
  if (!IsProviderId(provider)) return Fail(req, res, absl::NotFoundError("provider not found"));
  auto level = ParseLevel(minimum_level);
  if (!level.ok()) return Fail(req, res, level.status());
  idv1::StartFederatedLoginRequest in;
  in.set_provider(provider);
  in.set_minimum_level(*level);
  in.set_return_to(return_to);
  in.set_session_id(session_id);
  // A plain log-in: the session the browser has ends with it.
  if (session_id.empty()) in.set_replaces_session_id(SessionOf(req));
  idv1::StartFederatedLoginResponse out;
  if (!Call(req, res, *identity_, &idv1::IdentityService::Stub::StartFederatedLogin, in, &out)) return;
  const int64_t max_age = std::max<int64_t>(
      1, TimeUtil::TimestampToSeconds(out.expires_at()) - TimeUtil::TimestampToSeconds(TimeUtil::GetCurrentTime()));
  res.set_header("Set-Cookie", FlowCookie(out.flow_id(), max_age));
  if (redirect) {
    res.status = 303;
    res.set_header("Location", out.redirect_url());
    return;
  }
  http::WriteJson(res, 200, {{"redirect_url", out.redirect_url()}, {"expires_at", json::Time(out.expires_at())}});
}

void Service::FinishFederatedLogin(Req req, Res res, const std::string& provider, const std::string& relay_state,
                                   const std::string& saml_response, const std::string& code,
                                   const std::string& error) {
  // The flow is used up whatever the outcome: its cookie goes.
  res.set_header("Set-Cookie", FlowCookie("", 0));
  if (!IsProviderId(provider)) return Fail(req, res, absl::NotFoundError("provider not found"));
  idv1::FinishFederatedLoginRequest in;
  in.set_provider(provider);
  in.set_flow_id(FlowOf(req));
  in.set_relay_state(relay_state);
  in.set_saml_response(saml_response);
  in.set_code(code);
  in.set_error(error);
  in.set_client_ip(Client(req));
  in.set_session_id(SessionOf(req));
  idv1::FinishFederatedLoginResponse out;
  const absl::Status s =
      Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::FinishFederatedLogin, in, &out);
  if (!s.ok()) {
    // A refused answer names its reason (federation: <reason>) for the citizen's page.
    const std::string m(s.message());
    nlohmann::json extra = nlohmann::json::object();
    if (s.code() == absl::StatusCode::kPermissionDenied && absl::StartsWith(m, "federation: ")) {
      extra["reason"] = m.substr(12);
    }
    return Fail(req, res, s, extra);
  }
  StartSession(res, out.login());
  res.status = 303;
  res.set_header("Location", out.return_to().empty() ? "/" : out.return_to());
}

void Service::AddFederationRoutes() {
  Add({"GET", "/api/v1/auth/providers"}, [this](Req req, Res res, P) {
    idv1::ListProvidersResponse out;
    if (!Call(req, res, *identity_, &idv1::IdentityService::Stub::ListProviders, {}, &out)) return;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : out.providers()) {
      list.push_back({{"id", p.id()},
                      {"kind", p.kind()},
                      {"name", {{"de", p.name_de()}, {"en", p.name_en()}}},
                      {"highest_assurance_level", json::AssuranceLevel(p.highest_level())},
                      {"login_url", "/api/v1/auth/providers/" + p.id() + "/login"}});
    }
    http::WriteJson(res, 200, {{"providers", list}});
  });

  Add({"GET", "/api/v1/auth/saml/{provider}/metadata"}, [this](Req req, Res res, P p) {
    const std::string& provider = p.at("provider");
    if (!IsProviderId(provider)) return Fail(req, res, absl::NotFoundError("provider not found"));
    idv1::GetSamlMetadataRequest in;
    in.set_provider(provider);
    idv1::SamlMetadata out;
    if (!Call(req, res, *identity_, &idv1::IdentityService::Stub::GetSamlMetadata, in, &out)) return;
    res.set_content(out.xml(), "application/samlmetadata+xml");
  });

  // A browser's link ("Log in with BundID"): on to the provider (303). With a session
  // (cookie or token) it is step-up, or linking the provider to the account; a session
  // that has ended, or a link from another site, is ignored (a plain log-in).
  Add({"GET", "/api/v1/auth/providers/{provider}/login", Who::kAnyone, "auth"}, [this](Req req, Res res, P p) {
    StartFederatedLogin(req, res, p.at("provider"), req.get_param_value("minimum_level"),
                        req.get_param_value("return_to"), FromOurPages(req) ? LiveSessionOf(req) : "",
                        /*redirect=*/true);
  });

  // The same for a program (the portal's pages): the URL to send the browser to, as JSON.
  // With a session cookie it needs the CSRF token like every unsafe request.
  Add({"POST", "/api/v1/auth/providers/{provider}/login", Who::kAnyone, "auth"}, [this](Req req, Res res, P p) {
    auto body =
        Body(req, res, {{"minimum_level", {FieldType::kString, false}}, {"return_to", {FieldType::kString, false}}});
    if (!body) return;
    std::string session_id;
    if (NamesCaller(req)) {
      auto a = Authenticate(req, res, /*acting_party_checked=*/false);
      if (!a) return;
      session_id = a->session_id;
    }
    StartFederatedLogin(req, res, p.at("provider"), body->value("minimum_level", ""), body->value("return_to", ""),
                        session_id, /*redirect=*/false);
  });

  // The SAML provider's answer (HTTP-POST binding, form-encoded).
  Add({"POST", "/api/v1/auth/saml/{provider}/acs", Who::kAnyone, "auth", kMaxSamlResponseBody},
      [this](Req req, Res res, P p) {
        if (!absl::StartsWith(req.get_header_value("Content-Type"), "application/x-www-form-urlencoded")) {
          return Fail(req, res, status::MalformedField("SAMLResponse", "form_expected"));
        }
        httplib::Params form;
        httplib::detail::parse_query_text(req.body, form);
        auto field = [&form](const char* name) {
          auto it = form.find(name);
          return it == form.end() ? std::string() : it->second;
        };
        const std::string response = field("SAMLResponse");
        if (response.empty()) return Fail(req, res, status::MalformedField("SAMLResponse", "missing"));
        FinishFederatedLogin(req, res, p.at("provider"), field("RelayState"), response, "", "");
      });

  // Where the SAML provider sends the browser after single log-out: the portal.
  Add({"GET", "/api/v1/auth/saml/{provider}/slo"}, [](Req, Res res, P) {
    res.status = 303;
    res.set_header("Location", "/");
  });

  // The OpenID Connect provider's answer (authorization code, or an error).
  Add({"GET", "/api/v1/auth/oidc/{provider}/callback", Who::kAnyone, "auth"}, [this](Req req, Res res, P p) {
    const std::string code = req.get_param_value("code");
    const std::string error = req.get_param_value("error");
    if (code.empty() && error.empty()) return Fail(req, res, status::MalformedField("code", "missing"));
    FinishFederatedLogin(req, res, p.at("provider"), req.get_param_value("state"), "", code,
                         error.empty() ? "" : "error");
  });

  Add({"GET", "/api/v1/me/providers", Who::kSessionAnyParty}, [this](Req req, Res res, P, const Authenticated& a) {
    idv1::ListLinkedProvidersRequest in;
    in.set_session_id(a.session_id);
    idv1::ListLinkedProvidersResponse out;
    if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::ListLinkedProviders, in, &out)) return;
    http::WriteJson(res, 200, LinkedProviders(out));
  });

  Add({"DELETE", "/api/v1/me/providers/{provider}", Who::kSessionAnyParty},
      [this](Req req, Res res, P p, const Authenticated& a) {
        const std::string& provider = p.at("provider");
        if (!IsProviderId(provider)) return Fail(req, res, absl::NotFoundError("provider not linked"));
        idv1::UnlinkProviderRequest in;
        in.set_session_id(a.session_id);
        in.set_provider(provider);
        idv1::ListLinkedProvidersResponse out;
        if (!Call(req, res, a, *identity_, &idv1::IdentityService::Stub::UnlinkProvider, in, &out)) return;
        http::WriteJson(res, 200, LinkedProviders(out));
      });
}

nlohmann::json Service::StepUpProviders(const std::string& level) {
  nlohmann::json list = nlohmann::json::array();
  auto required = ParseLevel(level);
  idv1::ListProvidersResponse out;
  if (!required.ok() ||
      !Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ListProviders, {}, &out).ok()) {
    return list;
  }
  for (const auto& p : out.providers()) {
    if (static_cast<int>(p.highest_level()) < static_cast<int>(*required)) continue;
    list.push_back({{"id", p.id()},
                    {"name", {{"de", p.name_de()}, {"en", p.name_en()}}},
                    {"step_up_url", "/api/v1/auth/providers/" + p.id() + "/login?minimum_level=" + level}});
  }
  return list;
}

}  // namespace stadtportal::gateway

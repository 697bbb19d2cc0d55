#pragma once
// Partner portals of our OpenID Provider in e2e tests: registered by a tenant admin, and
// their tokens got the browser's way (log-in, consent, code with PKCE). Shared by the
// OpenID Provider and the access log tests.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <httplib.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "libs/auth/tokens.h"
#include "tests/e2e/federated.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {

struct Partner {
  std::string id;
  std::string secret;
  std::string redirect_uri;
  std::string post_logout_uri;
};

// A partner portal registered by a tenant admin (client_secret_basic).
inline Partner Register(httplib::Client& c, const json& admin, const std::string& name,
                        const std::vector<std::string>& scopes, const std::string& path) {
  Partner p;
  p.redirect_uri = "http://127.0.0.1:9/" + path + "/cb";
  p.post_logout_uri = "http://127.0.0.1:9/" + path + "/bye";
  auto r = PostJson(c, "/api/v1/admin/partner-clients",
                    {{"name", name},
                     {"redirect_uris", {p.redirect_uri}},
                     {"post_logout_redirect_uris", {p.post_logout_uri}},
                     {"scopes", scopes},
                     {"token_endpoint_auth_method", "client_secret_basic"}},
                    Bearer(admin));
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 201);
  const json body = json::parse(r->body);
  p.id = body["client_id"];
  p.secret = body["client_secret"];
  return p;
}

struct Pkce {
  std::string verifier = auth::RandomToken(32);
  std::string challenge = absl::WebSafeBase64Escape(auth::Sha256(verifier));
};

inline std::string Query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    out += (out.empty() ? "?" : "&") + httplib::detail::encode_query_param(k) + "=" +
           httplib::detail::encode_query_param(v);
  }
  return out;
}

// The authorization request of `p` (code flow, S256), with `extra` parameters added.
inline std::string AuthorizeUrl(const std::string& gateway, const Partner& p, const Pkce& pkce,
                                const std::string& scope, std::vector<std::pair<std::string, std::string>> extra = {},
                                const std::string& redirect_uri = "") {
  std::vector<std::pair<std::string, std::string>> params = {
      {"response_type", "code"},
      {"client_id", p.id},
      {"redirect_uri", redirect_uri.empty() ? p.redirect_uri : redirect_uri},
      {"scope", scope},
      {"state", "st-" + auth::RandomToken(8)},
      {"nonce", "n-" + auth::RandomToken(8)},
      {"code_challenge", pkce.challenge},
      {"code_challenge_method", "S256"}};
  for (auto& e : extra) {
    auto it = std::find_if(params.begin(), params.end(), [&](const auto& kv) { return kv.first == e.first; });
    if (it != params.end()) {
      if (e.second.empty()) {
        params.erase(it);
      } else {
        it->second = e.second;
      }
    } else {
      params.push_back(e);
    }
  }
  return gateway + "/api/v1/oidc/authorize" + Query(params);
}

// The query parameters of a URL.
inline std::map<std::string, std::string> ParamsOf(const std::string& url) {
  httplib::Params params;
  const auto q = url.find('?');
  if (q != std::string::npos) httplib::detail::parse_query_text(url.substr(q + 1), params);
  return {params.begin(), params.end()};
}

// The browser's way through the page: log-in (when asked) and consent (`decision`; ""
// stops at the consent page), up to the 303 to the client (returned), or the first page
// that asks for neither.
inline Browser::Page Through(Browser& b, Browser::Page page, const std::string& email,
                             const std::string& decision = "allow") {
  for (int step = 0; step < 4 && page.status == 200; ++step) {
    auto forms = FormsOf(page.body);
    auto login = std::find_if(forms.begin(), forms.end(),
                              [](const Form& f) { return f.action == "/api/v1/oidc/authorize/login"; });
    auto consent = std::find_if(forms.begin(), forms.end(),
                                [](const Form& f) { return f.action == "/api/v1/oidc/authorize/consent"; });
    if (login != forms.end()) {
      login->fields["email"] = email;
      login->fields["password"] = kPassword;
      page = b.PostForm(Browser::Absolute(page.url, login->action), login->fields);
    } else if (consent != forms.end() && !decision.empty()) {
      consent->fields["decision"] = decision;
      page = b.PostForm(Browser::Absolute(page.url, consent->action), consent->fields);
    } else {
      break;
    }
  }
  return page;
}

inline std::string Basic(const Partner& p) {
  return "Basic " + absl::Base64Escape(httplib::detail::encode_query_param(p.id) + ":" +
                                       httplib::detail::encode_query_param(p.secret));
}

inline httplib::Result Token(httplib::Client& c, const Partner& p, const std::map<std::string, std::string>& fields) {
  return c.Post("/api/v1/oidc/token", {{"Authorization", Basic(p)}}, FormEncode(fields),
                "application/x-www-form-urlencoded");
}

// The code the client got (the 303's Location), checked against the request's state.
inline std::string CodeOf(const Browser::Page& page, const Partner& p, const std::string& issuer) {
  INFO("status " << page.status << ", location " << page.location << "\n" << page.body.substr(0, 2000));
  REQUIRE(page.status == 303);
  REQUIRE(page.location.rfind(p.redirect_uri + "?", 0) == 0);
  const auto params = ParamsOf(page.location);
  REQUIRE(params.count("code") == 1);
  CHECK(params.at("iss") == issuer);
  CHECK(params.count("state") == 1);
  return params.at("code");
}

inline json Exchange(httplib::Client& c, const Partner& p, const std::string& code, const Pkce& pkce) {
  auto r = Token(c, p,
                 {{"grant_type", "authorization_code"},
                  {"code", code},
                  {"redirect_uri", p.redirect_uri},
                  {"code_verifier", pkce.verifier}});
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == 200);
  CHECK(r->get_header_value("Cache-Control") == "no-store");
  return json::parse(r->body);
}

// A partner token for the person `email`, logging in on the page in a new browser.
inline json TokenFor(Stack& stack, httplib::Client& c, const Partner& p, const std::string& email,
                     const std::string& scope) {
  const std::string gateway = "http://127.0.0.1:" + std::to_string(stack.gateway_port());
  Browser b;
  Pkce pkce;
  auto done = Through(b, b.Get(AuthorizeUrl(gateway, p, pkce, scope)), email);
  return Exchange(c, p, CodeOf(done, p, stack.issuer()), pkce);
}

}  // namespace stadtportal::e2e

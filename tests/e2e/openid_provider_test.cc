// stadtportal as OpenID Provider for partner portals (docs/openid-provider.md) through the
// whole platform, attacked: redirect URIs and post-logout URIs that are not registered
// exactly, PKCE missing or wrong, codes reused or taken to another client, request
// objects, ID tokens as access tokens; partner tokens on the REST routes (scope, another
// person's data, revoked, expired, administrative routes); the level a partner asks for
// reached by a step-up through the SAML stand-in; the page in both languages.
#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "libs/auth/tokens.h"
#include "tests/e2e/federated.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/partner_portal.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;

const json kContactReport = {{"contact_name", "Ben Beispiel"}, {"contact_phone", "+49 911 123456"},
                             {"contact_date", "2026-11-20"},   {"infection", "measles"},
                             {"reporter_name", "Anna"},        {"reporter_phone", "0911 654321"}};

// The OAuth error of a token endpoint answer.
std::string ErrorOf(const httplib::Result& r, int status) {
  INFO((r ? r->body : "no answer"));
  REQUIRE(Status(r) == status);
  return json::parse(r->body).value("error", "");
}

json JwtPart(const std::string& jwt, int part) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const auto dot = jwt.find('.', start);
    parts.push_back(jwt.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  REQUIRE(parts.size() == 3);
  std::string decoded;
  REQUIRE(absl::WebSafeBase64Unescape(parts[part], &decoded));
  return json::parse(decoded);
}

}  // namespace

TEST_CASE("OpenID Provider: discovery and keys; unregistered redirect URIs and request objects never redirect",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string gateway = stack.issuer();
  const json admin = Admin(stack, c);
  const Partner a = Register(c, admin, "Portal A", {"openid", "submissions:read"}, "a");
  const Partner b = Register(c, admin, "Portal B", {"openid"}, "b");

  auto discovery = c.Get("/.well-known/openid-configuration");
  REQUIRE(Status(discovery) == 200);
  CHECK(discovery->get_header_value("Cache-Control").rfind("public, max-age=", 0) == 0);
  const json d = json::parse(discovery->body);
  CHECK(d["issuer"] == gateway);
  CHECK(d["authorization_endpoint"] == gateway + "/api/v1/oidc/authorize");
  CHECK(d["token_endpoint"] == gateway + "/api/v1/oidc/token");
  CHECK(d["jwks_uri"] == gateway + "/api/v1/oidc/jwks");
  CHECK(d["code_challenge_methods_supported"] == json{"S256"});
  CHECK(d["request_parameter_supported"] == false);
  auto jwks = c.Get("/api/v1/oidc/jwks");
  REQUIRE(Status(jwks) == 200);
  CHECK(jwks->get_header_value("Cache-Control").rfind("public, max-age=", 0) == 0);
  const json keys = json::parse(jwks->body)["keys"];
  REQUIRE_FALSE(keys.empty());
  for (const auto& k : keys) {
    CHECK(k["kty"] == "RSA");
    CHECK_FALSE(k.contains("d"));
    CHECK_FALSE(k.contains("p"));
  }

  Browser browser;
  Pkce pkce;
  const std::string r = a.redirect_uri;  // http://127.0.0.1:9/a/cb
  // Only the whole registered string: every near miss is an error page, never a redirect.
  for (const std::string& variant : {r + "x", r.substr(0, r.size() - 1), std::string("http://127.0.0.1:9/A/cb"),
                                     std::string("HTTP://127.0.0.1:9/a/cb"), r + "/", r + "?x=1", r + "#f",
                                     std::string("http://127.0.0.1:9/a/cb/../cb"),
                                     std::string("http://127.0.0.1:9/a/%63b"), std::string("http://127.0.0.1:09/a/cb"),
                                     std::string("https://127.0.0.1:9/a/cb"), std::string("http://127.0.0.1/a/cb"),
                                     std::string("http://evil.example/a/cb"), b.redirect_uri, std::string("")}) {
    auto page = browser.Get(AuthorizeUrl(gateway, a, pkce, "openid", {}, variant.empty() ? "-" : variant));
    INFO("redirect_uri " << variant << ": " << page.status << " " << page.location);
    CHECK(page.status == 400);
    CHECK(page.location.empty());
    CHECK(page.body.find("<html lang=") != std::string::npos);
    CHECK(page.headers.find("Content-Security-Policy") != page.headers.end());
  }
  // An unknown client, a repeated redirect_uri: the same.
  auto unknown =
      browser.Get(AuthorizeUrl(gateway, Partner{"0b7f2b9e-4f0e-4d39-9a6b-2d6f3c1e8a10", "", r, ""}, pkce, "openid"));
  CHECK(unknown.status == 400);
  CHECK(unknown.location.empty());
  auto repeated = browser.Get(AuthorizeUrl(gateway, a, pkce, "openid") +
                              "&redirect_uri=" + httplib::detail::encode_query_param("http://evil.example/cb"));
  CHECK(repeated.status == 400);
  CHECK(repeated.location.empty());

  // With the registered URI, the other errors go there (with state and iss).
  auto error_at_client = [&](std::vector<std::pair<std::string, std::string>> extra) {
    auto page = browser.Get(AuthorizeUrl(gateway, a, pkce, "openid", std::move(extra)));
    INFO(page.status << " " << page.location << "\n" << page.body.substr(0, 1000));
    REQUIRE(page.status == 303);
    REQUIRE(page.location.rfind(r + "?", 0) == 0);
    const auto params = ParamsOf(page.location);
    CHECK(params.count("code") == 0);
    CHECK(params.count("state") == 1);
    CHECK(params.at("iss") == gateway);
    return params.count("error") ? params.at("error") : std::string();
  };
  CHECK(error_at_client({{"code_challenge", ""}, {"code_challenge_method", ""}}) == "invalid_request");
  CHECK(error_at_client({{"code_challenge_method", "plain"}}) == "invalid_request");
  CHECK(error_at_client({{"code_challenge_method", ""}}) == "invalid_request");
  CHECK(error_at_client({{"code_challenge", "short"}}) == "invalid_request");
  CHECK(error_at_client({{"response_type", "token"}}) == "unsupported_response_type");
  CHECK(error_at_client({{"scope", "openid mailbox:read"}}) == "invalid_scope");
  CHECK(error_at_client({{"scope", "profile"}}) == "invalid_scope");
  // An unsigned request object naming another redirect URI and scope: refused unread.
  const std::string none_header = absl::WebSafeBase64Escape(R"({"alg":"none","typ":"JWT"})");
  const std::string none_claims = absl::WebSafeBase64Escape(json{
      {"client_id", a.id},
      {"redirect_uri", "http://evil.example/cb"},
      {"scope", "openid submissions:read"}}.dump());
  CHECK(error_at_client({{"request", none_header + "." + none_claims + "."}}) == "request_not_supported");
  CHECK(error_at_client({{"request_uri", "https://evil.example/request.jwt"}}) == "request_uri_not_supported");
  CHECK(error_at_client({{"prompt", "none"}}) == "login_required");
}

TEST_CASE(
    "OpenID Provider: the code flow on the page; codes once, for their client and verifier; tokens for "
    "their audience; log-out redirects only where registered",
    "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string gateway = stack.issuer();
  const json admin = Admin(stack, c);
  const Partner a = Register(c, admin, "Landesportal <Bayern> & Co", {"openid", "email", "submissions:read"}, "a");
  const Partner b = Register(c, admin, "Portal B", {"openid", "email", "submissions:read"}, "b");
  const std::string email = UniqueEmail();
  Onboard(stack, c, email);

  Browser browser;
  Pkce pkce;
  const std::string url = AuthorizeUrl(gateway, a, pkce, "openid email submissions:read");
  // The log-in page: German by default, English when the browser prefers it.
  auto page = browser.Get(url);
  INFO(page.body.substr(0, 3000));
  REQUIRE(page.status == 200);
  CHECK(page.body.find("<html lang=\"de\">") != std::string::npos);
  CHECK(page.body.find("<title>Anmelden") != std::string::npos);
  CHECK(page.body.find("<label for=\"email\">E-Mail-Adresse</label>") != std::string::npos);
  CHECK(page.body.find("<label for=\"password\">Passwort</label>") != std::string::npos);
  CHECK(page.body.find("autocomplete=\"current-password\"") != std::string::npos);
  CHECK(page.body.find("Landesportal &lt;Bayern&gt; &amp; Co") != std::string::npos);
  CHECK(page.body.find("<Bayern>") == std::string::npos);
  CHECK(page.body.find("<script") == std::string::npos);
  const auto cookie = page.headers.find("Set-Cookie");
  REQUIRE(cookie != page.headers.end());
  CHECK(cookie->second.rfind("__Host-stadtportal_authorize=", 0) == 0);
  CHECK(cookie->second.find("HttpOnly") != std::string::npos);
  CHECK(cookie->second.find("SameSite=Lax") != std::string::npos);
  const std::string csp = page.headers.find("Content-Security-Policy")->second;
  CHECK(csp.find("form-action 'self'") != std::string::npos);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(page.headers.find("X-Frame-Options")->second == "DENY");
  Browser english;
  auto en = english.Get(url, {{"Accept-Language", "en-GB,en;q=0.9"}});
  CHECK(en.body.find("<html lang=\"en\">") != std::string::npos);
  CHECK(en.body.find("<label for=\"email\">E-mail address</label>") != std::string::npos);
  auto en_locale = Browser().Get(url + "&ui_locales=en");
  CHECK(en_locale.body.find("<html lang=\"en\">") != std::string::npos);

  // A wrong password: the page again, with the error summary leading to the field.
  auto forms = FormsOf(page.body);
  REQUIRE(forms.size() >= 1);
  REQUIRE(forms[0].action == "/api/v1/oidc/authorize/login");
  REQUIRE_FALSE(forms[0].fields["csrf_token"].empty());
  auto wrong = browser.PostForm(
      gateway + forms[0].action,
      {{"csrf_token", forms[0].fields["csrf_token"]}, {"email", email}, {"password", "nicht das Passwort"}});
  INFO(wrong.body.substr(0, 3000));
  CHECK(wrong.status == 200);
  CHECK(wrong.location.empty());
  CHECK(wrong.body.find("role=\"alert\"") != std::string::npos);
  CHECK(wrong.body.find("href=\"#email\"") != std::string::npos);
  CHECK(wrong.body.find("aria-invalid=\"true\"") != std::string::npos);
  CHECK(wrong.body.find("<title>Fehler: ") != std::string::npos);
  CHECK(browser.Cookie(gateway, "__Host-stadtportal_session").empty());
  // The right password with a wrong CSRF token: refused, no session.
  auto forged = browser.PostForm(
      gateway + forms[0].action,
      {{"csrf_token", "x" + forms[0].fields["csrf_token"]}, {"email", email}, {"password", kPassword}});
  CHECK(forged.status >= 400);
  CHECK(forged.location.empty());
  CHECK(browser.Cookie(gateway, "__Host-stadtportal_session").empty());
  // Without the browser's pending authorization (another browser): nothing goes on.
  auto stranger =
      Browser().PostForm(gateway + forms[0].action,
                         {{"csrf_token", forms[0].fields["csrf_token"]}, {"email", email}, {"password", kPassword}});
  CHECK(stranger.status == 400);
  CHECK(stranger.location.empty());

  // Log-in and consent; a code for A.
  auto consent = Through(browser, browser.Get(url), email, "");
  INFO(consent.body.substr(0, 3000));
  REQUIRE(consent.status == 200);
  CHECK_FALSE(browser.Cookie(gateway, "__Host-stadtportal_session").empty());
  CHECK(consent.body.find("name=\"decision\" value=\"allow\"") != std::string::npos);
  const std::string code1 = CodeOf(Through(browser, consent, email), a, gateway);

  // A wrong verifier, or none: invalid_grant, and the code is spent.
  Pkce other;
  CHECK(ErrorOf(Token(c, a,
                      {{"grant_type", "authorization_code"},
                       {"code", code1},
                       {"redirect_uri", a.redirect_uri},
                       {"code_verifier", other.verifier}}),
                400) == "invalid_grant");
  CHECK(ErrorOf(Token(c, a,
                      {{"grant_type", "authorization_code"},
                       {"code", code1},
                       {"redirect_uri", a.redirect_uri},
                       {"code_verifier", pkce.verifier}}),
                400) == "invalid_grant");
  // Consent is remembered: the next request gets its code at once.
  Pkce pkce2;
  const std::string code2 =
      CodeOf(browser.Get(AuthorizeUrl(gateway, a, pkce2, "openid email submissions:read")), a, gateway);
  CHECK(ErrorOf(Token(c, a, {{"grant_type", "authorization_code"}, {"code", code2}, {"redirect_uri", a.redirect_uri}}),
                400) == "invalid_grant");
  // A's code at client B (B's own credentials): invalid_grant.
  Pkce pkce3;
  const std::string code3 =
      CodeOf(browser.Get(AuthorizeUrl(gateway, a, pkce3, "openid email submissions:read")), a, gateway);
  CHECK(ErrorOf(Token(c, b,
                      {{"grant_type", "authorization_code"},
                       {"code", code3},
                       {"redirect_uri", a.redirect_uri},
                       {"code_verifier", pkce3.verifier}}),
                400) == "invalid_grant");
  // Wrong client credentials: 401 invalid_client; a repeated field: invalid_request.
  Partner wrong_secret = a;
  wrong_secret.secret += "x";
  auto unauthenticated = Token(c, wrong_secret, {{"grant_type", "authorization_code"}, {"code", "x"}});
  CHECK(ErrorOf(unauthenticated, 401) == "invalid_client");
  CHECK(unauthenticated->get_header_value("WWW-Authenticate").rfind("Basic", 0) == 0);
  auto twice = c.Post("/api/v1/oidc/token", {{"Authorization", Basic(a)}},
                      "grant_type=authorization_code&code=a&code=b", "application/x-www-form-urlencoded");
  CHECK(ErrorOf(twice, 400) == "invalid_request");

  // The good exchange.
  Pkce pkce4;
  const std::string code4 = CodeOf(
      browser.Get(AuthorizeUrl(gateway, a, pkce4, "openid email submissions:read", {{"nonce", "n-4"}})), a, gateway);
  const json tokens = Exchange(c, a, code4, pkce4);
  CHECK(tokens["token_type"] == "Bearer");
  const json id_token = JwtPart(tokens["id_token"], 1);
  CHECK(id_token["iss"] == gateway);
  CHECK(id_token["aud"] == a.id);
  CHECK(id_token["nonce"] == "n-4");
  CHECK(id_token["acr"] == "low");
  CHECK(id_token["amr"] == json{"pwd"});
  CHECK_FALSE(id_token["sid"].get<std::string>().empty());
  CHECK_FALSE(id_token.contains("email"));  // Claims from userinfo only.
  CHECK(JwtPart(tokens["access_token"], 0)["typ"] == "at+jwt");
  const std::string access = tokens["access_token"];
  CHECK(Status(c.Get("/api/v1/submissions", BearerToken(access))) == 200);
  auto userinfo = c.Get("/api/v1/oidc/userinfo", BearerToken(access));
  REQUIRE(Status(userinfo) == 200);
  CHECK(json::parse(userinfo->body)["sub"] == id_token["sub"]);
  CHECK(json::parse(userinfo->body)["email"] == email);

  // The ID token is no access token: 401 at the API and at userinfo.
  const std::string id_jwt = tokens["id_token"];
  auto as_bearer = c.Get("/api/v1/submissions", BearerToken(id_jwt));
  CHECK(Status(as_bearer) == 401);
  CHECK(as_bearer->get_header_value("WWW-Authenticate") == "Bearer error=\"invalid_token\"");
  CHECK(Status(c.Get("/api/v1/oidc/userinfo", BearerToken(id_jwt))) == 401);

  // The code again: invalid_grant, and what its first use gave is revoked.
  CHECK(ErrorOf(Token(c, a,
                      {{"grant_type", "authorization_code"},
                       {"code", code4},
                       {"redirect_uri", a.redirect_uri},
                       {"code_verifier", pkce4.verifier}}),
                400) == "invalid_grant");
  auto revoked = c.Get("/api/v1/submissions", BearerToken(access));
  CHECK(Status(revoked) == 401);
  CHECK(revoked->get_header_value("WWW-Authenticate") == "Bearer error=\"invalid_token\"");

  // RP-initiated log-out: to a post-logout URI not registered, or registered for another
  // client, no redirect; the session of the hint ends all the same.
  const std::string session = browser.Cookie(gateway, "__Host-stadtportal_session");
  REQUIRE(Status(c.Get("/api/v1/me", BearerToken(session))) == 200);
  for (const std::string& target :
       {std::string("http://evil.example/bye"), b.post_logout_uri, a.post_logout_uri + "/"}) {
    auto out = browser.Get(gateway + "/api/v1/oidc/logout" +
                           Query({{"id_token_hint", id_jwt}, {"post_logout_redirect_uri", target}, {"state", "s"}}));
    INFO(target << ": " << out.status << " " << out.location);
    CHECK(out.status == 200);
    CHECK(out.location.empty());
    CHECK(out.body.find("<h1>Abgemeldet</h1>") != std::string::npos);
  }
  CHECK(Status(c.Get("/api/v1/me", BearerToken(session))) == 401);
  CHECK(browser.Cookie(gateway, "__Host-stadtportal_session").empty());
  // Its own registered URI: there, with the state.
  auto back = browser.Get(
      gateway + "/api/v1/oidc/logout" +
      Query({{"id_token_hint", id_jwt}, {"post_logout_redirect_uri", a.post_logout_uri}, {"state", "s-1"}}));
  CHECK(back.status == 303);
  CHECK(back.location == a.post_logout_uri + "?state=s-1");
}

TEST_CASE("OpenID Provider: partner tokens read the person's own data, with their scope, while they live", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  std::string admin_email, enrolment;
  const json admin = AdminWithoutSecondFactor(stack, c, &admin_email, &enrolment);
  EnrolSecondFactor(c, admin, enrolment);
  const Partner a = Register(c, admin, "Portal A", {"openid", "submissions:read", "drafts:write", "mailbox:read"}, "a");

  const std::string person_email = UniqueEmail();
  const json person = Onboard(stack, c, person_email);
  const json other = Onboard(stack, c, UniqueEmail());
  const std::string mine = Apply(c, person, "contact-person-report", kContactReport);
  const std::string theirs = Apply(c, other, "contact-person-report", kContactReport);

  const json tokens = TokenFor(stack, c, a, person_email, "openid submissions:read");
  const std::string access = tokens["access_token"];
  auto list = c.Get("/api/v1/submissions?page_size=100", BearerToken(access));
  INFO((list ? list->body : "no answer"));
  REQUIRE(Status(list) == 200);
  std::set<std::string> ids;
  const json listed = json::parse(list->body);
  for (const auto& s : listed["items"]) ids.insert(s["id"].get<std::string>());
  CHECK(ids == std::set<std::string>{mine});
  CHECK(Status(c.Get(("/api/v1/submissions/" + mine).c_str(), BearerToken(access))) == 200);
  CHECK(Status(c.Get(("/api/v1/submissions/" + theirs).c_str(), BearerToken(access))) == 404);

  // Routes of scopes the token lacks, and routes no partner token reaches.
  auto drafts = c.Get("/api/v1/drafts", BearerToken(access));
  CHECK(Status(drafts) == 403);
  CHECK(drafts->get_header_value("WWW-Authenticate") == "Bearer error=\"insufficient_scope\", scope=\"drafts:write\"");
  CHECK(Status(PostJson(c, "/api/v1/services/contact-person-report/drafts", json::object(), BearerToken(access))) ==
        403);
  CHECK(Status(c.Get("/api/v1/mailbox/threads", BearerToken(access))) == 403);
  for (const char* path : {"/api/v1/me", "/api/v1/me/profile", "/api/v1/me/connected-portals", "/api/v1/organisations",
                           "/api/v1/me/acting-party"}) {
    INFO(path);
    CHECK(Status(c.Get(path, BearerToken(access))) == 403);
  }
  CHECK(Status(c.Post("/api/v1/auth/logout-all", BearerToken(access), "", "application/json")) == 403);

  // An administrator's token is the person's only: no administrative route.
  const json admin_tokens = TokenFor(stack, c, a, admin_email, "openid submissions:read");
  const std::string admin_access = admin_tokens["access_token"];
  CHECK(Status(c.Get("/api/v1/submissions", BearerToken(admin_access))) == 200);
  for (const char* path :
       {"/api/v1/admin/partner-clients", "/api/v1/admin/accounts?q=example&reason=audit", "/api/v1/admin/audit-log"}) {
    INFO(path);
    const int status = Status(c.Get(path, BearerToken(admin_access)));
    CHECK((status == 401 || status == 403));
  }

  // The drafts scope: create, read, save, submit for the person.
  const json writer = TokenFor(stack, c, a, person_email, "openid drafts:write");
  const std::string write_access = writer["access_token"];
  auto created =
      PostJson(c, "/api/v1/services/contact-person-report/drafts", json::object(), BearerToken(write_access));
  INFO((created ? created->body : "no answer"));
  REQUIRE(Status(created) == 201);
  CHECK(Status(c.Get("/api/v1/submissions", BearerToken(write_access))) == 403);

  // Withdrawn by the person: the portal's tokens end at once.
  auto connected = c.Get("/api/v1/me/connected-portals", Bearer(person));
  REQUIRE(Status(connected) == 200);
  const json portals = json::parse(connected->body)["portals"];
  REQUIRE(portals.size() == 1);
  CHECK(portals[0]["client_id"] == a.id);
  CHECK(portals[0]["name"] == "Portal A");
  CHECK(Status(c.Delete("/api/v1/me/connected-portals/not-a-uuid", Bearer(person))) == 404);
  auto withdrawn = c.Delete(("/api/v1/me/connected-portals/" + a.id).c_str(), Bearer(person));
  REQUIRE(Status(withdrawn) == 200);
  CHECK(json::parse(withdrawn->body)["portals"].empty());
  auto gone = c.Get("/api/v1/submissions", BearerToken(access));
  CHECK(Status(gone) == 401);
  CHECK(gone->get_header_value("WWW-Authenticate") == "Bearer error=\"invalid_token\"");
  CHECK(Status(c.Get("/api/v1/drafts", BearerToken(write_access))) == 401);
  // Another person's token of the same portal lives on.
  CHECK(Status(c.Get("/api/v1/submissions", BearerToken(admin_access))) == 200);

  // Expired: identity issues tokens of 30 seconds (its least); after that, 401.
  REQUIRE(stack.Restart(stack.instance("identity"), {{"STADTPORTAL_OP_ACCESS_TOKEN_S", "30"}}));
  REQUIRE(stack.WaitReady(60s));
  const json short_lived = TokenFor(stack, c, a, person_email, "openid submissions:read");
  const std::string short_access = short_lived["access_token"];
  CHECK(short_lived["expires_in"] == 30);
  CHECK(Status(c.Get("/api/v1/submissions", BearerToken(short_access))) == 200);
  const json claims = JwtPart(short_access, 1);
  CHECK(claims["exp"].get<int64_t>() - claims["iat"].get<int64_t>() == 30);
  CHECK(
      testing::Eventually([&] { return Status(c.Get("/api/v1/submissions", BearerToken(short_access))) == 401; }, 90s));
}

TEST_CASE(
    "OpenID Provider: a partner asking for level substantial gets no code for a password session; after a "
    "step-up with BundID the ID token says substantial",
    "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  const std::string gateway = f.gateway;
  const json admin = Admin(f.stack, c);
  const Partner a = Register(c, admin, "Portal A", {"openid", "profile"}, "a");

  // A local account (password, level low); its person is Lena of the BundID stand-in,
  // not linked to any account yet.
  const std::string lena = UniqueEmail();
  Onboard(f.stack, c, lena);

  // A password session (low): a code at low.
  Browser b;
  Pkce pkce;
  const std::string low_code =
      CodeOf(Through(b, b.Get(AuthorizeUrl(gateway, a, pkce, "openid profile")), lena), a, gateway);
  const json low = JwtPart(Exchange(c, a, low_code, pkce)["id_token"], 1);
  CHECK(low["acr"] == "low");
  std::this_thread::sleep_for(1100ms);

  // Substantial asked for: silently impossible, and on the page a step-up, no code.
  Pkce pkce2;
  auto silent =
      b.Get(AuthorizeUrl(gateway, a, pkce2, "openid profile", {{"acr_values", "substantial"}, {"prompt", "none"}}));
  REQUIRE(silent.status == 303);
  CHECK(ParamsOf(silent.location)["error"] == "interaction_required");
  auto step_up = b.Get(AuthorizeUrl(gateway, a, pkce2, "openid profile", {{"acr_values", "substantial"}}));
  INFO(step_up.body.substr(0, 3000));
  REQUIRE(step_up.status == 200);
  CHECK(step_up.location.empty());
  CHECK(step_up.body.find("<h1>Höheres Vertrauensniveau nötig</h1>") != std::string::npos);
  std::smatch link;
  REQUIRE(std::regex_search(step_up.body, link, std::regex("href=\"(/api/v1/auth/providers/bundid/login\\?[^\"]*)\"")));
  const std::string href = Unescape(link[1].str());
  CHECK(href.rfind("/api/v1/auth/providers/bundid/login?minimum_level=substantial&return_to=%2Fapi%2Fv1%2Foidc%2F"
                   "authorize%2Fcontinue%3Fcsrf_token%3D",
                   0) == 0);

  // Through BundID and back to the authorization: the code, the ID token at substantial.
  auto done = f.SamlLogIn(b, "lena", "lena-test-1", href.substr(href.find('?')));
  INFO(done.body);
  REQUIRE(done.status == 303);
  CHECK(done.location.rfind("/api/v1/oidc/authorize/continue?csrf_token=", 0) == 0);
  auto back = b.Follow(done, a.redirect_uri);
  const json tokens = Exchange(c, a, CodeOf(back, a, gateway), pkce2);
  const json high = JwtPart(tokens["id_token"], 1);
  CHECK(high["acr"] == "substantial");
  CHECK(high["auth_time"].get<int64_t>() > low["auth_time"].get<int64_t>());
  CHECK(high["sid"] == low["sid"]);
  CHECK(high["sub"] == low["sub"]);

  // Userinfo: the profile's claims (the verified ones from BundID), the same pairwise sub.
  json claims;
  CHECK(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/oidc/userinfo", BearerToken(tokens["access_token"]));
        if (Status(r) != 200) return false;
        claims = json::parse(r->body);
        return claims.contains("birthdate");
      },
      10s));
  INFO(claims.dump());
  CHECK(claims["sub"] == high["sub"]);
  CHECK(claims["given_name"] == "Lena");
  CHECK(claims["family_name"] == "Linkmann");
  CHECK(claims["name"] == "Lena Linkmann");
  CHECK(claims["birthdate"] == "1991-04-23");
  CHECK_FALSE(claims.contains("email"));    // Not asked for.
  CHECK_FALSE(claims.contains("address"));  // Not asked for.

  // Lena's state ID is unlinked again (the account has its password), so the test can run
  // again on the same database.
  CHECK(Status(c.Delete("/api/v1/me/providers/bundid", Bearer(Login(c, lena)))) == 200);
}

}  // namespace stadtportal::e2e

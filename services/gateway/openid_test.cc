// The OpenID Provider's gateway side against a stand-in identity service: partner tokens in
// the route table (scope, roles, refusals), the authorization page and its cookie, the
// token endpoint's error mapping, and the page renderer.
#include <atomic>
#include <regex>

#include <httplib.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/server.h"
#include "libs/testing/testing.h"
#include "services/gateway/pages.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;

constexpr char kReadToken[] = "eyJhbGciOiJSUzI1NiJ9.cmVhZA.c2ln";
constexpr char kOtherTenantToken[] = "eyJhbGciOiJSUzI1NiJ9.b3RoZXI.c2ln";

class Identity final : public idv1::IdentityService::Service {
 public:
  std::atomic<int> authorize_calls{0};
  std::map<std::string, std::string> last_params;

  grpc::Status ResolveSession(grpc::ServerContext*, const idv1::ResolveSessionRequest* req,
                              idv1::Session* resp) override {
    if (req->session_id() != "citizen") return {grpc::StatusCode::UNAUTHENTICATED, "session unknown or expired"};
    resp->set_account_id("6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01");
    resp->mutable_tenant()->set_key(config::kDefaultTenant);
    resp->set_session_ref("ref");
    resp->add_roles("tenant-admin");
    resp->set_second_factor(idv1::SECOND_FACTOR_PASSED);
    return grpc::Status::OK;
  }
  grpc::Status ResolveClientToken(grpc::ServerContext*, const idv1::ResolveClientTokenRequest*,
                                  idv1::ClientInfo*) override {
    return {grpc::StatusCode::UNAUTHENTICATED, "unknown token"};
  }
  grpc::Status ResolveAccessToken(grpc::ServerContext*, const idv1::ResolveAccessTokenRequest* req,
                                  idv1::AccessTokenInfo* resp) override {
    if (req->access_token() != kReadToken && req->access_token() != kOtherTenantToken) {
      return {grpc::StatusCode::UNAUTHENTICATED, "invalid token"};
    }
    resp->set_account_id("6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01");
    resp->set_tenant(req->access_token() == kReadToken ? config::kDefaultTenant : "09162000");
    resp->add_scopes("openid");
    resp->add_scopes("submissions:read");
    resp->set_assurance_level(idv1::ASSURANCE_LEVEL_SUBSTANTIAL);
    resp->set_subject("pairwise-sub");
    resp->set_token_id("jti-1");
    resp->set_client_id("client-1");
    resp->set_client_name("Portal One");
    return grpc::Status::OK;
  }
  grpc::Status Authorize(grpc::ServerContext*, const idv1::AuthorizeRequest* req,
                         idv1::AuthorizeResponse* resp) override {
    ++authorize_calls;
    last_params = {req->params().begin(), req->params().end()};
    const std::string client = req->params().count("client_id") ? req->params().at("client_id") : "";
    if (client == "interaction") {
      auto* i = resp->mutable_interaction();
      i->set_kind(idv1::Interaction::KIND_LOGIN);
      i->set_pending_id("pending-1");
      i->set_csrf_token("csrf\"<1>");
      i->set_client_name("<script>alert(1)</script> Portal");
      i->set_ui_locale(req->params().count("ui_locales") ? req->params().at("ui_locales") : "");
      i->set_problem(req->params().count("problem") ? "credentials" : "");
    } else if (client == "redirect") {
      resp->set_redirect_uri("https://partner.example/cb?code=abc&state=s&iss=x");
    } else {
      resp->mutable_error()->set_error("invalid_redirect_uri");
      resp->mutable_error()->set_description("redirect_uri not registered");
    }
    return grpc::Status::OK;
  }
  grpc::Status ExchangeToken(grpc::ServerContext*, const idv1::TokenRequest* req, idv1::TokenResponse* resp) override {
    const std::string grant = req->params().count("grant_type") ? req->params().at("grant_type") : "";
    if (grant == "used") return {grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant: code used"};
    if (grant == "client") return {grpc::StatusCode::UNAUTHENTICATED, "invalid_client: unknown client"};
    if (grant == "down") return {grpc::StatusCode::UNAVAILABLE, "redis down at 10.0.0.1"};
    resp->set_access_token("at");
    resp->set_token_type("Bearer");
    resp->set_expires_in(300);
    resp->set_id_token("idt");
    return grpc::Status::OK;
  }
};

struct Fixture {
  grpcx::Server identity_server;
  Identity* identity = nullptr;
  std::unique_ptr<Service> gateway;
  uint16_t port = 0;
  std::vector<auth::Caller> callers;

  static grpcx::ServerOptions Local() {
    grpcx::ServerOptions so;
    so.host = "127.0.0.1";
    return so;
  }

  Fixture() : identity_server(Local()) {
    auto service = std::make_unique<Identity>();
    identity = service.get();
    identity_server.AddService(std::move(service), idv1::IdentityService::service_full_name());
    REQUIRE(identity_server.Start().ok());
    Options o;
    o.http.host = "127.0.0.1";
    o.http.port = 0;
    o.admin_port = testing::FreePort();
    o.http.threads = 4;
    o.grpc_deadline = std::chrono::milliseconds(500);
    for (const std::string name : {"identity", "accounts", "submission", "payment", "messaging", "connector"}) {
      o.downstreams.push_back({name,
                               name == "identity" ? "ipv4:127.0.0.1:" + std::to_string(identity_server.port())
                                                  : "ipv4:127.0.0.1:" + std::to_string(testing::FreePort()),
                               "x." + name});
    }
    auto signer = auth::Signer::FromKey(auth::NewSigningKey("test"), std::chrono::seconds(60));
    REQUIRE(signer.ok());
    gateway = std::make_unique<Service>(o, *signer, nullptr);
    auto record = [this](Req, Res res, P, const Authenticated& a) {
      callers.push_back(a.caller);
      res.status = 204;
    };
    gateway->Add({"GET", "/test/read", Who::kSession, "default", 0, false, "submissions:read"}, record);
    gateway->Add({"GET", "/test/write", Who::kSession, "default", 0, false, "drafts:write"}, record);
    gateway->Add({"GET", "/test/session", Who::kSession}, record);
    gateway->Add({"GET", "/test/any-party", Who::kSessionAnyParty}, record);
    gateway->Add({"GET", "/test/admin", Who::kAdmin}, record);
    gateway->Add({"GET", "/test/backoffice", Who::kBackoffice}, record);
    // Partner tokens are for the person's own routes only.
    CHECK_THROWS_AS(gateway->Add({"GET", "/test/x", Who::kAdmin, "default", 0, false, "submissions:read"}, record),
                    std::logic_error);
    CHECK_THROWS_AS(
        gateway->Add({"GET", "/test/y", Who::kAnyone, "default", 0, false, "openid"}, Service::AnonymousHandler{}),
        std::logic_error);
    auto p = gateway->Start();
    REQUIRE(p.ok());
    port = *p;
  }
  ~Fixture() {
    gateway->Shutdown();
    identity_server.Shutdown();
  }
};

httplib::Headers BearerOf(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

int CountOf(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("partner access tokens: the person on routes with their scope only, never with a role", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto read = c.Get("/test/read", BearerOf(kReadToken));
  REQUIRE(read);
  CHECK(read->status == 204);
  REQUIRE(f.callers.size() == 1);
  CHECK(f.callers[0].account_id == "6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01");
  CHECK(f.callers[0].acting_party.empty());
  CHECK(f.callers[0].roles.empty());
  CHECK(f.callers[0].assurance == "substantial");
  CHECK(f.callers[0].session_ref == "partner:jti-1");
  // The serving service learns the partner and the scope the call came in with.
  CHECK(f.callers[0].partner_id == "client-1");
  CHECK(f.callers[0].partner_name == "Portal One");
  CHECK(f.callers[0].partner_scope == "submissions:read");

  // Without the route's scope: 403 naming it.
  auto write = c.Get("/test/write", BearerOf(kReadToken));
  REQUIRE(write);
  CHECK(write->status == 403);
  CHECK(write->get_header_value("WWW-Authenticate") == "Bearer error=\"insufficient_scope\", scope=\"drafts:write\"");
  // Routes that take no partner token at all, administrative ones included.
  for (const char* path : {"/test/session", "/test/any-party", "/test/admin"}) {
    auto r = c.Get(path, BearerOf(kReadToken));
    REQUIRE(r);
    INFO(path);
    CHECK(r->status == 403);
    CHECK(r->get_header_value("WWW-Authenticate") == "Bearer error=\"insufficient_scope\"");
  }
  auto backoffice = c.Get("/test/backoffice", BearerOf(kReadToken));
  REQUIRE(backoffice);
  CHECK(backoffice->status == 401);
  // Unknown, forged, of another municipality: 401 invalid_token.
  for (const std::string& token : {std::string("eyJ.Zm9v.YmFy"), std::string(kOtherTenantToken)}) {
    auto r = c.Get("/test/read", BearerOf(token));
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->get_header_value("WWW-Authenticate") == "Bearer error=\"invalid_token\"");
  }
  CHECK(f.callers.size() == 1);
  // Sessions go on as before, with their roles.
  auto session = c.Get("/test/admin", BearerOf("citizen"));
  REQUIRE(session);
  CHECK(session->status == 204);
  REQUIRE(f.callers.size() == 2);
  CHECK(f.callers[1].roles == std::vector<std::string>{"tenant-admin"});
  // Userinfo takes partner tokens only.
  auto userinfo = c.Get("/api/v1/oidc/userinfo", BearerOf("citizen"));
  REQUIRE(userinfo);
  CHECK(userinfo->status == 401);
  CHECK(userinfo->get_header_value("WWW-Authenticate") == "Bearer error=\"invalid_token\"");
}

TEST_CASE(
    "the authorization endpoint: repeated parameters, the page, its cookie and headers, never a redirect "
    "on errors",
    "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  // A repeated parameter: the error page, identity never asked.
  auto repeated = c.Get(
      "/api/v1/oidc/authorize?client_id=redirect&redirect_uri=https://a.example/cb&redirect_uri="
      "https://evil.example/cb");
  REQUIRE(repeated);
  CHECK(repeated->status == 400);
  CHECK_FALSE(repeated->has_header("Location"));
  CHECK(repeated->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(f.identity->authorize_calls.load() == 0);
  auto huge = c.Get(("/api/v1/oidc/authorize?client_id=redirect&state=" + std::string(9000, 'a')).c_str());
  REQUIRE(huge);
  CHECK(huge->status >= 400);
  CHECK(huge->status < 500);
  CHECK(f.identity->authorize_calls.load() == 0);

  // An error identity shows to the user: the page, no redirect.
  auto error = c.Get("/api/v1/oidc/authorize?client_id=unknown&redirect_uri=https://evil.example/cb");
  REQUIRE(error);
  CHECK(error->status == 400);
  CHECK_FALSE(error->has_header("Location"));
  CHECK(error->body.find("invalid_redirect_uri") != std::string::npos);
  CHECK(error->body.find("evil.example") == std::string::npos);

  // A code: 303 to the client.
  auto code = c.Get("/api/v1/oidc/authorize?client_id=redirect&redirect_uri=https://partner.example/cb");
  REQUIRE(code);
  CHECK(code->status == 303);
  CHECK(code->get_header_value("Location") == "https://partner.example/cb?code=abc&state=s&iss=x");

  // The log-in page, in English when asked, every value escaped.
  auto page =
      c.Get("/api/v1/oidc/authorize?client_id=interaction&redirect_uri=https://partner.example:8443/cb&ui_locales=en",
            {{"Cookie", "__Host-stadtportal_session=citizen"}});
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(f.identity->last_params.at("redirect_uri") == "https://partner.example:8443/cb");
  const std::string cookie = page->get_header_value("Set-Cookie");
  CHECK(cookie.rfind("__Host-stadtportal_authorize=pending-1.", 0) == 0);
  for (const char* attribute : {"; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax", "; Max-Age=600"}) {
    CHECK(cookie.find(attribute) != std::string::npos);
  }
  CHECK(page->body.find("<html lang=\"en\">") != std::string::npos);
  CHECK(page->body.find("<script>") == std::string::npos);
  CHECK(page->body.find("&lt;script&gt;alert(1)&lt;/script&gt; Portal") != std::string::npos);
  CHECK(page->body.find("name=\"csrf_token\" value=\"csrf&quot;&lt;1&gt;\"") != std::string::npos);
  const std::string csp = page->get_header_value("Content-Security-Policy");
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("form-action 'self' https://partner.example:8443;") != std::string::npos);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(csp.find("base-uri 'none'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(page->get_header_value("X-Frame-Options") == "DENY");
  CHECK(page->get_header_value("Cache-Control") == "no-store");
  CHECK(page->get_header_value("Referrer-Policy") == "no-referrer");
  CHECK(CountOf(page->get_header_value("Content-Security-Policy"), "default-src") == 1);

  // The page's forms: without the cookie, nothing goes on (expired); a repeated field is refused.
  auto no_cookie = c.Post("/api/v1/oidc/authorize/login", "csrf_token=x&email=a%40b.de&password=p",
                          "application/x-www-form-urlencoded");
  REQUIRE(no_cookie);
  CHECK(no_cookie->status == 400);
  CHECK(no_cookie->body.find("expired") != std::string::npos);
  auto twice = c.Post("/api/v1/oidc/authorize/consent", {{"Cookie", "__Host-stadtportal_authorize=pending-1"}},
                      "csrf_token=x&decision=allow&decision=deny", "application/x-www-form-urlencoded");
  REQUIRE(twice);
  CHECK(twice->status == 400);
  auto json = c.Post("/api/v1/oidc/authorize/consent", {{"Cookie", "__Host-stadtportal_authorize=pending-1"}},
                     R"({"decision":"allow"})", "application/json");
  REQUIRE(json);
  CHECK(json->status == 400);
}

TEST_CASE("the token endpoint answers OAuth errors by RFC 6749 5.2, never cached", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto post = [&](const std::string& body) {
    auto r = c.Post("/api/v1/oidc/token", body, "application/x-www-form-urlencoded");
    REQUIRE(r);
    CHECK(r->get_header_value("Cache-Control") == "no-store");
    return r;
  };
  auto ok = post("grant_type=authorization_code&code=c");
  CHECK(ok->status == 200);
  CHECK(nlohmann::json::parse(ok->body) ==
        nlohmann::json{{"access_token", "at"}, {"token_type", "Bearer"}, {"expires_in", 300}, {"id_token", "idt"}});
  auto used = post("grant_type=used");
  CHECK(used->status == 400);
  CHECK(nlohmann::json::parse(used->body) ==
        nlohmann::json{{"error", "invalid_grant"}, {"error_description", "code used"}});
  auto client = post("grant_type=client");
  CHECK(client->status == 401);
  CHECK(client->get_header_value("WWW-Authenticate").rfind("Basic", 0) == 0);
  CHECK(nlohmann::json::parse(client->body)["error"] == "invalid_client");
  auto repeated = post("grant_type=authorization_code&code=a&code=b");
  CHECK(repeated->status == 400);
  CHECK(nlohmann::json::parse(repeated->body)["error"] == "invalid_request");
  // A server-side failure stays a problem with a generic detail.
  auto down = post("grant_type=down");
  CHECK(down->status == 503);
  CHECK(down->body.find("10.0.0.1") == std::string::npos);
  // A form value of invalid UTF-8 or with control characters: refused here, before gRPC.
  auto raw = post("grant_type=authorization_code&client_id=%FF&client_secret=%00");
  CHECK(raw->status == 400);
  CHECK(nlohmann::json::parse(raw->body)["error"] == "invalid_request");
  auto json = c.Post("/api/v1/oidc/token", R"({"grant_type":"authorization_code"})", "application/json");
  REQUIRE(json);
  CHECK(json->status == 400);
}

TEST_CASE("the authorization page: languages, labels, one heading, error summary, escaping, its style by hash",
          "[unit]") {
  pages::Page p;
  p.kind = pages::Page::Kind::kLogin;
  p.lang = "de";
  p.csrf_token = "t";
  p.client_name = "Landesportal \"Bayern\" & <Co>";
  p.problem = "credentials";
  p.email = "a\"@b.de";
  p.providers = {{"BundID", "/api/v1/auth/providers/bundid/login?minimum_level=low&return_to=/x"}};
  const std::string de = pages::Render(p);
  CHECK(de.find("<html lang=\"de\">") != std::string::npos);
  CHECK(de.find("<title>Fehler: Anmelden – stadtportal</title>") != std::string::npos);
  CHECK(CountOf(de, "<h1>") == 1);
  CHECK(de.find("role=\"alert\"") != std::string::npos);
  CHECK(de.find("<a href=\"#email\">E-Mail-Adresse oder Passwort ist falsch.</a>") != std::string::npos);
  CHECK(de.find("<label for=\"email\">") != std::string::npos);
  CHECK(de.find("<label for=\"password\">") != std::string::npos);
  CHECK(de.find("autocomplete=\"username\"") != std::string::npos);
  CHECK(de.find("autocomplete=\"current-password\"") != std::string::npos);
  CHECK(de.find("aria-invalid=\"true\"") != std::string::npos);
  CHECK(de.find("value=\"a&quot;@b.de\"") != std::string::npos);
  CHECK(de.find("Landesportal &quot;Bayern&quot; &amp; &lt;Co&gt;") != std::string::npos);
  CHECK(de.find("<button type=\"submit\">Anmelden</button>") != std::string::npos);
  CHECK(de.find("minimum_level=low&amp;return_to=/x") != std::string::npos);
  CHECK(de.find("<script") == std::string::npos);
  CHECK(de.find(" style=") == std::string::npos);
  // The one stylesheet is allowed by its hash, nothing else.
  std::smatch style;
  REQUIRE(std::regex_search(de, style, std::regex("<style>([^<]*)</style>")));
  const std::string hash = "'sha256-" + absl::Base64Escape(auth::Sha256(style[1].str())) + "'";
  CHECK(pages::ContentSecurityPolicy("").find("style-src " + hash + ";") != std::string::npos);
  CHECK(style[1].str().find(":focus") != std::string::npos);

  p.lang = "en";
  p.problem.clear();
  const std::string en = pages::Render(p);
  CHECK(en.find("<html lang=\"en\">") != std::string::npos);
  CHECK(en.find("<title>Log in – stadtportal</title>") != std::string::npos);
  CHECK(en.find("role=\"alert\"") == std::string::npos);
  CHECK(en.find("E-mail address") != std::string::npos);

  p.kind = pages::Page::Kind::kConsent;
  p.scopes = {"openid", "submissions:read"};
  const std::string consent = pages::Render(p);
  CHECK(consent.find("name=\"decision\" value=\"allow\"") != std::string::npos);
  CHECK(consent.find("name=\"decision\" value=\"deny\"") != std::string::npos);
  CHECK(consent.find("Read your applications and their status") != std::string::npos);
  CHECK(consent.find("<input type=\"hidden\" name=\"csrf_token\" value=\"t\">") != std::string::npos);
}

}  // namespace stadtportal::gateway

#include "services/web/service.h"

#include <regex>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "libs/auth/tokens.h"
#include "libs/testing/testing.h"

namespace stadtportal::web {
namespace {

constexpr char kCsp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

// The REST API as far as these pages need it: a catalogue whose only service has a
// hostile name, and the health check. Anything else: 503, as an API that is down.
struct Gateway {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  Gateway() {
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"alive"})", "application/json");
    });
    server.Get("/api/v1/services", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(
          R"({"items":[{"id":"evil","name":{"de":"<script>alert(1)</script>","en":"<img src=x onerror=alert(1)>"},)"
          R"("description":{"de":"\"'><b>fett</b>","en":"x"},"category":"c","leika":"00000000000000",)"
          R"("department":"{{t.site_name}}","required_assurance_level":"low","fee":{"amount_minor":1200,"currency":"EUR"}}]})",
          "application/json");
    });
    // A draft of a form with every field type (labels hostile where they can be).
    server.Get("/api/v1/drafts/00000000-0000-0000-0000-000000000001",
               [](const httplib::Request& req, httplib::Response& res) {
                 if (req.get_header_value("Authorization") != "Bearer api-token") {
                   res.status = 401;
                   res.set_content(R"({"status":401})", "application/problem+json");
                   return;
                 }
                 res.set_content(R"({"id":"00000000-0000-0000-0000-000000000001","service_id":"all-types",
                   "form_version":1,"version":3,"data":{"given_name":"Erika","kind":"b","address":{"street":"<Hauptmarkt>"}},
                   "read_only_fields":["given_name"],"attachments":[{"id":"00000000-0000-0000-0000-0000000000aa",
                   "field":"proof","filename":"<x>.pdf","media_type":"application/pdf","size":2048}],
                   "fee":{"amount_minor":0,"currency":"EUR"}})",
                                 "application/json");
               });
    server.Get("/api/v1/services/all-types", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"id":"all-types","name":{"de":"Alle Typen","en":"All types"},"form_version":1,
        "fee":{"amount_minor":0,"currency":"EUR"},"required_assurance_level":"low","department":"D",
        "form":{"steps":[{"id":"one","title":{"de":"Schritt <eins>","en":"Step one"},"fields":[
          {"id":"given_name","type":"text","label":{"de":"Vorname","en":"Given name"},"prefill":"given_name"},
          {"id":"note","type":"text","max_length":2000,"label":{"de":"Bemerkung <i>","en":"Note"}},
          {"id":"count","type":"number","integer":true,"label":{"de":"Anzahl","en":"Count"}},
          {"id":"day","type":"date","label":{"de":"Tag","en":"Day"}},
          {"id":"kind","type":"select","label":{"de":"Art","en":"Kind"},"options":[
            {"value":"a","label":{"de":"A <a>","en":"A"}},{"value":"b","label":{"de":"B","en":"B"}}]},
          {"id":"spouse","type":"text","label":{"de":"Ehegatte","en":"Spouse"},"visible_when":{"field":"kind","equals":"a"}},
          {"id":"tags","type":"multiselect","label":{"de":"Themen","en":"Topics"},"options":[
            {"value":"x","label":{"de":"X","en":"X"}},{"value":"y","label":{"de":"Y","en":"Y"}}]},
          {"id":"agree","type":"checkbox","label":{"de":"Einverstanden","en":"Agreed"}},
          {"id":"proof","type":"file","accept":["application/pdf"],"max_size_bytes":1048576,"max_files":2,
           "label":{"de":"Nachweis","en":"Proof"}},
          {"id":"address","type":"address","label":{"de":"Anschrift","en":"Address"}},
          {"id":"iban","type":"iban","label":{"de":"IBAN","en":"IBAN"}},
          {"id":"mail","type":"email","label":{"de":"E-Mail","en":"E-mail"}},
          {"id":"phone","type":"phone","label":{"de":"Telefon","en":"Phone"}}]}]}})",
                      "application/json");
    });
    // Upstream answers the portal must not pass on: too large, too slow, not JSON.
    server.Get("/api/v1/services/huge", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"id\":\"" + std::string(3 << 20, 'x') + "\"}", "application/json");
    });
    server.Get("/api/v1/services/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      res.set_content(R"({"id":"slow"})", "application/json");
    });
    server.Get("/api/v1/services/broken", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content("<h1>Traceback: secret internals</h1>", "text/html");
    });
    server.Get("/api/v1/services/problem", [](const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content(R"({"status":500,"detail":"pq: password authentication failed"})", "application/problem+json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Gateway() {
    server.stop();
    thread.join();
  }
};

struct Fixture {
  Gateway gateway;
  redis::Client redis;
  std::unique_ptr<Service> web;
  uint16_t port = 0;

  Fixture() : redis(*redis::Options::FromUrl(testing::RedisUrl())) {
    Options o;
    o.http.host = "127.0.0.1";
    o.http.port = 0;
    o.http.threads = 4;
    o.admin_port = 0;
    o.edge.max_body_bytes = 64 * 1024;
    o.edge.hsts_max_age = 0;
    o.api.base_url = "http://127.0.0.1:" + std::to_string(gateway.port);
    o.api.timeout = std::chrono::milliseconds(500);
    web = std::make_unique<Service>(o, &redis);
    auto p = web->Start();
    REQUIRE(p.ok());
    port = *p;
  }
  ~Fixture() { web->Shutdown(); }

  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5, 0);
    return c;
  }
};

// The value of cookie `name` set by `res` ("" if none) and the whole Set-Cookie line.
std::pair<std::string, std::string> SetCookie(const httplib::Response& res, const std::string& name) {
  for (auto [it, end] = res.headers.equal_range("Set-Cookie"); it != end; ++it) {
    if (absl::StartsWith(it->second, name + "=")) {
      const std::string& line = it->second;
      return {line.substr(name.size() + 1, line.find(';') - name.size() - 1), line};
    }
  }
  return {"", ""};
}

std::string CsrfOf(const std::string& html) {
  std::smatch m;
  static const std::regex kCsrf(R"re(name="csrf" value="([A-Za-z0-9_-]+)")re");
  REQUIRE(std::regex_search(html, m, kCsrf));
  return m[1];
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool SessionExists(redis::Client& redis, const std::string& id) {
  auto r = redis.Command({"EXISTS", "sp:web:session:" + absl::BytesToHexString(auth::Sha256(id))});
  REQUIRE(r.ok());
  return r->integer() == 1;
}

TEST_CASE("the session cookie is __Host-, HttpOnly, Secure, SameSite=Lax, and names a session in Redis") {
  Fixture f;
  auto c = f.Client();
  auto res = c.Get("/login");
  REQUIRE(res);
  CHECK(res->status == 200);
  auto [id, line] = SetCookie(*res, "__Host-sp");
  REQUIRE(!id.empty());
  CHECK(Sessions::IsWellFormedId(id));
  CHECK(absl::StrContains(line, "; Path=/"));
  CHECK(absl::StrContains(line, "; Secure"));
  CHECK(absl::StrContains(line, "; HttpOnly"));
  CHECK(absl::StrContains(line, "; SameSite=Lax"));
  CHECK(!absl::StrContains(line, "Domain"));
  // Redis holds the session under the id's hash, never the id itself.
  CHECK(SessionExists(f.redis, id));
  auto plain = f.redis.Command({"EXISTS", "sp:web:session:" + id});
  REQUIRE(plain.ok());
  CHECK(plain->integer() == 0);
  // The same session on the next visit (no new cookie), with its CSRF token in the form.
  auto again = c.Get("/login", {{"Cookie", "__Host-sp=" + id}});
  REQUIRE(again);
  CHECK(SetCookie(*again, "__Host-sp").first.empty());
  CHECK(CsrfOf(again->body) == CsrfOf(res->body));
  // A made-up id is no session: a new one is made.
  auto forged = c.Get("/login", {{"Cookie", "__Host-sp=" + std::string(43, 'A')}});
  REQUIRE(forged);
  CHECK(!SetCookie(*forged, "__Host-sp").first.empty());
  CHECK(SetCookie(*forged, "__Host-sp").first != std::string(43, 'A'));
}

TEST_CASE("a form without the session's CSRF token is refused with 403 and changes nothing") {
  Fixture f;
  auto c = f.Client();
  auto page = c.Get("/login");
  REQUIRE(page);
  const std::string id = SetCookie(*page, "__Host-sp").first;
  const std::string csrf = CsrfOf(page->body);
  const httplib::Headers cookie = {{"Cookie", "__Host-sp=" + id}};
  // Log-out would end the session: without the token (or with another session's, or
  // with no session at all) it does not.
  for (const std::string& body : {std::string(""), std::string("csrf="), std::string("csrf=") + std::string(43, 'x'),
                                  "csrf=" + csrf + "x"}) {
    auto res = c.Post("/logout", cookie, body, "application/x-www-form-urlencoded");
    REQUIRE(res);
    CHECK(res->status == 403);
    CHECK(absl::StrContains(res->get_header_value("Content-Type"), "text/html"));
    CHECK(absl::StrContains(res->body, "<h1"));
    CHECK(SessionExists(f.redis, id));
  }
  auto no_session = c.Post("/logout", "csrf=" + csrf, "application/x-www-form-urlencoded");
  REQUIRE(no_session);
  CHECK(no_session->status == 403);
  CHECK(SessionExists(f.redis, id));
  // Multipart forms too.
  httplib::MultipartFormDataItems items = {{"csrf", "wrong", "", ""}};
  auto multipart = c.Post("/logout", cookie, items);
  REQUIRE(multipart);
  CHECK(multipart->status == 403);
  CHECK(SessionExists(f.redis, id));
  // With the token the same request goes through: the session ends.
  auto ok = c.Post("/logout", cookie, "csrf=" + csrf, "application/x-www-form-urlencoded");
  REQUIRE(ok);
  CHECK(ok->status == 303);
  CHECK(!SessionExists(f.redis, id));
}

TEST_CASE("every page carries the Content-Security-Policy and the other security headers") {
  Fixture f;
  auto c = f.Client();
  auto login = c.Get("/login");
  REQUIRE(login);
  const std::string id = SetCookie(*login, "__Host-sp").first;
  const httplib::Headers cookie = {{"Cookie", "__Host-sp=" + id}};
  std::vector<std::pair<std::string, httplib::Result>> pages;
  for (const std::string path : {"/", "/?q=urkunde", "/login", "/register", "/register?sent=1", "/verify?token=abc",
                                 "/verify?token=abcdefghijklmnopqrstuvwxyz", "/services/evil", "/services/NOPE",
                                 "/no/such/page", "/healthz", "/readyz", "/?lang=en"}) {
    pages.emplace_back(path, c.Get(path, cookie));
  }
  pages.emplace_back("POST /logout (no token)", c.Post("/logout", cookie, "", "application/x-www-form-urlencoded"));
  pages.emplace_back("DELETE /", c.Delete("/", cookie));
  for (auto& [name, res] : pages) {
    INFO(name);
    REQUIRE(res);
    CHECK(res->get_header_value("Content-Security-Policy") == kCsp);
    CHECK(res->get_header_value_count("Content-Security-Policy") == 1);
    CHECK(res->get_header_value("X-Content-Type-Options") == "nosniff");
    CHECK(res->get_header_value("X-Frame-Options") == "DENY");
    CHECK(res->get_header_value("Referrer-Policy") == "same-origin");
    CHECK(res->get_header_value("Cache-Control") == "no-store");
    if (absl::StartsWith(res->get_header_value("Content-Type"), "text/html")) {
      // One h1, a language, the skip link; no inline script or style.
      CHECK(Count(res->body, "<h1") == 1);
      CHECK(std::regex_search(res->body, std::regex(R"re(<html lang="(de|en)">)re")));
      CHECK(absl::StrContains(res->body, R"(href="#main")"));
      CHECK(Count(res->body, "<script") == Count(res->body, "<script src="));
      CHECK(Count(res->body, "<style") == 0);
      CHECK(Count(res->body, " style=") == 0);
      CHECK(!std::regex_search(res->body, std::regex(R"(<[^>]*\son[a-z]+=)")));
    }
  }
}

TEST_CASE("hostile text from the API and from forms is escaped in the pages") {
  Fixture f;
  auto c = f.Client();
  // The catalogue's texts (from the API) on the start page.
  for (const std::string lang : {"de", "en"}) {
    auto res = c.Get("/?lang=" + lang);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(!absl::StrContains(res->body, "<script>alert"));
    CHECK(!absl::StrContains(res->body, "<img src=x"));
    CHECK(!absl::StrContains(res->body, "<b>fett"));
    CHECK(!absl::StrContains(res->body, "Stadtportal Nürnberg</p>"));  // {{…}} in data is not a tag.
  }
  auto de = c.Get("/?lang=de");
  REQUIRE(de);
  CHECK(absl::StrContains(de->body, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  CHECK(absl::StrContains(de->body, "&quot;&apos;&gt;&lt;b&gt;fett&lt;/b&gt;"));
  CHECK(absl::StrContains(de->body, "{{t.site_name}}"));
  // The search words, echoed in the search field.
  auto q = c.Get("/?q=%22%3E%3Cscript%3Ex()%3C%2Fscript%3E");
  REQUIRE(q);
  CHECK(!absl::StrContains(q->body, "<script>x()"));
  CHECK(absl::StrContains(q->body, "value=\"&quot;&gt;&lt;script&gt;x()&lt;/script&gt;\""));
  // A form's values, shown again with its errors (the password missing: no API call).
  auto page = c.Get("/register");
  REQUIRE(page);
  const std::string id = SetCookie(*page, "__Host-sp").first;
  const std::string body = "csrf=" + CsrfOf(page->body) +
                           "&display_name=%3Cscript%3Ealert(2)%3C%2Fscript%3E&email=%22%20autofocus%20onfocus%3Dx&password=";
  auto res = c.Post("/register", {{"Cookie", "__Host-sp=" + id}}, body, "application/x-www-form-urlencoded");
  REQUIRE(res);
  CHECK(res->status == 422);
  CHECK(!absl::StrContains(res->body, "<script>alert(2)"));
  CHECK(absl::StrContains(res->body, "&lt;script&gt;alert(2)&lt;/script&gt;"));
  CHECK(absl::StrContains(res->body, "value=\"&quot; autofocus onfocus=x\""));
  // The error summary links to the field, which names its error.
  CHECK(absl::StrContains(res->body, R"(href="#password")"));
  CHECK(absl::StrContains(res->body, R"(aria-describedby="password-hint password-error")"));
  // A value with control characters is no form at all.
  auto control = c.Post("/register", {{"Cookie", "__Host-sp=" + id}},
                        "csrf=" + CsrfOf(page->body) + "&display_name=a%00b", "application/x-www-form-urlencoded");
  REQUIRE(control);
  CHECK(control->status == 400);
}

TEST_CASE("oversize form bodies are refused with 413 as a page, before they are read") {
  Fixture f;
  auto c = f.Client();
  auto page = c.Get("/login");
  REQUIRE(page);
  const std::string id = SetCookie(*page, "__Host-sp").first;
  const std::string big = "csrf=" + CsrfOf(page->body) + "&email=" + std::string(70 * 1024, 'a') + "&password=x";
  auto res = c.Post("/login", {{"Cookie", "__Host-sp=" + id}}, big, "application/x-www-form-urlencoded");
  REQUIRE(res);
  CHECK(res->status == 413);
  CHECK(absl::StrContains(res->get_header_value("Content-Type"), "text/html"));
  CHECK(res->get_header_value("Content-Security-Policy") == kCsp);
  CHECK(absl::StrContains(res->body, "<h1"));
  // The session is still anonymous: nothing was logged in.
  auto login = c.Get("/login", {{"Cookie", "__Host-sp=" + id}});
  REQUIRE(login);
  CHECK(absl::StrContains(login->body, R"(action="/login")"));
  // A chunked body that grows past the limit is cut off too.
  httplib::Client chunked("127.0.0.1", f.port);
  size_t sent = 0;
  auto streamed = chunked.Post(
      "/login", {{"Cookie", "__Host-sp=" + id}},
      [&](size_t, httplib::DataSink& sink) {
        const std::string part(8192, 'b');
        if (sent > 200 * 1024) {
          sink.done();
          return true;
        }
        sent += part.size();
        return sink.write(part.data(), part.size());
      },
      "application/x-www-form-urlencoded");
  REQUIRE(streamed);
  CHECK(streamed->status == 413);
}

TEST_CASE("upstream answers that are too large, too slow or broken become the error page, never their text") {
  Fixture f;
  auto c = f.Client();
  for (const auto& [path, status] : std::vector<std::pair<std::string, int>>{
           {"/services/huge", 503}, {"/services/slow", 503}, {"/services/broken", 503}, {"/services/problem", 500}}) {
    INFO(path);
    const auto start = std::chrono::steady_clock::now();
    auto res = c.Get(path);
    REQUIRE(res);
    CHECK(res->status == status);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1400));  // The API timeout is 500 ms.
    CHECK(absl::StrContains(res->get_header_value("Content-Type"), "text/html"));
    CHECK(Count(res->body, "<h1") == 1);
    CHECK(!absl::StrContains(res->body, "xxxxxxxx"));
    CHECK(!absl::StrContains(res->body, "Traceback"));
    CHECK(!absl::StrContains(res->body, "password authentication"));
    CHECK(res->get_header_value("Content-Security-Policy") == kCsp);
  }
}

TEST_CASE("a wizard step renders every field type of the form definition, labelled and escaped") {
  Fixture f;
  Sessions sessions(&f.redis, std::chrono::seconds(600));
  auto made = sessions.Create("de");
  REQUIRE(made.ok());
  WebSession s = *made;
  s.api_token = "api-token";
  s.expires_at = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                     .count() + 600;
  REQUIRE(sessions.Save(s).ok());
  auto c = f.Client();
  auto res = c.Get("/drafts/00000000-0000-0000-0000-000000000001/steps/1", {{"Cookie", "__Host-sp=" + s.id}});
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const std::string& b = res->body;
  CHECK(Count(b, "<h1") == 1);
  CHECK(absl::StrContains(b, "Schritt &lt;eins&gt;"));
  CHECK(absl::StrContains(b, R"(enctype="multipart/form-data")"));
  // Every input has a label naming it.
  for (const std::string id : {"given_name", "note", "count", "day", "kind", "spouse", "tags-0", "tags-1", "agree",
                               "proof", "address-street", "address-house_number", "address-postcode",
                               "address-city", "iban", "mail", "phone"}) {
    INFO(id);
    CHECK(absl::StrContains(b, "<label class=\"kern-label\" for=\"" + id + "\""));
    CHECK(absl::StrContains(b, "id=\"" + id + "\""));
  }
  // Types as the browser needs them.
  CHECK(std::regex_search(b, std::regex(R"re(<textarea[^>]*id="note")re")));
  CHECK(std::regex_search(b, std::regex(R"re(id="count" name="count" type="text" value="" inputmode="numeric")re")));
  CHECK(std::regex_search(b, std::regex(R"re(id="day" name="day" type="date")re")));
  CHECK(std::regex_search(b, std::regex(R"re(id="mail" name="mail" type="email")re")));
  CHECK(std::regex_search(b, std::regex(R"re(id="phone" name="phone" type="tel")re")));
  CHECK(std::regex_search(b, std::regex(R"re(<option value="b" selected>B</option>)re")));
  CHECK(std::regex_search(b, std::regex(R"re(type="file" id="proof" name="proof" multiple accept="application/pdf")re")));
  // Verified prefill is read-only; the conditional field names its condition.
  CHECK(std::regex_search(b, std::regex(R"re(id="given_name" name="given_name" type="text" value="Erika"[^>]* readonly)re")));
  CHECK(absl::StrContains(b, R"(data-when-field="kind" data-when-values="a")"));
  CHECK(absl::StrContains(b, "Nur nötig bei Art: A &lt;a&gt;"));
  // Outside text is escaped: labels, option labels, answers, file names.
  CHECK(!absl::StrContains(b, "<i>"));
  CHECK(!absl::StrContains(b, "<a>"));
  CHECK(absl::StrContains(b, "value=\"&lt;Hauptmarkt&gt;\""));
  CHECK(absl::StrContains(b, "&lt;x&gt;.pdf"));
  // A draft the API does not know: the 404 page.
  auto unknown = c.Get("/drafts/00000000-0000-0000-0000-000000000002/steps/1", {{"Cookie", "__Host-sp=" + s.id}});
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  // The API session ended (401): back to the log-in, nothing of the draft shown.
  s.api_token = "ended";
  REQUIRE(sessions.Save(s).ok());
  auto ended = c.Get("/drafts/00000000-0000-0000-0000-000000000001/steps/1", {{"Cookie", "__Host-sp=" + s.id}});
  REQUIRE(ended);
  CHECK(ended->status == 303);
  // (The client decodes Location: the server sends next=%2Fdrafts%2F….)
  CHECK(ended->get_header_value("Location") == "/login?next=/drafts/00000000-0000-0000-0000-000000000001/steps/1");
  CHECK(!absl::StrContains(ended->body, "Erika"));
  // Not logged in at all: to the log-in first.
  auto anonymous = c.Get("/drafts/00000000-0000-0000-0000-000000000001/steps/1");
  REQUIRE(anonymous);
  CHECK(anonymous->status == 303);
}

}  // namespace
}  // namespace stadtportal::web

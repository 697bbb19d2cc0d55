// Log-in with upstream identity providers through the whole platform, against independent
// implementations on loopback: SimpleSAMLphp as the BundID stand-in (scripts/lib/idp.sh)
// and npm oidc-provider as an OpenID Connect upstream (scripts/lib/op.sh), driven over HTTP
// like a browser.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <regex>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using nlohmann::json;

std::string Unescape(std::string s) {
  static const std::vector<std::pair<std::string, std::string>> kEntities = {
      {"&quot;", "\""}, {"&#039;", "'"}, {"&#39;", "'"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&#x2F;", "/"}, {"&amp;", "&"}};
  for (const auto& [from, to] : kEntities) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
  }
  return s;
}

struct Form {
  std::string action;
  std::map<std::string, std::string> fields;
};

// The forms of a page: action and the named inputs with their values.
std::vector<Form> FormsOf(const std::string& page) {
  std::vector<Form> forms;
  static const std::regex kTag(R"(<(form|input|button)\b([^>]*)>)", std::regex::icase);
  static const std::regex kName(R"(\bname\s*=\s*"([^"]*)\")", std::regex::icase);
  static const std::regex kValue(R"(\bvalue\s*=\s*"([^"]*)\")", std::regex::icase);
  static const std::regex kAction(R"(\baction\s*=\s*"([^"]*)\")", std::regex::icase);
  for (auto it = std::sregex_iterator(page.begin(), page.end(), kTag); it != std::sregex_iterator(); ++it) {
    const std::string tag = (*it)[1].str(), attrs = (*it)[2].str();
    std::smatch m;
    if (tag == "form" || tag == "FORM") {
      forms.push_back({std::regex_search(attrs, m, kAction) ? Unescape(m[1].str()) : "", {}});
    } else if (!forms.empty() && std::regex_search(attrs, m, kName)) {
      const std::string name = m[1].str();
      forms.back().fields[name] = std::regex_search(attrs, m, kValue) ? Unescape(m[1].str()) : "";
    }
  }
  return forms;
}

std::string FormEncode(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += "&";
    out += httplib::detail::encode_query_param(k) + "=" + httplib::detail::encode_query_param(v);
  }
  return out;
}

// A browser: cookies per host and port, redirects followed by hand.
class Browser {
 public:
  struct Page {
    int status = 0;
    std::string url;  // The page's own address.
    std::string location;
    std::string body;
    httplib::Headers headers;
  };

  Page Get(const std::string& url, const httplib::Headers& extra = {}) { return Send("GET", url, "", "", extra); }
  Page PostForm(const std::string& url, const std::map<std::string, std::string>& fields,
                const httplib::Headers& extra = {}) {
    return Send("POST", url, FormEncode(fields), "application/x-www-form-urlencoded", extra);
  }
  // GETs `page`'s redirects until a page that is none, or one at `stop_prefix`.
  Page Follow(Page page, const std::string& stop_prefix = "") {
    for (int hops = 0; hops < 10 && page.status >= 301 && page.status <= 303; ++hops) {
      const std::string next = Absolute(page.url, page.location);
      if (!stop_prefix.empty() && next.rfind(stop_prefix, 0) == 0) {
        page.location = next;
        return page;
      }
      page = Get(next);
    }
    return page;
  }
  std::string Cookie(const std::string& origin, const std::string& name) {
    auto it = jar_[origin].find(name);
    return it == jar_[origin].end() ? "" : it->second;
  }
  void SetCookie(const std::string& origin, const std::string& name, const std::string& value) {
    jar_[origin][name] = value;
  }
  void DropCookie(const std::string& origin, const std::string& name) { jar_[origin].erase(name); }

  static std::string Absolute(const std::string& base, const std::string& ref) {
    if (ref.rfind("http://", 0) == 0) return ref;
    const auto slash = base.find('/', 7);
    const std::string origin = base.substr(0, slash);
    if (!ref.empty() && ref[0] == '/') return origin + ref;
    const std::string path = slash == std::string::npos ? "/" : base.substr(slash, base.find('?', slash) - slash);
    if (ref.empty()) return base;
    if (ref[0] == '?') return origin + path + ref;
    return origin + path.substr(0, path.rfind('/') + 1) + ref;
  }

 private:
  // By curl, which sends an address exactly as the server wrote it (signed query strings).
  Page Send(const std::string& method, const std::string& url, const std::string& body, const std::string& type,
            const httplib::Headers& extra) {
    const auto slash = url.find('/', 7);
    const std::string origin = url.substr(0, slash);
    const std::string base = testing::TempDir() + "/browser." + std::to_string(getpid()) + "." + std::to_string(++n_);
    std::string command = "curl -sS --max-time 30 -X " + method + " -D " + base + ".h -o " + base + ".b";
    auto header = [&](const std::string& h) {
      std::ofstream(base + ".a", std::ios::app) << "header = \"" << h << "\"\n";
    };
    std::ofstream(base + ".a", std::ios::trunc) << "url = \"" << url << "\"\n";
    for (const auto& [k, v] : extra) header(k + ": " + v);
    std::string cookies;
    for (const auto& [k, v] : jar_[origin]) cookies += (cookies.empty() ? "" : "; ") + k + "=" + v;
    if (!cookies.empty()) header("Cookie: " + cookies);
    if (method == "POST") {
      header("Content-Type: " + type);
      std::ofstream(base + ".d", std::ios::binary) << body;
      command += " --data-binary @" + base + ".d";
    }
    command += " -K " + base + ".a";
    std::string out;
    const int rc = testing::RunCommand(command, &out);
    Page page;
    page.url = url;
    if (rc != 0) return page;
    std::ifstream hs(base + ".h");
    std::string line;
    std::vector<std::pair<std::string, std::string>> raw;
    while (std::getline(hs, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("HTTP/", 0) == 0) {
        page.status = std::stoi(line.substr(line.find(' ') + 1, 3));
        continue;
      }
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      raw.emplace_back(line.substr(0, colon), value);
    }
    std::ifstream bs(base + ".b", std::ios::binary);
    page.body.assign(std::istreambuf_iterator<char>(bs), std::istreambuf_iterator<char>());
    for (const char* ext : {".a", ".b", ".d", ".h"}) std::remove((base + ext).c_str());
    for (const auto& [k, v] : raw) {
      page.headers.emplace(k, v);
      if (k == "Location" || k == "location") page.location = v;
    }
    for (const auto& [k, v] : raw) {
      if (k != "Set-Cookie" && k != "set-cookie") continue;
      const std::string pair = v.substr(0, v.find(';'));
      const auto eq = pair.find('=');
      if (eq == std::string::npos) continue;
      const std::string name = pair.substr(0, eq), value = pair.substr(eq + 1);
      const bool gone = v.find("Max-Age=0") != std::string::npos || value.empty();
      if (gone) {
        jar_[origin].erase(name);
      } else {
        jar_[origin][name] = value;
      }
    }
    return page;
  }

  std::map<std::string, std::map<std::string, std::string>> jar_;
  int n_ = 0;
};

std::string Shell(const std::string& script) {
  std::string out;
  const std::string command =
      "bash -c 'source \"" + std::string(STADTPORTAL_SOURCE_DIR) + "/scripts/lib/common.sh\"; " + script + "' 2>&1";
  const int rc = testing::RunCommand(command, &out);
  INFO(out);
  REQUIRE(rc == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string UniqueDir() {
  std::string pattern = testing::TempDir() + "/federation.XXXXXX";
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

// The stack with both stand-ins as its upstream providers.
struct Federated {
  Stack stack;
  std::string dir = UniqueDir();
  std::string gateway;
  std::string idp;  // http://127.0.0.1:<port>
  std::string op;
  std::string sp_metadata_file = dir + "/sp-metadata.xml";

  Federated() {
    REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
    gateway = "http://127.0.0.1:" + std::to_string(stack.gateway_port());
    // Our SAML key pair, and a first SP description for the IdP until ours is served.
    Shell("openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj \"/CN=stadtportal SP (test)\" -keyout " +
          dir + "/sp.key -out " + dir + "/sp.crt 2>/dev/null");
    Shell("source \"$SP_ROOT/scripts/lib/idp.sh\"; sp_saml_sp_placeholder " + sp_metadata_file + " " + gateway +
          "/api/v1/auth/saml/bundid/metadata " + dir + "/sp.crt");
    const uint16_t idp_port = testing::FreePort();
    idp = "http://127.0.0.1:" + std::to_string(idp_port);
    Shell("source \"$SP_ROOT/scripts/lib/idp.sh\"; sp_start_saml_idp " + dir + "/idp " + std::to_string(idp_port) +
          " " + sp_metadata_file + " " + dir + "/idp.log >/dev/null && curl -fsS -o " + dir + "/idp-metadata.xml " +
          idp + "/simplesaml/saml2/idp/metadata.php");
    const uint16_t op_port = testing::FreePort();
    op = "http://127.0.0.1:" + std::to_string(op_port);
    const std::string secret = "e2e-oidc-client-secret-0123456789";
    Shell("source \"$SP_ROOT/scripts/lib/op.sh\"; export STADTPORTAL_OIDC_OP_CLIENT_SECRET=" + secret +
          " STADTPORTAL_OIDC_OP_REDIRECT_URI=" + gateway +
          "/api/v1/auth/oidc/generic-oidc/callback; sp_start_oidc_op " + dir + "/op " + std::to_string(op_port) + " " +
          dir + "/op.log >/dev/null");

    json bundid = json::parse(
        std::ifstream(std::string(STADTPORTAL_SOURCE_DIR) + "/services/identity/federation/providers/bundid.json"));
    bundid["saml"]["idp_metadata"] = dir + "/idp-metadata.xml";
    json oidc = json::parse(std::ifstream(std::string(STADTPORTAL_SOURCE_DIR) +
                                          "/services/identity/federation/providers/generic-oidc.json"));
    oidc["oidc"]["issuer"] = op;
    std::ofstream(dir + "/providers.json") << json::array({bundid, oidc}).dump(2);
    REQUIRE(stack.Restart(stack.instance("identity"), {{"STADTPORTAL_FEDERATION_PROVIDERS", dir + "/providers.json"},
                                                       {"STADTPORTAL_SAML_KEY_FILE", dir + "/sp.key"},
                                                       {"STADTPORTAL_SAML_CERT_FILE", dir + "/sp.crt"},
                                                       {"STADTPORTAL_PUBLIC_URL", gateway},
                                                       {"STADTPORTAL_OIDC_GENERIC_CLIENT_SECRET", secret}}));
    REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
    // Now the IdP learns our real metadata.
    auto c = stack.Http();
    auto metadata = c.Get("/api/v1/auth/saml/bundid/metadata");
    REQUIRE(Status(metadata) == 200);
    std::ofstream(sp_metadata_file) << metadata->body;
  }

  ~Federated() {
    std::string out;
    testing::RunCommand("bash -c 'source \"" + std::string(STADTPORTAL_SOURCE_DIR) +
                            "/scripts/lib/common.sh\"; source \"$SP_ROOT/scripts/lib/idp.sh\"; source "
                            "\"$SP_ROOT/scripts/lib/op.sh\"; sp_stop_saml_idp " +
                            dir + "/idp; sp_stop_oidc_op " + dir + "/op' 2>&1",
                        &out);
  }

  // From the gateway's login link through the IdP's form to the answer posted back to our
  // ACS; returns the ACS page (not followed further) and leaves the SAMLResponse in `saml`.
  Browser::Page SamlLogIn(Browser& b, const std::string& user, const std::string& password,
                          const std::string& query = "", httplib::Headers headers = {}, std::string* saml = nullptr,
                          const std::function<void()>& before_answer = nullptr) {
    auto start = b.Get(gateway + "/api/v1/auth/providers/bundid/login" + query, headers);
    INFO("location: " + start.location);
    REQUIRE(start.status == 303);
    REQUIRE(start.location.rfind(idp, 0) == 0);
    auto page = b.Follow(b.Get(start.location));
    auto forms = FormsOf(page.body);
    auto login = std::find_if(forms.begin(), forms.end(), [](const Form& f) { return f.fields.count("password"); });
    std::string idp_log;
    testing::RunCommand("tail -c 3000 " + dir + "/idp/log/simplesamlphp.log " + dir + "/idp.log", &idp_log);
    INFO(idp_log);
    REQUIRE(login != forms.end());
    login->fields["username"] = user;
    login->fields["password"] = password;
    page = b.Follow(b.PostForm(Browser::Absolute(page.url, login->action), login->fields));
    INFO(page.body.substr(0, 3000));
    forms = FormsOf(page.body);
    auto back = std::find_if(forms.begin(), forms.end(), [](const Form& f) { return f.fields.count("SAMLResponse"); });
    REQUIRE(back != forms.end());
    CHECK(back->action == gateway + "/api/v1/auth/saml/bundid/acs");
    if (saml != nullptr) *saml = back->fields["SAMLResponse"];
    if (before_answer) before_answer();
    // The IdP's page posts across sites: like a browser, without the SameSite=Lax session
    // cookie (kept for the pages after, unless the answer set another).
    const std::string session = b.Cookie(gateway, "__Host-stadtportal_session");
    b.DropCookie(gateway, "__Host-stadtportal_session");
    auto done = b.PostForm(back->action, back->fields, headers);
    if (!session.empty() && b.Cookie(gateway, "__Host-stadtportal_session").empty()) {
      b.SetCookie(gateway, "__Host-stadtportal_session", session);
    }
    return done;
  }

  Browser::Page OidcLogIn(Browser& b, const std::string& user, const std::string& password) {
    auto start = b.Get(gateway + "/api/v1/auth/providers/generic-oidc/login");
    REQUIRE(start.status == 303);
    REQUIRE(start.location.rfind(op, 0) == 0);
    auto page = b.Follow(b.Get(start.location));
    auto forms = FormsOf(page.body);
    INFO(page.body.substr(0, 2000));
    REQUIRE(forms.size() == 1);
    forms[0].fields["login"] = user;
    forms[0].fields["password"] = password;
    // Through the provider's redirects up to our callback, which is called last.
    page = b.Follow(b.PostForm(Browser::Absolute(page.url, forms[0].action), forms[0].fields), gateway);
    REQUIRE(page.location.rfind(gateway + "/api/v1/auth/oidc/generic-oidc/callback", 0) == 0);
    return b.Get(page.location);
  }

  // identity's count of refusals for `reason` (all instances' /metrics).
  double Refusals(const std::string& reason) {
    httplib::Client m("127.0.0.1", stack.instance("identity").admin_port);
    auto r = m.Get("/metrics");
    if (!r) return -1;
    const std::regex line("stadtportal_identity_federation_refusals_total\\{[^}]*reason=\"" + reason +
                          "\"[^}]*\\} ([0-9.e+]+)");
    std::smatch match;
    return std::regex_search(r->body, match, line) ? std::stod(match[1].str()) : 0;
  }
};

httplib::Headers BearerOf(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// The verified profile once accounts took identity's event (asynchronous): up to 10 s.
json VerifiedProfile(httplib::Client& c, const std::string& token, size_t attributes) {
  json profile;
  for (int i = 0; i < 100; ++i) {
    auto r = c.Get("/api/v1/me/profile", BearerOf(token));
    if (Status(r) == 200) {
      profile = json::parse(r->body);
      size_t verified = 0;
      for (const auto& [name, a] : profile["attributes"].items()) verified += a.value("source", "") == "provider";
      if (verified >= attributes) return profile;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return profile;
}

std::map<std::string, json> ByName(const json& profile) {
  std::map<std::string, json> out;
  for (const auto& [name, a] : profile["attributes"].items()) out[name] = a;
  return out;
}

}  // namespace

TEST_CASE("BundID over SAML: log-in creates the account at level substantial with verified, read-only prefill",
          "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  auto providers = c.Get("/api/v1/auth/providers");
  REQUIRE(Status(providers) == 200);
  const auto list = json::parse(providers->body)["providers"];
  REQUIRE(list.size() == 2);
  CHECK(list[0]["id"] == "bundid");
  CHECK(list[0]["kind"] == "saml");
  CHECK(list[0]["highest_assurance_level"] == "high");

  Browser b;
  auto done = f.SamlLogIn(b, "erika", "erika-test-1", "?return_to=/antraege");
  INFO(done.body);
  REQUIRE(done.status == 303);
  CHECK(done.location == "/antraege");
  const std::string token = b.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(!token.empty());
  CHECK(b.Cookie(f.gateway, "__Host-stadtportal_federation").empty());  // The flow is used up.

  auto session = c.Get("/api/v1/me", BearerOf(token));
  REQUIRE(Status(session) == 200);
  CHECK(json::parse(session->body)["assurance_level"] == "substantial");
  // The IdP allows a session of 8 h (SessionNotOnOrAfter); ours would last 12 h.
  absl::Time ends;
  std::string err;
  REQUIRE(absl::ParseTime(absl::RFC3339_full, json::parse(session->body)["session_expires_at"].get<std::string>(),
                          &ends, &err));
  CHECK(ends <= absl::Now() + absl::Hours(8) + absl::Minutes(1));
  CHECK(ends >= absl::Now() + absl::Hours(8) - absl::Minutes(5));

  const auto profile = ByName(VerifiedProfile(c, token, 8));
  CHECK(profile.at("given_name")["value"] == "Erika");
  CHECK(profile.at("family_name")["value"] == "Mustermann");
  CHECK(profile.at("birth_date")["value"] == "1964-08-12");
  CHECK(profile.at("address.street")["value"] == "Heidestraße");
  CHECK(profile.at("address.house_number")["value"] == "17");
  CHECK(profile.at("address.postcode")["value"] == "51147");
  CHECK(profile.at("address.city")["value"] == "Köln");
  CHECK(profile.at("family_name")["provider"] == "bundid");
  CHECK(profile.at("family_name")["assurance_level"] == "substantial");

  // A substantial-level service: allowed, its name and birth date prefilled read-only.
  auto draft = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerOf(token));
  INFO(draft->body);
  REQUIRE(Status(draft) == 201);
  const auto d = json::parse(draft->body);
  CHECK(d["data"]["family_name"] == "Mustermann");
  CHECK(d["data"]["birth_date"] == "1964-08-12");
  const auto read_only = d["read_only_fields"].get<std::vector<std::string>>();
  for (const char* field : {"given_name", "family_name", "birth_date"}) {
    CHECK(std::find(read_only.begin(), read_only.end(), field) != read_only.end());
  }
  // Verified means the person cannot change it.
  auto change =
      c.Patch("/api/v1/me/profile", BearerOf(token), json{{"family_name", "Anders"}}.dump(), "application/json");
  CHECK(Status(change) == 409);

  // The same person again: the same account, no second one.
  Browser again;
  REQUIRE(f.SamlLogIn(again, "erika", "erika-test-1").status == 303);
  auto me1 = json::parse(c.Get("/api/v1/me", BearerOf(token))->body);
  auto me2 = json::parse(c.Get("/api/v1/me", BearerOf(again.Cookie(f.gateway, "__Host-stadtportal_session")))->body);
  CHECK(me1["account_id"] == me2["account_id"]);

  auto linked = c.Get("/api/v1/me/providers", BearerOf(token));
  REQUIRE(Status(linked) == 200);
  CHECK(json::parse(linked->body)["providers"][0]["provider"] == "bundid");
  // The only way into this account cannot be removed.
  CHECK(Status(c.Delete("/api/v1/me/providers/bundid", BearerOf(token))) == 409);

  // Log-out ends the IdP's session too (single log-out).
  auto out = c.Post("/api/v1/auth/logout", BearerOf(token), "", "application/json");
  REQUIRE(Status(out) == 200);
  CHECK(json::parse(out->body)["upstream_logout_url"].get<std::string>().rfind(f.idp, 0) == 0);
  CHECK(Status(c.Get("/api/v1/me", BearerOf(token))) == 401);
}

TEST_CASE("an OpenID Connect provider: the same journey at its acr", "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  Browser b;
  auto done = f.OidcLogIn(b, "max", "max-test-1");
  INFO(done.body);
  REQUIRE(done.status == 303);
  const std::string token = b.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(!token.empty());
  auto session = json::parse(c.Get("/api/v1/me", BearerOf(token))->body);
  CHECK(session["assurance_level"] == "high");
  const auto profile = ByName(VerifiedProfile(c, token, 3));
  CHECK(profile.at("given_name")["value"] == "Max");
  CHECK(profile.at("birth_date")["value"] == "1980-01-31");
  CHECK(profile.at("birth_date")["provider"] == "generic-oidc");
  CHECK(profile.at("birth_date")["assurance_level"] == "high");
  auto draft = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerOf(token));
  REQUIRE(Status(draft) == 201);
  CHECK(json::parse(draft->body)["data"]["given_name"] == "Max");
  const auto read_only = json::parse(draft->body)["read_only_fields"].get<std::vector<std::string>>();
  CHECK(std::find(read_only.begin(), read_only.end(), "birth_date") != read_only.end());

  // The provider's answer again (a replayed callback): the flow is gone.
  const double before = f.Refusals("state");
  auto replay = b.Get(done.url);
  CHECK(replay.status == 403);
  CHECK(json::parse(replay.body)["reason"] == "state");
  CHECK(f.Refusals("state") == before + 1);

  // Log-out: on to the provider's end-session endpoint with the ID token as hint.
  auto out = c.Post("/api/v1/auth/logout", BearerOf(token), "", "application/json");
  REQUIRE(Status(out) == 200);
  const std::string end_session = json::parse(out->body)["upstream_logout_url"];
  CHECK(end_session.rfind(f.op, 0) == 0);
  CHECK(end_session.find("id_token_hint=") != std::string::npos);
}

TEST_CASE("step-up: a password session gets 403 naming the providers, steps up through BundID, keeps its draft",
          "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  const std::string email = UniqueEmail();
  const json anna = Onboard(f.stack, c, email);
  const std::string low = anna["token"];

  // An open draft of a low-level service.
  auto dog = PostJson(c, "/api/v1/services/dog-tax-registration/drafts", json::object(), BearerOf(low));
  REQUIRE(Status(dog) == 201);
  const std::string draft_id = json::parse(dog->body)["id"];

  auto refused = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerOf(low));
  REQUIRE(Status(refused) == 403);
  const auto problem = json::parse(refused->body);
  CHECK(problem["required_assurance_level"] == "substantial");
  REQUIRE(problem["step_up_providers"].size() == 2);
  CHECK(problem["step_up_providers"][0]["id"] == "bundid");
  const std::string step_up = problem["step_up_providers"][0]["step_up_url"];
  CHECK(step_up == "/api/v1/auth/providers/bundid/login?minimum_level=substantial");

  // Erika has an account of her own through her state ID: it is never linked to another
  // one, and the session stays as it was.
  Browser erika;
  REQUIRE(f.SamlLogIn(erika, "erika", "erika-test-1").status == 303);
  Browser b;
  b.SetCookie(f.gateway, "__Host-stadtportal_session", low);
  auto taken = f.SamlLogIn(b, "erika", "erika-test-1", "?minimum_level=substantial");
  CHECK(taken.status == 409);
  CHECK(json::parse(taken.body)["errors"][0]["code"] == "linked_to_another_account");
  CHECK(Status(c.Get("/api/v1/me", BearerOf(low))) == 200);
  b = Browser();
  b.SetCookie(f.gateway, "__Host-stadtportal_session", low);
  auto done = f.SamlLogIn(b, "max", "max-test-1", "?minimum_level=substantial&return_to=/weiter");
  INFO(done.body);
  REQUIRE(done.status == 303);
  CHECK(done.location == "/weiter");
  const std::string high = b.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(!high.empty());
  CHECK(high != low);                                        // Rotated …
  CHECK(Status(c.Get("/api/v1/me", BearerOf(low))) == 401);  // … the old id is gone.
  auto session = json::parse(c.Get("/api/v1/me", BearerOf(high))->body);
  CHECK(session["assurance_level"] == "high");  // Max's level, above the one asked for.
  CHECK(session["auth_method"] == "saml:bundid");

  // The draft is intact and the service now allowed.
  auto kept = c.Get(("/api/v1/drafts/" + draft_id).c_str(), BearerOf(high));
  CHECK(Status(kept) == 200);
  CHECK(Status(PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerOf(high))) == 201);
  auto linked = json::parse(c.Get("/api/v1/me/providers", BearerOf(high))->body);
  CHECK(linked["providers"][0]["provider"] == "bundid");
  // Max logs in to the account through BundID elsewhere as well.
  Browser elsewhere;
  REQUIRE(f.SamlLogIn(elsewhere, "max", "max-test-1").status == 303);
  const std::string other = elsewhere.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(Status(c.Get("/api/v1/me", BearerOf(other))) == 200);
  CHECK(json::parse(c.Get("/api/v1/me", BearerOf(other))->body)["account_id"] == session["account_id"]);
  // With a password as well, the provider can be removed again; whoever came in through
  // it is out, the session that removed it goes on.
  CHECK(Status(c.Delete("/api/v1/me/providers/bundid", BearerOf(high))) == 200);
  CHECK(Status(c.Get("/api/v1/me", BearerOf(other))) == 401);
  CHECK(Status(c.Get("/api/v1/me", BearerOf(high))) == 200);

  // A step-up whose session ended meanwhile (logged out) links nothing.
  const std::string cara = Onboard(f.stack, c, UniqueEmail())["token"];
  Browser left;
  left.SetCookie(f.gateway, "__Host-stadtportal_session", cara);
  auto ended = f.SamlLogIn(left, "max", "max-test-1", "?minimum_level=substantial", {}, nullptr, [&] {
    CHECK(Status(c.Post("/api/v1/auth/logout", BearerOf(cara), "", "application/json")) == 204);
  });
  CHECK(ended.status == 409);
  CHECK(json::parse(ended.body)["errors"][0]["code"] == "changed");

  // A link from another site never binds the flow to the browser's session (else whoever
  // the provider then names, say an upstream session the other site planted, would be
  // linked to the account): it is a plain log-in.
  const std::string bert_mail = UniqueEmail();
  const std::string bert = Onboard(f.stack, c, bert_mail)["token"];
  Browser victim;
  victim.SetCookie(f.gateway, "__Host-stadtportal_session", bert);
  auto planted =
      f.SamlLogIn(victim, "erika", "erika-test-1", "?minimum_level=substantial", {{"Sec-Fetch-Site", "cross-site"}});
  INFO(planted.body);
  REQUIRE(planted.status == 303);
  const auto erika_me =
      json::parse(c.Get("/api/v1/me", BearerOf(erika.Cookie(f.gateway, "__Host-stadtportal_session")))->body);
  const auto now_me =
      json::parse(c.Get("/api/v1/me", BearerOf(victim.Cookie(f.gateway, "__Host-stadtportal_session")))->body);
  CHECK(now_me["account_id"] == erika_me["account_id"]);
  // The log-in ended the session the browser had, though the provider's answer came
  // without its cookie.
  CHECK(Status(c.Get("/api/v1/me", BearerOf(bert))) == 401);
  const std::string bert_again = Login(c, bert_mail)["token"];
  auto bert_linked = c.Get("/api/v1/me/providers", BearerOf(bert_again));
  REQUIRE(Status(bert_linked) == 200);
  CHECK(json::parse(bert_linked->body)["providers"].empty());
}

TEST_CASE("SAML answers the flow did not ask for are refused and counted", "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  Browser b;
  std::string saml;
  auto first = f.SamlLogIn(b, "max", "max-test-1", "", {}, &saml);
  REQUIRE(first.status == 303);

  // The same answer again, in a new flow of the same browser: not the request it answers.
  const double unsolicited = f.Refusals("unsolicited");
  auto start = b.Get(f.gateway + "/api/v1/auth/providers/bundid/login");
  REQUIRE(start.status == 303);
  // The flow cookie cannot be planted by a neighbouring subdomain (__Host-: no Domain,
  // Path=/), and goes with the provider's cross-site POST.
  const auto cookie = start.headers.find("Set-Cookie");
  REQUIRE(cookie != start.headers.end());
  CHECK(cookie->second.rfind("__Host-stadtportal_federation=", 0) == 0);
  CHECK(cookie->second.find("; Path=/;") != std::string::npos);
  CHECK(cookie->second.find("Domain") == std::string::npos);
  CHECK(cookie->second.find("SameSite=None") != std::string::npos);
  auto replay = b.PostForm(f.gateway + "/api/v1/auth/saml/bundid/acs", {{"SAMLResponse", saml}, {"RelayState", "x"}});
  CHECK(replay.status == 403);
  CHECK(json::parse(replay.body)["reason"] == "unsolicited");
  // Without the browser's flow cookie (another browser): refused as well.
  Browser other;
  auto stranger = other.PostForm(f.gateway + "/api/v1/auth/saml/bundid/acs", {{"SAMLResponse", saml}});
  CHECK(stranger.status == 403);
  CHECK(f.Refusals("unsolicited") == unsolicited + 2);
  // No answer, and not a form: 400 before identity is asked.
  CHECK(other.PostForm(f.gateway + "/api/v1/auth/saml/bundid/acs", {}).status == 400);
  // An unknown provider, and a provider id that is no id.
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/nobody/login").status == 404);
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/..%2F..%2Fetc/login").status == 404);
  // A return path to another site is refused before the browser leaves.
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/bundid/login?return_to=//evil.example/").status == 422);
  // Raw non-ASCII would go into the Location header as it is: refused (percent-encoded is fine).
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/bundid/login?return_to=/stra%C3%9Fe").status == 422);
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/bundid/login?minimum_level=ultra").status == 422);
  // The log lines name the reason, never the answer.
  const std::string logs = f.stack.AllLogs();
  CHECK(logs.find("\"reason\":\"unsolicited\"") != std::string::npos);
  CHECK(logs.find(saml.substr(0, 40)) == std::string::npos);
}

}  // namespace stadtportal::e2e

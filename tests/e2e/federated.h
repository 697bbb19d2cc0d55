#pragma once
// A browser for e2e tests (curl, cookies per origin, redirects followed by hand, forms
// read from pages) and the platform with its upstream identity providers as independent
// stand-ins on loopback: SimpleSAMLphp for BundID (scripts/lib/idp.sh) and npm
// oidc-provider for OpenID Connect (scripts/lib/op.sh). Shared by the federation and the
// OpenID Provider tests.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <httplib.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/stack.h"

namespace stadtportal::e2e {

using nlohmann::json;

inline std::string Unescape(std::string s) {
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
inline std::vector<Form> FormsOf(const std::string& page) {
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

inline std::string FormEncode(const std::map<std::string, std::string>& fields) {
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

inline std::string Shell(const std::string& script) {
  std::string out;
  const std::string command =
      "bash -c 'source \"" + std::string(STADTPORTAL_SOURCE_DIR) + "/scripts/lib/common.sh\"; " + script + "' 2>&1";
  const int rc = testing::RunCommand(command, &out);
  INFO(out);
  REQUIRE(rc == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

inline std::string UniqueDir() {
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
    // Summed over the providers: every provider's reasons are exported from the start.
    double sum = 0;
    for (auto it = std::sregex_iterator(r->body.begin(), r->body.end(), line); it != std::sregex_iterator(); ++it) {
      sum += std::stod((*it)[1].str());
    }
    return sum;
  }
};

}  // namespace stadtportal::e2e

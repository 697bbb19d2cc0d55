#include "services/identity/federation/saml.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "libs/metrics/metrics.h"
#include "libs/redis/client.h"
#include "libs/testing/testing.h"

// The SAML service provider against a SAML IdP that is not ours: SimpleSAMLphp
// (scripts/lib/idp.sh) logged in to over HTTP like a browser, and real Redis. The IdP's
// signed (and encrypted) answers are taken as they come, or decrypted, altered and signed
// again with xmlsec1: with the IdP's own key for "validly signed but wrong" answers, with
// a fresh key for a forged signature.
namespace stadtportal::identity::federation {
namespace {

const std::string kRoot = STADTPORTAL_SOURCE_DIR;
constexpr char kErikaId[] = "bPK2-erika-0c7f3a9e5d1b4c2a";
constexpr char kMaxId[] = "bPK2-max-5e2a8b61f0d94c77";

std::string Quote(const std::string& s) { return "'" + absl::StrReplaceAll(s, {{"'", "'\\''"}}) + "'"; }

std::string Run(const std::string& command) {
  std::string output;
  const int rc = testing::RunCommand(command, &output);
  INFO(command << "\n" << output);
  REQUIRE(rc == 0);
  return output;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }

std::string HtmlUnescape(std::string s) {
  return absl::StrReplaceAll(
      s, {{"&amp;", "&"}, {"&quot;", "\""}, {"&#039;", "'"}, {"&#39;", "'"}, {"&lt;", "<"}, {"&gt;", ">"}});
}

// The value of the named input of an HTML page ("" when none).
std::string InputValue(const std::string& page, const std::string& name) {
  std::smatch m;
  const std::regex input("<input[^>]*name=\"" + name + "\"[^>]*>");
  if (!std::regex_search(page, m, input)) return "";
  std::smatch v;
  const std::string tag = m.str();
  if (!std::regex_search(tag, v, std::regex("value=\"([^\"]*)\""))) return "";
  return HtmlUnescape(v[1].str());
}

std::string FormAction(const std::string& page) {
  std::smatch m;
  if (!std::regex_search(page, m, std::regex("<form[^>]*action=\"([^\"]*)\""))) return "";
  return HtmlUnescape(m[1].str());
}

double Refusals(const std::string& reason) {
  static auto& family = metrics::CounterFamily("stadtportal_identity_federation_refusals_total",
                                               "Upstream identity provider answers refused, by provider and reason");
  return family.Add({{"provider", "bundid"}, {"reason", reason}}).Value();
}

// The IdP stand-in with our SP's metadata, and everything the tests share; once per process.
struct Stand {
  // Stops the IdP however the rest ends (also when the constructor fails half-way).
  struct StopIdp {
    std::string idp_dir;
    ~StopIdp() {
      if (idp_dir.empty()) return;
      std::string ignored;
      testing::RunCommand(absl::StrCat("bash -c ",
                                       Quote("source \"$0/scripts/lib/common.sh\"; "
                                             "source \"$0/scripts/lib/idp.sh\"; sp_stop_saml_idp \"$1\""),
                                       " ", Quote(kRoot), " ", Quote(idp_dir)),
                          &ignored);
    }
  } stop_idp;
  std::string dir;
  std::string idp_dir;
  int port = 0;
  Provider provider;
  SamlEndpoints endpoints = SamlEndpoints::For("http://127.0.0.1:8080", "bundid");
  SamlKeys keys;
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  std::unique_ptr<SamlServiceProvider> sp;
  std::string last_jar;  // The cookies of the last log-in: the IdP's session.

  Stand() {
    dir = absl::StrCat(testing::TempDir(), "/saml-sp-test.", getpid());
    idp_dir = dir + "/idp";
    Run("rm -rf " + Quote(dir) + " && mkdir -p " + Quote(dir));
    keys = {dir + "/sp.key", dir + "/sp.crt"};
    Run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj '/CN=stadtportal SP (test)' ",
                     "-keyout ", Quote(keys.key_file), " -out ", Quote(keys.cert_file), " 2>/dev/null"));
    auto parsed =
        ParseProvider(nlohmann::json::parse(ReadAll(kRoot + "/services/identity/federation/providers/bundid.json")));
    REQUIRE(parsed.ok());
    provider = *parsed;

    // Our metadata does not depend on the IdP's: made once with a stand-in IdP entity.
    provider.saml.idp_metadata = dir + "/placeholder-idp.xml";
    WriteAll(provider.saml.idp_metadata,
             "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"urn:placeholder\">"
             "<md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">"
             "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
             "Location=\"http://127.0.0.1:9/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>");
    auto first = SamlServiceProvider::Create(provider, endpoints, keys, redis);
    INFO(first.status().ToString());
    REQUIRE(first.ok());
    WriteAll(dir + "/sp-metadata.xml", (*first)->Metadata());

    port = testing::FreePort();
    stop_idp.idp_dir = idp_dir;
    Run(absl::StrCat("bash -c ",
                     Quote("source \"$0/scripts/lib/common.sh\"; source \"$0/scripts/lib/idp.sh\"; "
                           "sp_start_saml_idp \"$1\" \"$2\" \"$3\" \"$4\""),
                     " ", Quote(kRoot), " ", Quote(idp_dir), " ", port, " ", Quote(dir + "/sp-metadata.xml"), " ",
                     Quote(dir + "/idp.log")));
    provider.saml.idp_metadata = dir + "/idp-metadata.xml";
    Run(absl::StrCat("curl -fsS -o ", Quote(provider.saml.idp_metadata), " http://127.0.0.1:", port,
                     "/simplesaml/saml2/idp/metadata.php"));
    auto created = SamlServiceProvider::Create(provider, endpoints, keys, redis);
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    sp = *std::move(created);
  }

  // A browser's round trip: the AuthnRequest URL, the login form, the auto-posting form.
  // Returns the SAMLResponse ("" when the IdP gave none).
  std::string LogIn(const std::string& redirect_url, const std::string& user, const std::string& password,
                    std::string* relay_state = nullptr) {
    static int round = 0;
    const std::string jar = absl::StrCat(dir, "/cookies.", ++round);
    last_jar = jar;
    const std::string page1 = absl::StrCat(dir, "/page1.", round);
    const std::string url = Run(absl::StrCat("curl -sS -L --max-time 20 -c ", Quote(jar), " -b ", Quote(jar), " -o ",
                                             Quote(page1), " -w '%{url_effective}' ", Quote(redirect_url)));
    const std::string login_page = ReadAll(page1);
    const std::string auth_state = InputValue(login_page, "AuthState");
    INFO(login_page);
    REQUIRE(!auth_state.empty());
    std::string action = FormAction(login_page);
    if (action.empty() || action[0] == '?')
      action = url.substr(0, url.find('?')) + action;
    else if (action.rfind("http", 0) != 0)
      action = url.substr(0, url.rfind('/') + 1) + action;
    WriteAll(dir + "/authstate", auth_state);
    const std::string page2 = absl::StrCat(dir, "/page2.", round);
    Run(absl::StrCat("curl -sS -L --max-time 20 -c ", Quote(jar), " -b ", Quote(jar), " -o ", Quote(page2),
                     " --data-urlencode ", Quote("AuthState@" + dir + "/authstate"), " --data-urlencode ",
                     Quote("username=" + user), " --data-urlencode ", Quote("password=" + password), " ",
                     Quote(action)));
    const std::string answer = ReadAll(page2);
    if (relay_state != nullptr) *relay_state = InputValue(answer, "RelayState");
    if (!InputValue(answer, "SAMLResponse").empty()) CHECK(FormAction(answer) == endpoints.acs_url);
    return InputValue(answer, "SAMLResponse");
  }

  // The SAML message of an HTTP-Redirect URL (SAMLRequest), inflated.
  std::string Inflated(const std::string& url) {
    std::smatch m;
    REQUIRE(std::regex_search(url, m, std::regex("SAMLRequest=([^&]*)")));
    WriteAll(dir + "/message.b64", m[1].str());
    return Run(
        "python3 -c 'import sys,urllib.parse,base64,zlib; "
        "print(zlib.decompress(base64.b64decode(urllib.parse.unquote(open(sys.argv[1]).read())), -15).decode())' " +
        Quote(dir + "/message.b64"));
  }

  // A fresh log-in of `user`; the request and the IdP's answer.
  std::pair<SamlServiceProvider::Request, std::string> Fresh(const std::string& user, const std::string& password,
                                                             Level minimum = v1::ASSURANCE_LEVEL_SUBSTANTIAL) {
    auto request = sp->Start("/after-login", minimum);
    INFO(request.status().ToString());
    REQUIRE(request.ok());
    std::string response = LogIn(request->redirect_url, user, password);
    REQUIRE(!response.empty());
    return {*request, response};
  }

  // The response's XML with the assertion decrypted by our key, in the clear.
  std::string Decrypted(const std::string& saml_response) {
    std::string xml;
    REQUIRE(absl::Base64Unescape(saml_response, &xml));
    WriteAll(dir + "/encrypted.xml", xml);
    Run(absl::StrCat("xmlsec1 --decrypt --privkey-pem ", Quote(keys.key_file), " --output ",
                     Quote(dir + "/decrypted.xml"), " ", Quote(dir + "/encrypted.xml")));
    std::string out = ReadAll(dir + "/decrypted.xml");
    // <saml:EncryptedAssertion><saml:Assertion …>…</saml:Assertion></saml:EncryptedAssertion>
    std::smatch m;
    REQUIRE(std::regex_search(out, m, std::regex("<([A-Za-z0-9]+:)?EncryptedAssertion[^>]*>")));
    const std::string open = m.str();
    const std::string close = "</" + m[1].str() + "EncryptedAssertion>";
    out = absl::StrReplaceAll(out, {{open, ""}, {close, ""}});
    // Drop an XML declaration inside the document left by the decryption.
    out = std::regex_replace(out, std::regex("(.)<\\?xml[^?]*\\?>"), "$1");
    REQUIRE(out.find("Assertion") != std::string::npos);
    return out;
  }

  // Signs `xml` again with `key`/`cert`: the assertion's signature (when `assertion`),
  // then the response's. The signature templates are the IdP's own.
  std::string Signed(std::string xml, const std::string& key, const std::string& cert, bool assertion = true) {
    xml = std::regex_replace(xml, std::regex("<ds:X509Certificate>[^<]*</ds:X509Certificate>"),
                             "<ds:X509Certificate></ds:X509Certificate>");
    WriteAll(dir + "/unsigned.xml", xml);
    const std::string ids =
        " --id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
        " --id-attr:ID urn:oasis:names:tc:SAML:2.0:protocol:Response ";
    std::string in = dir + "/unsigned.xml";
    if (assertion) {
      Run(absl::StrCat("xmlsec1 --sign --privkey-pem ", Quote(key + "," + cert), ids, "--node-xpath ",
                       Quote("/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"),
                       " --output ", Quote(dir + "/signed1.xml"), " ", Quote(in)));
      in = dir + "/signed1.xml";
    }
    Run(absl::StrCat("xmlsec1 --sign --privkey-pem ", Quote(key + "," + cert), ids, "--node-xpath ",
                     Quote("/*[local-name()='Response']/*[local-name()='Signature']"), " --output ",
                     Quote(dir + "/signed2.xml"), " ", Quote(in)));
    return absl::Base64Escape(ReadAll(dir + "/signed2.xml"));
  }
  std::string SignedByIdp(const std::string& xml, bool assertion = true) {
    return Signed(xml, idp_dir + "/cert/idp.key", idp_dir + "/cert/idp.crt", assertion);
  }
};

Stand& TheStand() {
  static Stand stand;
  return stand;
}

// Expects `response` refused with `reason`, and counted once more.
void ExpectRefused(Stand& s, const std::string& response, const std::string& request_id, const std::string& reason,
                   Level minimum = v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Time now = absl::Now()) {
  const double before = Refusals(reason);
  auto identity = s.sp->Consume(response, request_id, minimum, now);
  INFO("expected " << reason << ", got " << identity.status().ToString());
  REQUIRE_FALSE(identity.ok());
  CHECK(identity.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(RefusalReason(identity.status()) == reason);
  CHECK(Refusals(reason) == before + 1);
}

// Replaces the first match of `pattern` in `xml`; the match must exist.
std::string Replace(const std::string& xml, const std::string& pattern, const std::string& with) {
  std::smatch m;
  REQUIRE(std::regex_search(xml, m, std::regex(pattern)));
  return std::regex_replace(xml, std::regex(pattern), with, std::regex_constants::format_first_only);
}

}  // namespace

TEST_CASE("saml: our metadata and a signed AuthnRequest asking for the level and the attributes", "[integration]") {
  Stand& s = TheStand();
  const std::string& metadata = s.sp->Metadata();
  CHECK(metadata.find("entityID=\"http://127.0.0.1:8080/api/v1/auth/saml/bundid/metadata\"") != std::string::npos);
  CHECK(metadata.find("AuthnRequestsSigned=\"true\"") != std::string::npos);
  CHECK(metadata.find("WantAssertionsSigned=\"true\"") != std::string::npos);
  CHECK(metadata.find("<md:KeyDescriptor use=\"signing\">") != std::string::npos);
  CHECK(metadata.find("<md:KeyDescriptor use=\"encryption\">") != std::string::npos);
  CHECK(metadata.find("Location=\"http://127.0.0.1:8080/api/v1/auth/saml/bundid/acs\"") != std::string::npos);
  CHECK(metadata.find("Location=\"http://127.0.0.1:8080/api/v1/auth/saml/bundid/slo\"") != std::string::npos);

  auto request = s.sp->Start("/after-login", v1::ASSURANCE_LEVEL_HIGH);
  REQUIRE(request.ok());
  CHECK(request->redirect_url.rfind(absl::StrCat("http://127.0.0.1:", s.port, "/simplesaml/"), 0) == 0);
  CHECK(request->redirect_url.find("&Signature=") != std::string::npos);
  CHECK(request->redirect_url.find("SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256") !=
        std::string::npos);
  CHECK(request->redirect_url.find("RelayState=%2Fafter-login") != std::string::npos);
  // The request itself, inflated.
  const std::string xml = s.Inflated(request->redirect_url);
  INFO(xml);
  CHECK(xml.find(request->request_id) != std::string::npos);
  CHECK(std::regex_search(xml, std::regex("Comparison=\"minimum\"")));
  // High asked for: the table's lowest STORK value for high, not the provider's default.
  CHECK(xml.find(">STORK-QAA-Level-4</") != std::string::npos);
  CHECK(xml.find("https://www.akdb.de/request/2018/09") != std::string::npos);
  CHECK(xml.find("Name=\"urn:oid:2.5.4.42\"") != std::string::npos);
  CHECK(xml.find("Name=\"urn:oid:1.3.6.1.4.1.25484.494450.3\"") != std::string::npos);
  CHECK(xml.find("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent") != std::string::npos);
  // Low or substantial asked for: the provider's own requested_context (Level-3) reaches it.
  for (Level minimum : {v1::ASSURANCE_LEVEL_LOW, v1::ASSURANCE_LEVEL_SUBSTANTIAL}) {
    auto other = s.sp->Start("", minimum);
    REQUIRE(other.ok());
    CHECK(other->request_id != request->request_id);
    CHECK(other->redirect_url.find("RelayState=") == std::string::npos);
    const std::string other_xml = s.Inflated(other->redirect_url);
    CHECK(other_xml.find(">STORK-QAA-Level-3</") != std::string::npos);
  }
  CHECK(s.sp->Start(std::string(81, 'x'), v1::ASSURANCE_LEVEL_LOW).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("saml: the IdP's signed and encrypted answer gives the person, the level and the attributes",
          "[integration]") {
  Stand& s = TheStand();
  auto request = s.sp->Start("/after-login", v1::ASSURANCE_LEVEL_SUBSTANTIAL);
  REQUIRE(request.ok());
  std::string relay_state;
  const std::string response = s.LogIn(request->redirect_url, "erika", "erika-test-1", &relay_state);
  REQUIRE(!response.empty());
  CHECK(relay_state == "/after-login");
  std::string raw;
  REQUIRE(absl::Base64Unescape(response, &raw));
  CHECK(raw.find("EncryptedAssertion") != std::string::npos);

  auto erika = s.sp->Consume(response, request->request_id, v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now());
  INFO(erika.status().ToString());
  REQUIRE(erika.ok());
  CHECK(erika->provider == "bundid");
  CHECK(erika->subject == kErikaId);
  CHECK(erika->level == v1::ASSURANCE_LEVEL_SUBSTANTIAL);
  CHECK(erika->asserted == "STORK-QAA-Level-3");
  CHECK(erika->valid_until > absl::Now());
  CHECK(!erika->logout_hint.empty());
  const std::map<std::string, std::string> expected = {
      {"given_name", "Erika"},      {"family_name", "Mustermann"},
      {"birth_date", "1964-08-12"}, {"email", "erika.mustermann@example.org"},
      {"street", "Heidestraße 17"}, {"postal_code", "51147"},
      {"locality", "Köln"},         {"persistent_id", kErikaId}};
  CHECK(erika->attributes == expected);

  // The same answer again: replayed.
  ExpectRefused(s, response, request->request_id, "replayed");

  // Max asserts high and gets it when high is asked for.
  auto [max_request, max_response] = s.Fresh("max", "max-test-1", v1::ASSURANCE_LEVEL_HIGH);
  auto max = s.sp->Consume(max_response, max_request.request_id, v1::ASSURANCE_LEVEL_HIGH, absl::Now());
  INFO(max.status().ToString());
  REQUIRE(max.ok());
  CHECK(max->subject == kMaxId);
  CHECK(max->level == v1::ASSURANCE_LEVEL_HIGH);
  CHECK(max->attributes.at("locality") == "München");

  // Single log-out: a signed LogoutRequest for that NameID and session, which the IdP
  // takes (it ends the session and answers at our SLO endpoint).
  auto logout = s.sp->LogoutUrl(*max, "/bye");
  INFO(logout.status().ToString());
  REQUIRE(logout.ok());
  CHECK(logout->rfind(absl::StrCat("http://127.0.0.1:", s.port, "/simplesaml/"), 0) == 0);
  CHECK(logout->find("&Signature=") != std::string::npos);
  CHECK(logout->find("RelayState=%2Fbye") != std::string::npos);
  const std::string logout_xml = s.Inflated(*logout);
  CHECK(logout_xml.find(kMaxId) != std::string::npos);
  CHECK(logout_xml.find(max->logout_hint) != std::string::npos);
  // Followed like a browser through the IdP's own pages, up to the redirect to us.
  std::string answer = *logout;
  for (int hop = 0; hop < 5 && answer.rfind(s.endpoints.slo_url, 0) != 0; ++hop) {
    answer = Run(absl::StrCat("curl -sS --max-time 20 -o /dev/null -w '%{redirect_url}' -b ", Quote(s.last_jar), " -c ",
                              Quote(s.last_jar), " ", Quote(answer)));
  }
  INFO(answer);
  CHECK(answer.rfind(s.endpoints.slo_url + "?SAMLResponse=", 0) == 0);
}

TEST_CASE("saml: from many threads at once, one answer is taken exactly once", "[integration]") {
  Stand& s = TheStand();
  auto [request, response] = s.Fresh("erika", "erika-test-1");
  const double replays = Refusals("replayed");
  std::atomic<int> accepted{0}, replayed{0}, started{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, request = request, response = response] {
      for (int j = 0; j < 5; ++j) {
        if (s.sp->Start("/x", v1::ASSURANCE_LEVEL_SUBSTANTIAL).ok()) ++started;
      }
      auto identity = s.sp->Consume(response, request.request_id, v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now());
      if (identity.ok() && identity->subject == kErikaId) ++accepted;
      if (RefusalReason(identity.status()) == "replayed") ++replayed;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(started == 40);
  CHECK(accepted == 1);
  CHECK(replayed == 7);
  CHECK(Refusals("replayed") == replays + 7);
}

TEST_CASE("saml: the attack matrix, each answer refused with its reason and counted", "[integration]") {
  Stand& s = TheStand();
  auto [request, response] = s.Fresh("erika", "erika-test-1");
  const std::string& id = request.request_id;
  const std::string clear = s.Decrypted(response);
  INFO(clear);

  SECTION("the untouched answer at the wrong time, to another request, below the level asked for") {
    ExpectRefused(s, response, id, "expired", v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now() + absl::Hours(1));
    ExpectRefused(s, response, id, "not_yet_valid", v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now() - absl::Hours(1));
    ExpectRefused(s, response, "_not-our-request", "unsolicited");
    ExpectRefused(s, response, "", "unsolicited");
    ExpectRefused(s, response, id, "level_below", v1::ASSURANCE_LEVEL_HIGH);
    // None of these used the assertion up: the answer is still good once.
    auto identity = s.sp->Consume(response, id, v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now());
    INFO(identity.status().ToString());
    CHECK(identity.ok());
  }

  SECTION("the decrypted answer signed again by the IdP is accepted (the harness is sound)") {
    auto identity = s.sp->Consume(s.SignedByIdp(clear), id, v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now());
    INFO(identity.status().ToString());
    CHECK(identity.ok());
    CHECK(identity->subject == kErikaId);
  }

  SECTION("the response unsigned around the IdP's signed assertion") {
    // Signatures are forced: the response must carry the IdP's signature as well.
    const std::string bare = Replace(
        clear, "(<samlp:Response[^>]*>\\s*<saml:Issuer>[^<]*</saml:Issuer>)\\s*<ds:Signature[\\s\\S]*?</ds:Signature>",
        "$1");
    ExpectRefused(s, absl::Base64Escape(bare), id, "unsigned");
  }

  SECTION("unsigned assertion") {
    const std::string stripped = Replace(
        clear, "(<saml:Assertion[^>]*>\\s*<saml:Issuer>[^<]*</saml:Issuer>)\\s*<ds:Signature[\\s\\S]*?</ds:Signature>",
        "$1");
    // The response around it validly signed by the IdP, the assertion not at all.
    ExpectRefused(s, s.SignedByIdp(stripped, false), id, "unsigned");
    // Neither signed.
    const std::string none = Replace(
        stripped,
        "(<samlp:Response[^>]*>\\s*<saml:Issuer>[^<]*</saml:Issuer>)\\s*<ds:Signature[\\s\\S]*?</ds:Signature>", "$1");
    ExpectRefused(s, absl::Base64Escape(none), id, "unsigned");
  }

  SECTION("assertion signed by another key") {
    Run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3 -subj '/CN=forger' -keyout ",
                     Quote(s.dir + "/forger.key"), " -out ", Quote(s.dir + "/forger.crt"), " 2>/dev/null"));
    ExpectRefused(s, s.Signed(clear, s.dir + "/forger.key", s.dir + "/forger.crt"), id, "bad_signature");
    // An assertion changed after the IdP signed it.
    ExpectRefused(s, absl::Base64Escape(absl::StrReplaceAll(clear, {{kErikaId, "bPK2-mallory"}})), id, "bad_signature");
  }

  SECTION("signature wrapping") {
    std::smatch m;
    REQUIRE(std::regex_search(clear, m, std::regex("<saml:Assertion[\\s\\S]*</saml:Assertion>")));
    const std::string signed_assertion = m.str();
    std::string evil = std::regex_replace(signed_assertion, std::regex("<ds:Signature[\\s\\S]*?</ds:Signature>"), "",
                                          std::regex_constants::format_first_only);
    evil = absl::StrReplaceAll(evil, {{kErikaId, "bPK2-mallory"}});
    // The copy under the signed one's ID, as sent (the response's signature then breaks) …
    ExpectRefused(s, absl::Base64Escape(absl::StrReplaceAll(clear, {{signed_assertion, signed_assertion + evil}})), id,
                  "wrapped");
    // … and under an ID of its own, the response signed again by the IdP.
    evil = std::regex_replace(evil, std::regex("(<saml:Assertion[^>]* ID=\"[^\"]+)\""), "$1-copy\"",
                              std::regex_constants::format_first_only);
    // A signed and an unsigned assertion side by side.
    ExpectRefused(s, s.SignedByIdp(absl::StrReplaceAll(clear, {{signed_assertion, signed_assertion + evil}}), false),
                  id, "wrapped");
    ExpectRefused(s, s.SignedByIdp(absl::StrReplaceAll(clear, {{signed_assertion, evil + signed_assertion}}), false),
                  id, "wrapped");
    // The signed assertion moved into the response's Extensions, an unsigned copy with
    // another NameID where it was.
    const std::string moved = Replace(absl::StrReplaceAll(clear, {{signed_assertion, evil}}),
                                      "(<samlp:Response[^>]*>\\s*<saml:Issuer>[^<]*</saml:Issuer>)",
                                      "$1<samlp:Extensions>" + signed_assertion + "</samlp:Extensions>");
    ExpectRefused(s, s.SignedByIdp(moved, false), id, "wrapped");
    // … or into a ds:Object of the response's signature.
    const std::string object = absl::StrCat("<ds:Object>", signed_assertion, "</ds:Object></ds:Signature>");
    std::string in_object = absl::StrReplaceAll(clear, {{signed_assertion, evil}});
    const auto end = in_object.find("</ds:Signature>");
    REQUIRE(end != std::string::npos);
    in_object.replace(end, std::string("</ds:Signature>").size(), object);
    ExpectRefused(s, absl::Base64Escape(in_object), id, "wrapped");
  }

  SECTION("validly signed, but for someone else or somewhere else") {
    ExpectRefused(s,
                  s.SignedByIdp(Replace(clear, "<saml:Audience>[^<]*</saml:Audience>",
                                        "<saml:Audience>https://other.example/sp</saml:Audience>")),
                  id, "audience");
    ExpectRefused(s,
                  s.SignedByIdp(Replace(clear, "(<samlp:Response[^>]*) Destination=\"[^\"]*\"",
                                        "$1 Destination=\"https://other.example/acs\"")),
                  id, "destination");
    ExpectRefused(s, s.SignedByIdp(Replace(clear, "Recipient=\"[^\"]*\"", "Recipient=\"https://other.example/acs\"")),
                  id, "recipient");
    // InResponseTo of the assertion's confirmation names another request.
    ExpectRefused(s,
                  s.SignedByIdp(Replace(clear, "(<saml:SubjectConfirmationData[^>]*) InResponseTo=\"[^\"]*\"",
                                        "$1 InResponseTo=\"_another-request\"")),
                  id, "unsolicited");
    // An IdP error status.
    ExpectRefused(s,
                  s.SignedByIdp(Replace(clear, "urn:oasis:names:tc:SAML:2.0:status:Success",
                                        "urn:oasis:names:tc:SAML:2.0:status:Responder")),
                  id, "status");
    // A level the provider's table does not know.
    ExpectRefused(s, s.SignedByIdp(Replace(clear, "STORK-QAA-Level-3", "STORK-QAA-Level-5")), id, "level_unknown");
  }

  SECTION("a signature transform beyond the enveloped signature and canonicalisation") {
    std::string xml;
    REQUIRE(absl::Base64Unescape(response, &xml));
    for (const char* algorithm :
         {"http://www.w3.org/TR/1999/REC-xslt-19991116", "http://www.w3.org/TR/1999/REC-xpath-19991116",
          "http://www.w3.org/2002/06/xmldsig-filter2"}) {
      INFO(algorithm);
      const std::string with =
          Replace(xml, "<ds:Transforms>", absl::StrCat("<ds:Transforms><ds:Transform Algorithm=\"", algorithm, "\"/>"));
      ExpectRefused(s, absl::Base64Escape(with), id, "transform");
    }
  }

  SECTION("XML with a DTD and entities") {
    std::string xml;
    REQUIRE(absl::Base64Unescape(response, &xml));
    const auto root = xml.find("<samlp:Response");
    REQUIRE(root != std::string::npos);
    std::string with_dtd = xml;
    with_dtd.insert(root, "<!DOCTYPE samlp:Response [<!ENTITY who \"bPK2-mallory\">]>\n");
    ExpectRefused(s, absl::Base64Escape(with_dtd), id, "doctype");
    std::string lower_case = xml;
    lower_case.insert(root, "<!doctype x SYSTEM \"file:///etc/passwd\">\n");
    ExpectRefused(s, absl::Base64Escape(lower_case), id, "doctype");
    // Not base64 at all, or too big: malformed.
    ExpectRefused(s, "<samlp:Response/>", id, "malformed");
    ExpectRefused(s, std::string(600 << 10, 'A'), id, "malformed");
  }

  SECTION("a comment inside the NameID does not cut it short") {
    // Signed again by the IdP with the comment in place (exclusive C14N drops comments,
    // so the IdP's own signature would hold too), under a new assertion id.
    std::string commented =
        absl::StrReplaceAll(clear, {{std::string(">") + kErikaId + "<", ">bPK2-erika<!-- -->-0c7f3a9e5d1b4c2a<"}});
    REQUIRE(commented != clear);
    std::smatch m;
    REQUIRE(std::regex_search(commented, m, std::regex("<saml:Assertion[^>]* ID=\"([^\"]+)\"")));
    commented = absl::StrReplaceAll(commented, {{m[1].str(), m[1].str() + "c"}});
    auto identity = s.sp->Consume(s.SignedByIdp(commented), id, v1::ASSURANCE_LEVEL_SUBSTANTIAL, absl::Now());
    INFO(identity.status().ToString());
    REQUIRE(identity.ok());
    CHECK(identity->subject == kErikaId);
    CHECK(identity->attributes.at("persistent_id") == kErikaId);
  }
}

TEST_CASE("saml: no single log-out without the IdP's SingleLogoutService; bad configuration refused", "[integration]") {
  Stand& s = TheStand();
  Provider p = s.provider;
  std::string metadata = ReadAll(s.provider.saml.idp_metadata);
  metadata = std::regex_replace(metadata, std::regex("<md:SingleLogoutService[^>]*/>"), "");
  p.saml.idp_metadata = s.dir + "/idp-metadata-no-slo.xml";
  WriteAll(p.saml.idp_metadata, metadata);
  auto no_slo = SamlServiceProvider::Create(p, s.endpoints, s.keys, s.redis);
  REQUIRE(no_slo.ok());
  Identity someone;
  someone.subject = kErikaId;
  someone.logout_hint = "_session";
  CHECK((*no_slo)->LogoutUrl(someone, "").status().code() == absl::StatusCode::kNotFound);

  // Metadata with a DOCTYPE, a missing file, a key that is not one.
  p.saml.idp_metadata = s.dir + "/idp-metadata-dtd.xml";
  WriteAll(p.saml.idp_metadata, "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY e \"e\">]>\n" +
                                    ReadAll(s.provider.saml.idp_metadata).substr(0));
  CHECK_FALSE(SamlServiceProvider::Create(p, s.endpoints, s.keys, s.redis).ok());
  p.saml.idp_metadata = s.dir + "/missing.xml";
  CHECK_FALSE(SamlServiceProvider::Create(p, s.endpoints, s.keys, s.redis).ok());
  SamlKeys bad = s.keys;
  bad.key_file = s.provider.saml.idp_metadata;
  CHECK_FALSE(SamlServiceProvider::Create(s.provider, s.endpoints, bad, s.redis).ok());
}

}  // namespace stadtportal::identity::federation

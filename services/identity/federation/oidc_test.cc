#include "services/identity/federation/oidc.h"

#include <httplib.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/auth/tokens.h"
#include "libs/metrics/metrics.h"
#include "libs/testing/testing.h"

// The relying party against a real OpenID Provider that is not ours: npm oidc-provider
// with tools/oidc-upstream/server.mjs (docs/federation.md), started by this test on a
// free port. A browser is played over HTTP (cookies, redirects, the log-in form). Forged
// tokens, which a real provider cannot be made to issue, are built here with OpenSSL.
namespace stadtportal::identity::federation {
namespace {

constexpr char kErika[] = "erika";
constexpr char kMax[] = "max";

std::string Password(const std::string& login) { return login + "-test-1"; }

std::string B64(const std::string& s) { return absl::WebSafeBase64Escape(s); }

// ---------------------------------------------------------------------------------------
// Keys made here (OpenSSL), as JWKs, and tokens signed with them.

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey NewRsaKey() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))); }
Pkey NewEcKey() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

std::string BnParam(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(key, name, &bn) == 1);
  std::string out(BN_num_bytes(bn), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

// The public JWK of `key` (RSA or EC P-256).
nlohmann::json Jwk(EVP_PKEY* key, const std::string& kid, const std::string& alg) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    return {{"kty", "RSA"},
            {"kid", kid},
            {"alg", alg},
            {"use", "sig"},
            {"n", B64(BnParam(key, OSSL_PKEY_PARAM_RSA_N))},
            {"e", B64(BnParam(key, OSSL_PKEY_PARAM_RSA_E))}};
  }
  unsigned char point[65];
  size_t len = 0;
  REQUIRE(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &len) == 1);
  REQUIRE(len == 65);
  return {{"kty", "EC"},
          {"crv", "P-256"},
          {"kid", kid},
          {"alg", alg},
          {"use", "sig"},
          {"x", B64(std::string(reinterpret_cast<char*>(point) + 1, 32))},
          {"y", B64(std::string(reinterpret_cast<char*>(point) + 33, 32))}};
}

std::string Signature(EVP_PKEY* key, const std::string& alg, const std::string& input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  REQUIRE(EVP_DigestSignInit_ex(ctx, &pctx, "SHA256", nullptr, nullptr, key, nullptr) == 1);
  if (alg == "PS256") {
    REQUIRE(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
    REQUIRE(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1);
  }
  size_t len = 0;
  REQUIRE(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  std::string sig(len, '\0');
  REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  if (alg != "ES256") return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
  REQUIRE(ecdsa != nullptr);
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(ecdsa);
  return raw;
}

std::string SignedJwt(EVP_PKEY* key, const nlohmann::json& header, const nlohmann::json& claims) {
  const std::string input = B64(header.dump()) + "." + B64(claims.dump());
  return input + "." + B64(Signature(key, header.at("alg"), input));
}

// The PEM of an RSA public JWK: what a naive verifier uses as the "key" of an HS256 token.
std::string PublicPem(const nlohmann::json& jwk) {
  std::string n, e;
  REQUIRE(absl::WebSafeBase64Unescape(jwk.at("n").get<std::string>(), &n));
  REQUIRE(absl::WebSafeBase64Unescape(jwk.at("e").get<std::string>(), &e));
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  REQUIRE(EVP_PKEY_fromdata_init(ctx) == 1);
  REQUIRE(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1);
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PUBKEY(bio, key) == 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, len);
  BIO_free(bio);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  BN_free(bn_n);
  BN_free(bn_e);
  OSSL_PARAM_BLD_free(bld);
  return pem;
}

std::string HmacSha256(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// ---------------------------------------------------------------------------------------
// The provider stand-in, started once for the whole test binary.

struct Op {
  uint16_t port = 0;
  std::string issuer, secret, redirect_uri, dir;
  std::string second_key_file;     // PEM of client "stadtportal-second" (private_key_jwt), RSA …
  std::string second_ec_key_file;  // … and EC P-256.
  std::unique_ptr<testing::Process> process;

  ~Op() {
    process.reset();  // Ends the provider.
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Op& TheOp() {
  static std::unique_ptr<Op> op = [] {
    auto o = std::make_unique<Op>();
    o->port = testing::FreePort();
    o->issuer = absl::StrCat("http://127.0.0.1:", o->port);
    o->secret = auth::RandomToken(24);
    o->redirect_uri = absl::StrCat("http://127.0.0.1:", testing::FreePort(), "/api/v1/auth/oidc/generic-oidc/callback");
    o->dir = absl::StrCat(testing::TempDir(), "/oidc-rp-", o->port);
    std::filesystem::create_directories(o->dir);
    // The second client's key pair: the private key in a PEM file for our relying party,
    // the public one registered at the provider.
    Pkey second = NewRsaKey();
    o->second_key_file = o->dir + "/second-client.pem";
    FILE* f = fopen(o->second_key_file.c_str(), "w");
    REQUIRE(f != nullptr);
    REQUIRE(PEM_write_PrivateKey(f, second.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
    fclose(f);
    Pkey second_ec = NewEcKey();
    o->second_ec_key_file = o->dir + "/second-client-ec.pem";
    f = fopen(o->second_ec_key_file.c_str(), "w");
    REQUIRE(f != nullptr);
    REQUIRE(PEM_write_PrivateKey(f, second_ec.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
    fclose(f);
    const nlohmann::json second_jwks = {
        {"keys", {Jwk(second.get(), "second-1", "RS256"), Jwk(second_ec.get(), "second-2", "ES256")}}};
    const char* build_dir = getenv("STADTPORTAL_BUILD_DIR");
    // As scripts/lib/op.sh starts it, but as this test's own child (ended with the test).
    const std::string script =
        absl::StrCat("set -e; source \"$0/scripts/lib/common.sh\"; tools=\"$(\"$SP_ROOT/scripts/npm-tools\")\"; ",
                     "exec node \"$tools/oidc-upstream/server.mjs\"");
    o->process = std::make_unique<testing::Process>(
        "/bin/bash", std::vector<std::string>{"-c", script, STADTPORTAL_SOURCE_DIR},
        std::map<std::string, std::string>{
            {"STADTPORTAL_BUILD_DIR", build_dir ? build_dir : std::string(STADTPORTAL_SOURCE_DIR) + "/build"},
            {"STADTPORTAL_OIDC_OP_PORT", std::to_string(o->port)},
            {"STADTPORTAL_OIDC_OP_CLIENT_SECRET", o->secret},
            {"STADTPORTAL_OIDC_OP_REDIRECT_URI", o->redirect_uri},
            {"STADTPORTAL_OIDC_OP_SECOND_CLIENT_JWKS", second_jwks.dump()},
            {"STADTPORTAL_OIDC_OP_STATE", o->dir}},
        o->dir + "/op.log");
    const bool up = testing::Eventually(
        [&] {
          httplib::Client c("127.0.0.1", o->port);
          auto r = c.Get("/.well-known/openid-configuration");
          return r && r->status == 200;
        },
        std::chrono::seconds(120));
    if (!up) FAIL("the OpenID Provider did not start: " << ReadFile(o->dir + "/op.log"));
    return o;
  }();
  return *op;
}

Provider GenericOidc(const std::string& client_id = "stadtportal") {
  auto provider = ParseProvider(nlohmann::json::parse(
      ReadFile(std::string(STADTPORTAL_SOURCE_DIR) + "/services/identity/federation/providers/generic-oidc.json")));
  REQUIRE(provider.ok());
  provider->oidc.issuer = TheOp().issuer;
  provider->oidc.client_id = client_id;
  return *provider;
}

std::unique_ptr<OidcRelyingParty> RelyingParty(const std::string& redirect_uri = TheOp().redirect_uri) {
  OidcRelyingParty::Options options;
  options.redirect_uri = redirect_uri;
  options.client_secret = TheOp().secret;
  auto rp = OidcRelyingParty::Create(GenericOidc(), options);
  REQUIRE(rp.ok());
  return *std::move(rp);
}

// The relying party of the second client: another service at the same provider, which
// authenticates with private_key_jwt.
std::unique_ptr<OidcRelyingParty> SecondRelyingParty(bool ec = false) {
  OidcRelyingParty::Options options;
  options.redirect_uri = TheOp().redirect_uri;
  options.private_key_file = ec ? TheOp().second_ec_key_file : TheOp().second_key_file;
  auto rp = OidcRelyingParty::Create(GenericOidc("stadtportal-second"), options);
  REQUIRE(rp.ok());
  return *std::move(rp);
}

nlohmann::json ProviderJwks() {
  httplib::Client c("127.0.0.1", TheOp().port);
  auto r = c.Get("/jwks");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return nlohmann::json::parse(r->body);
}

// ---------------------------------------------------------------------------------------
// A browser: cookies by name, redirects followed by hand.

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() + 0 && absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> Query(const std::string& url) {
  std::map<std::string, std::string> out;
  const size_t q = url.find('?');
  if (q == std::string::npos) return out;
  for (absl::string_view pair : absl::StrSplit(url.substr(q + 1), '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    out[PercentDecode(pair.substr(0, eq))] = eq == absl::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
  }
  return out;
}

struct Page {
  int status = 0;
  std::string body;
  std::string path;
  std::string callback;  // The redirect to the relying party, when it came to that.
};

class Browser {
 public:
  // Follows `url` (the provider's) until the redirect to `redirect_uri` or a page.
  Page Follow(std::string url, const std::string* form = nullptr) {
    const std::string origin = TheOp().issuer;
    for (int hops = 0; hops < 10; ++hops) {
      if (absl::StartsWith(url, redirect_uri_ + "?")) return Page{0, "", "", url};
      REQUIRE(absl::StartsWith(url, origin + "/"));
      const std::string path = url.substr(origin.size());
      httplib::Client c("127.0.0.1", TheOp().port);
      httplib::Headers headers;
      if (!cookies_.empty()) {
        std::vector<std::string> pairs;
        for (const auto& [k, v] : cookies_) pairs.push_back(k + "=" + v);
        headers.emplace("Cookie", absl::StrJoin(pairs, "; "));
      }
      auto r = form ? c.Post(path.c_str(), headers, *form, "application/x-www-form-urlencoded")
                    : c.Get(path.c_str(), headers);
      form = nullptr;
      REQUIRE(r);
      const auto range = r->headers.equal_range("Set-Cookie");
      for (auto it = range.first; it != range.second; ++it) {
        const std::string pair = it->second.substr(0, it->second.find(';'));
        const size_t eq = pair.find('=');
        if (eq == std::string::npos) continue;
        cookies_[pair.substr(0, eq)] = pair.substr(eq + 1);
      }
      if (r->status < 300 || r->status >= 400) return Page{r->status, r->body, path, ""};
      const std::string location = r->get_header_value("Location");
      url = absl::StartsWith(location, "/") ? origin + location : location;
    }
    FAIL("too many redirects");
    return {};
  }

  explicit Browser(std::string redirect_uri) : redirect_uri_(std::move(redirect_uri)) {}

 private:
  std::string redirect_uri_;
  std::map<std::string, std::string> cookies_;
};

// Logs in at the provider for `request` as `login`; the callback's parameters.
std::map<std::string, std::string> LogIn(const OidcRequest& request, const std::string& login,
                                         const std::string& redirect_uri = TheOp().redirect_uri) {
  Browser browser(redirect_uri);
  Page page = browser.Follow(request.redirect_url);
  if (page.callback.empty()) {
    std::smatch action;
    REQUIRE(std::regex_search(page.body, action, std::regex("<form[^>]*action=\"([^\"]+)\"")));
    const std::string form = "login=" + login + "&password=" + Password(login);
    page = browser.Follow(TheOp().issuer + action[1].str(), &form);
  }
  INFO(page.status << " " << page.body.substr(0, 300));
  REQUIRE_FALSE(page.callback.empty());
  return Query(page.callback);
}

// stadtportal_identity_federation_refusals_total{provider="generic-oidc",reason=…}.
double Refusals(const std::string& reason) {
  const std::string prefix = absl::StrCat("stadtportal_identity_federation_refusals_total{provider=\"generic-oidc\",",
                                          "reason=\"", reason, "\"} ");
  for (absl::string_view line : absl::StrSplit(metrics::Serialize(), '\n')) {
    double v = 0;
    if (absl::StartsWith(line, prefix) && absl::SimpleAtod(line.substr(prefix.size()), &v)) return v;
  }
  return 0;
}

// `status` is Refused(reason), and counted once more than `before`.
#define CHECK_REFUSED(status_expr, reason)      \
  do {                                          \
    const double before_ = Refusals(reason);    \
    const absl::Status status_ = (status_expr); \
    INFO(status_.ToString());                   \
    CHECK(RefusalReason(status_) == (reason));  \
    CHECK(Refusals(reason) == before_ + 1);     \
  } while (0)

}  // namespace

TEST_CASE("oidc: the authorization request is code flow with PKCE S256, fresh state and nonce, the acr asked for",
          "[integration]") {
  auto rp = RelyingParty();
  auto substantial = rp->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
  REQUIRE(substantial.ok());
  const auto q = Query(substantial->redirect_url);
  CHECK(absl::StartsWith(substantial->redirect_url, TheOp().issuer + "/auth?"));
  CHECK(q.at("response_type") == "code");
  CHECK(q.at("client_id") == "stadtportal");
  CHECK(q.at("redirect_uri") == TheOp().redirect_uri);
  CHECK(q.at("scope") == "openid profile email address");
  CHECK(q.at("code_challenge_method") == "S256");
  CHECK(q.at("code_challenge") == B64(auth::Sha256(substantial->code_verifier)));
  CHECK(q.at("state") == substantial->state);
  CHECK(q.at("nonce") == substantial->nonce);
  CHECK(q.at("acr_values") == "http://eidas.europa.eu/LoA/substantial");
  const auto claims = nlohmann::json::parse(q.at("claims"));
  CHECK(claims["id_token"]["acr"]["essential"] == true);
  CHECK(claims["id_token"]["acr"]["values"] ==
        nlohmann::json({"http://eidas.europa.eu/LoA/high", "http://eidas.europa.eu/LoA/substantial"}));
  CHECK(q.count("code_verifier") == 0);
  for (const std::string* v : {&substantial->state, &substantial->nonce, &substantial->code_verifier}) {
    CHECK(v->size() >= 43);  // 256 bits, base64url.
    CHECK(v->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
  }
  CHECK(substantial->state != substantial->nonce);
  // The configured acr when it is enough; else the lowest that is.
  auto low = rp->Start(v1::ASSURANCE_LEVEL_LOW);
  auto high = rp->Start(v1::ASSURANCE_LEVEL_HIGH);
  REQUIRE(low.ok());
  REQUIRE(high.ok());
  CHECK(Query(low->redirect_url).at("acr_values") == "http://eidas.europa.eu/LoA/substantial");
  CHECK(Query(high->redirect_url).at("acr_values") == "http://eidas.europa.eu/LoA/high");
  CHECK(Query(high->redirect_url).at("code_challenge_method") == "S256");
  CHECK(high->state != substantial->state);
  CHECK(high->code_verifier != substantial->code_verifier);
  // State is compared by the flow: equal only to itself, never when empty.
  CHECK(SameState(substantial->state, std::string(substantial->state)));
  CHECK_FALSE(SameState(substantial->state, high->state));
  CHECK_FALSE(SameState("", ""));
  // Discovered endpoints keep the issuer's scheme: an https provider cannot send us to
  // plain http, not even on loopback.
  CHECK(EndpointAllowed("https://id.example.de", "https://token.id.example.de/token"));
  CHECK_FALSE(EndpointAllowed("https://id.example.de", "http://127.0.0.1:6379/"));
  CHECK_FALSE(EndpointAllowed("https://id.example.de", "http://id.example.de/token"));
  CHECK_FALSE(EndpointAllowed("https://id.example.de", "file:///etc/passwd"));
  CHECK(EndpointAllowed("http://127.0.0.1:9400", "http://127.0.0.1:9400/token"));
  // A provider whose table cannot reach the level is not asked.
  Provider low_only = GenericOidc();
  low_only.levels = {{"http://eidas.europa.eu/LoA/low", v1::ASSURANCE_LEVEL_LOW}};
  low_only.oidc.requested_acr = "";
  OidcRelyingParty::Options options;
  options.redirect_uri = TheOp().redirect_uri;
  options.client_secret = TheOp().secret;
  auto weak = OidcRelyingParty::Create(low_only, options);
  REQUIRE(weak.ok());
  CHECK((*weak)->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("oidc: many threads start log-ins at once; the provider's metadata is fetched once", "[integration]") {
  auto rp = RelyingParty();
  std::vector<std::thread> threads;
  std::vector<std::string> states(8);
  std::atomic<int> failed{0};
  for (size_t i = 0; i < states.size(); ++i) {
    threads.emplace_back([&, i] {
      auto started = rp->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
      if (!started.ok()) ++failed;
      states[i] = started.ok() ? started->state : "";
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(std::set<std::string>(states.begin(), states.end()).size() == states.size());
  CHECK(rp->jwks_fetches() == 1);
}

TEST_CASE("oidc: creating a relying party checks its settings, without network", "[integration]") {
  OidcRelyingParty::Options options;
  options.redirect_uri = "http://portal.example.de/api/v1/auth/oidc/generic-oidc/callback";
  options.client_secret = "secret-secret-secret";
  Provider provider = GenericOidc();
  CHECK(OidcRelyingParty::Create(provider, options).status().code() == absl::StatusCode::kInvalidArgument);
  options.redirect_uri = "https://portal.example.de/api/v1/auth/oidc/generic-oidc/callback";
  provider.oidc.issuer = "https://127.0.0.1:1";  // Nothing listens: Create does not ask.
  CHECK(OidcRelyingParty::Create(provider, options).ok());
  options.client_secret = "";
  CHECK(OidcRelyingParty::Create(provider, options).status().code() == absl::StatusCode::kInvalidArgument);
  options.private_key_file = "/nonexistent/key.pem";
  CHECK(OidcRelyingParty::Create(provider, options).status().code() == absl::StatusCode::kInvalidArgument);
  provider.kind = Provider::Kind::kSaml;
  options.client_secret = "secret-secret-secret";
  options.private_key_file = "";
  CHECK(OidcRelyingParty::Create(provider, options).status().code() == absl::StatusCode::kInvalidArgument);
  // A provider that cannot be reached: Start is unavailable, Finish refuses "upstream".
  provider.kind = Provider::Kind::kOidc;
  provider.oidc.issuer = absl::StrCat("http://127.0.0.1:", testing::FreePort());
  options.http_timeout = std::chrono::seconds(1);
  auto rp = OidcRelyingParty::Create(provider, options);
  REQUIRE(rp.ok());
  CHECK((*rp)->Start(v1::ASSURANCE_LEVEL_LOW).status().code() == absl::StatusCode::kUnavailable);
  OidcRequest started;
  started.nonce = auth::RandomToken(32);
  started.code_verifier = auth::RandomToken(32);
  CHECK_REFUSED((*rp)->Finish("some-code", started, absl::Now()).status(), "upstream");
}

TEST_CASE("oidc: log-in at the provider: subject, acr as level, mapped claims, log-out URL", "[integration]") {
  auto rp = RelyingParty();
  SECTION("erika at substantial") {
    auto started = rp->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    REQUIRE(started.ok());
    const auto callback = LogIn(*started, kErika);
    CHECK(SameState(callback.at("state"), started->state));
    CHECK(callback.at("iss") == TheOp().issuer);
    const absl::Time now = absl::Now();
    auto identity = rp->Finish(callback.at("code"), *started, now);
    INFO(identity.status().ToString());
    REQUIRE(identity.ok());
    CHECK(identity->provider == "generic-oidc");
    CHECK(identity->subject == "erika");
    CHECK(identity->level == v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    CHECK(identity->asserted == "http://eidas.europa.eu/LoA/substantial");
    CHECK(identity->attributes == std::map<std::string, std::string>{{"given_name", "Erika"},
                                                                     {"family_name", "Mustermann"},
                                                                     {"birth_date", "1964-08-12"},
                                                                     {"email", "erika.mustermann@example.org"},
                                                                     {"street", "Heidestraße 17"},
                                                                     {"postal_code", "51147"},
                                                                     {"locality", "Köln"},
                                                                     {"country", "DE"}});
    CHECK(identity->valid_until > now);
    CHECK(identity->valid_until < now + absl::Minutes(15));
    // The raw ID token, for the log-out: the provider's and about erika.
    CHECK(std::count(identity->logout_hint.begin(), identity->logout_hint.end(), '.') == 2);
    auto logout = rp->LogoutUrl(*identity, "http://127.0.0.1:8080/");
    REQUIRE(logout.ok());
    const auto q = Query(*logout);
    CHECK(absl::StartsWith(*logout, TheOp().issuer + "/"));
    CHECK(q.at("id_token_hint") == identity->logout_hint);
    CHECK(q.at("post_logout_redirect_uri") == "http://127.0.0.1:8080/");
    CHECK(q.at("client_id") == "stadtportal");
    // The discovery document and the keys were fetched once for all of it.
    CHECK(rp->jwks_fetches() == 1);
  }
  SECTION("max at high") {
    auto started = rp->Start(v1::ASSURANCE_LEVEL_HIGH);
    REQUIRE(started.ok());
    auto identity = rp->Finish(LogIn(*started, kMax).at("code"), *started, absl::Now());
    INFO(identity.status().ToString());
    REQUIRE(identity.ok());
    CHECK(identity->subject == "max");
    CHECK(identity->level == v1::ASSURANCE_LEVEL_HIGH);
    CHECK(identity->attributes.at("locality") == "München");
  }
  SECTION("private_key_jwt: the second client logs in with its key (RSA, EC P-256), no secret") {
    auto second = SecondRelyingParty(GENERATE(false, true));
    auto started = second->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    REQUIRE(started.ok());
    CHECK(Query(started->redirect_url).at("client_id") == "stadtportal-second");
    auto identity = second->Finish(LogIn(*started, kErika).at("code"), *started, absl::Now());
    INFO(identity.status().ToString());
    REQUIRE(identity.ok());
    CHECK(identity->subject == "erika");
  }
}

TEST_CASE("oidc attack matrix against the provider: each refused with its reason and counted", "[integration]") {
  auto rp = RelyingParty();
  const auto start = [&](Level minimum = v1::ASSURANCE_LEVEL_SUBSTANTIAL) {
    auto started = rp->Start(minimum);
    REQUIRE(started.ok());
    return *started;
  };

  SECTION("wrong nonce: flow A's code with flow B's nonce") {
    const OidcRequest a = start(), b = start();
    OidcRequest mixed = a;
    mixed.nonce = b.nonce;
    CHECK_REFUSED(rp->Finish(LogIn(a, kErika).at("code"), mixed, absl::Now()).status(), "nonce");
  }
  SECTION("flow A's code finished with flow B's whole request: the provider refuses B's verifier") {
    const OidcRequest a = start(), b = start();
    CHECK_REFUSED(rp->Finish(LogIn(a, kErika).at("code"), b, absl::Now()).status(), "code");
  }
  SECTION("wrong aud: an ID token the provider issued to another client") {
    auto second = SecondRelyingParty();
    auto started = second->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    REQUIRE(started.ok());
    const auto callback = LogIn(*started, kErika);
    // Its code is no good to us: the provider binds it to the client it was issued to.
    CHECK_REFUSED(rp->Finish(callback.at("code"), *started, absl::Now()).status(), "code");
    auto started2 = second->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    REQUIRE(started2.ok());
    auto theirs = second->Finish(LogIn(*started2, kErika).at("code"), *started2, absl::Now());
    REQUIRE(theirs.ok());
    // Its ID token, genuine and signed by the provider, is not for us.
    CHECK_REFUSED(rp->CheckIdToken(theirs->logout_hint, started2->nonce, absl::Now()).status(), "audience");
  }
  SECTION("expired: finished after exp + skew") {
    const OidcRequest a = start();
    CHECK_REFUSED(rp->Finish(LogIn(a, kErika).at("code"), a, absl::Now() + absl::Minutes(15)).status(), "expired");
  }
  SECTION("issued in the future: iat after now + skew") {
    const OidcRequest a = start();
    CHECK_REFUSED(rp->Finish(LogIn(a, kErika).at("code"), a, absl::Now() - absl::Minutes(5)).status(), "not_yet_valid");
  }
  SECTION("replayed code") {
    const OidcRequest a = start();
    const std::string code = LogIn(a, kErika).at("code");
    REQUIRE(rp->Finish(code, a, absl::Now()).ok());
    CHECK_REFUSED(rp->Finish(code, a, absl::Now()).status(), "code");
  }
  SECTION("redirect_uri mismatch") {
    const std::string elsewhere = TheOp().redirect_uri + "/elsewhere";
    auto other = RelyingParty(elsewhere);
    // Its authorization request is refused by the provider outright ...
    auto started = other->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    REQUIRE(started.ok());
    const Page page = Browser(elsewhere).Follow(started->redirect_url);
    CHECK(page.callback.empty());
    CHECK(page.status == 400);
    // ... and a code issued for our redirect URI is refused at the token endpoint.
    const OidcRequest a = start();
    CHECK_REFUSED(other->Finish(LogIn(a, kErika).at("code"), a, absl::Now()).status(), "code");
  }
  SECTION("missing PKCE: no verifier, no exchange; the provider refuses one without it too") {
    const OidcRequest a = start();
    const std::string code = LogIn(a, kErika).at("code");
    OidcRequest without = a;
    without.code_verifier = "";
    CHECK_REFUSED(rp->Finish(code, without, absl::Now()).status(), "code");
    httplib::Client c("127.0.0.1", TheOp().port);
    c.set_basic_auth("stadtportal", TheOp().secret.c_str());
    auto r = c.Post("/token", "grant_type=authorization_code&code=" + code + "&redirect_uri=" + TheOp().redirect_uri,
                    "application/x-www-form-urlencoded");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(nlohmann::json::parse(r->body).value("error", "") == "invalid_grant");
  }
  SECTION("level below the requested one: erika (substantial) when high was asked for") {
    const OidcRequest high = start(v1::ASSURANCE_LEVEL_HIGH);
    CHECK(Query(high.redirect_url).at("acr_values") == "http://eidas.europa.eu/LoA/high");
    CHECK_REFUSED(rp->Finish(LogIn(high, kErika).at("code"), high, absl::Now()).status(), "level_below");
  }
  SECTION("state mismatch: the callback's state is another flow's") {
    const OidcRequest a = start(), b = start();
    const auto callback = LogIn(a, kErika);
    CHECK(SameState(callback.at("state"), a.state));
    CHECK_FALSE(SameState(callback.at("state"), b.state));
  }
}

TEST_CASE(
    "oidc: forged ID tokens are refused (alg none, HS256 with the public key, unknown kid, wrong iss, bad "
    "signature)",
    "[integration]") {
  auto rp = RelyingParty();
  const nlohmann::json jwks = ProviderJwks();
  nlohmann::json rsa_jwk;
  for (const auto& k : jwks["keys"]) {
    if (k.value("alg", "") == "RS256") rsa_jwk = k;
  }
  REQUIRE(rsa_jwk.is_object());
  const std::string kid = rsa_jwk["kid"];
  const absl::Time now = absl::Now();
  const int64_t t = absl::ToUnixSeconds(now);
  const std::string nonce = auth::RandomToken(32);
  const nlohmann::json claims = {{"iss", TheOp().issuer},
                                 {"sub", "erika"},
                                 {"aud", "stadtportal"},
                                 {"exp", t + 300},
                                 {"iat", t},
                                 {"nonce", nonce},
                                 {"acr", "http://eidas.europa.eu/LoA/high"}};
  const IdTokenExpectations expected{TheOp().issuer, "stadtportal", nonce, std::chrono::seconds(60)};
  const auto unsigned_token = [&](const nlohmann::json& header, const nlohmann::json& body) {
    return B64(header.dump()) + "." + B64(body.dump());
  };

  // Keys of our own, to show the forging works: correctly signed tokens pass.
  Pkey rsa = NewRsaKey(), ec = NewEcKey();
  const nlohmann::json own = {
      {"keys",
       {Jwk(rsa.get(), "own-rs", "RS256"), Jwk(rsa.get(), "own-ps", "PS256"), Jwk(ec.get(), "own-es", "ES256")}}};
  for (const auto& [alg, id] : std::vector<std::pair<std::string, std::string>>{
           {"RS256", "own-rs"}, {"PS256", "own-ps"}, {"ES256", "own-es"}}) {
    EVP_PKEY* key = alg == "ES256" ? ec.get() : rsa.get();
    auto ok = VerifyIdToken(SignedJwt(key, {{"alg", alg}, {"kid", id}}, claims), own, expected, now);
    INFO(alg << ": " << ok.status().ToString());
    CHECK(ok.ok());
  }

  SECTION("alg none") {
    const std::string token = unsigned_token({{"alg", "none"}, {"kid", kid}}, claims) + ".";
    CHECK(RefusalReason(VerifyIdToken(token, jwks, expected, now).status()) == "alg");
    CHECK_REFUSED(rp->CheckIdToken(token, nonce, now).status(), "alg");
    const std::string with_sig = unsigned_token({{"alg", "none"}}, claims) + "." + B64("x");
    CHECK(RefusalReason(VerifyIdToken(with_sig, jwks, expected, now).status()) == "alg");
  }
  SECTION("HS256 signed with the provider's public key as the secret") {
    const std::string input = unsigned_token({{"alg", "HS256"}, {"kid", kid}}, claims);
    for (const std::string& secret : {PublicPem(rsa_jwk), rsa_jwk.dump(), rsa_jwk["n"].get<std::string>()}) {
      const std::string token = input + "." + B64(HmacSha256(secret, input));
      CHECK(RefusalReason(VerifyIdToken(token, jwks, expected, now).status()) == "alg");
    }
    CHECK_REFUSED(rp->CheckIdToken(input + "." + B64(HmacSha256(PublicPem(rsa_jwk), input)), nonce, now).status(),
                  "alg");
  }
  SECTION("unknown kid: the keys are fetched once more, then refused") {
    const std::string token = SignedJwt(rsa.get(), {{"alg", "RS256"}, {"kid", "rs256-stranger"}}, claims);
    CHECK(RefusalReason(VerifyIdToken(token, jwks, expected, now).status()) == "kid");
    // Signed by a key it does not have, under the kid of one it has.
    const std::string borrowed = SignedJwt(rsa.get(), {{"alg", "RS256"}, {"kid", kid}}, claims);
    CHECK(RefusalReason(VerifyIdToken(borrowed, jwks, expected, now).status()) == "bad_signature");
    REQUIRE(rp->jwks_fetches() == 0);
    CHECK_REFUSED(rp->CheckIdToken(token, nonce, now).status(), "kid");
    CHECK(rp->jwks_fetches() == 2);  // First use, and the one refetch.
    CHECK_REFUSED(rp->CheckIdToken(token, nonce, now).status(), "kid");
    CHECK(rp->jwks_fetches() == 2);  // Not again so soon.
  }
  SECTION("wrong iss, aud, azp, times") {
    const auto signed_with = [&](nlohmann::json body) {
      return SignedJwt(rsa.get(), {{"alg", "RS256"}, {"kid", "own-rs"}}, body);
    };
    const auto reason = [&](const std::string& token) {
      return RefusalReason(VerifyIdToken(token, own, expected, now).status());
    };
    nlohmann::json c = claims;
    c["iss"] = TheOp().issuer + "/";
    CHECK(reason(signed_with(c)) == "issuer");
    c["iss"] = "http://127.0.0.1:1";
    CHECK(reason(signed_with(c)) == "issuer");
    c = claims;
    c["aud"] = "stadtportal-second";
    CHECK(reason(signed_with(c)) == "audience");
    c["aud"] = {"stadtportal-second", "stadtportal"};
    CHECK(reason(signed_with(c)) == "azp");
    c["azp"] = "stadtportal-second";
    CHECK(reason(signed_with(c)) == "azp");
    c["azp"] = "stadtportal";
    CHECK(reason(signed_with(c)).empty());
    c = claims;
    c["exp"] = t - 61;
    CHECK(reason(signed_with(c)) == "expired");
    c["exp"] = t - 59;  // Within the skew.
    CHECK(reason(signed_with(c)).empty());
    c = claims;
    c["nbf"] = t + 120;
    CHECK(reason(signed_with(c)) == "not_yet_valid");
    c = claims;
    c["nonce"] = auth::RandomToken(32);
    CHECK(reason(signed_with(c)) == "nonce");
    c.erase("nonce");
    CHECK(reason(signed_with(c)) == "nonce");
    c = claims;
    c.erase("sub");
    CHECK(reason(signed_with(c)) == "malformed");
    CHECK(reason("not.a.jwt") == "malformed");
    CHECK(reason(std::string(kMaxIdTokenBytes + 1, 'a')) == "malformed");
  }
  SECTION("bad signature: the provider's own token with its payload changed") {
    auto started = rp->Start(v1::ASSURANCE_LEVEL_SUBSTANTIAL);
    REQUIRE(started.ok());
    auto identity = rp->Finish(LogIn(*started, kErika).at("code"), *started, absl::Now());
    REQUIRE(identity.ok());
    const std::string& token = identity->logout_hint;
    const IdTokenExpectations theirs{TheOp().issuer, "stadtportal", started->nonce, std::chrono::seconds(60)};
    REQUIRE(VerifyIdToken(token, jwks, theirs, absl::Now()).ok());
    const std::vector<std::string> parts = absl::StrSplit(token, '.');
    std::string payload;
    REQUIRE(absl::WebSafeBase64Unescape(parts[1], &payload));
    auto body = nlohmann::json::parse(payload);
    body["sub"] = "max";
    const std::string tampered = parts[0] + "." + B64(body.dump()) + "." + parts[2];
    CHECK(RefusalReason(VerifyIdToken(tampered, jwks, theirs, absl::Now()).status()) == "bad_signature");
    CHECK_REFUSED(rp->CheckIdToken(tampered, started->nonce, absl::Now()).status(), "bad_signature");
    std::string sig = parts[2];
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    CHECK(RefusalReason(VerifyIdToken(parts[0] + "." + parts[1] + "." + sig, jwks, theirs, absl::Now()).status()) ==
          "bad_signature");
  }
}

}  // namespace stadtportal::identity::federation

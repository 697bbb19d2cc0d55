#include "services/identity/federation/oidc.h"

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/api/text.h"
#include "libs/auth/tokens.h"
#include "libs/db/network_guard.h"
#include "libs/log/log.h"
#include "libs/net/url.h"

namespace stadtportal::identity::federation {
namespace {

// ---------------------------------------------------------------------------------------
// Encoding

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Strict base64url without padding (RFC 7515 §2); false on anything else.
bool Base64UrlDecode(absl::string_view in, std::string* out) {
  if (!std::all_of(in.begin(), in.end(), IsBase64UrlChar) || in.size() % 4 == 1) return false;
  return absl::WebSafeBase64Unescape(in, out);
}

std::string Base64Url(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

std::string Form(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : fields)
    parts.push_back(absl::StrCat(net::PercentEncode(name), "=", net::PercentEncode(value)));
  return absl::StrJoin(parts, "&");
}

// `base` with `query` appended (a base that has a query already keeps it).
std::string WithQuery(const std::string& base, const std::string& query) {
  return absl::StrCat(base, base.find('?') == std::string::npos ? "?" : "&", query);
}

bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---------------------------------------------------------------------------------------
// HTTP: every exchange with a size limit, a time limit, https only (http on loopback).

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string UrlPart(CURLU* u, CURLUPart part) {
  char* v = nullptr;
  if (curl_url_get(u, part, &v, 0) != CURLUE_OK || v == nullptr) return "";
  std::string out(v);
  curl_free(v);
  return out;
}

// The scheme a URL may be fetched with ("https", or "http" for loopback hosts), or ""
// when it may not be fetched at all (other schemes, user information, no host).
std::string AllowedScheme(const std::string& url) {
  if (url.size() > 2048 || !api::IsPlainText(url)) return "";
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "";
  const std::string scheme = absl::AsciiStrToLower(UrlPart(u.get(), CURLUPART_SCHEME));
  const std::string host = absl::AsciiStrToLower(UrlPart(u.get(), CURLUPART_HOST));
  if (host.empty() || !UrlPart(u.get(), CURLUPART_USER).empty() || !UrlPart(u.get(), CURLUPART_FRAGMENT).empty()) {
    return "";
  }
  if (scheme == "https") return "https";
  if (scheme == "http" && (host == "127.0.0.1" || host == "[::1]" || host == "localhost")) return "http";
  return "";
}

void CurlGlobalInit() {
  static const bool done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)done;
}

struct Received {
  std::string body;
  size_t limit = 0;
  bool too_big = false;
};

size_t Collect(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Received*>(user);
  const size_t n = size * count;
  if (r->body.size() + n > r->limit) {
    r->too_big = true;
    return 0;  // Aborts the transfer.
  }
  r->body.append(data, n);
  return n;
}

struct HttpAnswer {
  long status = 0;
  std::string body;
  std::string content_type;
};

// One request; UNAVAILABLE naming what went wrong (never the body or the headers).
// `form` set: a POST of that x-www-form-urlencoded body.
absl::StatusOr<HttpAnswer> Fetch(const std::string& url, const std::vector<std::string>& headers,
                                 const std::string* form, const OidcRelyingParty::Options& options) {
  const std::string scheme = AllowedScheme(url);
  if (scheme.empty()) return absl::UnavailableError("not an https URL (http only on loopback)");
  db::ExpectNoTransaction("http");
  CurlGlobalInit();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::UnavailableError("curl_easy_init failed");
  Received received;
  received.limit = options.max_document_bytes;
  curl_slist* list = curl_slist_append(nullptr, "Accept: application/json");
  list = curl_slist_append(list, "Expect:");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  const long timeout_ms = static_cast<long>(std::chrono::milliseconds(options.http_timeout).count());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, scheme.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  if (scheme == "http") curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if (form != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(form->size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
  curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_document_bytes));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  HttpAnswer answer;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  char* content_type = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type) == CURLE_OK && content_type != nullptr) {
    answer.content_type = absl::AsciiStrToLower(content_type);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  if (received.too_big || rc == CURLE_FILESIZE_EXCEEDED) return absl::UnavailableError("answer too big");
  if (rc != CURLE_OK) return absl::UnavailableError(curl_easy_strerror(rc));
  answer.body = std::move(received.body);
  return answer;
}

// The answer's body as a JSON object, when it is one (application/json, or a JSON-based
// type such as application/jwk-set+json).
std::optional<nlohmann::json> JsonObject(const HttpAnswer& answer) {
  const std::string media(absl::StripAsciiWhitespace(answer.content_type.substr(0, answer.content_type.find(';'))));
  if (media != "application/json" && !(absl::StartsWith(media, "application/") && absl::EndsWith(media, "+json"))) {
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(answer.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::string Text(const nlohmann::json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// An OAuth error code from an answer, when it looks like one (it goes into a log line).
std::string OAuthError(const HttpAnswer& answer) {
  const auto j = JsonObject(answer);
  const std::string error = j ? Text(*j, "error") : "";
  const bool plain = !error.empty() && error.size() <= 64 &&
                     std::all_of(error.begin(), error.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
  return plain ? error : "";
}

// ---------------------------------------------------------------------------------------
// Keys and signatures (OpenSSL 3 EVP)

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnDeleter>;

struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

Pkey FromData(const char* type, OSSL_PARAM* params) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
    return nullptr;
  }
  return Pkey(key);
}

// The public key of a JWK fitting `alg`: RSA (2048 bits or more) for RS256/PS256, EC
// P-256 for ES256; null otherwise.
Pkey PublicKey(const nlohmann::json& jwk, const std::string& alg) {
  const std::string kty = Text(jwk, "kty");
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bld) return nullptr;
  if (alg == "RS256" || alg == "PS256") {
    std::string n, e;
    if (kty != "RSA" || !Base64UrlDecode(Text(jwk, "n"), &n) || !Base64UrlDecode(Text(jwk, "e"), &e) ||
        n.size() < 256 || n.size() > 1024 || e.empty() || e.size() > 8) {
      return nullptr;
    }
    Bn bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
    Bn bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
    if (!bn_n || !bn_e || BN_num_bits(bn_n.get()) < 2048 ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
      return nullptr;
    }
    std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
    return params ? FromData("RSA", params.get()) : nullptr;
  }
  if (alg == "ES256") {
    std::string x, y;
    if (kty != "EC" || Text(jwk, "crv") != "P-256" || !Base64UrlDecode(Text(jwk, "x"), &x) ||
        !Base64UrlDecode(Text(jwk, "y"), &y) || x.size() != 32 || y.size() != 32) {
      return nullptr;
    }
    const std::string point = std::string(1, '\x04') + x + y;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
      return nullptr;
    }
    std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
    Pkey key = params ? FromData("EC", params.get()) : nullptr;
    if (!key) return nullptr;
    // The point must be on the curve.
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
    return key;
  }
  return nullptr;
}

// Whether `signature` (JWS form) over `input` is valid under `key` for `alg`.
bool VerifySignature(EVP_PKEY* key, const std::string& alg, const std::string& input, std::string signature) {
  if (alg == "ES256") {
    // JWS carries R || S; OpenSSL wants DER.
    if (signature.size() != 64) return false;
    std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()) + 32, 32, nullptr);
    if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
      BN_free(r);
      BN_free(s);
      return false;
    }
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig.get(), &der);
    if (len <= 0) return false;
    signature.assign(reinterpret_cast<char*>(der), len);
    OPENSSL_free(der);
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr, key, nullptr) != 1) return false;
  if (alg == "PS256" && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
                         EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", nullptr) != 1)) {
    return false;
  }
  if (alg == "RS256" && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

// A signature over `input` with `key` in JWS form (R || S for ES256); "" on failure.
std::string Sign(EVP_PKEY* key, const std::string& alg, const std::string& input) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key, nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) !=
          1) {
    return "";
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return "";
  }
  sig.resize(len);
  if (alg != "ES256") return sig;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
  if (!ecdsa) return "";
  std::string raw(64, '\0');
  if (BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa.get()), reinterpret_cast<unsigned char*>(raw.data()), 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) != 32) {
    return "";
  }
  return raw;
}

// The numeric date claim `name` in seconds, when it is one.
std::optional<int64_t> NumericDate(const nlohmann::json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!(v >= 0 && v < 1e11)) return std::nullopt;
  return static_cast<int64_t>(v);
}

bool IsAllowedAlg(const std::string& alg) { return alg == "RS256" || alg == "PS256" || alg == "ES256"; }

}  // namespace

bool EndpointAllowed(const std::string& issuer, const std::string& endpoint) {
  const std::string scheme = AllowedScheme(endpoint);
  return !scheme.empty() && scheme == AllowedScheme(issuer);
}

bool SameState(const std::string& a, const std::string& b) { return !a.empty() && ConstantTimeEqual(a, b); }

absl::StatusOr<nlohmann::json> VerifyIdToken(const std::string& jwt, const nlohmann::json& jwks,
                                             const IdTokenExpectations& expected, absl::Time now) {
  if (jwt.empty() || jwt.size() > kMaxIdTokenBytes) return Refused("malformed");
  const std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  if (parts.size() != 3) return Refused("malformed");
  std::string header_raw, payload_raw, signature;
  if (!Base64UrlDecode(parts[0], &header_raw) || !Base64UrlDecode(parts[1], &payload_raw) ||
      !Base64UrlDecode(parts[2], &signature)) {
    return Refused("malformed");
  }
  const auto header = nlohmann::json::parse(header_raw, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return Refused("malformed");
  // The algorithm first: a token that names none, an HMAC or anything else is refused
  // before any key is looked at (no key confusion).
  const std::string alg = Text(header, "alg");
  if (!IsAllowedAlg(alg)) return Refused("alg");
  if (header.contains("crit")) return Refused("malformed");  // No extension is understood here.
  if (signature.empty()) return Refused("bad_signature");
  // The key of its kid (a token without kid: the provider's only key for the algorithm).
  const auto keys = jwks.is_object() ? jwks.find("keys") : jwks.end();
  if (keys == jwks.end() || !keys->is_array()) return Refused("kid");
  const std::string kid = Text(header, "kid");
  if (header.contains("kid") && kid.empty()) return Refused("kid");
  const nlohmann::json* jwk = nullptr;
  size_t candidates = 0;
  for (const auto& k : *keys) {
    if (!k.is_object()) continue;
    if (!kid.empty() && Text(k, "kid") != kid) continue;
    if (k.contains("use") && Text(k, "use") != "sig") continue;
    if (k.contains("alg") && Text(k, "alg") != alg) continue;
    if (Text(k, "kty") != (alg == "ES256" ? "EC" : "RSA")) continue;
    jwk = &k;
    ++candidates;
  }
  if (jwk == nullptr || candidates != 1) return Refused("kid");
  Pkey key = PublicKey(*jwk, alg);
  if (!key) return Refused("kid");
  const std::string input = absl::StrCat(parts[0], ".", parts[1]);
  if (!VerifySignature(key.get(), alg, input, signature)) return Refused("bad_signature");

  auto claims = nlohmann::json::parse(payload_raw, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) return Refused("malformed");
  if (!ConstantTimeEqual(Text(claims, "iss"), expected.issuer) || expected.issuer.empty()) return Refused("issuer");
  const auto aud = claims.find("aud");
  std::vector<std::string> audiences;
  if (aud != claims.end() && aud->is_string()) audiences.push_back(aud->get<std::string>());
  if (aud != claims.end() && aud->is_array()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return Refused("audience");
      audiences.push_back(a.get<std::string>());
    }
  }
  if (expected.client_id.empty() ||
      std::find(audiences.begin(), audiences.end(), expected.client_id) == audiences.end()) {
    return Refused("audience");
  }
  if ((audiences.size() > 1 || claims.contains("azp")) && Text(claims, "azp") != expected.client_id) {
    return Refused("azp");
  }
  const int64_t t = absl::ToUnixSeconds(now);
  const int64_t skew = expected.skew.count();
  const auto exp = NumericDate(claims, "exp");
  const auto iat = NumericDate(claims, "iat");
  if (!exp || !iat) return Refused("malformed");
  if (t > *exp + skew) return Refused("expired");
  if (*iat > t + skew) return Refused("not_yet_valid");
  if (claims.contains("nbf")) {
    const auto nbf = NumericDate(claims, "nbf");
    if (!nbf) return Refused("malformed");
    if (*nbf > t + skew) return Refused("not_yet_valid");
  }
  if (expected.nonce.empty() || !ConstantTimeEqual(Text(claims, "nonce"), expected.nonce)) return Refused("nonce");
  const std::string sub = Text(claims, "sub");
  if (sub.empty() || sub.size() > 255 || !api::IsPlainText(sub)) return Refused("malformed");
  return claims;
}

// ---------------------------------------------------------------------------------------
// The relying party

struct OidcRelyingParty::Metadata {
  std::string authorization_endpoint, token_endpoint, userinfo_endpoint, end_session_endpoint, jwks_uri;
  nlohmann::json jwks;
  absl::Time fetched;
};

struct OidcRelyingParty::Key {
  Pkey pkey;
  std::string alg;  // RS256 or ES256.
};

namespace {

// A JSON object fetched with GET (the discovery document, the key set).
absl::StatusOr<nlohmann::json> FetchJson(const std::string& url, const OidcRelyingParty::Options& options,
                                         const std::string& what) {
  auto answer = Fetch(url, {}, nullptr, options);
  if (!answer.ok()) return absl::UnavailableError(absl::StrCat(what, ": ", answer.status().message()));
  if (answer->status != 200) return absl::UnavailableError(absl::StrCat(what, ": HTTP ", answer->status));
  auto j = JsonObject(*answer);
  if (!j) return absl::UnavailableError(absl::StrCat(what, ": not a JSON object"));
  return *std::move(j);
}

}  // namespace

OidcRelyingParty::OidcRelyingParty(Provider provider, Options options)
    : provider_(std::move(provider)), options_(std::move(options)) {}

OidcRelyingParty::~OidcRelyingParty() = default;

absl::StatusOr<std::unique_ptr<OidcRelyingParty>> OidcRelyingParty::Create(const Provider& provider, Options options) {
  const auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("provider ", provider.id, ": ", what));
  };
  if (provider.kind != Provider::Kind::kOidc) return invalid("not an OpenID Connect provider");
  if (AllowedScheme(provider.oidc.issuer).empty()) return invalid("issuer must be https (http only on loopback)");
  if (AllowedScheme(options.redirect_uri).empty()) return invalid("redirect_uri must be https (http only on loopback)");
  if (options.skew < std::chrono::seconds(0) || options.skew > std::chrono::seconds(300)) {
    return invalid("skew must be 0 to 300 seconds");
  }
  if (options.http_timeout <= std::chrono::seconds(0) || options.max_document_bytes < 1024) {
    return invalid("http_timeout and max_document_bytes must be positive");
  }
  std::unique_ptr<Key> key;
  if (!options.private_key_file.empty()) {
    FILE* f = fopen(options.private_key_file.c_str(), "r");
    if (f == nullptr) return invalid("private key file cannot be read");
    EVP_PKEY* pkey = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    fclose(f);
    if (pkey == nullptr) return invalid("private key file holds no PEM private key");
    key = std::make_unique<Key>();
    key->pkey.reset(pkey);
    if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= 2048) {
      key->alg = "RS256";
    } else if (char curve[64] = {0};
               EVP_PKEY_is_a(pkey, "EC") &&
               EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve), nullptr) == 1 &&
               std::string(curve) == "prime256v1") {
      key->alg = "ES256";
    } else {
      return invalid("private key must be RSA (2048 bits or more) or EC P-256");
    }
  } else if (options.client_secret.empty()) {
    return invalid("neither a client secret nor a private key");
  }
  std::unique_ptr<OidcRelyingParty> rp(new OidcRelyingParty(provider, std::move(options)));
  rp->key_ = std::move(key);
  return rp;
}

size_t OidcRelyingParty::jwks_fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jwks_fetches_;
}

absl::StatusOr<std::shared_ptr<const OidcRelyingParty::Metadata>> OidcRelyingParty::CurrentMetadata() {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = absl::Now();
  if (metadata_ && now - metadata_->fetched < absl::FromChrono(options_.metadata_ttl)) return metadata_;
  // A provider that just failed is not asked again at once: callers do not queue up
  // behind one slow fetch after another.
  if (now - last_failure_ < absl::FromChrono(kRetryAfterFailure)) {
    if (metadata_) return metadata_;
    return absl::UnavailableError("discovery: failed a moment ago");
  }
  const auto fetch = [&]() -> absl::StatusOr<std::shared_ptr<const Metadata>> {
    const std::string issuer = provider_.oidc.issuer;
    const std::string base = absl::EndsWith(issuer, "/") ? issuer.substr(0, issuer.size() - 1) : issuer;
    auto d = FetchJson(base + "/.well-known/openid-configuration", options_, "discovery");
    if (!d.ok()) return d.status();
    // The document must be the issuer's own (OpenID Connect Discovery §4.3).
    if (Text(*d, "issuer") != issuer) return absl::UnavailableError("discovery: another issuer");
    auto m = std::make_shared<Metadata>();
    m->authorization_endpoint = Text(*d, "authorization_endpoint");
    m->token_endpoint = Text(*d, "token_endpoint");
    m->jwks_uri = Text(*d, "jwks_uri");
    m->userinfo_endpoint = Text(*d, "userinfo_endpoint");
    m->end_session_endpoint = Text(*d, "end_session_endpoint");
    for (const std::string* url : {&m->authorization_endpoint, &m->token_endpoint, &m->jwks_uri}) {
      if (!EndpointAllowed(issuer, *url)) {
        return absl::UnavailableError("discovery: an endpoint is missing or not of the issuer's scheme");
      }
    }
    for (const std::string* url : {&m->userinfo_endpoint, &m->end_session_endpoint}) {
      if (!url->empty() && !EndpointAllowed(issuer, *url)) {
        return absl::UnavailableError("discovery: an endpoint is not of the issuer's scheme");
      }
    }
    const auto methods = d->find("code_challenge_methods_supported");
    if (methods != d->end() &&
        (!methods->is_array() || std::find(methods->begin(), methods->end(), "S256") == methods->end())) {
      return absl::UnavailableError("discovery: the provider does not support PKCE S256");
    }
    auto jwks = FetchJson(m->jwks_uri, options_, "jwks");
    ++jwks_fetches_;
    if (!jwks.ok()) return jwks.status();
    if (!jwks->contains("keys") || !(*jwks)["keys"].is_array()) return absl::UnavailableError("jwks: no keys");
    m->jwks = *std::move(jwks);
    m->fetched = now;
    return m;
  };
  auto fresh = fetch();
  if (!fresh.ok()) {
    last_failure_ = now;
    log::Warn("federation: provider metadata not fetched",
              {{"provider", provider_.id}, {"error", std::string(fresh.status().message())}});
    if (metadata_) return metadata_;  // Keep using what we had until it answers again.
    return fresh.status();
  }
  metadata_ = *fresh;
  return metadata_;
}

std::shared_ptr<const OidcRelyingParty::Metadata> OidcRelyingParty::RefetchJwks(std::shared_ptr<const Metadata> seen) {
  std::lock_guard<std::mutex> lock(mu_);
  if (metadata_ != seen) return metadata_;  // Another call fetched meanwhile.
  const absl::Time now = absl::Now();
  if (now - last_jwks_refetch_ < absl::FromChrono(kJwksRefetchInterval)) return metadata_;
  last_jwks_refetch_ = now;
  auto jwks = FetchJson(seen->jwks_uri, options_, "jwks");
  ++jwks_fetches_;
  if (!jwks.ok() || !jwks->contains("keys") || !(*jwks)["keys"].is_array()) {
    log::Warn("federation: provider keys not fetched", {{"provider", provider_.id}});
    return metadata_;
  }
  auto m = std::make_shared<Metadata>(*seen);
  m->jwks = *std::move(jwks);
  metadata_ = m;
  return metadata_;
}

absl::Status OidcRelyingParty::Refuse(const std::string& reason) {
  CountRefusal(provider_.id, reason);
  log::Warn("federation: upstream answer refused", {{"provider", provider_.id}, {"reason", reason}});
  return Refused(reason);
}

absl::StatusOr<OidcRequest> OidcRelyingParty::Start(Level minimum) {
  // The acr to ask for: the configured one if it is enough, else the lowest that is.
  std::string acr;
  if (!provider_.oidc.requested_acr.empty() && Reaches(provider_.levels.at(provider_.oidc.requested_acr), minimum)) {
    acr = provider_.oidc.requested_acr;
  } else if (minimum != v1::ASSURANCE_LEVEL_UNSPECIFIED || !provider_.oidc.requested_acr.empty()) {
    Level best = v1::ASSURANCE_LEVEL_UNSPECIFIED;
    for (const auto& [asserted, level] : provider_.levels) {
      if (Reaches(level, minimum) && (best == v1::ASSURANCE_LEVEL_UNSPECIFIED || level < best)) {
        best = level;
        acr = asserted;
      }
    }
    if (acr.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("provider ", provider_.id, " cannot assert ", v1::AssuranceLevel_Name(minimum)));
    }
  }
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) {
    return absl::UnavailableError(absl::StrCat("federation: provider ", provider_.id, " unreachable"));
  }
  OidcRequest r;
  r.state = auth::RandomToken(32);
  r.nonce = auth::RandomToken(32);
  r.code_verifier = auth::RandomToken(32);  // 43 characters of base64url (RFC 7636 §4.1).
  r.minimum = minimum;
  std::vector<std::pair<std::string, std::string>> q = {
      {"response_type", "code"},
      {"client_id", provider_.oidc.client_id},
      {"redirect_uri", options_.redirect_uri},
      {"scope", absl::StrJoin(provider_.oidc.scopes, " ")},
      {"state", r.state},
      {"nonce", r.nonce},
      {"code_challenge", Base64Url(auth::Sha256(r.code_verifier))},
      {"code_challenge_method", "S256"},
  };
  if (!acr.empty()) {
    q.emplace_back("acr_values", acr);
    // Every table value reaching the minimum is acceptable.
    nlohmann::json values = nlohmann::json::array();
    for (const auto& [asserted, level] : provider_.levels) {
      if (Reaches(level, minimum)) values.push_back(asserted);
    }
    q.emplace_back("claims", nlohmann::json{{"id_token", {{"acr", {{"essential", true}, {"values", values}}}}}}.dump());
  }
  r.redirect_url = WithQuery((*metadata)->authorization_endpoint, Form(q));
  return r;
}

absl::StatusOr<std::string> OidcRelyingParty::ClientAssertion() const {
  const int64_t t = absl::ToUnixSeconds(absl::Now());
  const nlohmann::json header = {{"alg", key_->alg}, {"typ", "JWT"}};
  // aud is the issuer identifier (draft-ietf-oauth-rfc7523bis: never an endpoint a
  // malicious provider could name).
  const nlohmann::json claims = {{"iss", provider_.oidc.client_id},
                                 {"sub", provider_.oidc.client_id},
                                 {"aud", provider_.oidc.issuer},
                                 {"jti", auth::RandomToken(16)},
                                 {"iat", t},
                                 {"exp", t + 60}};
  const std::string input = absl::StrCat(Base64Url(header.dump()), ".", Base64Url(claims.dump()));
  const std::string sig = Sign(key_->pkey.get(), key_->alg, input);
  if (sig.empty()) return absl::InternalError("client assertion not signed");
  return absl::StrCat(input, ".", Base64Url(sig));
}

absl::StatusOr<nlohmann::json> OidcRelyingParty::CheckIdToken(const std::string& id_token, const std::string& nonce,
                                                              absl::Time now) {
  auto claims = CheckIdTokenUncounted(id_token, nonce, now);
  if (!claims.ok()) {
    const std::string reason = RefusalReason(claims.status());
    return Refuse(reason.empty() ? "upstream" : reason);
  }
  return claims;
}

absl::StatusOr<nlohmann::json> OidcRelyingParty::CheckIdTokenUncounted(const std::string& id_token,
                                                                       const std::string& nonce, absl::Time now) {
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) return Refused("upstream");
  const IdTokenExpectations expected{provider_.oidc.issuer, provider_.oidc.client_id, nonce, options_.skew};
  auto claims = VerifyIdToken(id_token, (*metadata)->jwks, expected, now);
  if (RefusalReason(claims.status()) != "kid") return claims;
  // A kid we do not know: the provider may have rotated its keys. Fetch them once more
  // (at most every kJwksRefetchInterval) and try again.
  auto refreshed = RefetchJwks(*metadata);
  if (refreshed == *metadata) return claims;
  return VerifyIdToken(id_token, refreshed->jwks, expected, now);
}

absl::StatusOr<Identity> OidcRelyingParty::Finish(const std::string& code, const OidcRequest& started, absl::Time now) {
  auto identity = FinishUncounted(code, started, now);
  if (!identity.ok()) {
    const std::string reason = RefusalReason(identity.status());
    return Refuse(reason.empty() ? "upstream" : reason);
  }
  return identity;
}

absl::StatusOr<Identity> OidcRelyingParty::FinishUncounted(const std::string& code, const OidcRequest& started,
                                                           absl::Time now) {
  const auto upstream = [&](const std::string& what) {
    log::Warn("federation: provider request failed", {{"provider", provider_.id}, {"error", what}});
    return Refused("upstream");
  };
  // The code is the provider's, the browser brought it: printable, bounded.
  if (code.empty() || code.size() > 2048 ||
      !std::all_of(code.begin(), code.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return Refused("malformed");
  }
  // Start always makes a verifier and a nonce; without them nothing binds the code to
  // this browser's request.
  if (started.code_verifier.size() < 43 || started.code_verifier.size() > 128) return Refused("code");
  if (started.nonce.empty()) return Refused("nonce");
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) return upstream(std::string(metadata.status().message()));

  std::vector<std::pair<std::string, std::string>> fields = {{"grant_type", "authorization_code"},
                                                             {"code", code},
                                                             {"redirect_uri", options_.redirect_uri},
                                                             {"code_verifier", started.code_verifier}};
  std::vector<std::string> headers = {"Content-Type: application/x-www-form-urlencoded"};
  if (key_) {
    auto assertion = ClientAssertion();
    if (!assertion.ok()) return upstream(std::string(assertion.status().message()));
    fields.emplace_back("client_id", provider_.oidc.client_id);
    fields.emplace_back("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    fields.emplace_back("client_assertion", *assertion);
  } else {
    // client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
    headers.push_back(absl::StrCat("Authorization: Basic ",
                                   absl::Base64Escape(absl::StrCat(net::PercentEncode(provider_.oidc.client_id), ":",
                                                                   net::PercentEncode(options_.client_secret)))));
  }
  const std::string body = Form(fields);
  auto answer = Fetch((*metadata)->token_endpoint, headers, &body, options_);
  if (!answer.ok()) return upstream(absl::StrCat("token endpoint: ", answer.status().message()));
  if (answer->status == 400 || answer->status == 401) {
    // invalid_grant (code unknown, used, expired, for another client or redirect URI,
    // verifier wrong), invalid_client, …: the code got us nothing.
    log::Info("federation: token endpoint refused the code",
              {{"provider", provider_.id}, {"status", answer->status}, {"error", OAuthError(*answer)}});
    return Refused("code");
  }
  if (answer->status != 200) return upstream(absl::StrCat("token endpoint: HTTP ", answer->status));
  const auto tokens = JsonObject(*answer);
  if (!tokens) return Refused("malformed");
  const std::string id_token = Text(*tokens, "id_token");
  const std::string access_token = Text(*tokens, "access_token");
  if (id_token.empty() || access_token.empty() || access_token.size() > 8192 || !api::IsPlainText(access_token) ||
      !absl::EqualsIgnoreCase(Text(*tokens, "token_type"), "bearer")) {
    return Refused("malformed");
  }
  auto claims = CheckIdTokenUncounted(id_token, started.nonce, now);
  if (!claims.ok()) return claims.status();
  const std::string sub = Text(*claims, "sub");

  // Userinfo: the same person, and the claims (they override the ID token's).
  nlohmann::json person = *claims;
  if (!(*metadata)->userinfo_endpoint.empty()) {
    auto info = Fetch((*metadata)->userinfo_endpoint, {absl::StrCat("Authorization: Bearer ", access_token)}, nullptr,
                      options_);
    if (!info.ok()) return upstream(absl::StrCat("userinfo: ", info.status().message()));
    if (info->status != 200) return upstream(absl::StrCat("userinfo: HTTP ", info->status));
    const auto j = JsonObject(*info);
    if (!j) return Refused("malformed");
    if (!ConstantTimeEqual(Text(*j, "sub"), sub)) return Refused("subject");
    for (const auto& [name, value] : j->items()) person[name] = value;
  }

  Identity out;
  out.provider = provider_.id;
  out.subject = sub;
  out.asserted = Text(*claims, "acr");
  if (out.asserted.empty() || out.asserted.size() > 512) return Refused("level_unknown");
  auto level = AssertedLevel(provider_, out.asserted);
  if (!level.ok()) return Refused("level_unknown");
  if (!Reaches(*level, started.minimum)) return Refused("level_below");
  out.level = *level;

  for (const auto& [claim, field] : provider_.oidc.claims) {
    const nlohmann::json* value = nullptr;
    if (absl::StartsWith(claim, "address.")) {
      const auto address = person.find("address");
      if (address == person.end() || !address->is_object()) continue;
      const auto member = address->find(claim.substr(8));
      if (member != address->end()) value = &*member;
    } else {
      const auto it = person.find(claim);
      if (it != person.end()) value = &*it;
    }
    if (value == nullptr || value->is_null()) continue;
    if (!value->is_string() || value->get<std::string>().size() > 1024 ||
        !api::IsPlainText(value->get<std::string>())) {
      return Refused("malformed");
    }
    // An e-mail address counts as verified only when the provider says it verified it.
    if (claim == "email" && person.value("email_verified", nlohmann::json(false)) != nlohmann::json(true)) continue;
    if (value->get<std::string>().empty()) continue;
    out.attributes[field] = value->get<std::string>();
  }
  out.logout_hint = id_token;
  out.valid_until = absl::FromUnixSeconds(*NumericDate(*claims, "exp"));
  return out;
}

absl::StatusOr<std::string> OidcRelyingParty::LogoutUrl(const Identity& identity,
                                                        const std::string& post_logout_redirect_uri) {
  auto metadata = CurrentMetadata();
  if (!metadata.ok()) {
    return absl::UnavailableError(absl::StrCat("federation: provider ", provider_.id, " unreachable"));
  }
  if ((*metadata)->end_session_endpoint.empty()) {
    return absl::NotFoundError(absl::StrCat("provider ", provider_.id, " offers no log-out"));
  }
  std::vector<std::pair<std::string, std::string>> q;
  if (!identity.logout_hint.empty()) q.emplace_back("id_token_hint", identity.logout_hint);
  q.emplace_back("client_id", provider_.oidc.client_id);
  if (!post_logout_redirect_uri.empty()) q.emplace_back("post_logout_redirect_uri", post_logout_redirect_uri);
  return WithQuery((*metadata)->end_session_endpoint, Form(q));
}

bool IsUsablePublicJwk(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return false;
  const std::string kty = Text(jwk, "kty");
  return PublicKey(jwk, kty == "RSA" ? "RS256" : kty == "EC" ? "ES256" : "") != nullptr;
}

}  // namespace stadtportal::identity::federation

#include "services/identity/federation/jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stadtportal::identity::jose {
namespace {

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

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

}  // namespace

bool Base64UrlDecode(absl::string_view in, std::string* out) {
  if (!std::all_of(in.begin(), in.end(), IsBase64UrlChar) || in.size() % 4 == 1) return false;
  return absl::WebSafeBase64Unescape(in, out);
}

std::string Base64Url(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

std::string Text(const nlohmann::json& object, const char* name) {
  if (!object.is_object()) return "";
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::optional<int64_t> NumericDate(const nlohmann::json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!(v >= 0 && v < 1e11)) return std::nullopt;
  return static_cast<int64_t>(v);
}

bool IsAllowedAlg(const std::string& alg) { return alg == "RS256" || alg == "PS256" || alg == "ES256"; }

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

std::string SignCompact(EVP_PKEY* key, const nlohmann::json& header, const nlohmann::json& claims) {
  const std::string input = absl::StrCat(Base64Url(header.dump()), ".", Base64Url(claims.dump()));
  const std::string sig = Sign(key, Text(header, "alg"), input);
  if (sig.empty()) return "";
  return absl::StrCat(input, ".", Base64Url(sig));
}

namespace {

absl::Status Bad(const char* reason) { return absl::InvalidArgumentError(reason); }

}  // namespace

absl::StatusOr<Jws> VerifyCompact(const std::string& jwt, const nlohmann::json& jwks,
                                  const std::vector<std::string>& algs, size_t max_bytes) {
  if (jwt.empty() || jwt.size() > max_bytes) return Bad("malformed");
  const std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  if (parts.size() != 3) return Bad("malformed");
  std::string header_raw, payload_raw, signature;
  if (!Base64UrlDecode(parts[0], &header_raw) || !Base64UrlDecode(parts[1], &payload_raw) ||
      !Base64UrlDecode(parts[2], &signature)) {
    return Bad("malformed");
  }
  Jws out;
  out.header = nlohmann::json::parse(header_raw, nullptr, false);
  if (out.header.is_discarded() || !out.header.is_object()) return Bad("malformed");
  // The algorithm first: a token that names none, an HMAC or anything else is refused
  // before any key is looked at (no key confusion).
  const std::string alg = Text(out.header, "alg");
  if (!IsAllowedAlg(alg) || std::find(algs.begin(), algs.end(), alg) == algs.end()) return Bad("alg");
  if (out.header.contains("crit")) return Bad("malformed");  // No extension is understood here.
  if (signature.empty()) return Bad("bad_signature");
  // The key of its kid (a token without kid: the set's only key for the algorithm).
  const auto keys = jwks.is_object() ? jwks.find("keys") : jwks.end();
  if (keys == jwks.end() || !keys->is_array()) return Bad("kid");
  const std::string kid = Text(out.header, "kid");
  if (out.header.contains("kid") && kid.empty()) return Bad("kid");
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
  if (jwk == nullptr || candidates != 1) return Bad("kid");
  Pkey key = PublicKey(*jwk, alg);
  if (!key) return Bad("kid");
  const std::string input = absl::StrCat(parts[0], ".", parts[1]);
  if (!VerifySignature(key.get(), alg, input, signature)) return Bad("bad_signature");
  out.claims = nlohmann::json::parse(payload_raw, nullptr, false);
  if (out.claims.is_discarded() || !out.claims.is_object()) return Bad("malformed");
  return out;
}

std::optional<nlohmann::json> UnverifiedClaims(const std::string& jwt, size_t max_bytes) {
  if (jwt.empty() || jwt.size() > max_bytes) return std::nullopt;
  const std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  if (parts.size() != 3) return std::nullopt;
  std::string payload;
  if (!Base64UrlDecode(parts[1], &payload)) return std::nullopt;
  auto claims = nlohmann::json::parse(payload, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) return std::nullopt;
  return claims;
}

}  // namespace stadtportal::identity::jose

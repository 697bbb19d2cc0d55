#include "services/identity/provider/keys.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "services/identity/federation/jose.h"

namespace stadtportal::identity::provider {

struct SigningKeys::Key {
  std::string kid;
  nlohmann::json jwk;
  absl::Time active_from;
  std::shared_ptr<EVP_PKEY> pkey;
};

namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

std::string Bytes(const BIGNUM* bn) {
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// The public JWK of an RSA key, its kid the RFC 7638 thumbprint.
absl::StatusOr<nlohmann::json> PublicJwk(EVP_PKEY* pkey) {
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
      EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
    BN_free(n);
    BN_free(e);
    return absl::InternalError("rsa key parameters not readable");
  }
  std::unique_ptr<BIGNUM, BnDeleter> nn(n), ee(e);
  const std::string n64 = jose::Base64Url(Bytes(n));
  const std::string e64 = jose::Base64Url(Bytes(e));
  // Members in lexicographic order, no whitespace (RFC 7638 §3.2).
  const std::string thumbprint_input = "{\"e\":\"" + e64 + "\",\"kty\":\"RSA\",\"n\":\"" + n64 + "\"}";
  const std::string kid = jose::Base64Url(auth::Sha256(thumbprint_input));
  return nlohmann::json{{"kty", "RSA"}, {"use", "sig"}, {"alg", "RS256"}, {"kid", kid}, {"n", n64}, {"e", e64}};
}

std::string Seal(const std::string& key, const std::string& plain) {
  std::string nonce(crypto_secretbox_NONCEBYTES, '\0');
  randombytes_buf(nonce.data(), nonce.size());
  std::string box(plain.size() + crypto_secretbox_MACBYTES, '\0');
  crypto_secretbox_easy(
      reinterpret_cast<unsigned char*>(box.data()), reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
      reinterpret_cast<const unsigned char*>(nonce.data()), reinterpret_cast<const unsigned char*>(key.data()));
  return absl::Base64Escape(nonce + box);
}

absl::StatusOr<std::string> Open(const std::string& key, const std::string& sealed) {
  std::string raw;
  if (!absl::Base64Unescape(sealed, &raw) || raw.size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    return absl::DataLossError("signing key: sealed form invalid");
  }
  std::string plain(raw.size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  const auto* nonce = reinterpret_cast<const unsigned char*>(raw.data());
  const auto* box = nonce + crypto_secretbox_NONCEBYTES;
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(plain.data()), box,
                                 raw.size() - crypto_secretbox_NONCEBYTES, nonce,
                                 reinterpret_cast<const unsigned char*>(key.data())) != 0) {
    return absl::DataLossError("signing key: not sealed with this STADTPORTAL_OP_SECRET");
  }
  return plain;
}

// A new RSA 2048 key: its public JWK and its private key as PKCS#8 PEM.
absl::StatusOr<std::pair<nlohmann::json, std::string>> NewKey() {
  jose::Pkey pkey(EVP_RSA_gen(2048));
  if (!pkey) return absl::InternalError("rsa key generation failed");
  auto jwk = PublicJwk(pkey.get());
  if (!jwk.ok()) return jwk.status();
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError("rsa key not written");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  std::string pem(data, static_cast<size_t>(len));
  OPENSSL_cleanse(data, static_cast<size_t>(len));
  return std::make_pair(*std::move(jwk), std::move(pem));
}

std::shared_ptr<EVP_PKEY> ParsePem(const std::string& pem) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) return nullptr;
  return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
}

struct Row {
  std::string kid, jwk, sealed;
  int64_t active_from = 0;
};

std::vector<Row> ReadRows(pqxx::transaction_base& tx) {
  std::vector<Row> rows;
  for (const auto& r : tx.exec_prepared("identity_op_keys")) {
    rows.push_back({r["kid"].as<std::string>(), r["public_jwk"].as<std::string>(),
                    r["private_sealed"].as<std::string>(), r["active_from"].as<int64_t>()});
  }
  return rows;
}

}  // namespace

SigningKeys::SigningKeys(db::Pool& pool, const ProviderOptions& options)
    : pool_(pool), options_(options), seal_key_(DeriveKey(options.secret, kKeySealing)) {}

SigningKeys::~SigningKeys() = default;

void SigningKeys::Prepare(pqxx::connection& conn) {
  conn.prepare("identity_op_keys_lock", "SELECT pg_advisory_xact_lock(hashtext('stadtportal.identity.op_keys'))");
  conn.prepare("identity_op_keys",
               "SELECT kid, public_jwk::text AS public_jwk, private_sealed,"
               " extract(epoch FROM active_from)::bigint AS active_from FROM op_signing_keys ORDER BY active_from");
  conn.prepare("identity_op_insert_key",
               "INSERT INTO op_signing_keys (kid, public_jwk, private_sealed, active_from)"
               " VALUES ($1, $2::jsonb, $3, to_timestamp($4))");
  conn.prepare("identity_op_delete_key", "DELETE FROM op_signing_keys WHERE kid = $1");
}

absl::Status SigningKeys::Rotate(absl::Time now) {
  if (seal_key_.empty()) return absl::FailedPreconditionError("openid provider secret missing");
  const int64_t t = absl::ToUnixSeconds(now);
  const int64_t rotation = options_.key_rotation.count();
  const int64_t ahead = options_.key_publish_ahead.count();
  const int64_t longest = options_.LongestToken().count();
  std::vector<std::string> created, deleted;
  auto s = pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_prepared("identity_op_keys_lock");
    const std::vector<Row> rows = ReadRows(tx);
    const auto insert = [&](int64_t active_from) -> absl::Status {
      auto key = NewKey();
      if (!key.ok()) return key.status();
      const std::string kid = key->first["kid"].get<std::string>();
      tx.exec_prepared("identity_op_insert_key", kid, key->first.dump(), Seal(seal_key_, key->second), active_from);
      created.push_back(kid);
      return absl::OkStatus();
    };
    // The current key: the newest active one.
    int current = -1;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].active_from <= t) current = static_cast<int>(i);
    }
    if (current < 0 && rows.empty()) return insert(t);  // The first key signs at once.
    if (current < 0) return absl::OkStatus();           // Keys wait for their time only (a clock set back).
    // Retired keys: published until every token signed before their successor took over
    // has expired.
    for (int i = 0; i < current; ++i) {
      if (rows[i + 1].active_from + longest <= t) {
        tx.exec_prepared("identity_op_delete_key", rows[i].kid);
        deleted.push_back(rows[i].kid);
      }
    }
    // The next key, published ahead of its use.
    const bool has_next = static_cast<size_t>(current) + 1 < rows.size();
    const int64_t due = rows[current].active_from + rotation;
    if (!has_next && t >= due - ahead) return insert(std::max(due, t + ahead));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (const auto& kid : created) log::Info("openid provider: signing key created", {{"kid", kid}});
  for (const auto& kid : deleted) log::Info("openid provider: signing key removed", {{"kid", kid}});
  if (!created.empty() || !deleted.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    loaded_ = absl::InfinitePast();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const std::vector<std::shared_ptr<const SigningKeys::Key>>>> SigningKeys::Keys(
    bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time real_now = absl::Now();
  if (cached_ && !force && real_now - loaded_ < absl::Seconds(10)) return cached_;
  if (cached_ && force && real_now - loaded_ < absl::Seconds(1)) return cached_;
  auto rows = pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<Row>> { return ReadRows(tx); });
  if (!rows.ok()) return rows.status();
  auto keys = std::make_shared<std::vector<std::shared_ptr<const Key>>>();
  for (const auto& row : *rows) {
    // Keys known already keep their parsed private part.
    std::shared_ptr<const Key> known;
    if (cached_) {
      for (const auto& k : *cached_) {
        if (k->kid == row.kid) known = k;
      }
    }
    if (known) {
      keys->push_back(known);
      continue;
    }
    auto key = std::make_shared<Key>();
    key->kid = row.kid;
    key->jwk = nlohmann::json::parse(row.jwk, nullptr, false);
    key->active_from = absl::FromUnixSeconds(row.active_from);
    auto pem = Open(seal_key_, row.sealed);
    if (!pem.ok()) return pem.status();
    key->pkey = ParsePem(*pem);
    sodium_memzero(pem->data(), pem->size());
    if (!key->pkey || !key->jwk.is_object()) return absl::DataLossError("signing key unreadable");
    keys->push_back(std::move(key));
  }
  cached_ = std::move(keys);
  loaded_ = real_now;
  return cached_;
}

nlohmann::json SigningKeys::Published(const std::vector<std::shared_ptr<const Key>>& keys, absl::Time now) const {
  nlohmann::json set = {{"keys", nlohmann::json::array()}};
  const absl::Duration longest = absl::FromChrono(options_.LongestToken());
  for (size_t i = 0; i < keys.size(); ++i) {
    // A key replaced by a successor that took over longer ago than any token lives is out.
    const bool retired_long_ago =
        i + 1 < keys.size() && keys[i + 1]->active_from <= now && keys[i + 1]->active_from + longest <= now;
    if (!retired_long_ago) set["keys"].push_back(keys[i]->jwk);
  }
  return set;
}

absl::StatusOr<std::string> SigningKeys::Sign(const nlohmann::json& claims, const std::string& typ) {
  const absl::Time now = options_.clock();
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto keys = Keys(attempt > 0);
    if (!keys.ok()) return keys.status();
    std::shared_ptr<const Key> current;
    for (const auto& k : **keys) {
      if (k->active_from <= now) current = k;
    }
    if (current) {
      nlohmann::json header = {{"alg", "RS256"}, {"kid", current->kid}};
      if (!typ.empty()) header["typ"] = typ;
      std::string jws = jose::SignCompact(current->pkey.get(), header, claims);
      if (jws.empty()) return absl::InternalError("token not signed");
      return jws;
    }
    // No key yet (a new deployment before its first rotation run): make one now.
    if (auto s = Rotate(now); !s.ok()) return s;
  }
  return absl::InternalError("no signing key");
}

absl::StatusOr<nlohmann::json> SigningKeys::Jwks() {
  auto keys = Keys(false);
  if (!keys.ok()) return keys.status();
  if ((*keys)->empty()) {
    if (auto s = Rotate(options_.clock()); !s.ok()) return s;
    keys = Keys(true);
    if (!keys.ok()) return keys.status();
  }
  return Published(**keys, options_.clock());
}

absl::StatusOr<nlohmann::json> SigningKeys::VerificationKeys(const std::string& kid) {
  auto keys = Keys(false);
  if (!keys.ok()) return keys.status();
  const bool known = std::any_of((*keys)->begin(), (*keys)->end(), [&](const auto& k) { return k->kid == kid; });
  if (!known) {
    keys = Keys(true);
    if (!keys.ok()) return keys.status();
  }
  return Published(**keys, options_.clock());
}

}  // namespace stadtportal::identity::provider

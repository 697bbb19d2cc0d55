#include "services/identity/clients.h"

#include <regex>

#include <sodium.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/api/api.h"
#include "libs/auth/caller.h"
#include "libs/auth/tokens.h"
#include "libs/status/status.h"
#include "services/identity/store.h"

namespace stadtportal::identity {
namespace {

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

absl::Status Refused() { return absl::UnauthenticatedError("invalid_client"); }

std::string TokensOf(const std::string& client_id) { return "sp:client-tokens:" + client_id; }

// A client as found at token issue: what the token carries and what authenticates it.
struct Found {
  std::string tenant, destination, department, secret_hash, public_key;
  bool disabled = false;
};

Found ToFound(const pqxx::row& r) {
  Found f;
  f.tenant = r["tenant"].as<std::string>();
  f.destination = r["destination"].as<std::string>();
  f.department = r["department"].as<std::string>();
  f.secret_hash = r["secret_hash"].as<std::string>();
  f.public_key = r["public_key"].as<std::string>();
  f.disabled = r["disabled"].as<bool>();
  return f;
}

absl::StatusOr<Found> FindClient(db::Pool& pool, const std::string& client_id) {
  return pool.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<Found> {
    auto res = tx.exec_prepared("identity_find_client", client_id);
    if (res.empty()) return Refused();
    return ToFound(res[0]);
  });
}

}  // namespace

void Clients::Prepare(pqxx::connection& conn) {
  conn.prepare("identity_insert_client",
               "INSERT INTO clients (client_id, tenant, destination, department, secret_hash, public_key, created_by)"
               " VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), $7)");
  conn.prepare("identity_find_client",
               "SELECT tenant, destination, department, coalesce(secret_hash, '') AS secret_hash,"
               " coalesce(public_key, '') AS public_key, disabled_at IS NOT NULL AS disabled FROM clients"
               " WHERE client_id = $1");
  conn.prepare("identity_set_client_disabled",
               "UPDATE clients SET disabled_at = CASE WHEN $3 THEN coalesce(disabled_at, now()) END"
               " WHERE tenant = $1 AND client_id = $2 RETURNING destination, department");
  conn.prepare("identity_rotate_client_secret",
               "UPDATE clients SET secret_hash = $3, secret_rotated_at = now()"
               " WHERE tenant = $1 AND client_id = $2");
  conn.prepare("identity_client_kind",
               "SELECT public_key IS NOT NULL AS signs FROM clients WHERE tenant = $1 AND client_id = $2 FOR UPDATE");
}

absl::StatusOr<v1::CreateClientResponse> Clients::Create(const std::string& tenant, const v1::CreateClientRequest& req,
                                                         const std::string& created_by, audit::Entry audit) {
  static const std::regex kSlug("^[a-z][a-z0-9-]{0,63}$");
  if (!std::regex_match(req.destination(), kSlug)) return status::FieldError("destination", "invalid");
  if (req.department().empty() || req.department().size() > 200) {
    return status::FieldError("department", "required");
  }
  // Shown to citizens and written into notification mails as the sender: one line.
  if (auto s = api::ValidateText(req.department(), "department", 200); !s.ok()) return s;
  std::string key;
  if (!req.public_key().empty() && (!absl::Base64Unescape(req.public_key(), &key) || key.size() != 32)) {
    return status::FieldError("public_key", "invalid", "expected base64 of a 32-byte Ed25519 key");
  }
  v1::CreateClientResponse out;
  out.set_client_id("bo_" + auth::RandomToken(12));
  if (req.public_key().empty()) out.set_client_secret(auth::RandomToken(32));
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::CreateClientResponse> {
    tx.exec_prepared("identity_insert_client", out.client_id(), tenant, req.destination(), req.department(),
                     out.client_secret().empty() ? "" : Hex(auth::Sha256(out.client_secret())), req.public_key(),
                     created_by);
    audit.targets = {{"client_id", out.client_id()}, {"destination", req.destination()}};
    Store::InsertAudit(tx, "identity", audit);
    return out;
  });
}

absl::StatusOr<v1::ClientToken> Clients::Issue(const v1::IssueClientTokenRequest& req) {
  if (req.client_id().empty() || req.client_id().size() > 100) return Refused();
  auto found = FindClient(pool_, req.client_id());
  if (!found.ok()) return found.status();
  if (found->disabled) return Refused();
  const std::string &tenant = found->tenant, &destination = found->destination, &department = found->department,
                    &secret_hash = found->secret_hash, &public_key = found->public_key;
  if (!secret_hash.empty()) {
    const std::string given = Hex(auth::Sha256(req.client_secret()));
    if (req.client_secret().empty() || sodium_memcmp(given.data(), secret_hash.data(), given.size()) != 0) {
      return Refused();
    }
  } else {
    // private_key_jwt (RFC 7523): signed by the registered key, naming us, short-lived, once.
    std::string key;
    if (req.client_assertion().empty() || !absl::Base64Unescape(public_key, &key)) return Refused();
    auto claims = auth::VerifyEdDsa(req.client_assertion(), key);
    if (!claims.ok()) return Refused();
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    const auto& c = *claims;
    if (c.value("iss", "") != req.client_id() || c.value("sub", "") != req.client_id() ||
        c.value("aud", "") != req.audience() || !c.contains("exp") || !c["exp"].is_number_integer() ||
        c["exp"].get<int64_t>() < now || c["exp"].get<int64_t>() > now + 600 || c.value("jti", "").empty()) {
      return Refused();
    }
    auto fresh =
        redis_.Command({"SET", "sp:client-assertion:" + Hex(auth::Sha256(c.value("jti", ""))), "1", "NX", "EX", "900"});
    if (!fresh.ok()) return fresh.status();
    if (fresh->is_nil()) return Refused();  // A replayed assertion.
  }
  v1::ClientToken out;
  out.set_access_token(auth::RandomToken(32));
  out.set_expires_in(static_cast<int32_t>(ttl_.count()));
  out.set_scope("destination:" + destination);
  const std::string key = kTokenPrefix + Hex(auth::Sha256(out.access_token()));
  auto set =
      redis_.Command({"SET", key, absl::StrCat(req.client_id(), "\n", tenant, "\n", destination, "\n", department),
                      "EX", std::to_string(ttl_.count())});
  if (!set.ok()) return set.status();
  for (const auto& cmd :
       std::vector<std::vector<std::string>>{{"SADD", TokensOf(req.client_id()), key},
                                             {"EXPIRE", TokensOf(req.client_id()), std::to_string(ttl_.count())}}) {
    if (auto r = redis_.Command(cmd); !r.ok()) return r.status();
  }
  // A disable or rotation that committed meanwhile may have revoked the tokens before
  // this one was listed: look again, and take the token back if so.
  auto again = FindClient(pool_, req.client_id());
  if (!again.ok() || again->disabled || again->secret_hash != secret_hash) {
    (void)redis_.Command({"DEL", key});
    return again.ok() ? Refused() : again.status();
  }
  return out;
}

absl::StatusOr<v1::ClientInfo> Clients::Resolve(const std::string& access_token) {
  if (access_token.empty() || access_token.size() > 200) return absl::UnauthenticatedError("invalid token");
  auto r = redis_.Command({"GET", kTokenPrefix + Hex(auth::Sha256(access_token))});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return absl::UnauthenticatedError("invalid or expired token");
  std::vector<std::string> parts = absl::StrSplit(r->str(), '\n');
  if (parts.size() != 4) return absl::UnauthenticatedError("invalid token");
  v1::ClientInfo out;
  out.set_client_id(parts[0]);
  out.set_tenant(parts[1]);
  out.set_destination(parts[2]);
  out.set_department(parts[3]);
  return out;
}

absl::Status Clients::RevokeTokens(const std::string& client_id) {
  auto members = redis_.Command({"SMEMBERS", TokensOf(client_id)});
  if (!members.ok()) return members.status();
  std::vector<std::string> del = {"DEL", TokensOf(client_id)};
  const redisReply* raw = members->raw();
  for (size_t i = 0; i < raw->elements; ++i) {
    const std::string key(raw->element[i]->str, raw->element[i]->len);
    if (absl::StartsWith(key, kTokenPrefix)) del.push_back(key);
  }
  auto d = redis_.Command(del);
  return d.ok() ? absl::OkStatus() : d.status();
}

absl::StatusOr<v1::BackofficeClient> Clients::SetDisabled(const std::string& tenant, const std::string& client_id,
                                                          bool disabled, audit::Entry audit) {
  if (client_id.empty() || client_id.size() > 100) return absl::NotFoundError("client not found");
  auto out = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::BackofficeClient> {
    auto res = tx.exec_prepared("identity_set_client_disabled", tenant, client_id, disabled);
    if (res.empty()) return absl::NotFoundError("client not found");
    v1::BackofficeClient client;
    client.set_client_id(client_id);
    client.set_destination(res[0]["destination"].as<std::string>());
    client.set_department(res[0]["department"].as<std::string>());
    client.set_disabled(disabled);
    audit.targets = {{"client_id", client_id}, {"destination", client.destination()}};
    Store::InsertAudit(tx, "identity", audit);
    return client;
  });
  if (!out.ok()) return out;
  // After the commit: a token issued from now on sees the client disabled.
  if (disabled) {
    if (auto r = RevokeTokens(client_id); !r.ok()) return r;
  }
  return out;
}

absl::StatusOr<v1::CreateClientResponse> Clients::RotateSecret(const std::string& tenant, const std::string& client_id,
                                                               audit::Entry audit) {
  if (client_id.empty() || client_id.size() > 100) return absl::NotFoundError("client not found");
  const std::string secret = auth::RandomToken(32);
  auto out = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::CreateClientResponse> {
    auto kind = tx.exec_prepared("identity_client_kind", tenant, client_id);
    if (kind.empty()) return absl::NotFoundError("client not found");
    if (kind[0]["signs"].as<bool>()) {
      return status::FieldConflict("client_id", "invalid", "private_key_jwt clients have no secret to rotate");
    }
    tx.exec_prepared("identity_rotate_client_secret", tenant, client_id, Hex(auth::Sha256(secret)));
    audit.targets = {{"client_id", client_id}};
    Store::InsertAudit(tx, "identity", audit);
    v1::CreateClientResponse rotated;
    rotated.set_client_id(client_id);
    rotated.set_client_secret(secret);
    return rotated;
  });
  if (!out.ok()) return out;
  if (auto r = RevokeTokens(client_id); !r.ok()) return r;
  return out;
}

}  // namespace stadtportal::identity

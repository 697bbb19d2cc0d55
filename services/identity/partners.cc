#include "services/identity/partners.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/api/text.h"
#include "libs/auth/tokens.h"
#include "libs/db/row.h"
#include "libs/status/status.h"
#include "services/identity/federation/oidc.h"
#include "services/identity/store.h"

namespace stadtportal::identity {
namespace {

constexpr char kPrivateKeyJwt[] = "private_key_jwt";
constexpr char kClientSecretBasic[] = "client_secret_basic";

// A JSON array of strings, parameter `n`, as a text[] in its order.
std::string TextArray(const std::string& n) {
  return absl::StrCat("ARRAY(SELECT e FROM jsonb_array_elements_text(", n,
                      "::jsonb) WITH ORDINALITY AS t(e, i) ORDER BY i)");
}

constexpr char kColumns[] =
    "id::text AS id, name, array_to_json(redirect_uris)::text AS redirect_uris,"
    " array_to_json(post_logout_redirect_uris)::text AS post_logout_redirect_uris,"
    " coalesce(backchannel_logout_uri, '') AS backchannel_logout_uri, array_to_json(scopes)::text AS scopes,"
    " auth_method, coalesce(jwks::text, '') AS jwks, coalesce(jwks_uri, '') AS jwks_uri,"
    " disabled_at IS NOT NULL AS disabled, (extract(epoch FROM created_at) * 1000000)::bigint AS created_at,"
    " (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_at";

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

std::string JsonArray(const google::protobuf::RepeatedPtrField<std::string>& values) {
  return nlohmann::json(std::vector<std::string>(values.begin(), values.end())).dump();
}

template <typename Repeated>
void SetArray(const pqxx::field& f, Repeated* out) {
  for (const auto& v : nlohmann::json::parse(f.as<std::string>())) out->Add(v.get<std::string>());
}

v1::PartnerClient ToPartnerClient(const pqxx::row& r) {
  v1::PartnerClient c;
  c.set_client_id(r["id"].as<std::string>());
  c.set_name(r["name"].as<std::string>());
  SetArray(r["redirect_uris"], c.mutable_redirect_uris());
  SetArray(r["post_logout_redirect_uris"], c.mutable_post_logout_redirect_uris());
  c.set_backchannel_logout_uri(r["backchannel_logout_uri"].as<std::string>());
  SetArray(r["scopes"], c.mutable_scopes());
  c.set_token_endpoint_auth_method(r["auth_method"].as<std::string>());
  c.set_jwks_json(r["jwks"].as<std::string>());
  c.set_jwks_uri(r["jwks_uri"].as<std::string>());
  c.set_disabled(r["disabled"].as<bool>());
  *c.mutable_created_at() = db::Micros(r["created_at"]);
  *c.mutable_updated_at() = db::Micros(r["updated_at"]);
  return c;
}

bool IsHostChar(char ch) { return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.'; }

// Why `uri` is refused; `loopback_http` allows http for 127.0.0.1 and localhost.
std::string UriProblem(const std::string& uri, bool loopback_http) {
  if (uri.empty()) return "required";
  if (uri.size() > kMaxPartnerUriBytes) return "too_long";
  // Printable ASCII only: no spaces, controls or characters that read alike.
  for (const char ch : uri) {
    if (ch < 0x21 || ch > 0x7e) return "invalid";
  }
  if (uri.find('#') != std::string::npos) return "fragment";
  if (uri.find('*') != std::string::npos) return "wildcard";
  if (uri.find('\\') != std::string::npos) return "invalid";
  bool http = false;
  std::string rest;
  if (absl::StartsWith(uri, "https://")) {
    rest = uri.substr(8);
  } else if (absl::StartsWith(uri, "http://")) {
    http = true;
    rest = uri.substr(7);
  } else {
    return absl::StrContains(uri, "://") ? "not_https" : "invalid";
  }
  const std::string authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.find('@') != std::string::npos) return "user_info";
  std::string host = authority, port;
  if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    int number = 0;
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
      return "invalid";
    }
  }
  // A DNS name or IPv4 address: labels of letters, digits and hyphens (no IPv6 literals).
  if (host.empty() || host.size() > 253 || !std::all_of(host.begin(), host.end(), IsHostChar) || host.front() == '.' ||
      host.back() == '.' || absl::StrContains(host, "..")) {
    return "invalid";
  }
  if (http && !(loopback_http && (host == "127.0.0.1" || host == "localhost"))) return "not_https";
  return "";
}

// Members only private (or symmetric) keys have (RFC 7518 section 6).
bool HasPrivateMember(const nlohmann::json& jwk) {
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
    if (jwk.contains(m)) return true;
  }
  return false;
}

// The host of a URI that passed UriProblem, in lower case and without its port.
std::string HostOfUri(const std::string& uri) {
  std::string rest = uri.substr(uri.find("://") + 3);
  rest = rest.substr(0, rest.find_first_of("/?"));
  if (const size_t colon = rest.rfind(':'); colon != std::string::npos) rest = rest.substr(0, colon);
  return absl::AsciiStrToLower(rest);
}

// Field violations of a list of URIs, each as "<field>[<i>]". `one_host`: all on the
// first one's host (redirect URIs: that host is the client's sector, which the pairwise
// subjects derive from; URIs on other hosts would let a partner name another's sector).
void CheckUris(const google::protobuf::RepeatedPtrField<std::string>& uris, const std::string& field, bool required,
               bool one_host, std::vector<status::FieldViolation>& out) {
  if (required && uris.empty()) out.push_back({field, "required"});
  if (static_cast<size_t>(uris.size()) > kMaxPartnerUris) {
    out.push_back({field, "too_many"});
    return;
  }
  std::set<std::string> seen;
  std::string host;
  for (int i = 0; i < uris.size(); ++i) {
    const std::string item = absl::StrCat(field, "[", i, "]");
    if (auto p = RedirectUriProblem(uris[i]); !p.empty()) {
      out.push_back({item, p});
    } else if (!seen.insert(uris[i]).second) {
      out.push_back({item, "duplicate"});
    } else if (one_host && i == 0) {
      host = HostOfUri(uris[i]);
    } else if (one_host && !host.empty() && HostOfUri(uris[i]) != host) {
      out.push_back({item, "another_host"});
    }
  }
}

// Field violations of the key material of a private_key_jwt client: exactly one of a
// key set and its URL.
void CheckKeys(const std::string& jwks_json, const std::string& jwks_uri, std::vector<status::FieldViolation>& out) {
  if (jwks_json.empty() == jwks_uri.empty()) {
    out.push_back({"jwks", jwks_json.empty() ? "required" : "jwks_or_jwks_uri"});
    return;
  }
  if (!jwks_json.empty()) {
    if (auto p = JwksProblem(jwks_json); !p.empty()) out.push_back({"jwks", p});
  } else if (auto p = HttpsUriProblem(jwks_uri); !p.empty()) {
    out.push_back({"jwks_uri", p});
  }
}

// The key set as stored: parsed (and so without insignificant whitespace).
std::string NormalisedJwks(const std::string& jwks_json) {
  return jwks_json.empty() ? "" : nlohmann::json::parse(jwks_json).dump();
}

}  // namespace

std::string RedirectUriProblem(const std::string& uri) { return UriProblem(uri, true); }

std::string HttpsUriProblem(const std::string& uri) { return UriProblem(uri, false); }

std::string JwksProblem(const std::string& jwks_json) {
  if (jwks_json.size() > kMaxPartnerJwksBytes) return "too_large";
  const auto set = nlohmann::json::parse(jwks_json, nullptr, false);
  if (set.is_discarded() || !set.is_object() || !set.contains("keys") || !set["keys"].is_array()) return "invalid";
  const auto& keys = set["keys"];
  if (keys.empty()) return "no_keys";
  if (keys.size() > kMaxPartnerKeys) return "too_many_keys";
  std::set<std::string> kids;
  for (const auto& jwk : keys) {
    if (!jwk.is_object()) return "invalid";
    if (HasPrivateMember(jwk) || jwk.value("kty", nlohmann::json()) == "oct") return "private_key";
    if (!jwk.contains("kid") || !jwk["kid"].is_string()) return "kid";
    const std::string kid = jwk["kid"].get<std::string>();
    if (kid.empty() || kid.size() > 100 || !api::IsPlainText(kid) || !kids.insert(kid).second) return "kid";
    if (jwk.contains("use") && jwk["use"] != "sig") return "invalid";
    // A named algorithm must be one the key is for (never none, never HMAC).
    if (jwk.contains("alg")) {
      const auto& alg = jwk["alg"];
      const bool fits =
          jwk.value("kty", nlohmann::json()) == "RSA" ? (alg == "RS256" || alg == "PS256") : alg == "ES256";
      if (!fits) return "invalid";
    }
    if (!federation::IsUsablePublicJwk(jwk)) return "weak_key";
  }
  return "";
}

void PartnerClients::Prepare(pqxx::connection& conn) {
  conn.prepare("identity_insert_partner_client",
               absl::StrCat("INSERT INTO partner_clients (tenant, name, redirect_uris, post_logout_redirect_uris,"
                            " backchannel_logout_uri, scopes, auth_method, jwks, jwks_uri, secret_hash, created_by)"
                            " VALUES ($1, $2, ",
                            TextArray("$3"), ", ", TextArray("$4"), ", nullif($5, ''), ", TextArray("$6"),
                            ", $7, nullif($8, '')::jsonb, nullif($9, ''), nullif($10, ''), $11) RETURNING ", kColumns));
  conn.prepare("identity_list_partner_clients",
               absl::StrCat("SELECT ", kColumns,
                            " FROM partner_clients WHERE tenant = $1 AND ($2 = '' OR id > nullif($2, '')::uuid)"
                            " ORDER BY id LIMIT $3"));
  conn.prepare("identity_get_partner_client",
               absl::StrCat("SELECT ", kColumns, " FROM partner_clients WHERE tenant = $1 AND id = $2::uuid"));
  conn.prepare("identity_find_partner_client",
               absl::StrCat("SELECT ", kColumns,
                            ", coalesce(secret_hash, '') AS secret_hash FROM partner_clients"
                            " WHERE tenant = $1 AND id = $2::uuid"));
  conn.prepare("identity_set_partner_client_disabled",
               absl::StrCat("UPDATE partner_clients SET disabled_at = CASE WHEN $3 THEN coalesce(disabled_at, now())"
                            " END, updated_at = now() WHERE tenant = $1 AND id = $2::uuid RETURNING ",
                            kColumns));
  conn.prepare("identity_partner_client_method",
               "SELECT auth_method FROM partner_clients WHERE tenant = $1 AND id = $2::uuid FOR UPDATE");
  conn.prepare("identity_rotate_partner_client",
               absl::StrCat("UPDATE partner_clients SET secret_hash = nullif($3, ''), jwks = nullif($4, '')::jsonb,"
                            " jwks_uri = nullif($5, ''), updated_at = now() WHERE tenant = $1 AND id = $2::uuid"
                            " RETURNING ",
                            kColumns));
}

absl::StatusOr<v1::PartnerClientCredentials> PartnerClients::Create(const std::string& tenant,
                                                                    const v1::CreatePartnerClientRequest& req,
                                                                    const std::string& created_by, audit::Entry audit) {
  std::vector<status::FieldViolation> bad;
  if (auto s = api::ValidateText(req.name(), "name", 100); !s.ok()) {
    for (auto& v : status::FieldViolations(s)) bad.push_back(v);
    if (status::FieldViolations(s).empty()) bad.push_back({"name", "invalid"});
  }
  CheckUris(req.redirect_uris(), "redirect_uris", true, true, bad);
  CheckUris(req.post_logout_redirect_uris(), "post_logout_redirect_uris", false, false, bad);
  if (!req.backchannel_logout_uri().empty()) {
    const std::string& uri = req.backchannel_logout_uri();
    if (auto p = loopback_backchannel_ ? RedirectUriProblem(uri) : HttpsUriProblem(uri); !p.empty()) {
      bad.push_back({"backchannel_logout_uri", p});
    }
  }
  std::set<std::string> scopes;
  for (int i = 0; i < req.scopes_size(); ++i) {
    const std::string item = absl::StrCat("scopes[", i, "]");
    if (std::find(kPartnerScopes.begin(), kPartnerScopes.end(), req.scopes(i)) == kPartnerScopes.end()) {
      bad.push_back({item, "unknown_scope"});
    } else if (!scopes.insert(req.scopes(i)).second) {
      bad.push_back({item, "duplicate"});
    }
  }
  if (req.scopes_size() <= static_cast<int>(kPartnerScopes.size()) && !scopes.count("openid")) {
    bad.push_back({"scopes", "openid_required"});
  }
  const std::string& method = req.token_endpoint_auth_method();
  if (method == kPrivateKeyJwt) {
    CheckKeys(req.jwks_json(), req.jwks_uri(), bad);
  } else if (method == kClientSecretBasic) {
    if (!req.jwks_json().empty()) bad.push_back({"jwks", "not_allowed"});
    if (!req.jwks_uri().empty()) bad.push_back({"jwks_uri", "not_allowed"});
  } else {
    bad.push_back({"token_endpoint_auth_method", method.empty() ? "required" : "invalid"});
  }
  if (!bad.empty()) return status::InvalidFields(std::move(bad));

  v1::PartnerClientCredentials out;
  if (method == kClientSecretBasic) out.set_client_secret(auth::RandomToken(32));
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::PartnerClientCredentials> {
    auto res = tx.exec_prepared("identity_insert_partner_client", tenant, req.name(), JsonArray(req.redirect_uris()),
                                JsonArray(req.post_logout_redirect_uris()), req.backchannel_logout_uri(),
                                JsonArray(req.scopes()), method, NormalisedJwks(req.jwks_json()), req.jwks_uri(),
                                out.client_secret().empty() ? "" : Hex(auth::Sha256(out.client_secret())), created_by);
    *out.mutable_client() = ToPartnerClient(res[0]);
    audit.targets = {{"partner_client_id", out.client().client_id()}};
    Store::InsertAudit(tx, "identity", audit);
    return out;
  });
}

absl::StatusOr<std::vector<v1::PartnerClient>> PartnerClients::List(const std::string& tenant, const std::string& after,
                                                                    int limit) {
  if (!after.empty() && !api::ValidateUuid(after, "page_token").ok()) {
    return status::MalformedField("page.page_token", "invalid", "not a token this service issued");
  }
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::PartnerClient>> {
    std::vector<v1::PartnerClient> out;
    for (const auto& r : tx.exec_prepared("identity_list_partner_clients", tenant, after, limit)) {
      out.push_back(ToPartnerClient(r));
    }
    return out;
  });
}

absl::StatusOr<v1::PartnerClient> PartnerClients::Get(const std::string& tenant, const std::string& client_id) {
  if (!api::ValidateUuid(client_id, "client_id").ok()) return absl::NotFoundError("partner client not found");
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::PartnerClient> {
    auto res = tx.exec_prepared("identity_get_partner_client", tenant, client_id);
    if (res.empty()) return absl::NotFoundError("partner client not found");
    return ToPartnerClient(res[0]);
  });
}

absl::StatusOr<RegisteredPartner> PartnerClients::Find(const std::string& tenant, const std::string& client_id) {
  if (!api::ValidateUuid(client_id, "client_id").ok()) return absl::NotFoundError("partner client not found");
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<RegisteredPartner> {
    auto res = tx.exec_prepared("identity_find_partner_client", tenant, client_id);
    if (res.empty()) return absl::NotFoundError("partner client not found");
    return RegisteredPartner{ToPartnerClient(res[0]), res[0]["secret_hash"].as<std::string>()};
  });
}

absl::StatusOr<v1::PartnerClient> PartnerClients::SetDisabled(const std::string& tenant, const std::string& client_id,
                                                              bool disabled, audit::Entry audit) {
  if (!api::ValidateUuid(client_id, "client_id").ok()) return absl::NotFoundError("partner client not found");
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::PartnerClient> {
    auto res = tx.exec_prepared("identity_set_partner_client_disabled", tenant, client_id, disabled);
    if (res.empty()) return absl::NotFoundError("partner client not found");
    audit.targets = {{"partner_client_id", client_id}};
    Store::InsertAudit(tx, "identity", audit);
    return ToPartnerClient(res[0]);
  });
}

absl::StatusOr<v1::PartnerClientCredentials> PartnerClients::RotateCredentials(
    const std::string& tenant, const v1::RotatePartnerClientCredentialsRequest& req, audit::Entry audit) {
  if (!api::ValidateUuid(req.client_id(), "client_id").ok()) return absl::NotFoundError("partner client not found");
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::PartnerClientCredentials> {
    auto kind = tx.exec_prepared("identity_partner_client_method", tenant, req.client_id());
    if (kind.empty()) return absl::NotFoundError("partner client not found");
    const std::string method = kind[0]["auth_method"].as<std::string>();
    v1::PartnerClientCredentials out;
    std::vector<status::FieldViolation> bad;
    if (method == kPrivateKeyJwt) {
      CheckKeys(req.jwks_json(), req.jwks_uri(), bad);
    } else {
      if (!req.jwks_json().empty()) bad.push_back({"jwks", "not_allowed"});
      if (!req.jwks_uri().empty()) bad.push_back({"jwks_uri", "not_allowed"});
      out.set_client_secret(auth::RandomToken(32));
    }
    if (!bad.empty()) return status::InvalidFields(std::move(bad));
    auto res = tx.exec_prepared("identity_rotate_partner_client", tenant, req.client_id(),
                                out.client_secret().empty() ? "" : Hex(auth::Sha256(out.client_secret())),
                                NormalisedJwks(req.jwks_json()), req.jwks_uri());
    *out.mutable_client() = ToPartnerClient(res[0]);
    audit.targets = {{"partner_client_id", req.client_id()}};
    Store::InsertAudit(tx, "identity", audit);
    return out;
  });
}

}  // namespace stadtportal::identity

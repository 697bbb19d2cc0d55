#include "services/identity/provider/provider.h"

#include <openssl/hmac.h>

#include <algorithm>
#include <set>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/api/api.h"
#include "libs/api/text.h"
#include "libs/auth/tokens.h"
#include "libs/db/row.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "services/identity/federation/fetch.h"
#include "services/identity/federation/jose.h"
#include "services/identity/federation/providers.h"

namespace stadtportal::identity::provider {
namespace {

using google::protobuf::util::TimeUtil;
using Params = google::protobuf::Map<std::string, std::string>;

constexpr char kTokenPath[] = "/api/v1/oidc/token";
constexpr char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr size_t kMaxJwtBytes = 16 * 1024;
constexpr int64_t kPendingSeconds = 600;
constexpr int64_t kCodeSeconds = 60;
constexpr int64_t kSkew = 60;

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }
std::string Hashed(const std::string& secret) { return Hex(auth::Sha256(secret)); }

std::string PendingKey(const std::string& id) { return "sp:op:pending:" + Hashed(id); }
std::string CodeKey(const std::string& code) { return "sp:op:code:" + Hashed(code); }
std::string CodeUsedKey(const std::string& code) { return "sp:op:code-used:" + Hashed(code); }
std::string GrantKey(const std::string& gid) { return "sp:op:grant:" + gid; }
std::string SidGrantsKey(const std::string& sid) { return "sp:op:sid-grants:" + Hashed(sid); }
std::string AccountGrantsKey(const std::string& account) { return "sp:op:account-grants:" + account; }
std::string RefreshKey(const std::string& token) { return "sp:op:refresh:" + Hashed(token); }
std::string RefreshUsedKey(const std::string& token) { return "sp:op:refresh-used:" + Hashed(token); }
// A grant ended by the reuse of the code that made it, perhaps before it was made.
std::string GrantEndedKey(const std::string& gid) { return "sp:op:grant-ended:" + gid; }
// When a session (by sid) or all of an account's sessions ended (Unix milliseconds), kept
// as long as a code issued before may still be exchanged: such a code makes no grant.
std::string SidEndedKey(const std::string& sid) { return "sp:op:sid-ended:" + Hashed(sid); }
std::string AccountEndedKey(const std::string& account) { return "sp:op:account-ended:" + account; }
constexpr int64_t kEndedMarkSeconds = 120;

// Takes a single-use value (GETDEL of KEYS[1]) and, in the same step, marks it used
// (KEYS[2] = ARGV[1], the grant, for ARGV[2] seconds): a second use, even one in
// parallel, always finds the mark.
constexpr char kTakeOnce[] = R"lua(
local v = redis.call('GETDEL', KEYS[1])
if v then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) end
return v
)lua";

prometheus::Family<prometheus::Counter>& IssuedFamily() {
  static auto& f = metrics::CounterFamily("stadtportal_identity_op_tokens_issued_total",
                                          "Tokens the OpenID Provider issued, by grant type.");
  return f;
}
prometheus::Family<prometheus::Counter>& BackchannelFamily() {
  static auto& f = metrics::CounterFamily("stadtportal_identity_op_backchannel_logouts_total",
                                          "Back-channel logout attempts, by outcome.");
  return f;
}
prometheus::Family<prometheus::Counter>& RefusedFamily() {
  static auto& f = metrics::CounterFamily("stadtportal_identity_op_refusals_total",
                                          "Requests the OpenID Provider refused, by OAuth error.");
  return f;
}

// The OAuth errors counted (anything else is counted as "other").
const std::set<std::string>& KnownErrors() {
  static const std::set<std::string> k = {"invalid_request",
                                          "invalid_client",
                                          "invalid_grant",
                                          "unsupported_grant_type",
                                          "invalid_scope",
                                          "invalid_token",
                                          "unsupported_response_type",
                                          "request_not_supported",
                                          "request_uri_not_supported",
                                          "login_required",
                                          "interaction_required",
                                          "consent_required",
                                          "unmet_authentication_requirements",
                                          "access_denied",
                                          "invalid_redirect_uri",
                                          "expired"};
  return k;
}

void CountRefusal(const std::string& error) {
  RefusedFamily().Add({{"error", KnownErrors().count(error) ? error : "other"}}).Increment();
}

// An OAuth error as a status; counted and logged (the reason is a fixed text: never a
// token, code or secret).
absl::Status OAuth(const std::string& error, const std::string& description) {
  CountRefusal(error);
  log::Info("openid provider: request refused", {{"error", error}, {"reason", description}});
  const std::string message = absl::StrCat(error, ": ", description);
  if (error == "invalid_client" || error == "invalid_token") return absl::UnauthenticatedError(message);
  return absl::InvalidArgumentError(message);
}

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~';
}

bool IsPrintableAscii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool IsTokenChars(const std::string& s, size_t max) {
  return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

std::string Param(const Params& p, const std::string& name) {
  const auto it = p.find(name);
  return it == p.end() ? "" : it->second;
}

std::vector<std::string> Words(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view w : absl::StrSplit(s, ' ', absl::SkipEmpty())) {
    if (std::find(out.begin(), out.end(), w) == out.end()) out.emplace_back(w);
  }
  return out;
}

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

// The lowest of the known level names in `values`; UNSPECIFIED when there are none.
// `known` says whether any was known.
v1::AssuranceLevel LowestLevel(const std::vector<std::string>& values, bool* known) {
  v1::AssuranceLevel lowest = v1::ASSURANCE_LEVEL_UNSPECIFIED;
  *known = false;
  for (const auto& v : values) {
    const auto level = federation::LevelOf(v);
    if (level == v1::ASSURANCE_LEVEL_UNSPECIFIED) continue;
    *known = true;
    if (lowest == v1::ASSURANCE_LEVEL_UNSPECIFIED || level < lowest) lowest = level;
  }
  return lowest;
}

// The `amr` values of a session's authentication method.
nlohmann::json Amr(const std::string& method, bool second_factor) {
  if (absl::StartsWith(method, "saml:") || absl::StartsWith(method, "oidc:")) return nlohmann::json::array({"ext"});
  if (second_factor) return nlohmann::json::array({"pwd", "otp", "mfa"});
  return nlohmann::json::array({"pwd"});
}

// The host of a URL (the pairwise sector).
std::string HostOf(const std::string& url) {
  const size_t start = url.find("://");
  if (start == std::string::npos) return "";
  std::string authority = url.substr(start + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos) authority = authority.substr(0, colon);
  return absl::AsciiStrToLower(authority);
}

// application/x-www-form-urlencoded decoding of one component; false when malformed.
bool FormDecode(const std::string& in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out->push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size() || !absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) ||
          !absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
        return false;
      }
      out->push_back(static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

std::string ScopeString(const std::vector<std::string>& scopes) { return absl::StrJoin(scopes, " "); }

std::vector<std::string> JsonStrings(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

// The header of a compact JWS, unverified (to learn its kid).
nlohmann::json UnverifiedHeader(const std::string& jwt) {
  const size_t dot = jwt.find('.');
  std::string raw;
  if (dot == std::string::npos || dot > 2048 || !jose::Base64UrlDecode(jwt.substr(0, dot), &raw)) return {};
  auto j = nlohmann::json::parse(raw, nullptr, false);
  return j.is_object() ? j : nlohmann::json();
}

}  // namespace

std::string OAuthErrorOf(const absl::Status& status) {
  const absl::string_view m = status.message();
  const size_t colon = m.find(':');
  if (colon == absl::string_view::npos) return "";
  const std::string code(m.substr(0, colon));
  return KnownErrors().count(code) ? code : "";
}

// ---------------------------------------------------------------------------------------
// Pending authorizations

nlohmann::json Pending::ToJson() const {
  return {{"csrf", csrf},
          {"tenant", tenant},
          {"client_id", client_id},
          {"client_name", client_name},
          {"redirect_uri", redirect_uri},
          {"state", state},
          {"nonce", nonce},
          {"code_challenge", code_challenge},
          {"ui_locale", ui_locale},
          {"login_hint", login_hint},
          {"scopes", scopes},
          {"prompt_login", prompt_login},
          {"prompt_consent", prompt_consent},
          {"prompt_none", prompt_none},
          {"max_age", max_age},
          {"minimum", static_cast<int>(minimum)},
          {"created", created},
          {"consented", consented},
          {"account_id", account_id},
          {"stale_sid", stale_sid},
          {"stale_auth_time", stale_auth_time}};
}

std::optional<Pending> Pending::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  try {
    Pending p;
    p.csrf = j.at("csrf").get<std::string>();
    p.tenant = j.at("tenant").get<std::string>();
    p.client_id = j.at("client_id").get<std::string>();
    p.client_name = j.at("client_name").get<std::string>();
    p.redirect_uri = j.at("redirect_uri").get<std::string>();
    p.state = j.at("state").get<std::string>();
    p.nonce = j.at("nonce").get<std::string>();
    p.code_challenge = j.at("code_challenge").get<std::string>();
    p.ui_locale = j.at("ui_locale").get<std::string>();
    p.login_hint = j.at("login_hint").get<std::string>();
    p.scopes = j.at("scopes").get<std::vector<std::string>>();
    p.prompt_login = j.at("prompt_login").get<bool>();
    p.prompt_consent = j.at("prompt_consent").get<bool>();
    p.prompt_none = j.at("prompt_none").get<bool>();
    p.max_age = j.at("max_age").get<int64_t>();
    p.minimum = static_cast<v1::AssuranceLevel>(j.at("minimum").get<int>());
    p.created = j.at("created").get<int64_t>();
    p.consented = j.at("consented").get<bool>();
    p.account_id = j.at("account_id").get<std::string>();
    p.stale_sid = j.at("stale_sid").get<std::string>();
    p.stale_auth_time = j.at("stale_auth_time").get<int64_t>();
    return p;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// ---------------------------------------------------------------------------------------
// Grants

struct OpenIdProvider::Grant {
  std::string account, tenant, client, sid, acr, amr;
  std::vector<std::string> scopes;
  int64_t auth_time = 0;
  int64_t expires = 0;
};

OpenIdProvider::OpenIdProvider(ProviderOptions options, std::string default_tenant, db::Pool& pool,
                               redis::Client& redis, std::shared_ptr<Store> store, StepUpPossible step_up)
    : options_(std::move(options)),
      tenant_(std::move(default_tenant)),
      pool_(pool),
      redis_(redis),
      store_(std::move(store)),
      partners_(pool),
      step_up_(std::move(step_up)),
      keys_(pool, options_),
      pairwise_key_(DeriveKey(options_.secret, kPairwiseSubjects)) {
  // Every label value exported at 0 from the start, so rates and alerts see the series.
  for (const char* grant : {"authorization_code", "refresh_token"}) IssuedFamily().Add({{"grant_type", grant}});
  for (const auto& error : KnownErrors()) RefusedFamily().Add({{"error", error}});
  RefusedFamily().Add({{"error", "other"}});
  for (const char* outcome : {"delivered", "refused", "gave_up", "failed"}) {
    BackchannelFamily().Add({{"outcome", outcome}});
  }
}

OpenIdProvider::~OpenIdProvider() { StopJobs(); }

void OpenIdProvider::Prepare(pqxx::connection& conn) {
  SigningKeys::Prepare(conn);
  conn.prepare("identity_op_consent",
               "SELECT array_to_json(scopes)::text AS scopes FROM op_consents"
               " WHERE account_id = $1::uuid AND client_id = $2::uuid");
  conn.prepare("identity_op_put_consent",
               "INSERT INTO op_consents (tenant, account_id, client_id, scopes)"
               " VALUES ($1, $2::uuid, $3::uuid, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)))"
               " ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = ARRAY(SELECT DISTINCT s FROM"
               " unnest(op_consents.scopes || EXCLUDED.scopes) AS s ORDER BY s), consented_at = now()");
  conn.prepare("identity_op_consents",
               "SELECT c.client_id::text AS client_id, p.name, array_to_json(c.scopes)::text AS scopes,"
               " (extract(epoch FROM c.consented_at) * 1000000)::bigint AS consented_at"
               " FROM op_consents c JOIN partner_clients p ON p.id = c.client_id"
               " WHERE c.tenant = $1 AND c.account_id = $2::uuid ORDER BY c.consented_at, c.client_id");
  conn.prepare("identity_op_delete_consent",
               "DELETE FROM op_consents WHERE tenant = $1 AND account_id = $2::uuid AND client_id = $3::uuid");
  conn.prepare("identity_op_enqueue_logout",
               "INSERT INTO op_backchannel_deliveries (tenant, client_id, uri, subject, sid)"
               " VALUES ($1, $2::uuid, $3, $4, $5)");
  // Due deliveries are claimed for 30 s (a replica that dies mid-delivery leaves them to
  // the next run), then delivered without a transaction held.
  conn.prepare("identity_op_claim_logouts",
               "UPDATE op_backchannel_deliveries SET next_at = now() + interval '30 seconds'"
               " WHERE id IN (SELECT id FROM op_backchannel_deliveries WHERE delivered_at IS NULL"
               " AND gave_up_at IS NULL AND next_at <= now() ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
               " RETURNING id, tenant, client_id::text AS client_id, uri, subject, sid, attempts,"
               " created_at < now() - interval '1 day' AS too_old");
  conn.prepare("identity_op_logout_delivered",
               "UPDATE op_backchannel_deliveries SET delivered_at = now(), attempts = attempts + 1,"
               " last_error = NULL WHERE id = $1");
  conn.prepare("identity_op_logout_failed",
               "UPDATE op_backchannel_deliveries SET attempts = attempts + 1, last_error = $2,"
               " next_at = now() + make_interval(secs => $3),"
               " gave_up_at = CASE WHEN $4 THEN now() END WHERE id = $1");
}

std::string OpenIdProvider::Subject(const v1::PartnerClient& client, const std::string& account_id) const {
  const std::string sector = client.redirect_uris_size() > 0 ? HostOf(client.redirect_uris(0)) : client.client_id();
  const std::string message = sector + account_id;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), pairwise_key_.data(), static_cast<int>(pairwise_key_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return jose::Base64Url(std::string(reinterpret_cast<char*>(mac), len));
}

// ---------------------------------------------------------------------------------------
// Discovery and keys

v1::JsonDocument OpenIdProvider::Discovery() const {
  const auto e = [&](const char* path) { return options_.Endpoint(path); };
  nlohmann::json d = {
      {"issuer", options_.issuer},
      {"authorization_endpoint", e("/api/v1/oidc/authorize")},
      {"token_endpoint", e(kTokenPath)},
      {"userinfo_endpoint", e("/api/v1/oidc/userinfo")},
      {"jwks_uri", e("/api/v1/oidc/jwks")},
      {"introspection_endpoint", e("/api/v1/oidc/introspect")},
      {"end_session_endpoint", e("/api/v1/oidc/logout")},
      {"response_types_supported", nlohmann::json::array({"code"})},
      {"response_modes_supported", nlohmann::json::array({"query"})},
      {"grant_types_supported", {"authorization_code", "refresh_token"}},
      {"subject_types_supported", nlohmann::json::array({"pairwise"})},
      {"id_token_signing_alg_values_supported", nlohmann::json::array({"RS256"})},
      {"token_endpoint_auth_methods_supported", {"private_key_jwt", "client_secret_basic"}},
      {"token_endpoint_auth_signing_alg_values_supported", {"RS256", "PS256", "ES256"}},
      {"introspection_endpoint_auth_methods_supported", {"private_key_jwt", "client_secret_basic"}},
      {"introspection_endpoint_auth_signing_alg_values_supported", {"RS256", "PS256", "ES256"}},
      {"code_challenge_methods_supported", nlohmann::json::array({"S256"})},
      {"scopes_supported", kPartnerScopes},
      {"claims_supported",
       {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "name", "given_name",
        "family_name", "birthdate", "email", "email_verified", "address"}},
      {"acr_values_supported", {"low", "substantial", "high"}},
      {"claims_parameter_supported", true},
      {"request_parameter_supported", false},
      {"request_uri_parameter_supported", false},
      {"prompt_values_supported", {"none", "login", "consent"}},
      {"backchannel_logout_supported", true},
      {"backchannel_logout_session_supported", true},
      {"authorization_response_iss_parameter_supported", true},
      {"ui_locales_supported", {"de", "en"}},
  };
  v1::JsonDocument out;
  out.set_json(d.dump());
  out.set_max_age_seconds(3600);
  return out;
}

absl::StatusOr<v1::JsonDocument> OpenIdProvider::Jwks() {
  auto set = keys_.Jwks();
  if (!set.ok()) return set.status();
  v1::JsonDocument out;
  out.set_json(set->dump());
  // Caches refresh well within the publish-ahead time of the next key.
  out.set_max_age_seconds(static_cast<int32_t>(std::min<int64_t>(3600, options_.key_publish_ahead.count() / 4)));
  return out;
}

// ---------------------------------------------------------------------------------------
// Authorization

absl::StatusOr<v1::AuthorizeResponse> OpenIdProvider::Authorize(const v1::AuthorizeRequest& req,
                                                                const std::optional<v1::Session>& session) {
  const Params& p = req.params();
  v1::AuthorizeResponse out;
  const auto shown = [&](const std::string& error, const std::string& description) {
    CountRefusal(error);
    log::Info("openid provider: authorization refused", {{"error", error}, {"reason", description}});
    out.mutable_error()->set_error(error);
    out.mutable_error()->set_description(description);
    return out;
  };
  // 1. The client, 2. its redirect URI: errors are shown, never redirected.
  const std::string client_id = Param(p, "client_id");
  if (!api::ValidateUuid(client_id, "client_id").ok()) return shown("invalid_client", "unknown client");
  auto client = partners_.Find(tenant_, client_id);
  if (client.status().code() == absl::StatusCode::kNotFound) return shown("invalid_client", "unknown client");
  if (!client.ok()) return client.status();
  if (client->client.disabled()) return shown("invalid_client", "client disabled");
  const std::string redirect_uri = Param(p, "redirect_uri");
  if (redirect_uri.empty() || !Contains(client->client.redirect_uris(), redirect_uri)) {
    return shown("invalid_redirect_uri", "redirect_uri is not registered for the client");
  }

  Pending pending;
  pending.tenant = tenant_;
  pending.client_id = client_id;
  pending.client_name = client->client.name();
  pending.redirect_uri = redirect_uri;
  pending.created = absl::ToUnixSeconds(options_.clock());
  // The state goes back only when it is one we may echo.
  const std::string state = Param(p, "state");
  const bool state_ok = state.size() <= 512 && IsPrintableAscii(state);
  if (state_ok) pending.state = state;
  const auto refuse = [&](const std::string& error, const std::string& description) {
    return ErrorRedirect(pending, error, description);
  };
  if (!state_ok) return refuse("invalid_request", "state too long or not printable");
  if (Param(p, "response_type") != "code") return refuse("unsupported_response_type", "only response_type=code");
  if (p.count("request")) return refuse("request_not_supported", "request objects are not supported");
  if (p.count("request_uri")) return refuse("request_uri_not_supported", "request_uri is not supported");
  const std::string challenge = Param(p, "code_challenge");
  if (challenge.size() < 43 || challenge.size() > 128 ||
      !std::all_of(challenge.begin(), challenge.end(), IsUnreserved)) {
    return refuse("invalid_request", "code_challenge required (PKCE)");
  }
  if (Param(p, "code_challenge_method") != "S256") {
    return refuse("invalid_request", "code_challenge_method must be S256");
  }
  pending.code_challenge = challenge;
  const std::string scope = Param(p, "scope");
  if (scope.size() > 1024) return refuse("invalid_scope", "scope too long");
  pending.scopes = Words(scope);
  if (std::find(pending.scopes.begin(), pending.scopes.end(), "openid") == pending.scopes.end()) {
    return refuse("invalid_scope", "scope must contain openid");
  }
  for (const auto& s : pending.scopes) {
    if (!Contains(client->client.scopes(), s)) return refuse("invalid_scope", "scope not registered for the client");
  }
  const std::string nonce = Param(p, "nonce");
  if (nonce.size() > 512 || !IsPrintableAscii(nonce))
    return refuse("invalid_request", "nonce too long or not printable");
  pending.nonce = nonce;
  const std::string prompt = Param(p, "prompt");
  if (prompt.size() > 100) return refuse("invalid_request", "prompt invalid");
  const auto prompts = Words(prompt);
  for (const auto& v : prompts) {
    if (v == "none") {
      pending.prompt_none = true;
    } else if (v == "login") {
      pending.prompt_login = true;
    } else if (v == "consent") {
      pending.prompt_consent = true;
    } else {
      return refuse("invalid_request", "prompt value not supported");
    }
  }
  if (pending.prompt_none && prompts.size() > 1) return refuse("invalid_request", "prompt=none with another value");
  if (p.count("max_age")) {
    const std::string max_age = Param(p, "max_age");
    if (max_age.empty() || max_age.size() > 9 || !std::all_of(max_age.begin(), max_age.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(max_age, &pending.max_age)) {
      return refuse("invalid_request", "max_age must be a non-negative integer");
    }
  }
  // The minimum level: the lowest value named in acr_values, and in an essential acr
  // claim request; the higher of the two.
  const std::string acr_values = Param(p, "acr_values");
  if (acr_values.size() > 200) return refuse("invalid_request", "acr_values too long");
  if (!acr_values.empty()) {
    bool known = false;
    const auto level = LowestLevel(Words(acr_values), &known);
    if (!known) return refuse("invalid_request", "acr_values names no supported level");
    pending.minimum = std::max(pending.minimum, level);
  }
  if (p.count("claims")) {
    const std::string claims_raw = Param(p, "claims");
    const auto claims =
        claims_raw.size() <= 4096 ? nlohmann::json::parse(claims_raw, nullptr, false) : nlohmann::json();
    if (!claims.is_object()) return refuse("invalid_request", "claims is not a JSON object");
    for (const char* member : {"id_token", "userinfo"}) {
      const auto part = claims.find(member);
      if (part == claims.end() || !part->is_object()) continue;
      const auto acr = part->find("acr");
      if (acr == part->end() || !acr->is_object()) continue;
      const auto essential = acr->find("essential");
      if (essential != acr->end() && !essential->is_boolean()) {
        return refuse("invalid_request", "claims: essential must be true or false");
      }
      if (essential == acr->end() || *essential != true) continue;
      std::vector<std::string> values = JsonStrings(acr->value("values", nlohmann::json()));
      if (acr->contains("value") && (*acr)["value"].is_string()) values.push_back((*acr)["value"].get<std::string>());
      if (values.empty()) continue;
      bool known = false;
      const auto level = LowestLevel(values, &known);
      if (!known) return refuse("invalid_request", "essential acr names no supported level");
      pending.minimum = std::max(pending.minimum, level);
    }
  }
  for (const auto& locale : Words(Param(p, "ui_locales"))) {
    const std::string lang = absl::AsciiStrToLower(locale.substr(0, 2));
    if ((lang == "de" || lang == "en") && (locale.size() == 2 || locale[2] == '-')) {
      pending.ui_locale = lang;
      break;
    }
  }
  const std::string hint = Param(p, "login_hint");
  if (hint.size() <= 254 && IsPrintableAscii(hint)) pending.login_hint = hint;
  if (pending.prompt_login && session) {
    pending.stale_sid = session->sid();
    pending.stale_auth_time = TimeUtil::TimestampToSeconds(session->authenticated_at());
  }
  return Decide(pending, session);
}

absl::StatusOr<v1::AuthorizeResponse> OpenIdProvider::ErrorRedirect(Pending& pending, const std::string& error,
                                                                    const std::string& description) {
  CountRefusal(error);
  log::Info("openid provider: authorization refused", {{"error", error}, {"reason", description}});
  if (!pending.id.empty()) {
    if (auto s = DropPending(pending); !s.ok()) return s;
  }
  std::vector<std::pair<std::string, std::string>> q = {{"error", error}, {"error_description", description}};
  if (!pending.state.empty()) q.emplace_back("state", pending.state);
  q.emplace_back("iss", options_.issuer);
  v1::AuthorizeResponse out;
  out.set_redirect_uri(fetch::WithQuery(pending.redirect_uri, fetch::Form(q)));
  return out;
}

absl::Status OpenIdProvider::SavePending(Pending& pending) {
  const bool fresh = pending.id.empty();
  if (fresh) {
    pending.id = auth::RandomToken(32);
    pending.csrf = auth::RandomToken(32);
  }
  std::vector<std::string> cmd = {"SET", PendingKey(pending.id), pending.ToJson().dump()};
  if (fresh) {
    cmd.insert(cmd.end(), {"EX", std::to_string(kPendingSeconds)});
  } else {
    cmd.insert(cmd.end(), {"XX", "KEEPTTL"});
  }
  auto r = redis_.Command(cmd);
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status OpenIdProvider::DropPending(const Pending& pending) {
  auto r = redis_.Command({"DEL", PendingKey(pending.id)});
  return r.ok() ? absl::OkStatus() : r.status();
}

v1::AuthorizeResponse OpenIdProvider::Interaction(const Pending& pending, v1::Interaction::Kind kind) const {
  v1::AuthorizeResponse out;
  auto* i = out.mutable_interaction();
  i->set_kind(kind);
  i->set_pending_id(pending.id);
  i->set_csrf_token(pending.csrf);
  i->set_client_name(pending.client_name);
  for (const auto& s : pending.scopes) i->add_scopes(s);
  i->set_required_level(pending.minimum);
  i->set_ui_locale(pending.ui_locale);
  i->set_login_hint(pending.login_hint);
  return out;
}

v1::AuthorizeResponse OpenIdProvider::LoginAgain(const Pending& pending, const std::string& problem,
                                                 int retry_after_seconds) const {
  auto out = Interaction(pending, v1::Interaction::KIND_LOGIN);
  out.mutable_interaction()->set_problem(problem);
  out.mutable_interaction()->set_retry_after_seconds(retry_after_seconds);
  return out;
}

absl::StatusOr<std::vector<std::string>> OpenIdProvider::ConsentedScopes(const std::string& account_id,
                                                                         const std::string& client_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<std::string>> {
    auto res = tx.exec_prepared("identity_op_consent", account_id, client_id);
    if (res.empty()) return std::vector<std::string>{};
    return nlohmann::json::parse(res[0]["scopes"].as<std::string>()).get<std::vector<std::string>>();
  });
}

absl::StatusOr<v1::AuthorizeResponse> OpenIdProvider::Decide(Pending& pending,
                                                             const std::optional<v1::Session>& session) {
  const auto interact = [&](v1::Interaction::Kind kind) -> absl::StatusOr<v1::AuthorizeResponse> {
    if (auto s = SavePending(pending); !s.ok()) return s;
    return Interaction(pending, kind);
  };
  const int64_t now = absl::ToUnixSeconds(options_.clock());
  const int64_t auth_time = session ? TimeUtil::TimestampToSeconds(session->authenticated_at()) : 0;
  // Log-in: no session, a fresh one demanded (prompt=login: not authenticated anew since
  // the request came), or the last authentication longer ago than max_age.
  const bool stale = pending.prompt_login && session && pending.stale_auth_time >= 0 &&
                     session->sid() == pending.stale_sid && auth_time <= pending.stale_auth_time;
  if (!session || stale || (pending.max_age >= 0 && now - auth_time > pending.max_age)) {
    if (pending.prompt_none) return ErrorRedirect(pending, "login_required", "the person must log in");
    return interact(v1::Interaction::KIND_LOGIN);
  }
  if (pending.minimum != v1::ASSURANCE_LEVEL_UNSPECIFIED &&
      !federation::Reaches(session->assurance_level(), pending.minimum)) {
    if (!step_up_ || !step_up_(pending.minimum)) {
      return ErrorRedirect(pending, "unmet_authentication_requirements", "no provider gives the requested level");
    }
    if (pending.prompt_none) return ErrorRedirect(pending, "interaction_required", "a step-up is needed");
    return interact(v1::Interaction::KIND_STEP_UP);
  }
  // The client may have been disabled meanwhile.
  auto client = partners_.Find(pending.tenant, pending.client_id);
  if (!client.ok() && client.status().code() != absl::StatusCode::kNotFound) return client.status();
  if (!client.ok() || client->client.disabled()) {
    if (!pending.id.empty()) (void)DropPending(pending);
    v1::AuthorizeResponse out;
    out.mutable_error()->set_error("invalid_client");
    out.mutable_error()->set_description("client disabled");
    return out;
  }
  // Consent: every requested scope consented before (or in this authorization).
  if (!(pending.consented && pending.account_id == session->account_id())) {
    auto consented = ConsentedScopes(session->account_id(), pending.client_id);
    if (!consented.ok()) return consented.status();
    const bool all = std::all_of(pending.scopes.begin(), pending.scopes.end(), [&](const std::string& s) {
      return std::find(consented->begin(), consented->end(), s) != consented->end();
    });
    if (!all || pending.prompt_consent) {
      if (pending.prompt_none) return ErrorRedirect(pending, "consent_required", "the person must consent");
      pending.account_id = session->account_id();
      pending.consented = false;
      return interact(v1::Interaction::KIND_CONSENT);
    }
  }
  auto code = IssueCode(pending, *session);
  if (!code.ok()) return code.status();
  if (!pending.id.empty()) {
    if (auto s = DropPending(pending); !s.ok()) return s;
  }
  std::vector<std::pair<std::string, std::string>> q = {{"code", *code}};
  if (!pending.state.empty()) q.emplace_back("state", pending.state);
  q.emplace_back("iss", options_.issuer);
  v1::AuthorizeResponse out;
  out.set_redirect_uri(fetch::WithQuery(pending.redirect_uri, fetch::Form(q)));
  return out;
}

absl::StatusOr<std::string> OpenIdProvider::IssueCode(const Pending& pending, const v1::Session& session) {
  const std::string code = auth::RandomToken(32);
  const nlohmann::json bound = {
      {"client_id", pending.client_id},
      {"redirect_uri", pending.redirect_uri},
      {"code_challenge", pending.code_challenge},
      {"nonce", pending.nonce},
      {"scopes", pending.scopes},
      {"tenant", session.tenant().key()},
      {"account_id", session.account_id()},
      {"sid", session.sid()},
      {"acr", federation::LevelName(session.assurance_level())},
      {"amr", Amr(session.auth_method(), session.second_factor() == v1::SECOND_FACTOR_PASSED).dump()},
      {"auth_time", TimeUtil::TimestampToSeconds(session.authenticated_at())},
      // The session's absolute end (earlier when an upstream provider limits it): the
      // grant ends no later.
      {"session_expires", TimeUtil::TimestampToSeconds(session.expires_at())},
      {"issued_ms", absl::ToUnixMillis(options_.clock())},
  };
  auto r = redis_.Command({"SET", CodeKey(code), bound.dump(), "EX", std::to_string(kCodeSeconds)});
  if (!r.ok()) return r.status();
  return code;
}

absl::StatusOr<std::optional<Pending>> OpenIdProvider::OpenPending(const std::string& pending_id,
                                                                   const std::string& csrf, bool csrf_required,
                                                                   v1::AuthorizeResponse* refused) {
  const auto refuse = [&](const char* error, const char* description) -> std::optional<Pending> {
    CountRefusal(error);
    log::Info("openid provider: authorization refused", {{"error", error}, {"reason", description}});
    refused->mutable_error()->set_error(error);
    refused->mutable_error()->set_description(description);
    return std::nullopt;
  };
  if (!IsTokenChars(pending_id, 128)) return refuse("expired", "the authorization is no longer pending");
  auto r = redis_.Command({"GET", PendingKey(pending_id)});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return refuse("expired", "the authorization is no longer pending");
  auto pending = Pending::FromJson(nlohmann::json::parse(r->str(), nullptr, false));
  if (!pending) return refuse("expired", "the authorization is no longer pending");
  pending->id = pending_id;
  if ((csrf_required || !csrf.empty()) && (csrf.size() > 128 || !jose::ConstantTimeEqual(csrf, pending->csrf))) {
    return refuse("invalid_request", "the form's token does not match");
  }
  return pending;
}

absl::StatusOr<v1::AuthorizeResponse> OpenIdProvider::Continue(Pending pending,
                                                               const std::optional<v1::Session>& session,
                                                               v1::ContinueAuthorizationRequest::Decision decision) {
  if (decision == v1::ContinueAuthorizationRequest::DECISION_DENY) {
    return ErrorRedirect(pending, "access_denied", "the person did not consent");
  }
  if (decision == v1::ContinueAuthorizationRequest::DECISION_ALLOW) {
    // Consent counts for the account it was asked of, in its own session only.
    if (session && !pending.account_id.empty() && session->account_id() == pending.account_id) {
      auto s = pool_.Transact([&](pqxx::work& tx) -> absl::Status {
        tx.exec_prepared("identity_op_put_consent", session->tenant().key(), session->account_id(), pending.client_id,
                         nlohmann::json(pending.scopes).dump());
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
      pending.consented = true;
    }
  }
  return Decide(pending, session);
}

// ---------------------------------------------------------------------------------------
// Client authentication

absl::StatusOr<nlohmann::json> OpenIdProvider::ClientKeys(const v1::PartnerClient& client, bool refetch) {
  if (!client.jwks_json().empty()) return nlohmann::json::parse(client.jwks_json(), nullptr, false);
  const std::string& uri = client.jwks_uri();
  const absl::Time now = absl::Now();
  {
    std::lock_guard<std::mutex> lock(jwks_mu_);
    auto it = client_jwks_.find(uri);
    if (it != client_jwks_.end()) {
      const absl::Duration age = now - it->second.fetched;
      // A refetch (unknown kid) at most every 10 s; otherwise cached for 5 minutes.
      if ((!refetch && age < absl::Minutes(5)) || (refetch && age < absl::Seconds(10))) return it->second.jwks;
    }
    // One attempt per URI every 10 s, whatever it gave: anyone can name a client (its id
    // is public), and a failing or slow key set must not cost a fetch per request.
    auto tried = jwks_attempts_.find(uri);
    if (tried != jwks_attempts_.end() && now - tried->second < absl::Seconds(10)) {
      if (it != client_jwks_.end()) return it->second.jwks;
      return absl::UnavailableError("partner key set not fetched");
    }
    if (jwks_attempts_.size() > 1000) jwks_attempts_.clear();
    jwks_attempts_[uri] = now;
  }
  fetch::Limits limits;
  limits.timeout = std::chrono::seconds(5);
  limits.max_bytes = kMaxPartnerJwksBytes;
  // The key set's host is checked at each fetch: partners register it (libs/net/egress.h).
  auto answer = fetch::FetchPartner(uri, options_.partner_egress, {}, nullptr, limits);
  if (!answer.ok() || answer->status != 200) {
    log::Warn(
        "openid provider: partner key set not fetched",
        {{"client_id", client.client_id()},
         {"error", answer.ok() ? absl::StrCat("HTTP ", answer->status) : std::string(answer.status().message())}});
    return absl::UnavailableError("partner key set not fetched");
  }
  auto j = fetch::JsonObject(*answer);
  if (!j || !JwksProblem(j->dump()).empty()) return absl::UnavailableError("partner key set invalid");
  std::lock_guard<std::mutex> lock(jwks_mu_);
  if (client_jwks_.size() > 1000) client_jwks_.clear();
  client_jwks_[uri] = {*j, now};
  return *j;
}

absl::StatusOr<RegisteredPartner> OpenIdProvider::AuthenticateClient(const Params& params,
                                                                     const std::string& authorization) {
  const std::string assertion = Param(params, "client_assertion");
  const std::string claimed_id = Param(params, "client_id");
  const bool basic = absl::StartsWithIgnoreCase(authorization, "basic ");
  if (!authorization.empty() && !basic) return OAuth("invalid_client", "unsupported authorization scheme");
  if (basic && (!assertion.empty() || params.count("client_secret"))) {
    return OAuth("invalid_client", "more than one client authentication");
  }
  if (!basic && assertion.empty()) return OAuth("invalid_client", "client authentication required");
  const auto find = [&](const std::string& id, const char* method) -> absl::StatusOr<RegisteredPartner> {
    if (!api::ValidateUuid(id, "client_id").ok()) return OAuth("invalid_client", "unknown client");
    if (!claimed_id.empty() && claimed_id != id) return OAuth("invalid_client", "client_id does not match");
    auto client = partners_.Find(tenant_, id);
    if (client.status().code() == absl::StatusCode::kNotFound) return OAuth("invalid_client", "unknown client");
    if (!client.ok()) return client.status();
    if (client->client.disabled()) return OAuth("invalid_client", "client disabled");
    if (client->client.token_endpoint_auth_method() != method) {
      return OAuth("invalid_client", "not the client's registered authentication method");
    }
    return client;
  };
  if (basic) {
    std::string decoded;
    const std::string encoded(absl::StripAsciiWhitespace(authorization.substr(6)));
    if (encoded.size() > 1024 || !absl::Base64Unescape(encoded, &decoded)) {
      return OAuth("invalid_client", "malformed basic credentials");
    }
    const size_t colon = decoded.find(':');
    std::string id, secret;
    if (colon == std::string::npos || !FormDecode(decoded.substr(0, colon), &id) ||
        !FormDecode(decoded.substr(colon + 1), &secret)) {
      return OAuth("invalid_client", "malformed basic credentials");
    }
    auto client = find(id, "client_secret_basic");
    if (!client.ok()) return client;
    if (secret.empty() || secret.size() > 256 || client->secret_hash.empty() ||
        !jose::ConstantTimeEqual(Hashed(secret), client->secret_hash)) {
      return OAuth("invalid_client", "wrong client secret");
    }
    return client;
  }
  // private_key_jwt (RFC 7523).
  if (Param(params, "client_assertion_type") != kJwtBearer) {
    return OAuth("invalid_client", "client_assertion_type must be jwt-bearer");
  }
  const auto unverified = jose::UnverifiedClaims(assertion, kMaxJwtBytes);
  if (!unverified) return OAuth("invalid_client", "malformed client assertion");
  auto client = find(jose::Text(*unverified, "iss"), "private_key_jwt");
  if (!client.ok()) return client;
  auto keys = ClientKeys(client->client, false);
  if (!keys.ok()) return OAuth("invalid_client", "client keys unavailable");
  const std::vector<std::string> algs = {"RS256", "PS256", "ES256"};
  auto jws = jose::VerifyCompact(assertion, *keys, algs, kMaxJwtBytes);
  if (!jws.ok() && jws.status().message() == "kid" && !client->client.jwks_uri().empty()) {
    auto fresh = ClientKeys(client->client, true);
    if (fresh.ok()) jws = jose::VerifyCompact(assertion, *fresh, algs, kMaxJwtBytes);
  }
  if (!jws.ok()) return OAuth("invalid_client", absl::StrCat("client assertion: ", jws.status().message()));
  const auto& c = jws->claims;
  const std::string id = client->client.client_id();
  if (jose::Text(c, "iss") != id || jose::Text(c, "sub") != id) {
    return OAuth("invalid_client", "client assertion: iss and sub must be the client id");
  }
  const std::string token_endpoint = options_.Endpoint(kTokenPath);
  bool audience = false;
  if (c.contains("aud")) {
    std::vector<std::string> auds =
        c["aud"].is_string() ? std::vector<std::string>{c["aud"].get<std::string>()} : JsonStrings(c["aud"]);
    audience = std::any_of(auds.begin(), auds.end(),
                           [&](const std::string& a) { return a == token_endpoint || a == options_.issuer; });
  }
  if (!audience) return OAuth("invalid_client", "client assertion: audience");
  const int64_t now = absl::ToUnixSeconds(options_.clock());
  const auto exp = jose::NumericDate(c, "exp");
  if (!exp || *exp < now - kSkew) return OAuth("invalid_client", "client assertion: expired");
  if (*exp > now + 600) return OAuth("invalid_client", "client assertion: exp more than 10 minutes ahead");
  for (const char* claim : {"iat", "nbf"}) {
    if (!c.contains(claim)) continue;
    const auto t = jose::NumericDate(c, claim);
    if (!t || *t > now + kSkew) return OAuth("invalid_client", "client assertion: not yet valid");
  }
  const std::string jti = jose::Text(c, "jti");
  if (jti.empty() || jti.size() > 256) return OAuth("invalid_client", "client assertion: jti required");
  auto fresh = redis_.Command(
      {"SET", "sp:op:assertion:" + Hashed(id + "\n" + jti), "1", "NX", "EX", std::to_string(600 + 2 * kSkew)});
  if (!fresh.ok()) return fresh.status();
  if (fresh->is_nil()) return OAuth("invalid_client", "client assertion: jti used before");
  return client;
}

// ---------------------------------------------------------------------------------------
// Tokens

absl::StatusOr<std::optional<OpenIdProvider::Grant>> OpenIdProvider::LoadGrant(const std::string& gid) {
  if (!IsTokenChars(gid, 64)) return std::optional<Grant>();
  auto r = redis_.Command({"HGETALL", GrantKey(gid)});
  if (!r.ok()) return r.status();
  const redisReply* raw = r->raw();
  if (raw->type != REDIS_REPLY_ARRAY || raw->elements == 0) return std::optional<Grant>();
  std::map<std::string, std::string> f;
  for (size_t i = 0; i + 1 < raw->elements; i += 2) {
    f[std::string(raw->element[i]->str, raw->element[i]->len)] =
        std::string(raw->element[i + 1]->str, raw->element[i + 1]->len);
  }
  Grant g;
  g.account = f["account"];
  g.tenant = f["tenant"];
  g.client = f["client"];
  g.sid = f["sid"];
  g.acr = f["acr"];
  g.amr = f["amr"];
  g.scopes = Words(f["scopes"]);
  if (!absl::SimpleAtoi(f["auth_time"], &g.auth_time) || !absl::SimpleAtoi(f["expires"], &g.expires)) {
    return std::optional<Grant>();
  }
  if (g.expires <= absl::ToUnixSeconds(options_.clock())) return std::optional<Grant>();
  return std::optional<Grant>(g);
}

absl::StatusOr<std::optional<OpenIdProvider::Grant>> OpenIdProvider::RevokeGrant(const std::string& gid) {
  auto grant = LoadGrant(gid);
  if (!grant.ok()) return grant;
  if (auto d = redis_.Command({"DEL", GrantKey(gid)}); !d.ok()) return d.status();
  if (*grant) {
    (void)redis_.Command({"SREM", SidGrantsKey((*grant)->sid), gid});
    (void)redis_.Command({"SREM", AccountGrantsKey((*grant)->account), gid});
  }
  return grant;
}

absl::Status OpenIdProvider::RevokeGrants(const std::vector<std::string>& gids, const std::string& except_client,
                                          bool notify) {
  std::set<std::pair<std::string, std::string>> notified;  // (client, sid)
  for (const auto& gid : gids) {
    auto grant = RevokeGrant(gid);
    if (!grant.ok()) return grant.status();
    if (!*grant || !notify) continue;
    const Grant& g = **grant;
    if (g.client == except_client || !notified.insert({g.client, g.sid}).second) continue;
    if (auto s = EnqueueLogout(g.tenant, g.client, g.account, g.sid); !s.ok()) return s;
  }
  return absl::OkStatus();
}

namespace {

std::vector<std::string> Members(const redis::Reply& reply) {
  std::vector<std::string> out;
  const redisReply* raw = reply.raw();
  for (size_t i = 0; i < raw->elements; ++i) out.emplace_back(raw->element[i]->str, raw->element[i]->len);
  return out;
}

}  // namespace

absl::Status OpenIdProvider::EndSessionGrants(const std::string& sid, const std::string& except_client) {
  if (sid.empty()) return absl::OkStatus();
  // First the mark (codes issued before it make no grant), then the grants listed.
  if (auto m = redis_.Command({"SET", SidEndedKey(sid), std::to_string(absl::ToUnixMillis(options_.clock())), "EX",
                               std::to_string(kEndedMarkSeconds)});
      !m.ok()) {
    return m.status();
  }
  auto members = redis_.Command({"SMEMBERS", SidGrantsKey(sid)});
  if (!members.ok()) return members.status();
  if (auto s = RevokeGrants(Members(*members), except_client, true); !s.ok()) return s;
  auto d = redis_.Command({"DEL", SidGrantsKey(sid)});
  return d.ok() ? absl::OkStatus() : d.status();
}

absl::Status OpenIdProvider::EndAccountGrants(const std::string& account_id) {
  if (account_id.empty()) return absl::OkStatus();
  if (auto m = redis_.Command({"SET", AccountEndedKey(account_id), std::to_string(absl::ToUnixMillis(options_.clock())),
                               "EX", std::to_string(kEndedMarkSeconds)});
      !m.ok()) {
    return m.status();
  }
  auto members = redis_.Command({"SMEMBERS", AccountGrantsKey(account_id)});
  if (!members.ok()) return members.status();
  if (auto s = RevokeGrants(Members(*members), "", true); !s.ok()) return s;
  auto d = redis_.Command({"DEL", AccountGrantsKey(account_id)});
  return d.ok() ? absl::OkStatus() : d.status();
}

absl::StatusOr<v1::TokenResponse> OpenIdProvider::Issue(const RegisteredPartner& client, const Grant& grant,
                                                        const std::string& gid, const std::string& nonce,
                                                        const std::vector<std::string>& scopes,
                                                        const std::string& grant_type) {
  const int64_t now = absl::ToUnixSeconds(options_.clock());
  const std::string sub = Subject(client.client, grant.account);
  const std::string& client_id = client.client.client_id();
  const nlohmann::json access = {{"iss", options_.issuer},
                                 {"sub", sub},
                                 {"aud", options_.api_audience},
                                 {"client_id", client_id},
                                 {"scope", ScopeString(scopes)},
                                 {"acr", grant.acr},
                                 {"auth_time", grant.auth_time},
                                 {"iat", now},
                                 {"exp", now + options_.access_token.count()},
                                 {"jti", auth::RandomToken(16)},
                                 {"gid", gid}};
  auto access_token = keys_.Sign(access, "at+jwt");
  if (!access_token.ok()) return access_token.status();
  nlohmann::json id = {{"iss", options_.issuer},
                       {"sub", sub},
                       {"aud", client_id},
                       {"azp", client_id},
                       {"iat", now},
                       {"exp", now + options_.id_token.count()},
                       {"auth_time", grant.auth_time},
                       {"acr", grant.acr},
                       {"amr", nlohmann::json::parse(grant.amr, nullptr, false)}};
  if (!grant.sid.empty()) id["sid"] = grant.sid;
  if (!nonce.empty()) id["nonce"] = nonce;
  auto id_token = keys_.Sign(id, "");
  if (!id_token.ok()) return id_token.status();
  // The refresh token of the grant, rotated on every use.
  const std::string refresh = auth::RandomToken(32);
  const int64_t left = std::max<int64_t>(1, grant.expires - now);
  auto set = redis_.Command({"SET", RefreshKey(refresh), gid, "EX", std::to_string(left)});
  if (!set.ok()) return set.status();
  v1::TokenResponse out;
  out.set_access_token(*access_token);
  out.set_token_type("Bearer");
  out.set_expires_in(static_cast<int32_t>(options_.access_token.count()));
  out.set_refresh_token(refresh);
  out.set_id_token(*id_token);
  out.set_scope(ScopeString(scopes));
  IssuedFamily().Add({{"grant_type", grant_type}}).Increment();
  return out;
}

absl::StatusOr<v1::TokenResponse> OpenIdProvider::ExchangeToken(const v1::TokenRequest& req) {
  const Params& p = req.params();
  auto client = AuthenticateClient(p, req.authorization());
  if (!client.ok()) return client.status();
  const std::string grant_type = Param(p, "grant_type");
  const int64_t now = absl::ToUnixSeconds(options_.clock());
  const auto account_usable = [&](const std::string& tenant, const std::string& account_id) -> absl::Status {
    auto account = store_->GetAccount(tenant, account_id);
    if (account.status().code() == absl::StatusCode::kNotFound ||
        (account.ok() && account->state() == v1::ACCOUNT_STATE_LOCKED)) {
      return OAuth("invalid_grant", "account locked or gone");
    }
    return account.status();
  };
  if (grant_type == "authorization_code") {
    const std::string code = Param(p, "code");
    if (code.empty()) return OAuth("invalid_request", "code required");
    if (!IsTokenChars(code, 128)) return OAuth("invalid_grant", "code unknown or expired");
    // Taken and marked used in one step (the grant's id is chosen now): a second use,
    // even in parallel, is a reuse.
    const std::string gid = auth::RandomToken(16);
    const std::string ttl = std::to_string(options_.grant.count());
    auto r = redis_.Command({"EVAL", kTakeOnce, "2", CodeKey(code), CodeUsedKey(code), gid, ttl});
    if (!r.ok()) return r.status();
    if (r->is_nil()) {
      // A code used before: the grant its first use created ends (RFC 6749 §4.1.2), also
      // when that use is still making it (it looks for the mark once the grant exists).
      auto used = redis_.Command({"GET", CodeUsedKey(code)});
      if (!used.ok()) return used.status();
      if (!used->is_nil()) {
        const std::string first = used->str();
        if (IsTokenChars(first, 64)) {
          if (auto m = redis_.Command({"SET", GrantEndedKey(first), "1", "EX", ttl}); !m.ok()) return m.status();
        }
        if (auto s = RevokeGrants({first}, "", false); !s.ok()) return s;
        return OAuth("invalid_grant", "code already used");
      }
      return OAuth("invalid_grant", "code unknown or expired");
    }
    const auto bound = nlohmann::json::parse(r->str(), nullptr, false);
    if (!bound.is_object()) return absl::InternalError("code record unreadable");
    if (jose::Text(bound, "client_id") != client->client.client_id()) {
      return OAuth("invalid_grant", "code issued to another client");
    }
    if (Param(p, "redirect_uri") != jose::Text(bound, "redirect_uri")) {
      return OAuth("invalid_grant", "redirect_uri differs from the authorization request");
    }
    const std::string verifier = Param(p, "code_verifier");
    if (verifier.size() < 43 || verifier.size() > 128 || !std::all_of(verifier.begin(), verifier.end(), IsUnreserved) ||
        !jose::ConstantTimeEqual(jose::Base64Url(auth::Sha256(verifier)), jose::Text(bound, "code_challenge"))) {
      return OAuth("invalid_grant", "code_verifier does not match the code_challenge");
    }
    Grant grant;
    grant.account = jose::Text(bound, "account_id");
    grant.tenant = jose::Text(bound, "tenant");
    grant.client = client->client.client_id();
    grant.sid = jose::Text(bound, "sid");
    grant.acr = jose::Text(bound, "acr");
    grant.amr = jose::Text(bound, "amr");
    grant.scopes = bound.value("scopes", std::vector<std::string>{});
    grant.auth_time = bound.value("auth_time", int64_t{0});
    grant.expires = now + options_.grant.count();
    const int64_t session_expires = bound.value("session_expires", int64_t{0});
    if (session_expires > 0) grant.expires = std::min(grant.expires, session_expires);
    if (grant.expires <= now) return OAuth("invalid_grant", "the session has ended");
    if (auto s = account_usable(grant.tenant, grant.account); !s.ok()) return s;
    for (const auto& cmd :
         std::vector<std::vector<std::string>>{{"HSET",      GrantKey(gid),
                                                "account",   grant.account,
                                                "tenant",    grant.tenant,
                                                "client",    grant.client,
                                                "sid",       grant.sid,
                                                "acr",       grant.acr,
                                                "amr",       grant.amr,
                                                "scopes",    ScopeString(grant.scopes),
                                                "auth_time", std::to_string(grant.auth_time),
                                                "expires",   std::to_string(grant.expires)},
                                               {"EXPIRE", GrantKey(gid), std::to_string(grant.expires - now)},
                                               {"SADD", AccountGrantsKey(grant.account), gid},
                                               {"EXPIRE", AccountGrantsKey(grant.account), ttl}}) {
      if (auto c = redis_.Command(cmd); !c.ok()) return c.status();
    }
    if (!grant.sid.empty()) {
      for (const auto& cmd : std::vector<std::vector<std::string>>{{"SADD", SidGrantsKey(grant.sid), gid},
                                                                   {"EXPIRE", SidGrantsKey(grant.sid), ttl}}) {
        if (auto c = redis_.Command(cmd); !c.ok()) return c.status();
      }
    }
    // The code used again meanwhile: the grant just made ends before any token leaves.
    auto ended = redis_.Command({"GET", GrantEndedKey(gid)});
    if (!ended.ok()) return ended.status();
    if (!ended->is_nil()) {
      if (auto s = RevokeGrants({gid}, "", false); !s.ok()) return s;
      return OAuth("invalid_grant", "code already used");
    }
    // The session logged out (or all of the account's) after the code was issued: its
    // grants ended then, and so does this one (looked for once the grant is listed with
    // the session and account, which is what the log-out ends).
    const int64_t issued_ms = bound.value("issued_ms", int64_t{0});
    std::vector<std::string> marks = {AccountEndedKey(grant.account)};
    if (!grant.sid.empty()) marks.push_back(SidEndedKey(grant.sid));
    for (const auto& mark : marks) {
      auto at = redis_.Command({"GET", mark});
      if (!at.ok()) return at.status();
      int64_t ended_ms = 0;
      if (!at->is_nil() && absl::SimpleAtoi(at->str(), &ended_ms) && ended_ms >= issued_ms) {
        if (auto s = RevokeGrants({gid}, "", false); !s.ok()) return s;
        return OAuth("invalid_grant", "the session has ended");
      }
    }
    return Issue(*client, grant, gid, jose::Text(bound, "nonce"), grant.scopes, grant_type);
  }
  if (grant_type == "refresh_token") {
    const std::string refresh = Param(p, "refresh_token");
    if (refresh.empty()) return OAuth("invalid_request", "refresh_token required");
    if (!IsTokenChars(refresh, 128)) return OAuth("invalid_grant", "refresh token unknown or expired");
    // A used refresh token again (stolen or replayed): the whole grant ends.
    const auto reused = [&]() -> absl::Status {
      auto used = redis_.Command({"GET", RefreshUsedKey(refresh)});
      if (!used.ok()) return used.status();
      if (!used->is_nil()) {
        if (auto s = RevokeGrants({used->str()}, "", false); !s.ok()) return s;
        return OAuth("invalid_grant", "refresh token already used");
      }
      return OAuth("invalid_grant", "refresh token unknown or expired");
    };
    auto r = redis_.Command({"GET", RefreshKey(refresh)});
    if (!r.ok()) return r.status();
    if (r->is_nil()) return reused();
    const std::string gid = r->str();
    auto grant = LoadGrant(gid);
    if (!grant.ok()) return grant.status();
    if (!*grant) return OAuth("invalid_grant", "grant revoked or expired");
    if ((*grant)->client != client->client.client_id()) {
      // Another client holds this client's refresh token: it has leaked; the grant ends.
      if (auto s = RevokeGrants({gid}, "", false); !s.ok()) return s;
      return OAuth("invalid_grant", "refresh token issued to another client");
    }
    std::vector<std::string> scopes = (*grant)->scopes;
    if (p.count("scope")) {
      scopes = Words(Param(p, "scope"));
      for (const auto& s : scopes) {
        if (std::find((*grant)->scopes.begin(), (*grant)->scopes.end(), s) == (*grant)->scopes.end()) {
          return OAuth("invalid_scope", "scope beyond the grant");
        }
      }
    }
    if (auto s = account_usable((*grant)->tenant, (*grant)->account); !s.ok()) return s;
    // Used up and marked used in one step; a use in parallel that got here first makes
    // this one a reuse (and the grant it renewed ends).
    const std::string left = std::to_string(std::max<int64_t>(1, (*grant)->expires - now));
    auto taken = redis_.Command({"EVAL", kTakeOnce, "2", RefreshKey(refresh), RefreshUsedKey(refresh), gid, left});
    if (!taken.ok()) return taken.status();
    if (taken->is_nil()) return reused();
    return Issue(*client, **grant, gid, "", scopes, grant_type);
  }
  if (grant_type.empty()) return OAuth("invalid_request", "grant_type required");
  return OAuth("unsupported_grant_type", "only authorization_code and refresh_token");
}

absl::StatusOr<v1::AccessTokenInfo> OpenIdProvider::CheckAccessToken(const std::string& access_token) {
  const auto invalid = [](const std::string& why) { return OAuth("invalid_token", why); };
  if (access_token.empty() || access_token.size() > kMaxJwtBytes) return invalid("malformed");
  const nlohmann::json header = UnverifiedHeader(access_token);
  const std::string kid = jose::Text(header, "kid");
  if (kid.empty() || kid.size() > 64) return invalid("malformed");
  auto keys = keys_.VerificationKeys(kid);
  if (!keys.ok()) return keys.status();
  auto jws = jose::VerifyCompact(access_token, *keys, {"RS256"}, kMaxJwtBytes);
  if (!jws.ok()) return invalid(std::string(jws.status().message()));
  const std::string typ = absl::AsciiStrToLower(jose::Text(jws->header, "typ"));
  if (typ != "at+jwt" && typ != "application/at+jwt") return invalid("not an access token");
  const auto& c = jws->claims;
  if (jose::Text(c, "iss") != options_.issuer) return invalid("issuer");
  // The audience exactly: a string, or a list of only it.
  const auto aud = c.find("aud");
  const bool audience = aud != c.end() && ((aud->is_string() && aud->get<std::string>() == options_.api_audience) ||
                                           (aud->is_array() && aud->size() == 1 && (*aud)[0] == options_.api_audience));
  if (!audience) return invalid("audience");
  const int64_t now = absl::ToUnixSeconds(options_.clock());
  const auto exp = jose::NumericDate(c, "exp");
  const auto iat = jose::NumericDate(c, "iat");
  if (!exp || !iat) return invalid("malformed");
  if (*exp <= now) return invalid("expired");
  if (*iat > now + kSkew) return invalid("not yet valid");
  auto grant = LoadGrant(jose::Text(c, "gid"));
  if (!grant.ok()) return grant.status();
  if (!*grant) return invalid("grant revoked or expired");
  const std::string client_id = jose::Text(c, "client_id");
  if ((*grant)->client != client_id) return invalid("client");
  auto client = partners_.Find((*grant)->tenant, client_id);
  if (client.status().code() == absl::StatusCode::kNotFound || (client.ok() && client->client.disabled())) {
    return invalid("client disabled");
  }
  if (!client.ok()) return client.status();
  v1::AccessTokenInfo out;
  out.set_account_id((*grant)->account);
  out.set_tenant((*grant)->tenant);
  out.set_client_id(client_id);
  out.set_client_name(client->client.name());
  for (const auto& s : Words(jose::Text(c, "scope"))) out.add_scopes(s);
  out.set_assurance_level(federation::LevelOf((*grant)->acr));
  out.set_subject(jose::Text(c, "sub"));
  *out.mutable_issued_at() = TimeUtil::SecondsToTimestamp(*iat);
  *out.mutable_expires_at() = TimeUtil::SecondsToTimestamp(*exp);
  out.set_token_id(jose::Text(c, "jti"));
  return out;
}

absl::StatusOr<v1::AccessTokenInfo> OpenIdProvider::ResolveAccessToken(const std::string& access_token) {
  auto info = CheckAccessToken(access_token);
  if (!info.ok()) return info;
  auto found = store_->FindById(info->tenant(), info->account_id());
  if (found.status().code() == absl::StatusCode::kNotFound ||
      (found.ok() && found->account.state() == v1::ACCOUNT_STATE_LOCKED)) {
    return OAuth("invalid_token", "account locked or gone");
  }
  if (!found.ok()) return found.status();
  if (Contains(info->scopes(), "email")) {
    info->set_email(found->account.email());
    info->set_email_verified(found->verified);
  }
  return info;
}

absl::StatusOr<v1::IntrospectTokenResponse> OpenIdProvider::Introspect(const v1::IntrospectTokenRequest& req) {
  auto client = AuthenticateClient(req.params(), req.authorization());
  if (!client.ok()) return client.status();
  v1::IntrospectTokenResponse out;
  const std::string& token = req.token();
  if (token.empty() || token.size() > kMaxJwtBytes) return out;
  if (token.find('.') != std::string::npos) {
    auto info = ResolveAccessToken(token);
    if (!info.ok()) {
      if (info.status().code() == absl::StatusCode::kUnauthenticated) return out;
      return info.status();
    }
    // Only the client's own tokens: another's is as good as unknown.
    if (info->client_id() != client->client.client_id()) return out;
    out.set_active(true);
    *out.mutable_token() = *std::move(info);
    return out;
  }
  // A refresh token of the client's, while its grant lives.
  if (!IsTokenChars(token, 128)) return out;
  auto r = redis_.Command({"GET", RefreshKey(token)});
  if (!r.ok()) return r.status();
  if (r->is_nil()) return out;
  auto grant = LoadGrant(r->str());
  if (!grant.ok()) return grant.status();
  if (!*grant || (*grant)->client != client->client.client_id()) return out;
  out.set_active(true);
  auto* info = out.mutable_token();
  info->set_account_id((*grant)->account);
  info->set_tenant((*grant)->tenant);
  info->set_client_id((*grant)->client);
  for (const auto& s : (*grant)->scopes) info->add_scopes(s);
  info->set_assurance_level(federation::LevelOf((*grant)->acr));
  info->set_subject(Subject(client->client, (*grant)->account));
  *info->mutable_expires_at() = TimeUtil::SecondsToTimestamp((*grant)->expires);
  return out;
}

// ---------------------------------------------------------------------------------------
// Log-out and consents

absl::StatusOr<OpenIdProvider::EndSessionResult> OpenIdProvider::EndSession(const Params& params) {
  EndSessionResult out;
  const std::string hint = Param(params, "id_token_hint");
  if (hint.empty()) return out;
  const nlohmann::json header = UnverifiedHeader(hint);
  auto keys = keys_.VerificationKeys(jose::Text(header, "kid"));
  if (!keys.ok()) return keys.status();
  auto jws = jose::VerifyCompact(hint, *keys, {"RS256"}, kMaxJwtBytes);
  // An ID token of ours (it may have expired): signed by us, our issuer, not another kind.
  if (!jws.ok() || jose::Text(jws->claims, "iss") != options_.issuer || jws->header.contains("typ") ||
      !jws->claims.contains("aud") || !jws->claims["aud"].is_string()) {
    CountRefusal("invalid_request");
    log::Info("openid provider: log-out hint refused", {{"reason", jws.ok() ? "claims" : jws.status().message()}});
    return out;
  }
  const std::string client_id = jws->claims["aud"].get<std::string>();
  const std::string claimed = Param(params, "client_id");
  if (!claimed.empty() && claimed != client_id) return out;
  out.client_id = client_id;
  out.sid = jose::Text(jws->claims, "sid");
  const std::string uri = Param(params, "post_logout_redirect_uri");
  if (uri.empty()) return out;
  auto client = partners_.Find(tenant_, client_id);
  if (!client.ok() && client.status().code() != absl::StatusCode::kNotFound) return client.status();
  if (!client.ok() || client->client.disabled() || !Contains(client->client.post_logout_redirect_uris(), uri)) {
    return out;
  }
  const std::string state = Param(params, "state");
  out.redirect_uri = uri;
  if (!state.empty() && state.size() <= 512 && IsPrintableAscii(state)) {
    out.redirect_uri = fetch::WithQuery(uri, fetch::Form({{"state", state}}));
  }
  return out;
}

absl::StatusOr<v1::ListConnectedPortalsResponse> OpenIdProvider::ConnectedPortals(const std::string& tenant,
                                                                                  const std::string& account_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListConnectedPortalsResponse> {
    v1::ListConnectedPortalsResponse out;
    for (const auto& r : tx.exec_prepared("identity_op_consents", tenant, account_id)) {
      auto* p = out.add_portals();
      p->set_client_id(r["client_id"].as<std::string>());
      p->set_name(r["name"].as<std::string>());
      for (const auto& s : nlohmann::json::parse(r["scopes"].as<std::string>())) p->add_scopes(s.get<std::string>());
      *p->mutable_consented_at() = db::Micros(r["consented_at"]);
    }
    return out;
  });
}

absl::Status OpenIdProvider::RevokeConnectedPortal(const std::string& tenant, const std::string& account_id,
                                                   const std::string& client_id) {
  if (!api::ValidateUuid(client_id, "client_id").ok()) return absl::NotFoundError("connected portal not found");
  auto deleted = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    return static_cast<int>(
        tx.exec_prepared("identity_op_delete_consent", tenant, account_id, client_id).affected_rows());
  });
  if (!deleted.ok()) return deleted.status();
  if (*deleted == 0) return absl::NotFoundError("connected portal not found");
  // The client's grants of the account end, and it is told (back-channel).
  auto members = redis_.Command({"SMEMBERS", AccountGrantsKey(account_id)});
  if (!members.ok()) return members.status();
  std::vector<std::string> of_client;
  for (const auto& gid : Members(*members)) {
    auto grant = LoadGrant(gid);
    if (!grant.ok()) return grant.status();
    if (*grant && (*grant)->client == client_id) of_client.push_back(gid);
  }
  return RevokeGrants(of_client, "", true);
}

// ---------------------------------------------------------------------------------------
// Back-channel logout

absl::Status OpenIdProvider::EnqueueLogout(const std::string& tenant, const std::string& client_id,
                                           const std::string& account_id, const std::string& sid) {
  auto client = partners_.Find(tenant, client_id);
  if (client.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  if (!client.ok()) return client.status();
  const std::string& uri = client->client.backchannel_logout_uri();
  if (uri.empty()) return absl::OkStatus();
  const std::string subject = Subject(client->client, account_id);
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_prepared("identity_op_enqueue_logout", tenant, client_id, uri, subject, sid);
    return absl::OkStatus();
  });
}

absl::StatusOr<int> OpenIdProvider::DeliverBackchannelLogouts(int batch) {
  struct Due {
    int64_t id;
    std::string tenant, client_id, uri, subject, sid;
    int attempts;
    bool too_old;
  };
  auto due = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::vector<Due>> {
    std::vector<Due> out;
    for (const auto& r : tx.exec_prepared("identity_op_claim_logouts", batch)) {
      out.push_back({r["id"].as<int64_t>(), r["tenant"].as<std::string>(), r["client_id"].as<std::string>(),
                     r["uri"].as<std::string>(), r["subject"].as<std::string>(), r["sid"].as<std::string>(),
                     r["attempts"].as<int>(), r["too_old"].as<bool>()});
    }
    return out;
  });
  if (!due.ok()) return due.status();
  for (const auto& d : *due) {
    const int64_t now = absl::ToUnixSeconds(options_.clock());
    nlohmann::json claims = {
        {"iss", options_.issuer},
        {"aud", d.client_id},
        {"iat", now},
        {"exp", now + kLogoutTokenLifetime.count()},
        {"jti", auth::RandomToken(16)},
        {"sub", d.subject},
        {"events", {{"http://schemas.openid.net/event/backchannel-logout", nlohmann::json::object()}}}};
    if (!d.sid.empty()) claims["sid"] = d.sid;
    std::string error;
    // A destination refused by the egress policy: given up at once (a retry would be
    // refused again; the partner's registration must change).
    bool refused = false;
    auto token = keys_.Sign(claims, "logout+jwt");
    if (!token.ok()) {
      error = "not signed";
    } else {
      const std::string body = fetch::Form({{"logout_token", *token}});
      fetch::Limits limits;
      limits.timeout = std::chrono::seconds(5);
      limits.max_bytes = 64 * 1024;
      // The partner's host is resolved and checked now, and the request pinned to it.
      auto answer = fetch::FetchPartner(d.uri, options_.partner_egress,
                                        {"Content-Type: application/x-www-form-urlencoded"}, &body, limits);
      if (!answer.ok()) {
        error = std::string(answer.status().message());
        refused = answer.status().code() == absl::StatusCode::kPermissionDenied;
      } else if (answer->status != 200 && answer->status != 204) {
        error = absl::StrCat("HTTP ", answer->status);
      }
    }
    if (error.empty()) {
      BackchannelFamily().Add({{"outcome", "delivered"}}).Increment();
      auto s = pool_.Transact([&](pqxx::work& tx) -> absl::Status {
        tx.exec_prepared("identity_op_logout_delivered", d.id);
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
      continue;
    }
    // Backoff: 2, 4, 8 … seconds, at most an hour; after a day it is given up.
    const int64_t backoff = std::min<int64_t>(3600, int64_t{2} << std::min(d.attempts, 11));
    const bool give_up = d.too_old || refused;
    BackchannelFamily().Add({{"outcome", refused ? "refused" : (give_up ? "gave_up" : "failed")}}).Increment();
    log::Warn("openid provider: back-channel logout not delivered",
              {{"client_id", d.client_id}, {"attempts", d.attempts + 1}, {"error", error}, {"gave_up", give_up}});
    auto s = pool_.Transact([&](pqxx::work& tx) -> absl::Status {
      tx.exec_prepared("identity_op_logout_failed", d.id, error.substr(0, 200), static_cast<double>(backoff), give_up);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  return static_cast<int>(due->size());
}

void OpenIdProvider::StartJobs() {
  rotation_job_ = std::make_unique<app::Periodic>("op-key-rotation", std::chrono::minutes(1), [this] {
    if (auto s = keys_.Rotate(options_.clock()); !s.ok()) {
      log::Warn("openid provider: key rotation failed", {{"error", std::string(s.message())}});
    }
  });
  backchannel_job_ = std::make_unique<app::Periodic>("op-backchannel-logout", std::chrono::seconds(1), [this] {
    if (auto n = DeliverBackchannelLogouts(); !n.ok()) {
      log::Warn("openid provider: back-channel deliveries failed", {{"error", std::string(n.status().message())}});
    }
  });
  rotation_job_->Start();
  backchannel_job_->Start();
}

void OpenIdProvider::StopJobs() {
  if (backchannel_job_) backchannel_job_->Stop();
  if (rotation_job_) rotation_job_->Stop();
}

}  // namespace stadtportal::identity::provider

#include "services/identity/provider/provider.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <google/protobuf/util/time_util.h>
#include <httplib.h>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"
#include "services/identity/federation/fetch.h"
#include "services/identity/federation/jose.h"
#include "services/identity/service.h"

namespace stadtportal::identity {
namespace {

constexpr char kPassword[] = "Lebkuchen-am-Hauptmarkt";
constexpr char kIssuer[] = "https://portal.example";
constexpr char kRedirect[] = "https://partner.example/callback?portal=1";
constexpr char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

auth::Caller Admin() {
  auth::Caller c;
  c.account_id = "77777777-7777-4777-8777-777777777777";
  c.tenant = "09564000";
  c.roles = {"tenant-admin"};
  c.session_ref = "op-admin-ref";
  return c;
}

std::string PercentDecode(const std::string& in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      out.push_back(static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// The query parameters of a URL.
std::map<std::string, std::string> Query(const std::string& url) {
  std::map<std::string, std::string> out;
  const size_t q = url.find('?');
  if (q == std::string::npos) return out;
  for (absl::string_view part : absl::StrSplit(url.substr(q + 1), '&', absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    out[PercentDecode(std::string(part.substr(0, eq)))] =
        eq == absl::string_view::npos ? "" : PercentDecode(std::string(part.substr(eq + 1)));
  }
  return out;
}

nlohmann::json Claims(const std::string& jwt) {
  auto c = jose::UnverifiedClaims(jwt, 1 << 16);
  REQUIRE(c);
  return *c;
}

nlohmann::json Header(const std::string& jwt) {
  std::string raw;
  REQUIRE(jose::Base64UrlDecode(jwt.substr(0, jwt.find('.')), &raw));
  return nlohmann::json::parse(raw);
}

// An EC P-256 key of a partner portal (private_key_jwt) and its public JWK.
struct PartnerKey {
  jose::Pkey key{EVP_EC_gen("P-256")};
  std::string kid = "partner-key-1";

  nlohmann::json Jwk() const {
    unsigned char point[65];
    size_t len = 0;
    REQUIRE(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &len) == 1);
    REQUIRE(len == 65);
    return {{"kty", "EC"},
            {"crv", "P-256"},
            {"kid", kid},
            {"use", "sig"},
            {"x", jose::Base64Url(std::string(reinterpret_cast<char*>(point) + 1, 32))},
            {"y", jose::Base64Url(std::string(reinterpret_cast<char*>(point) + 33, 32))}};
  }

  std::string Assertion(const std::string& client_id, nlohmann::json overrides = nlohmann::json::object(),
                        const std::string& alg = "ES256") const {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    nlohmann::json claims = {
        {"iss", client_id}, {"sub", client_id}, {"aud", std::string(kIssuer) + "/api/v1/oidc/token"},
        {"iat", now},       {"exp", now + 60},  {"jti", auth::RandomToken(16)}};
    for (const auto& [k, v] : overrides.items()) claims[k] = v;
    return jose::SignCompact(key.get(), {{"alg", alg}, {"kid", kid}, {"typ", "JWT"}}, claims);
  }
};

struct Fixture {
  Fixture() = default;
  // `loopback_partners` false: no network is allowed for partner URLs (a production
  // deployment's default), though http:// is (a test deployment).
  explicit Fixture(bool loopback_partners) : loopback_partners(loopback_partners) {}

  // The partners' key sets and back-channel receivers in these tests are on loopback.
  bool loopback_partners = true;
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  // Seconds the provider's clock is ahead of the real one.
  std::shared_ptr<std::atomic<int64_t>> offset = std::make_shared<std::atomic<int64_t>>(0);
  Options options = [this] {
    Options o;
    o.hash = {1, 8 * 1024 * 1024};
    o.public_url = kIssuer;
    o.op.issuer = kIssuer;
    o.op.secret = std::string(32, '\x07');
    o.op.api_audience = std::string(kIssuer) + "/api/v1";
    o.op.key_rotation = std::chrono::hours(24 * 30);
    o.op.key_publish_ahead = std::chrono::hours(24);
    auto off = offset;
    o.op.clock = [off] { return absl::Now() + absl::Seconds(off->load()); };
    o.op.partner_egress.allow_http = true;
    if (loopback_partners) o.op.partner_egress.allowed = {*net::ParseNetwork("127.0.0.1")};
    return o;
  }();
  Service service{store, redis, options};
  grpc::ServerContext ctx;
  std::string email = "op." + std::to_string(std::random_device{}()) + "@example.de";
  std::string ip = "198.51.100." + std::to_string(std::random_device{}() % 250);
  PartnerKey partner_key;

  provider::OpenIdProvider& op() { return *service.openid_provider(); }

  v1::PartnerClientCredentials Partner(const std::string& method = "client_secret_basic",
                                       const std::string& redirect = kRedirect,
                                       const std::string& backchannel = "https://partner.example/backchannel") {
    grpcx::TestCaller admin(Admin());
    v1::CreatePartnerClientRequest r;
    r.set_name("Landesportal");
    r.add_redirect_uris(redirect);
    r.add_post_logout_redirect_uris("https://partner.example/bye");
    r.set_backchannel_logout_uri(backchannel);
    for (const char* s : {"openid", "profile", "email", "submissions:read"}) r.add_scopes(s);
    r.set_token_endpoint_auth_method(method);
    if (method == "private_key_jwt") r.set_jwks_json(nlohmann::json{{"keys", {partner_key.Jwk()}}}.dump());
    v1::PartnerClientCredentials out;
    auto s = service.CreatePartnerClient(&ctx, &r, &out);
    REQUIRE(s.error_message() == "");
    return out;
  }

  v1::LoginResponse Person() {
    v1::RegisterRequest reg;
    reg.set_email(email);
    reg.set_password(kPassword);
    reg.set_display_name("Anna Muster");
    v1::RegisterResponse registered;
    REQUIRE(service.Register(&ctx, &reg, &registered).ok());
    auto account = store->FindByEmail("09564000", email);
    REQUIRE(account.ok());
    REQUIRE(
        schema.pool().Transact([&](pqxx::work& tx) { return store->MarkVerified(tx, account->account.id()); }).ok());
    return Login();
  }

  v1::LoginResponse Login() {
    v1::LoginRequest req;
    req.set_email(email);
    req.set_password(kPassword);
    req.set_client_ip(ip);
    v1::LoginResponse out;
    REQUIRE(service.Login(&ctx, &req, &out).ok());
    return out;
  }

  std::string verifier = auth::RandomToken(32);

  std::map<std::string, std::string> Params(const std::string& client_id) {
    return {{"response_type", "code"},
            {"client_id", client_id},
            {"redirect_uri", kRedirect},
            {"scope", "openid email"},
            {"state", "st-123"},
            {"nonce", "n-456"},
            {"code_challenge", jose::Base64Url(auth::Sha256(verifier))},
            {"code_challenge_method", "S256"}};
  }

  v1::AuthorizeResponse Authorize(const std::map<std::string, std::string>& params, const std::string& session_id) {
    v1::AuthorizeRequest req;
    for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
    req.set_session_id(session_id);
    v1::AuthorizeResponse out;
    auto s = service.Authorize(&ctx, &req, &out);
    REQUIRE(s.error_message() == "");
    return out;
  }

  v1::AuthorizeResponse Continue(const v1::Interaction& i, const std::string& session_id,
                                 v1::ContinueAuthorizationRequest::Decision decision,
                                 const std::string& password = "") {
    v1::ContinueAuthorizationRequest req;
    req.set_pending_id(i.pending_id());
    req.set_csrf_token(i.csrf_token());
    req.set_session_id(session_id);
    req.set_decision(decision);
    if (!password.empty()) {
      req.set_email(email);
      req.set_password(password);
      req.set_client_ip(ip);
    }
    v1::AuthorizeResponse out;
    auto s = service.ContinueAuthorization(&ctx, &req, &out);
    REQUIRE(s.error_message() == "");
    return out;
  }

  // A code for the session, consenting on the way when asked.
  std::string Code(const std::string& client_id, const std::string& session_id,
                   std::map<std::string, std::string> extra = {}) {
    auto params = Params(client_id);
    for (const auto& [k, v] : extra) params[k] = v;
    auto r = Authorize(params, session_id);
    if (r.has_interaction()) {
      REQUIRE(r.interaction().kind() == v1::Interaction::KIND_CONSENT);
      r = Continue(r.interaction(), session_id, v1::ContinueAuthorizationRequest::DECISION_ALLOW);
    }
    REQUIRE(r.has_redirect_uri());
    auto q = Query(r.redirect_uri());
    REQUIRE(q.count("code"));
    return q["code"];
  }

  static std::string Basic(const v1::PartnerClientCredentials& c) {
    return "Basic " + absl::Base64Escape(c.client().client_id() + ":" + c.client_secret());
  }

  grpc::Status Token(const std::map<std::string, std::string>& params, const std::string& authorization,
                     v1::TokenResponse* out) {
    v1::TokenRequest req;
    for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
    req.set_authorization(authorization);
    return service.ExchangeToken(&ctx, &req, out);
  }

  grpc::Status Exchange(const v1::PartnerClientCredentials& c, const std::string& code, v1::TokenResponse* out) {
    return Token({{"grant_type", "authorization_code"},
                  {"code", code},
                  {"redirect_uri", kRedirect},
                  {"code_verifier", verifier}},
                 Basic(c), out);
  }

  grpc::Status Refresh(const v1::PartnerClientCredentials& c, const std::string& refresh, v1::TokenResponse* out) {
    return Token({{"grant_type", "refresh_token"}, {"refresh_token", refresh}}, Basic(c), out);
  }

  grpc::Status Resolve(const std::string& token, v1::AccessTokenInfo* out) {
    v1::ResolveAccessTokenRequest req;
    req.set_access_token(token);
    return service.ResolveAccessToken(&ctx, &req, out);
  }

  nlohmann::json Jwks() {
    v1::GetProviderJwksRequest req;
    v1::JsonDocument doc;
    REQUIRE(service.GetProviderJwks(&ctx, &req, &doc).ok());
    return nlohmann::json::parse(doc.json());
  }

  // Verifies a token of ours against the published JWK Set.
  absl::StatusOr<jose::Jws> Verify(const std::string& jwt) {
    return jose::VerifyCompact(jwt, Jwks(), {"RS256"}, 1 << 16);
  }
};

void CheckRefused(const grpc::Status& s, grpc::StatusCode code, const std::string& prefix) {
  INFO(s.error_message());
  CHECK(s.error_code() == code);
  CHECK(s.error_message().rfind(prefix, 0) == 0);
}

}  // namespace

TEST_CASE("openid provider: not configured answers FAILED_PRECONDITION", "[integration]") {
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  auto store = std::make_shared<Store>(schema.pool(Store::Prepare));
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  Service service{store, redis, Options{}};
  grpc::ServerContext ctx;
  v1::GetOpenIdConfigurationRequest req;
  v1::JsonDocument doc;
  auto s = service.GetOpenIdConfiguration(&ctx, &req, &doc);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(s.error_message() == "openid provider not configured");
  v1::TokenRequest token;
  v1::TokenResponse out;
  CHECK(service.ExchangeToken(&ctx, &token, &out).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(service.openid_provider() == nullptr);
}

TEST_CASE("openid provider: configuration from the environment", "[unit]") {
  const std::string secret = absl::Base64Escape(std::string(32, 'k'));
  auto o = provider::ProviderOptions::FromEnv(config::Env(std::map<std::string, std::string>{
      {"STADTPORTAL_OP_ISSUER", "https://portal.example"}, {"STADTPORTAL_OP_SECRET", secret}}));
  CHECK(o.enabled());
  CHECK(o.api_audience == "https://portal.example/api/v1");
  CHECK(o.access_token == std::chrono::seconds(300));
  CHECK(o.grant == std::chrono::seconds(43200));
  CHECK_FALSE(provider::ProviderOptions::FromEnv(config::Env(std::map<std::string, std::string>{})).enabled());
  CHECK_THROWS_AS(provider::ProviderOptions::FromEnv(config::Env(
                      std::map<std::string, std::string>{{"STADTPORTAL_OP_ISSUER", "https://portal.example"}})),
                  config::Error);
  CHECK_THROWS_AS(provider::ProviderOptions::FromEnv(config::Env(std::map<std::string, std::string>{
                      {"STADTPORTAL_OP_ISSUER", "http://portal.example"}, {"STADTPORTAL_OP_SECRET", secret}})),
                  config::Error);
  CHECK_THROWS_AS(provider::ProviderOptions::FromEnv(config::Env(
                      std::map<std::string, std::string>{{"STADTPORTAL_OP_ISSUER", "https://portal.example"},
                                                         {"STADTPORTAL_OP_SECRET", absl::Base64Escape("short")}})),
                  config::Error);
  // Partner URLs: public addresses only, http:// nowhere, unless configured.
  CHECK(o.partner_egress.allowed.empty());
  CHECK_FALSE(o.partner_egress.allow_http);
  auto test = provider::ProviderOptions::FromEnv(
      config::Env(std::map<std::string, std::string>{{"STADTPORTAL_OP_ISSUER", "https://portal.example"},
                                                     {"STADTPORTAL_OP_SECRET", secret},
                                                     {"STADTPORTAL_OP_ALLOWED_NETWORKS", "127.0.0.1, 10.20.0.0/16"},
                                                     {"STADTPORTAL_ALLOW_TEST_PROVIDERS", "true"}}));
  REQUIRE(test.partner_egress.allowed.size() == 2);
  CHECK(net::AnyContains(test.partner_egress.allowed, *net::ParseAddress("10.20.3.4")));
  CHECK_FALSE(net::AnyContains(test.partner_egress.allowed, *net::ParseAddress("10.21.3.4")));
  CHECK(test.partner_egress.allow_http);
  CHECK_THROWS_AS(provider::ProviderOptions::FromEnv(config::Env(
                      std::map<std::string, std::string>{{"STADTPORTAL_OP_ISSUER", "https://portal.example"},
                                                         {"STADTPORTAL_OP_SECRET", secret},
                                                         {"STADTPORTAL_OP_ALLOWED_NETWORKS", "intranet.example"}})),
                  config::Error);
}

TEST_CASE("openid provider: discovery and the JWK Set", "[integration]") {
  Fixture f;
  v1::GetOpenIdConfigurationRequest req;
  v1::JsonDocument doc;
  REQUIRE(f.service.GetOpenIdConfiguration(&f.ctx, &req, &doc).ok());
  const auto d = nlohmann::json::parse(doc.json());
  CHECK(d["issuer"] == kIssuer);
  CHECK(d["token_endpoint"] == "https://portal.example/api/v1/oidc/token");
  CHECK(d["jwks_uri"] == "https://portal.example/api/v1/oidc/jwks");
  CHECK(d["response_types_supported"] == nlohmann::json::array({"code"}));
  CHECK(d["grant_types_supported"] == nlohmann::json::array({"authorization_code", "refresh_token"}));
  CHECK(d["subject_types_supported"] == nlohmann::json::array({"pairwise"}));
  CHECK(d["code_challenge_methods_supported"] == nlohmann::json::array({"S256"}));
  CHECK(d["token_endpoint_auth_methods_supported"] ==
        nlohmann::json::array({"private_key_jwt", "client_secret_basic"}));
  CHECK(d["request_parameter_supported"] == false);
  CHECK(d["backchannel_logout_session_supported"] == true);
  CHECK(d["authorization_response_iss_parameter_supported"] == true);
  CHECK(d["acr_values_supported"] == nlohmann::json::array({"low", "substantial", "high"}));

  const auto jwks = f.Jwks();
  REQUIRE(jwks["keys"].size() == 1);
  const auto& key = jwks["keys"][0];
  CHECK(key["kty"] == "RSA");
  CHECK(key["alg"] == "RS256");
  CHECK(key["use"] == "sig");
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi"}) CHECK_FALSE(key.contains(m));
  // The private key is stored sealed, never as PEM.
  const auto sealed = testing::QueryValue(f.schema.pool(), "SELECT private_sealed FROM op_signing_keys");
  CHECK(sealed.find("PRIVATE KEY") == std::string::npos);
  std::string raw;
  REQUIRE(absl::Base64Unescape(sealed, &raw));
  CHECK(raw.find("PRIVATE KEY") == std::string::npos);
}

TEST_CASE("openid provider: signing keys rotate (current, next ahead, retired until its tokens expired)",
          "[integration]") {
  Fixture f;
  auto& keys = f.op().keys();
  const absl::Time t0 = absl::Now();
  *f.offset = 0;
  REQUIRE(keys.Rotate(t0).ok());
  REQUIRE(keys.Rotate(t0).ok());  // Idempotent.
  auto set = f.Jwks();
  REQUIRE(set["keys"].size() == 1);
  const std::string first = set["keys"][0]["kid"];
  const auto signed_kid = [&] {
    auto t = keys.Sign({{"x", 1}}, "");
    REQUIRE(t.ok());
    return Header(*t)["kid"].get<std::string>();
  };
  CHECK(signed_kid() == first);

  const int64_t rotation = 30 * 86400, ahead = 86400;
  // Not yet within the publish-ahead time: no next key.
  *f.offset = rotation - ahead - 10;
  REQUIRE(keys.Rotate(f.options.op.clock()).ok());
  CHECK(f.Jwks()["keys"].size() == 1);
  // A day before the rotation the next key is published, and not yet used.
  *f.offset = rotation - ahead + 1;
  REQUIRE(keys.Rotate(f.options.op.clock()).ok());
  set = f.Jwks();
  REQUIRE(set["keys"].size() == 2);
  const std::string next = set["keys"][1]["kid"];
  CHECK(next != first);
  CHECK(signed_kid() == first);
  // It becomes current at the rotation; the old one stays published while its tokens live.
  *f.offset = rotation + 5;
  REQUIRE(keys.Rotate(f.options.op.clock()).ok());
  CHECK(signed_kid() == next);
  set = f.Jwks();
  CHECK(set["keys"].size() == 2);
  // After the longest token lifetime it is gone.
  *f.offset = rotation + 301;
  REQUIRE(keys.Rotate(f.options.op.clock()).ok());
  set = f.Jwks();
  REQUIRE(set["keys"].size() == 1);
  CHECK(set["keys"][0]["kid"] == next);
  CHECK(testing::QueryValue(f.schema.pool(), "SELECT count(*) FROM op_signing_keys") == "1");
}

TEST_CASE("openid provider: sessions carry sid and authentication time; rotation keeps both", "[integration]") {
  Fixture f;
  SessionStore sessions(f.redis, SessionOptions{});
  auto created = sessions.Create("11111111-1111-4111-8111-111111111111", "09564000", {}, v1::ASSURANCE_LEVEL_LOW,
                                 "password", "", 0, "", 1000);
  REQUIRE(created.ok());
  const std::string sid = created->session().sid();
  CHECK(sid.size() >= 16);
  CHECK(created->session().authenticated_at().seconds() == 1000);
  auto resolved = sessions.Resolve(created->session_id());
  REQUIRE(resolved.ok());
  CHECK(resolved->sid() == sid);
  CHECK(resolved->authenticated_at().seconds() == 1000);
  auto rotated = sessions.Rotate(created->session_id(), *resolved, "");
  REQUIRE(rotated.ok());
  CHECK(rotated->session().sid() == sid);
  CHECK(rotated->session().authenticated_at().seconds() == 1000);
  auto again = sessions.Resolve(rotated->session_id());
  REQUIRE(again.ok());
  auto stepped = sessions.StepUp(*again, v1::ASSURANCE_LEVEL_SUBSTANTIAL, "saml:bundid");
  REQUIRE(stepped.ok());
  CHECK(stepped->session().sid() == sid);
  CHECK(stepped->session().authenticated_at().seconds() > 1000);
  // Another session has another sid.
  auto other =
      sessions.Create("11111111-1111-4111-8111-111111111111", "09564000", {}, v1::ASSURANCE_LEVEL_LOW, "password");
  REQUIRE(other.ok());
  CHECK(other->session().sid() != sid);
}

TEST_CASE("openid provider: the authorization request is checked in order", "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  const std::string id = client.client().client_id();
  const auto shown = [&](std::map<std::string, std::string> params) {
    auto r = f.Authorize(params, "");
    INFO(r.DebugString());
    CHECK_FALSE(r.has_redirect_uri());
    return r.has_error() ? r.error().error() : "no error";
  };
  // Client and redirect URI: an error page, never a redirect.
  auto p = f.Params(id);
  p["client_id"] = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
  CHECK(shown(p) == "invalid_client");
  p["client_id"] = "not-a-uuid'--";
  CHECK(shown(p) == "invalid_client");
  for (const std::string variant :
       {"https://partner.example/callback", "https://partner.example/callback?portal=1&x=1",
        "https://partner.example/callback?portal=10", "https://PARTNER.example/callback?portal=1",
        "https://partner.example/callback/?portal=1", "https://partner.example:443/callback?portal=1",
        "https://partner.example.evil.example/callback?portal=1", "http://partner.example/callback?portal=1",
        "https://partner.example/callback?portal=1#x", ""}) {
    p = f.Params(id);
    p["redirect_uri"] = variant;
    INFO(variant);
    CHECK(shown(p) == "invalid_redirect_uri");
  }
  // Then errors go to the redirect URI with state and iss.
  const auto redirected = [&](std::map<std::string, std::string> params) {
    auto r = f.Authorize(params, "");
    INFO(r.DebugString());
    REQUIRE(r.has_redirect_uri());
    CHECK(r.redirect_uri().rfind("https://partner.example/callback?portal=1&", 0) == 0);
    auto q = Query(r.redirect_uri());
    CHECK(q["iss"] == kIssuer);
    CHECK(q.count("code") == 0);
    if (params.count("state") && params["state"].size() <= 512) CHECK(q["state"] == params["state"]);
    return q["error"];
  };
  const auto with = [&](std::map<std::string, std::string> changes, std::vector<std::string> remove = {}) {
    auto params = f.Params(id);
    for (const auto& [k, v] : changes) params[k] = v;
    for (const auto& k : remove) params.erase(k);
    return redirected(params);
  };
  CHECK(with({{"response_type", "token"}}) == "unsupported_response_type");
  CHECK(with({{"response_type", "code id_token"}}) == "unsupported_response_type");
  CHECK(with({{"request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."}}) == "request_not_supported");
  CHECK(with({{"request_uri", "https://evil.example/r"}}) == "request_uri_not_supported");
  CHECK(with({}, {"code_challenge"}) == "invalid_request");
  CHECK(with({{"code_challenge", "short"}}) == "invalid_request");
  CHECK(with({{"code_challenge_method", "plain"}}) == "invalid_request");
  CHECK(with({}, {"code_challenge_method"}) == "invalid_request");
  CHECK(with({{"scope", "email profile"}}) == "invalid_scope");
  CHECK(with({{"scope", "openid address"}}) == "invalid_scope");  // Not registered for the client.
  CHECK(with({{"scope", "openid admin"}}) == "invalid_scope");
  CHECK(with({{"nonce", std::string(513, 'n')}}) == "invalid_request");
  CHECK(with({{"state", std::string(513, 's')}}) == "invalid_request");
  CHECK(with({{"prompt", "none login"}}) == "invalid_request");
  CHECK(with({{"prompt", "select_account"}}) == "invalid_request");
  CHECK(with({{"max_age", "-1"}}) == "invalid_request");
  CHECK(with({{"max_age", "1e3"}}) == "invalid_request");
  CHECK(with({{"acr_values", "urn:unknown"}}) == "invalid_request");
  CHECK(with({{"claims", "{not json"}}) == "invalid_request");
  CHECK(with({{"claims", R"({"id_token":{"acr":{"essential":true,"values":["gold"]}}})"}}) == "invalid_request");
  // Members of the wrong JSON type are a malformed request, not a failure of ours.
  CHECK(with({{"claims", R"({"id_token":{"acr":{"essential":"yes","values":["high"]}}})"}}) == "invalid_request");
  CHECK(with({{"claims", R"({"userinfo":{"acr":{"essential":1,"value":"high"}}})"}}) == "invalid_request");
  // A request object is refused before anything else it carries is read.
  CHECK(with({{"request", "x"}, {"code_challenge_method", "plain"}}) == "request_not_supported");
  // prompt=none without a session: login_required.
  CHECK(with({{"prompt", "none"}}) == "login_required");
  // A level no provider can give (none configured): unmet_authentication_requirements.
  auto person = f.Person();
  auto params = f.Params(id);
  params["acr_values"] = "substantial high";
  auto r = f.Authorize(params, person.session_id());
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri())["error"] == "unmet_authentication_requirements");
  params = f.Params(id);
  params["claims"] = R"({"id_token":{"acr":{"essential":true,"values":["high","urn:x"]}}})";
  r = f.Authorize(params, person.session_id());
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri())["error"] == "unmet_authentication_requirements");
  // A disabled client is shown an error too.
  {
    grpcx::TestCaller admin(Admin());
    v1::SetPartnerClientDisabledRequest dis;
    dis.set_client_id(id);
    dis.set_disabled(true);
    v1::PartnerClient out;
    REQUIRE(f.service.SetPartnerClientDisabled(&f.ctx, &dis, &out).ok());
  }
  CHECK(shown(f.Params(id)) == "invalid_client");
}

TEST_CASE("openid provider: log-in on the page, consent, code, tokens; consent remembered", "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  const std::string id = client.client().client_id();
  auto person = f.Person();  // Registered; the browser has no session yet.

  auto r = f.Authorize(f.Params(id), "");
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_LOGIN);
  CHECK(r.interaction().client_name() == "Landesportal");
  CHECK(r.interaction().pending_id().size() >= 43);
  const auto login_page = r.interaction();

  // A wrong CSRF token or an unknown pending authorization: an error page.
  auto bad = login_page;
  bad.set_csrf_token("forged");
  auto refused = f.Continue(bad, "", v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED, kPassword);
  REQUIRE(refused.has_error());
  CHECK(refused.error().error() == "invalid_request");
  CHECK_FALSE(refused.has_login());
  bad = login_page;
  bad.set_pending_id(auth::RandomToken(32));
  refused = f.Continue(bad, "", v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED, kPassword);
  REQUIRE(refused.has_error());
  CHECK(refused.error().error() == "expired");

  // Consent decisions need the token too.
  bad = login_page;
  bad.set_csrf_token("");
  refused = f.Continue(bad, person.session_id(), v1::ContinueAuthorizationRequest::DECISION_ALLOW);
  REQUIRE(refused.has_error());
  CHECK(refused.error().error() == "invalid_request");
  // A plain continue (back from a step-up) goes without it: still the log-in here.
  r = f.Continue(bad, "", v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED);
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_LOGIN);
  // A wrong password: the page again, saying so.
  r = f.Continue(login_page, "", v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED, "wrong password!");
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_LOGIN);
  CHECK(r.interaction().problem() == "credentials");
  CHECK_FALSE(r.has_login());

  // The right one: a session begins (the old one of the browser ends), consent is asked.
  r = f.Continue(login_page, person.session_id(), v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED, kPassword);
  REQUIRE(r.has_login());
  const std::string session_id = r.login().session_id();
  CHECK(session_id != person.session_id());
  v1::Session gone;
  v1::ResolveSessionRequest resolve;
  resolve.set_session_id(person.session_id());
  CHECK(f.service.ResolveSession(&f.ctx, &resolve, &gone).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_CONSENT);
  CHECK(std::vector<std::string>(r.interaction().scopes().begin(), r.interaction().scopes().end()) ==
        std::vector<std::string>{"openid", "email"});
  // Another browser's session cannot consent for it (the pending authorization is bound
  // to the account asked).
  r = f.Continue(r.interaction(), session_id, v1::ContinueAuthorizationRequest::DECISION_ALLOW);
  REQUIRE(r.has_redirect_uri());
  CHECK(r.redirect_uri().rfind(std::string(kRedirect) + "&code=", 0) == 0);
  auto q = Query(r.redirect_uri());
  CHECK(q["state"] == "st-123");
  CHECK(q["iss"] == kIssuer);
  REQUIRE(q.count("code"));
  CHECK(q["code"].size() >= 43);
  // The pending authorization is gone after the redirect.
  refused = f.Continue(login_page, session_id, v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED);
  REQUIRE(refused.has_error());
  CHECK(refused.error().error() == "expired");

  v1::TokenResponse tokens;
  auto s = f.Exchange(client, q["code"], &tokens);
  REQUIRE(s.error_message() == "");
  CHECK(tokens.token_type() == "Bearer");
  CHECK(tokens.expires_in() == 300);
  CHECK(tokens.scope() == "openid email");
  CHECK_FALSE(tokens.refresh_token().empty());

  v1::Session session;
  resolve.set_session_id(session_id);
  REQUIRE(f.service.ResolveSession(&f.ctx, &resolve, &session).ok());
  auto id_token = f.Verify(tokens.id_token());
  REQUIRE(id_token.ok());
  const auto& c = id_token->claims;
  CHECK(c["iss"] == kIssuer);
  CHECK(c["aud"] == id);
  CHECK(c["azp"] == id);
  CHECK(c["nonce"] == "n-456");
  CHECK(c["sid"] == session.sid());
  CHECK(c["acr"] == "low");
  CHECK(c["amr"] == nlohmann::json::array({"pwd"}));
  CHECK(c["auth_time"] == session.authenticated_at().seconds());
  CHECK(c["exp"].get<int64_t>() - c["iat"].get<int64_t>() == 300);
  CHECK(c["sub"] != session.account_id());
  CHECK(c["sub"] == f.op().Subject(client.client(), session.account_id()));
  CHECK_FALSE(c.contains("email"));  // Claims come from userinfo only.

  auto access = f.Verify(tokens.access_token());
  REQUIRE(access.ok());
  CHECK(access->header["typ"] == "at+jwt");
  CHECK(access->claims["aud"] == "https://portal.example/api/v1");
  CHECK(access->claims["client_id"] == id);
  CHECK(access->claims["scope"] == "openid email");
  CHECK(access->claims["sub"] == c["sub"]);
  v1::AccessTokenInfo info;
  REQUIRE(f.Resolve(tokens.access_token(), &info).ok());
  CHECK(info.account_id() == session.account_id());
  CHECK(info.client_id() == id);
  CHECK(info.subject() == c["sub"]);
  CHECK(info.assurance_level() == v1::ASSURANCE_LEVEL_LOW);
  CHECK(info.email() == f.email);
  CHECK(info.email_verified());
  CHECK(info.tenant() == "09564000");

  // Consent is remembered: the next authorization answers with a code at once.
  f.verifier = auth::RandomToken(32);
  r = f.Authorize(f.Params(id), session_id);
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri()).count("code") == 1);
  // prompt=consent asks again; prompt=none with consent given answers at once.
  auto params = f.Params(id);
  params["prompt"] = "consent";
  r = f.Authorize(params, session_id);
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_CONSENT);
  // Refusing it: access_denied to the client.
  r = f.Continue(r.interaction(), session_id, v1::ContinueAuthorizationRequest::DECISION_DENY);
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri())["error"] == "access_denied");
  params = f.Params(id);
  params["prompt"] = "none";
  r = f.Authorize(params, session_id);
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri()).count("code") == 1);
  // A scope not consented yet with prompt=none: consent_required.
  params["scope"] = "openid email profile";
  r = f.Authorize(params, session_id);
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri())["error"] == "consent_required");
  // prompt=login: log in again even with a session.
  params = f.Params(id);
  params["prompt"] = "login";
  r = f.Authorize(params, session_id);
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_LOGIN);
  // Logging in on the page satisfies it (a new session), and the code follows.
  r = f.Continue(r.interaction(), session_id, v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED, kPassword);
  REQUIRE(r.has_login());
  CHECK(r.has_redirect_uri());
  const std::string relogged = r.login().session_id();
  // Without logging in again, continuing with the old session shows the log-in again.
  r = f.Authorize(params, relogged);
  REQUIRE(r.has_interaction());
  r = f.Continue(r.interaction(), relogged, v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED);
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_LOGIN);
  // max_age passed since the log-in: log in again.
  *f.offset = 120;
  params = f.Params(id);
  params["max_age"] = "60";
  r = f.Authorize(params, relogged);
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_LOGIN);
  params["max_age"] = "600";
  r = f.Authorize(params, relogged);
  CHECK(r.has_redirect_uri());
}

TEST_CASE("openid provider: codes are single-use, bound to client, redirect URI and PKCE verifier", "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  const auto other = f.Partner();
  auto person = f.Person();
  v1::TokenResponse tokens;

  // A wrong verifier, another client, another redirect URI: invalid_grant, code spent.
  auto code = f.Code(client.client().client_id(), person.session_id());
  auto s = f.Token({{"grant_type", "authorization_code"},
                    {"code", code},
                    {"redirect_uri", kRedirect},
                    {"code_verifier", auth::RandomToken(32)}},
                   Fixture::Basic(client), &tokens);
  CheckRefused(s, grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant: code_verifier");
  code = f.Code(client.client().client_id(), person.session_id());
  s = f.Token({{"grant_type", "authorization_code"}, {"code", code}, {"redirect_uri", kRedirect}},
              Fixture::Basic(client), &tokens);
  CheckRefused(s, grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");
  code = f.Code(client.client().client_id(), person.session_id());
  CheckRefused(f.Exchange(other, code, &tokens), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant: code issued to another client");
  for (const std::string uri :
       {"https://partner.example/callback", "https://partner.example/callback?portal=1&a=b", ""}) {
    code = f.Code(client.client().client_id(), person.session_id());
    s = f.Token(
        {{"grant_type", "authorization_code"}, {"code", code}, {"redirect_uri", uri}, {"code_verifier", f.verifier}},
        Fixture::Basic(client), &tokens);
    CheckRefused(s, grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant: redirect_uri");
  }
  // Client authentication: wrong secret, none, another scheme, both at once.
  code = f.Code(client.client().client_id(), person.session_id());
  const std::map<std::string, std::string> exchange = {
      {"grant_type", "authorization_code"}, {"code", code}, {"redirect_uri", kRedirect}, {"code_verifier", f.verifier}};
  CheckRefused(
      f.Token(exchange, "Basic " + absl::Base64Escape(client.client().client_id() + ":" + other.client_secret()),
              &tokens),
      grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  CheckRefused(f.Token(exchange, "", &tokens), grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  CheckRefused(f.Token(exchange, "Bearer x", &tokens), grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  auto with_assertion = exchange;
  with_assertion["client_assertion_type"] = kJwtBearer;
  with_assertion["client_assertion"] = f.partner_key.Assertion(client.client().client_id());
  CheckRefused(f.Token(with_assertion, Fixture::Basic(client), &tokens), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client");
  // A secret client cannot use an assertion instead.
  with_assertion["client_id"] = client.client().client_id();
  CheckRefused(f.Token(with_assertion, "", &tokens), grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  // Unsupported and missing grant types.
  auto wrong = exchange;
  wrong["grant_type"] = "password";
  CheckRefused(f.Token(wrong, Fixture::Basic(client), &tokens), grpc::StatusCode::INVALID_ARGUMENT,
               "unsupported_grant_type");
  wrong.erase("grant_type");
  CheckRefused(f.Token(wrong, Fixture::Basic(client), &tokens), grpc::StatusCode::INVALID_ARGUMENT, "invalid_request");
  // The code was not spent by refused client authentication.
  REQUIRE(f.Token(exchange, Fixture::Basic(client), &tokens).ok());
  v1::AccessTokenInfo info;
  REQUIRE(f.Resolve(tokens.access_token(), &info).ok());
  // Its second use: invalid_grant, and the grant of the first use ends.
  v1::TokenResponse again;
  CheckRefused(f.Token(exchange, Fixture::Basic(client), &again), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant: code already used");
  CheckRefused(f.Resolve(tokens.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Refresh(client, tokens.refresh_token(), &again), grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");
  // An expired code.
  code = f.Code(client.client().client_id(), person.session_id());
  REQUIRE(f.redis.Command({"DEL", "sp:op:code:" + absl::BytesToHexString(auth::Sha256(code))}).ok());
  CheckRefused(f.Exchange(client, code, &tokens), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant: code unknown or expired");
}

TEST_CASE("openid provider: refresh tokens rotate; a used one again ends the grant", "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  const auto other = f.Partner();
  auto person = f.Person();
  v1::TokenResponse first;
  REQUIRE(f.Exchange(client, f.Code(client.client().client_id(), person.session_id()), &first).ok());
  v1::TokenResponse second;
  REQUIRE(f.Refresh(client, first.refresh_token(), &second).ok());
  CHECK(second.refresh_token() != first.refresh_token());
  auto id_token = f.Verify(second.id_token());
  REQUIRE(id_token.ok());
  CHECK(id_token->claims["sub"] == Claims(first.id_token())["sub"]);
  CHECK_FALSE(id_token->claims.contains("nonce"));
  // A narrower scope is fine, a wider one is not.
  v1::TokenResponse narrower;
  REQUIRE(f.Token({{"grant_type", "refresh_token"}, {"refresh_token", second.refresh_token()}, {"scope", "openid"}},
                  Fixture::Basic(client), &narrower)
              .ok());
  CHECK(narrower.scope() == "openid");
  v1::TokenResponse wider;
  CheckRefused(
      f.Token(
          {{"grant_type", "refresh_token"}, {"refresh_token", narrower.refresh_token()}, {"scope", "openid profile"}},
          Fixture::Basic(client), &wider),
      grpc::StatusCode::INVALID_ARGUMENT, "invalid_scope");
  // The first one again (replayed): the grant ends with all its tokens.
  v1::AccessTokenInfo info;
  REQUIRE(f.Resolve(narrower.access_token(), &info).ok());
  v1::TokenResponse stolen;
  CheckRefused(f.Refresh(client, first.refresh_token(), &stolen), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant: refresh token already used");
  CheckRefused(f.Resolve(narrower.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Resolve(second.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Refresh(client, narrower.refresh_token(), &stolen), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant");
  CheckRefused(f.Refresh(client, "unknown-refresh-token", &stolen), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant: refresh token unknown");
  // Another client presenting one: refused, and the grant ends (the token has leaked).
  v1::TokenResponse third;
  f.verifier = auth::RandomToken(32);
  REQUIRE(f.Exchange(client, f.Code(client.client().client_id(), person.session_id()), &third).ok());
  CheckRefused(f.Refresh(other, third.refresh_token(), &stolen), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant: refresh token issued to another client");
  CheckRefused(f.Resolve(third.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
}

TEST_CASE("openid provider: the same refresh token or code twice at once is a reuse too (the grant ends)",
          "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  auto person = f.Person();
  // Two requests with the same credential at the same moment, each on its own thread.
  const auto both = [&](const std::map<std::string, std::string>& params, v1::TokenResponse* a, v1::TokenResponse* b) {
    grpc::Status sa, sb;
    const auto call = [&](v1::TokenResponse* out, grpc::Status* s) {
      v1::TokenRequest req;
      for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
      req.set_authorization(Fixture::Basic(client));
      grpc::ServerContext ctx;
      *s = f.service.ExchangeToken(&ctx, &req, out);
    };
    std::thread ta(call, a, &sa), tb(call, b, &sb);
    ta.join();
    tb.join();
    return std::make_pair(sa, sb);
  };
  // Whatever one of the two got is dead afterwards: its grant ended.
  const auto check_ended = [&](const std::pair<grpc::Status, grpc::Status>& s, const v1::TokenResponse& a,
                               const v1::TokenResponse& b) {
    INFO(s.first.error_message() << " | " << s.second.error_message());
    REQUIRE_FALSE((s.first.ok() && s.second.ok()));
    const v1::TokenResponse& won = s.first.ok() ? a : b;
    if (!s.first.ok() && !s.second.ok()) return;
    v1::AccessTokenInfo info;
    CheckRefused(f.Resolve(won.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
    v1::TokenResponse after;
    CheckRefused(f.Refresh(client, won.refresh_token(), &after), grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");
  };
  for (int round = 0; round < 15; ++round) {
    v1::TokenResponse tokens;
    f.verifier = auth::RandomToken(32);
    REQUIRE(f.Exchange(client, f.Code(client.client().client_id(), person.session_id()), &tokens).ok());
    v1::TokenResponse a, b;
    check_ended(both({{"grant_type", "refresh_token"}, {"refresh_token", tokens.refresh_token()}}, &a, &b), a, b);
  }
  for (int round = 0; round < 15; ++round) {
    f.verifier = auth::RandomToken(32);
    const std::string code = f.Code(client.client().client_id(), person.session_id());
    v1::TokenResponse a, b;
    check_ended(both({{"grant_type", "authorization_code"},
                      {"code", code},
                      {"redirect_uri", kRedirect},
                      {"code_verifier", f.verifier}},
                     &a, &b),
                a, b);
  }
}

TEST_CASE("openid provider: private_key_jwt client authentication", "[integration]") {
  Fixture f;
  const auto client = f.Partner("private_key_jwt");
  const std::string id = client.client().client_id();
  auto person = f.Person();
  const auto exchange = [&](const std::string& assertion, std::map<std::string, std::string> extra = {}) {
    auto code = f.Code(id, person.session_id());
    std::map<std::string, std::string> params = {
        {"grant_type", "authorization_code"},  {"code", code},
        {"redirect_uri", kRedirect},           {"code_verifier", f.verifier},
        {"client_assertion_type", kJwtBearer}, {"client_assertion", assertion}};
    for (const auto& [k, v] : extra) params[k] = v;
    v1::TokenResponse tokens;
    return f.Token(params, "", &tokens);
  };
  CHECK(exchange(f.partner_key.Assertion(id)).ok());
  // The issuer as audience is fine too, and a list containing the token endpoint.
  CHECK(exchange(f.partner_key.Assertion(id, {{"aud", kIssuer}})).ok());
  CHECK(exchange(f.partner_key.Assertion(
                     id, {{"aud", {"https://other.example", std::string(kIssuer) + "/api/v1/oidc/token"}}}))
            .ok());
  // A replayed assertion (same jti).
  const std::string once = f.partner_key.Assertion(id);
  CHECK(exchange(once).ok());
  CheckRefused(exchange(once), grpc::StatusCode::UNAUTHENTICATED, "invalid_client: client assertion: jti");
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  CheckRefused(exchange(f.partner_key.Assertion(id, {{"aud", "https://portal.example/api/v1/oidc/tokenx"}})),
               grpc::StatusCode::UNAUTHENTICATED, "invalid_client: client assertion: audience");
  CheckRefused(exchange(f.partner_key.Assertion(id, {{"exp", now + 3600}})), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client: client assertion: exp");
  CheckRefused(exchange(f.partner_key.Assertion(id, {{"exp", now - 300}})), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client: client assertion: expired");
  CheckRefused(exchange(f.partner_key.Assertion(id, {{"sub", "someone-else"}})), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client");
  CheckRefused(exchange(f.partner_key.Assertion(id, {{"jti", ""}})), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client");
  // Signed by another key.
  PartnerKey stranger;
  CheckRefused(exchange(stranger.Assertion(id)), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client: client assertion: bad_signature");
  // alg none, and an HMAC with the public key as secret.
  const std::string claims = jose::Base64Url(
      nlohmann::json{{"iss", id}, {"sub", id}, {"aud", kIssuer}, {"exp", now + 60}, {"jti", "n1"}}.dump());
  CheckRefused(exchange(jose::Base64Url(R"({"alg":"none"})") + "." + claims + "."), grpc::StatusCode::UNAUTHENTICATED,
               "invalid_client: client assertion: alg");
  CheckRefused(exchange(jose::Base64Url(R"({"alg":"HS256","kid":"partner-key-1"})") + "." + claims + ".c2ln"),
               grpc::StatusCode::UNAUTHENTICATED, "invalid_client: client assertion: alg");
  // A client_id naming another client than the assertion.
  CheckRefused(exchange(f.partner_key.Assertion(id), {{"client_id", "3fa85f64-5717-4562-b3fc-2c963f66afa6"}}),
               grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  // Basic credentials for a private_key_jwt client.
  auto code = f.Code(id, person.session_id());
  v1::TokenResponse tokens;
  CheckRefused(f.Token({{"grant_type", "authorization_code"},
                        {"code", code},
                        {"redirect_uri", kRedirect},
                        {"code_verifier", f.verifier}},
                       "Basic " + absl::Base64Escape(id + ":anything"), &tokens),
               grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
}

TEST_CASE("openid provider: access tokens for the API only while valid, ours and their grant alive", "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  auto person = f.Person();
  v1::TokenResponse tokens;
  REQUIRE(f.Exchange(client, f.Code(client.client().client_id(), person.session_id()), &tokens).ok());
  v1::AccessTokenInfo info;
  REQUIRE(f.Resolve(tokens.access_token(), &info).ok());
  // An ID token is no access token (no at+jwt, another audience).
  CheckRefused(f.Resolve(tokens.id_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  // A changed payload breaks the signature.
  const auto parts = std::vector<std::string>(absl::StrSplit(tokens.access_token(), '.'));
  auto claims = Claims(tokens.access_token());
  claims["scope"] = "openid email submissions:read drafts:write";
  CheckRefused(f.Resolve(parts[0] + "." + jose::Base64Url(claims.dump()) + "." + parts[2], &info),
               grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  // alg none with our kid.
  auto header = Header(tokens.access_token());
  header["alg"] = "none";
  CheckRefused(f.Resolve(jose::Base64Url(header.dump()) + "." + parts[1] + ".", &info),
               grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  // A token we signed for another audience (as if for another API).
  claims = Claims(tokens.access_token());
  claims["aud"] = "https://portal.example/other";
  auto foreign = f.op().keys().Sign(claims, "at+jwt");
  REQUIRE(foreign.ok());
  CheckRefused(f.Resolve(*foreign, &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token: audience");
  claims["aud"] = nlohmann::json::array({"https://portal.example/api/v1", "https://portal.example/other"});
  foreign = f.op().keys().Sign(claims, "at+jwt");
  CheckRefused(f.Resolve(*foreign, &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token: audience");
  CheckRefused(f.Resolve("", &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Resolve("a.b.c", &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  // Expired.
  *f.offset = 301;
  CheckRefused(f.Resolve(tokens.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token: expired");
  *f.offset = 0;
  REQUIRE(f.Resolve(tokens.access_token(), &info).ok());
  // A disabled client's tokens stop working at once.
  {
    grpcx::TestCaller admin(Admin());
    v1::SetPartnerClientDisabledRequest dis;
    dis.set_client_id(client.client().client_id());
    dis.set_disabled(true);
    v1::PartnerClient out;
    REQUIRE(f.service.SetPartnerClientDisabled(&f.ctx, &dis, &out).ok());
  }
  CheckRefused(f.Resolve(tokens.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  v1::TokenResponse again;
  CheckRefused(f.Refresh(client, tokens.refresh_token(), &again), grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
}

TEST_CASE("openid provider: subjects are pairwise per sector", "[integration]") {
  Fixture f;
  const auto a = f.Partner();
  const auto same_host = f.Partner();
  const auto b =
      f.Partner("client_secret_basic", "https://other-partner.example/cb", "https://other-partner.example/backchannel");
  auto person = f.Person();
  v1::Session session;
  v1::ResolveSessionRequest resolve;
  resolve.set_session_id(person.session_id());
  REQUIRE(f.service.ResolveSession(&f.ctx, &resolve, &session).ok());
  const std::string sa = f.op().Subject(a.client(), session.account_id());
  CHECK(sa == f.op().Subject(same_host.client(), session.account_id()));
  CHECK(sa != f.op().Subject(b.client(), session.account_id()));
  CHECK(sa != session.account_id());
  CHECK(sa.find(session.account_id()) == std::string::npos);
  v1::TokenResponse tokens;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &tokens).ok());
  CHECK(Claims(tokens.id_token())["sub"] == sa);
}
}  // namespace stadtportal::identity

namespace stadtportal::identity {
namespace {

// A partner portal's back-channel logout endpoint on loopback: collects the logout
// tokens POSTed to it.
struct Receiver {
  uint16_t port = testing::FreePort();
  httplib::Server server;
  std::thread thread;
  std::mutex mu;
  std::vector<std::string> tokens;
  std::vector<std::string> content_types;
  std::atomic<int> status{200};

  Receiver() {
    server.Post("/bc", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu);
      content_types.push_back(req.get_header_value("Content-Type"));
      if (req.has_param("logout_token")) tokens.push_back(req.get_param_value("logout_token"));
      res.status = status.load();
    });
    thread = std::thread([this] { server.listen("127.0.0.1", port); });
    REQUIRE(testing::Eventually([this] { return server.is_running(); }, std::chrono::seconds(5)));
  }
  ~Receiver() {
    server.stop();
    thread.join();
  }
  std::string Uri() const { return "http://127.0.0.1:" + std::to_string(port) + "/bc"; }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return tokens.size();
  }
  std::vector<std::string> Tokens() {
    std::lock_guard<std::mutex> lock(mu);
    return tokens;
  }
};

// Registration allows https only; the test's receiver is on loopback http (which the
// delivery allows).
void PointBackchannelAt(Fixture& f, const std::string& client_id, const std::string& uri) {
  REQUIRE(f.schema.pool()
              .Transact([&](pqxx::work& tx) {
                tx.exec_params("UPDATE partner_clients SET backchannel_logout_uri = $1 WHERE id = $2::uuid", uri,
                               client_id);
                return absl::OkStatus();
              })
              .ok());
}

int64_t Count(Fixture& f, const std::string& sql) { return std::stoll(testing::QueryValue(f.schema.pool(), sql)); }

std::string Introspected(Fixture& f, const v1::PartnerClientCredentials& c, const std::string& token,
                         v1::IntrospectTokenResponse* out) {
  v1::IntrospectTokenRequest req;
  req.set_authorization(Fixture::Basic(c));
  req.set_token(token);
  auto s = f.service.IntrospectToken(&f.ctx, &req, out);
  return s.ok() ? (out->active() ? "active" : "inactive") : s.error_message();
}

}  // namespace

TEST_CASE("openid provider: log-out ends the session's grants; back-channel logout tokens reach the partners",
          "[integration]") {
  Fixture f;
  Receiver receiver;
  const auto a = f.Partner();
  const auto b = f.Partner();
  PointBackchannelAt(f, a.client().client_id(), receiver.Uri());
  REQUIRE(f.schema.pool()
              .Transact([&](pqxx::work& tx) {
                tx.exec_params("UPDATE partner_clients SET backchannel_logout_uri = NULL WHERE id = $1::uuid",
                               b.client().client_id());
                return absl::OkStatus();
              })
              .ok());
  auto person = f.Person();
  v1::TokenResponse ta, tb;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &ta).ok());
  REQUIRE(f.Exchange(b, f.Code(b.client().client_id(), person.session_id()), &tb).ok());
  // Another session of the same person, with a grant of its own.
  auto other = f.Login();
  v1::TokenResponse t_other;
  f.verifier = auth::RandomToken(32);
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), other.session_id()), &t_other).ok());

  f.op().StartJobs();
  v1::LogoutRequest logout;
  logout.set_session_id(person.session_id());
  v1::LogoutResponse out;
  REQUIRE(f.service.Logout(&f.ctx, &logout, &out).ok());
  // The session's grants end at once; the other session's stays.
  v1::AccessTokenInfo info;
  CheckRefused(f.Resolve(ta.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Resolve(tb.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CHECK(f.Resolve(t_other.access_token(), &info).ok());
  v1::TokenResponse refreshed;
  CheckRefused(f.Refresh(a, ta.refresh_token(), &refreshed), grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");

  // A logout token reaches the partner within seconds, form-encoded.
  REQUIRE(testing::Eventually([&] { return receiver.Count() >= 1; }, std::chrono::seconds(10)));
  f.op().StopJobs();
  REQUIRE(receiver.Count() == 1);  // One per client and session; b has no back-channel URI.
  CHECK(receiver.content_types[0].rfind("application/x-www-form-urlencoded", 0) == 0);
  const std::string token = receiver.Tokens()[0];
  auto verified = f.Verify(token);
  REQUIRE(verified.ok());
  CHECK(verified->header["typ"] == "logout+jwt");
  CHECK(verified->header["alg"] == "RS256");
  const auto& c = verified->claims;
  const auto id_claims = Claims(ta.id_token());
  CHECK(c["iss"] == kIssuer);
  CHECK(c["aud"] == a.client().client_id());
  CHECK(c["sub"] == id_claims["sub"]);
  CHECK(c["sid"] == id_claims["sid"]);
  CHECK(c["events"] == nlohmann::json::parse(R"({"http://schemas.openid.net/event/backchannel-logout":{}})"));
  CHECK(c["jti"].is_string());
  CHECK(c["exp"].get<int64_t>() > c["iat"].get<int64_t>());
  CHECK_FALSE(c.contains("nonce"));
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE delivered_at IS NOT NULL") == 1);
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE delivered_at IS NULL") == 0);
}

TEST_CASE("openid provider: failed back-channel deliveries are retried with backoff, then given up", "[integration]") {
  Fixture f;
  Receiver receiver;
  receiver.status = 500;
  const auto a = f.Partner();
  PointBackchannelAt(f, a.client().client_id(), receiver.Uri());
  auto person = f.Person();
  v1::TokenResponse ta;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &ta).ok());
  v1::LogoutRequest logout;
  logout.set_session_id(person.session_id());
  v1::LogoutResponse out;
  REQUIRE(f.service.LogoutAll(&f.ctx, &logout, &out).ok());
  auto n = f.op().DeliverBackchannelLogouts();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(receiver.Count() == 1);
  CHECK(testing::QueryValue(f.schema.pool(), "SELECT last_error FROM op_backchannel_deliveries") == "HTTP 500");
  CHECK(Count(f, "SELECT attempts FROM op_backchannel_deliveries") == 1);
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE next_at > now()") == 1);
  // Not due yet: nothing is sent.
  n = f.op().DeliverBackchannelLogouts();
  REQUIRE(n.ok());
  CHECK(*n == 0);
  // A day later and still failing: given up.
  REQUIRE(f.schema.pool()
              .Transact([&](pqxx::work& tx) {
                tx.exec(
                    "UPDATE op_backchannel_deliveries SET created_at = now() - interval '25 hours', next_at = now()");
                return absl::OkStatus();
              })
              .ok());
  n = f.op().DeliverBackchannelLogouts();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE gave_up_at IS NOT NULL") == 1);
  n = f.op().DeliverBackchannelLogouts();
  CHECK(*n == 0);
  // A redirect is not followed; an https-less remote URI is never called.
  receiver.status = 302;
  PointBackchannelAt(f, a.client().client_id(), "http://partner.example/bc");
  auto again = f.Login();
  f.verifier = auth::RandomToken(32);
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), again.session_id()), &ta).ok());
  logout.set_session_id(again.session_id());
  REQUIRE(f.service.Logout(&f.ctx, &logout, &out).ok());
  n = f.op().DeliverBackchannelLogouts();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(testing::QueryValue(f.schema.pool(),
                            "SELECT last_error FROM op_backchannel_deliveries WHERE uri = 'http://partner.example/bc'")
            .find("https") != std::string::npos);
}

TEST_CASE("openid provider: log-out everywhere, locking and a password change end every grant of the account",
          "[integration]") {
  Fixture f;
  const auto a = f.Partner();
  auto person = f.Person();
  v1::AccessTokenInfo info;
  v1::TokenResponse t1, t2;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &t1).ok());
  auto second = f.Login();
  f.verifier = auth::RandomToken(32);
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), second.session_id()), &t2).ok());
  v1::LogoutRequest logout;
  logout.set_session_id(second.session_id());
  v1::LogoutResponse out;
  REQUIRE(f.service.LogoutAll(&f.ctx, &logout, &out).ok());
  CheckRefused(f.Resolve(t1.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Resolve(t2.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  // Both sessions' logouts are queued for the partner (one per session).
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries") == 2);

  // Locking.
  auto third = f.Login();
  f.verifier = auth::RandomToken(32);
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), third.session_id()), &t1).ok());
  REQUIRE(f.Resolve(t1.access_token(), &info).ok());
  {
    grpcx::TestCaller admin(Admin());
    v1::SetAccountLockedRequest lock;
    lock.set_account_id(info.account_id());
    lock.set_locked(true);
    lock.set_reason("Missbrauch gemeldet");
    v1::Account account;
    REQUIRE(f.service.SetAccountLocked(&f.ctx, &lock, &account).ok());
  }
  CheckRefused(f.Resolve(t1.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  v1::TokenResponse refreshed;
  CheckRefused(f.Refresh(a, t1.refresh_token(), &refreshed), grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries") == 3);
}

TEST_CASE("openid provider: the erasure of the account ends its grants and consents", "[integration]") {
  Fixture f;
  const auto a = f.Partner();
  auto person = f.Person();
  v1::TokenResponse t;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &t).ok());
  v1::IntrospectTokenResponse out;
  REQUIRE(Introspected(f, a, t.access_token(), &out) == "active");
  const std::string account_id = person.session().account_id();
  REQUIRE(Count(f, "SELECT count(*) FROM op_consents WHERE account_id = '" + account_id + "'") == 1);

  auth::Caller caller;
  caller.account_id = account_id;
  caller.tenant = "09564000";
  caller.session_ref = person.session().session_ref();
  v1::RequestErasureRequest req;
  req.set_confirm(f.email);
  v1::RequestErasureResponse erased;
  {
    grpcx::TestCaller as(caller);
    auto s = f.service.RequestErasure(&f.ctx, &req, &erased);
    REQUIRE(s.error_message() == "");
  }
  CHECK(Introspected(f, a, t.access_token(), &out) == "inactive");
  CHECK(Introspected(f, a, t.refresh_token(), &out) == "inactive");
  v1::AccessTokenInfo info;
  CheckRefused(f.Resolve(t.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  v1::TokenResponse refreshed;
  CheckRefused(f.Refresh(a, t.refresh_token(), &refreshed), grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");
  CHECK(Count(f, "SELECT count(*) FROM op_consents") == 0);
  // The partner learns of the end by back-channel log-out, under its pairwise subject only.
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries") == 1);
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE subject = '" + account_id + "'") == 0);
}

TEST_CASE("openid provider: connected portals listed and withdrawn; only that portal's grants end", "[integration]") {
  Fixture f;
  const auto a = f.Partner();
  const auto b = f.Partner();
  auto person = f.Person();
  v1::TokenResponse ta, tb;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &ta).ok());
  REQUIRE(f.Exchange(b, f.Code(b.client().client_id(), person.session_id()), &tb).ok());
  v1::ListConnectedPortalsRequest list;
  list.set_session_id(person.session_id());
  v1::ListConnectedPortalsResponse portals;
  REQUIRE(f.service.ListConnectedPortals(&f.ctx, &list, &portals).ok());
  REQUIRE(portals.portals_size() == 2);
  CHECK(portals.portals(0).name() == "Landesportal");
  std::vector<std::string> scopes(portals.portals(0).scopes().begin(), portals.portals(0).scopes().end());
  std::sort(scopes.begin(), scopes.end());
  CHECK(scopes == std::vector<std::string>{"email", "openid"});
  CHECK(portals.portals(0).consented_at().seconds() > 0);

  // Another person sees none of them and cannot withdraw them.
  f.email = "other." + f.email;
  auto stranger = f.Person();
  v1::ListConnectedPortalsRequest theirs;
  theirs.set_session_id(stranger.session_id());
  v1::ListConnectedPortalsResponse none;
  REQUIRE(f.service.ListConnectedPortals(&f.ctx, &theirs, &none).ok());
  CHECK(none.portals_size() == 0);
  v1::RevokeConnectedPortalRequest revoke;
  revoke.set_session_id(stranger.session_id());
  revoke.set_client_id(a.client().client_id());
  CHECK(f.service.RevokeConnectedPortal(&f.ctx, &revoke, &none).error_code() == grpc::StatusCode::NOT_FOUND);
  revoke.set_client_id("'; DROP TABLE op_consents; --");
  CHECK(f.service.RevokeConnectedPortal(&f.ctx, &revoke, &none).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::AccessTokenInfo info;
  REQUIRE(f.Resolve(ta.access_token(), &info).ok());

  revoke.set_session_id(person.session_id());
  revoke.set_client_id(a.client().client_id());
  v1::ListConnectedPortalsResponse left;
  REQUIRE(f.service.RevokeConnectedPortal(&f.ctx, &revoke, &left).ok());
  REQUIRE(left.portals_size() == 1);
  CHECK(left.portals(0).client_id() == b.client().client_id());
  CheckRefused(f.Resolve(ta.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CHECK(f.Resolve(tb.access_token(), &info).ok());
  CHECK(Count(f, absl::StrCat("SELECT count(*) FROM op_backchannel_deliveries WHERE client_id = '",
                              a.client().client_id(), "'")) == 1);
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries") == 1);
  // Consent is asked again next time.
  f.verifier = auth::RandomToken(32);
  auto r = f.Authorize(f.Params(a.client().client_id()), person.session_id());
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_CONSENT);
}

TEST_CASE("openid provider: RP-initiated log-out with the ID token as hint", "[integration]") {
  Fixture f;
  const auto a = f.Partner();
  const auto b = f.Partner();
  auto person = f.Person();
  v1::TokenResponse ta, tb;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &ta).ok());
  REQUIRE(f.Exchange(b, f.Code(b.client().client_id(), person.session_id()), &tb).ok());
  const auto end = [&](std::map<std::string, std::string> params, const std::string& session_id) {
    v1::EndSessionRequest req;
    for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
    req.set_session_id(session_id);
    v1::EndSessionResponse out;
    auto s = f.service.EndSession(&f.ctx, &req, &out);
    REQUIRE(s.error_message() == "");
    return out;
  };
  // An unregistered post-logout URI, a forged hint, another browser's session: no
  // redirect, nothing ends.
  auto other_browser = f.Login();
  auto r = end({{"id_token_hint", ta.id_token()}, {"post_logout_redirect_uri", "https://evil.example/bye"}},
               other_browser.session_id());
  CHECK(r.redirect_uri().empty());
  CHECK_FALSE(r.session_ended());
  r = end({{"id_token_hint", ta.id_token()}, {"post_logout_redirect_uri", "https://partner.example/bye/"}}, "");
  CHECK(r.redirect_uri().empty());
  auto parts = std::vector<std::string>(absl::StrSplit(ta.id_token(), '.'));
  auto claims = Claims(ta.id_token());
  claims["sid"] = "someone-elses";
  r = end({{"id_token_hint", parts[0] + "." + jose::Base64Url(claims.dump()) + "." + parts[2]},
           {"post_logout_redirect_uri", "https://partner.example/bye"}},
          person.session_id());
  CHECK(r.redirect_uri().empty());
  CHECK_FALSE(r.session_ended());
  // An access token is no ID token hint.
  r = end({{"id_token_hint", ta.access_token()}, {"post_logout_redirect_uri", "https://partner.example/bye"}},
          person.session_id());
  CHECK_FALSE(r.session_ended());
  // client_id naming another client than the hint's.
  r = end({{"id_token_hint", ta.id_token()},
           {"client_id", b.client().client_id()},
           {"post_logout_redirect_uri", "https://partner.example/bye"}},
          person.session_id());
  CHECK(r.redirect_uri().empty());
  CHECK_FALSE(r.session_ended());
  v1::AccessTokenInfo info;
  REQUIRE(f.Resolve(tb.access_token(), &info).ok());

  // The hint names the browser's session (expired hints count): it ends, the redirect
  // goes to the registered URI with state; the session's other partner is told.
  *f.offset = 3600;
  r = end({{"id_token_hint", ta.id_token()},
           {"post_logout_redirect_uri", "https://partner.example/bye"},
           {"state", "bye-1"}},
          person.session_id());
  *f.offset = 0;
  CHECK(r.session_ended());
  CHECK(r.redirect_uri() == "https://partner.example/bye?state=bye-1");
  v1::Session gone;
  v1::ResolveSessionRequest resolve;
  resolve.set_session_id(person.session_id());
  CHECK(f.service.ResolveSession(&f.ctx, &resolve, &gone).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CheckRefused(f.Resolve(ta.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CheckRefused(f.Resolve(tb.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  CHECK(Count(f, absl::StrCat("SELECT count(*) FROM op_backchannel_deliveries WHERE client_id = '",
                              b.client().client_id(), "'")) == 1);
  CHECK(Count(f, absl::StrCat("SELECT count(*) FROM op_backchannel_deliveries WHERE client_id = '",
                              a.client().client_id(), "'")) == 0);
  // The other browser's session lives on.
  resolve.set_session_id(other_browser.session_id());
  CHECK(f.service.ResolveSession(&f.ctx, &resolve, &gone).ok());
  // Without a hint: nothing ends, no redirect.
  r = end({{"post_logout_redirect_uri", "https://partner.example/bye"}}, other_browser.session_id());
  CHECK(r.redirect_uri().empty());
  CHECK_FALSE(r.session_ended());
}

TEST_CASE("openid provider: introspection answers only for the client's own live tokens", "[integration]") {
  Fixture f;
  const auto a = f.Partner();
  const auto b = f.Partner();
  auto person = f.Person();
  v1::TokenResponse ta;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &ta).ok());
  v1::IntrospectTokenResponse out;
  CHECK(Introspected(f, a, ta.access_token(), &out) == "active");
  CHECK(out.token().client_id() == a.client().client_id());
  CHECK(out.token().subject() == Claims(ta.id_token())["sub"]);
  CHECK(std::vector<std::string>(out.token().scopes().begin(), out.token().scopes().end()) ==
        std::vector<std::string>{"openid", "email"});
  out.Clear();
  CHECK(Introspected(f, a, ta.refresh_token(), &out) == "active");
  out.Clear();
  CHECK(Introspected(f, b, ta.access_token(), &out) == "inactive");
  CHECK_FALSE(out.has_token());
  out.Clear();
  CHECK(Introspected(f, b, ta.refresh_token(), &out) == "inactive");
  out.Clear();
  CHECK(Introspected(f, a, ta.id_token(), &out) == "inactive");
  out.Clear();
  CHECK(Introspected(f, a, "garbage", &out) == "inactive");
  // Unauthenticated introspection is refused.
  v1::IntrospectTokenRequest req;
  req.set_token(ta.access_token());
  req.set_authorization("Basic " + absl::Base64Escape(a.client().client_id() + ":wrong"));
  CHECK(f.service.IntrospectToken(&f.ctx, &req, &out).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  // After log-out: inactive.
  v1::LogoutRequest logout;
  logout.set_session_id(person.session_id());
  v1::LogoutResponse done;
  REQUIRE(f.service.Logout(&f.ctx, &logout, &done).ok());
  out.Clear();
  CHECK(Introspected(f, a, ta.access_token(), &out) == "inactive");
  out.Clear();
  CHECK(Introspected(f, a, ta.refresh_token(), &out) == "inactive");
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {
namespace {

// An upstream that is never reached: the step-up decision only asks which levels the
// deployment's providers can give.
class Unreached final : public federation::Upstream {
 public:
  absl::StatusOr<Started> Start(federation::Level) override { return absl::UnavailableError("unreached"); }
  absl::StatusOr<federation::Identity> Finish(const Answer&, const nlohmann::json&, federation::Level,
                                              absl::Time) override {
    return absl::UnavailableError("unreached");
  }
  absl::StatusOr<std::string> Metadata() const override { return absl::NotFoundError("none"); }
  absl::StatusOr<std::string> LogoutUrl(const federation::Identity&) override { return absl::NotFoundError("none"); }
};

}  // namespace

TEST_CASE("openid provider: a level above the session's asks for a step-up a provider can give", "[integration]") {
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  auto store = std::make_shared<Store>(schema.pool(Store::Prepare));
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  // A provider that gives up to substantial.
  auto provider = federation::ParseProvider(nlohmann::json::parse(R"({
    "id": "landes-id", "kind": "oidc", "name": {"de": "Landes-ID", "en": "State ID"},
    "levels": {"urn:low": "low", "urn:substantial": "substantial"},
    "oidc": {"issuer": "https://id.example.de", "client_id": "stadtportal",
             "client_secret_env": "STADTPORTAL_TEST_UNUSED", "scopes": ["openid"],
             "claims": {"email": "email"}}})"));
  REQUIRE(provider.status().message() == "");
  std::map<std::string, std::unique_ptr<federation::Upstream>> upstreams;
  upstreams["landes-id"] = std::make_unique<Unreached>();
  auto federation = std::make_shared<federation::Federation>(std::vector<federation::Provider>{*provider},
                                                             std::move(upstreams), redis);
  Fixture base;  // For its options, partner registration and person.
  Service service{store, redis, base.options, nullptr, nullptr, federation};
  grpc::ServerContext ctx;
  v1::PartnerClientCredentials client;
  {
    grpcx::TestCaller admin(Admin());
    v1::CreatePartnerClientRequest r;
    r.set_name("Fachportal");
    r.add_redirect_uris(kRedirect);
    r.add_scopes("openid");
    r.set_token_endpoint_auth_method("client_secret_basic");
    REQUIRE(service.CreatePartnerClient(&ctx, &r, &client).ok());
  }
  v1::RegisterRequest reg;
  reg.set_email(base.email);
  reg.set_password(kPassword);
  reg.set_display_name("Anna Muster");
  v1::RegisterResponse registered;
  REQUIRE(service.Register(&ctx, &reg, &registered).ok());
  auto account = store->FindByEmail("09564000", base.email);
  REQUIRE(account.ok());
  REQUIRE(schema.pool().Transact([&](pqxx::work& tx) { return store->MarkVerified(tx, account->account.id()); }).ok());
  v1::LoginRequest login;
  login.set_email(base.email);
  login.set_password(kPassword);
  login.set_client_ip(base.ip);
  v1::LoginResponse session;
  REQUIRE(service.Login(&ctx, &login, &session).ok());

  const auto authorize = [&](std::map<std::string, std::string> extra) {
    auto params = base.Params(client.client().client_id());
    params["scope"] = "openid";
    for (const auto& [k, v] : extra) params[k] = v;
    v1::AuthorizeRequest req;
    for (const auto& [k, v] : params) (*req.mutable_params())[k] = v;
    req.set_session_id(session.session_id());
    v1::AuthorizeResponse out;
    REQUIRE(service.Authorize(&ctx, &req, &out).ok());
    return out;
  };
  auto r = authorize({{"acr_values", "substantial"}});
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_STEP_UP);
  CHECK(r.interaction().required_level() == v1::ASSURANCE_LEVEL_SUBSTANTIAL);
  // The lowest level named is the minimum.
  r = authorize({{"claims", R"({"id_token":{"acr":{"essential":true,"values":["high","substantial"]}}})"}});
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().required_level() == v1::ASSURANCE_LEVEL_SUBSTANTIAL);
  // With prompt=none: interaction_required. Above what any provider gives: unmet.
  r = authorize({{"acr_values", "substantial"}, {"prompt", "none"}});
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri())["error"] == "interaction_required");
  r = authorize({{"acr_values", "high"}});
  REQUIRE(r.has_redirect_uri());
  CHECK(Query(r.redirect_uri())["error"] == "unmet_authentication_requirements");
  // An optional acr claim (not essential) asks for nothing.
  r = authorize({{"claims", R"({"id_token":{"acr":{"values":["high"]}}})"}});
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().kind() == v1::Interaction::KIND_CONSENT);
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {

TEST_CASE("openid provider: log-in on the page is throttled like the Login RPC", "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  f.Person();
  auto r = f.Authorize(f.Params(client.client().client_id()), "");
  REQUIRE(r.has_interaction());
  const auto page = r.interaction();
  std::string problem;
  int retry = 0;
  for (int i = 0; i < 4 && problem != "throttled"; ++i) {
    r = f.Continue(page, "", v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED,
                   "wrong password " + std::to_string(i));
    REQUIRE(r.has_interaction());
    CHECK_FALSE(r.has_login());
    problem = r.interaction().problem();
    retry = r.interaction().retry_after_seconds();
  }
  CHECK(problem == "throttled");
  CHECK(retry > 0);
  // Throttled, the right password gets no session either.
  r = f.Continue(page, "", v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED, kPassword);
  CHECK_FALSE(r.has_login());
  REQUIRE(r.has_interaction());
  CHECK(r.interaction().problem() == "throttled");
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {

TEST_CASE("openid provider: a partner's JWKS URI is fetched, cached, and not hammered while it fails",
          "[integration]") {
  Fixture f;
  // The partners' key sets on loopback: /good answers the key set, /bad fails; each counts.
  std::atomic<int> good_hits{0}, bad_hits{0};
  const std::string set = nlohmann::json{{"keys", {f.partner_key.Jwk()}}}.dump();
  httplib::Server server;
  server.Get("/good", [&](const httplib::Request&, httplib::Response& res) {
    ++good_hits;
    res.set_content(set, "application/json");
  });
  server.Get("/bad", [&](const httplib::Request&, httplib::Response& res) {
    ++bad_hits;
    res.status = 503;
  });
  const uint16_t port = testing::FreePort();
  std::thread thread([&] { server.listen("127.0.0.1", port); });
  REQUIRE(testing::Eventually([&] { return server.is_running(); }, std::chrono::seconds(5)));
  struct Stop {
    httplib::Server& s;
    std::thread& t;
    ~Stop() {
      s.stop();
      t.join();
    }
  } stop{server, thread};
  const auto point_keys_at = [&](const std::string& client_id, const std::string& path) {
    REQUIRE(f.schema.pool()
                .Transact([&](pqxx::work& tx) {
                  tx.exec_params("UPDATE partner_clients SET jwks = NULL, jwks_uri = $1 WHERE id = $2::uuid",
                                 "http://127.0.0.1:" + std::to_string(port) + path, client_id);
                  return absl::OkStatus();
                })
                .ok());
  };
  const auto good = f.Partner("private_key_jwt");
  const auto bad = f.Partner("private_key_jwt");
  point_keys_at(good.client().client_id(), "/good");
  point_keys_at(bad.client().client_id(), "/bad");
  auto person = f.Person();
  const auto exchange = [&](const v1::PartnerClientCredentials& c, v1::TokenResponse* out) {
    f.verifier = auth::RandomToken(32);
    const std::string id = c.client().client_id();
    return f.Token({{"grant_type", "authorization_code"},
                    {"code", f.Code(id, person.session_id())},
                    {"redirect_uri", kRedirect},
                    {"code_verifier", f.verifier},
                    {"client_assertion_type", kJwtBearer},
                    {"client_assertion", f.partner_key.Assertion(id)}},
                   "", out);
  };
  // Fetched once, then from the cache.
  v1::TokenResponse tokens;
  REQUIRE(exchange(good, &tokens).ok());
  REQUIRE(exchange(good, &tokens).ok());
  CHECK(good_hits.load() == 1);
  // A failing key set: invalid_client, and anyone naming the client (its id is public)
  // does not make us fetch again and again (each fetch may take seconds).
  for (int i = 0; i < 4; ++i) {
    CheckRefused(exchange(bad, &tokens), grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  }
  CHECK(bad_hits.load() == 1);
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {

TEST_CASE("openid provider: a grant ends no later than the session it came from would (upstream limits hold)",
          "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  auto person = f.Person();
  // The session ends in 120 s (as a SAML SessionNotOnOrAfter caps a step-up's session).
  const int64_t ends = absl::ToUnixSeconds(absl::Now()) + 120;
  REQUIRE(f.redis.Command({"HSET", "sp:session:" + SessionStore::Ref(person.session_id()), "abs", std::to_string(ends)})
              .ok());
  v1::TokenResponse tokens;
  REQUIRE(f.Exchange(client, f.Code(client.client().client_id(), person.session_id()), &tokens).ok());
  v1::IntrospectTokenRequest req;
  req.set_authorization(Fixture::Basic(client));
  req.set_token(tokens.refresh_token());
  v1::IntrospectTokenResponse out;
  REQUIRE(f.service.IntrospectToken(&f.ctx, &req, &out).ok());
  REQUIRE(out.active());
  CHECK(google::protobuf::util::TimeUtil::TimestampToSeconds(out.token().expires_at()) <= ends);
  // Past that moment the grant is gone with all its tokens.
  f.offset->store(121);
  v1::AccessTokenInfo info;
  CheckRefused(f.Resolve(tokens.access_token(), &info), grpc::StatusCode::UNAUTHENTICATED, "invalid_token");
  v1::TokenResponse refreshed;
  CheckRefused(f.Refresh(client, tokens.refresh_token(), &refreshed), grpc::StatusCode::INVALID_ARGUMENT,
               "invalid_grant");
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {

TEST_CASE("openid provider: a code issued before its session's log-out (or log-out everywhere) makes no grant",
          "[integration]") {
  Fixture f;
  const auto client = f.Partner();
  f.Person();
  v1::TokenResponse tokens;
  for (const bool everywhere : {false, true}) {
    INFO("everywhere " << everywhere);
    auto session = f.Login();
    f.verifier = auth::RandomToken(32);
    const std::string code = f.Code(client.client().client_id(), session.session_id());
    // The person logs out while the partner's callback is still on its way.
    v1::LogoutRequest logout;
    logout.set_session_id(session.session_id());
    v1::LogoutResponse out;
    REQUIRE((everywhere ? f.service.LogoutAll(&f.ctx, &logout, &out) : f.service.Logout(&f.ctx, &logout, &out)).ok());
    CheckRefused(f.Exchange(client, code, &tokens), grpc::StatusCode::INVALID_ARGUMENT, "invalid_grant");
  }
  // A session begun after the log-out everywhere gives codes that work.
  auto fresh = f.Login();
  f.verifier = auth::RandomToken(32);
  REQUIRE(f.Exchange(client, f.Code(client.client().client_id(), fresh.session_id()), &tokens).ok());
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {
namespace {

// Counts the connections made to a loopback port, whatever is sent over them (TLS or not).
struct Listener {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  uint16_t port = 0;
  std::atomic<int> accepted{0};
  std::atomic<bool> stop{false};
  std::thread thread;

  Listener() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    thread = std::thread([this] {
      while (!stop) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        const int c = accept(fd, nullptr, nullptr);
        if (c < 0) continue;
        ++accepted;
        close(c);
      }
    });
  }
  ~Listener() {
    stop = true;
    thread.join();
    close(fd);
  }
};

// Partner URLs whose hosts are not on the public internet: private, link-local (cloud
// metadata), loopback by IPv6 literal, by name over https, and by http (a test deployment).
std::vector<std::string> InwardUris(const Listener& l) {
  const std::string p = std::to_string(l.port);
  return {"https://10.0.0.1/jwks",         "https://169.254.169.254/latest/meta-data/",
          "https://[::1]:" + p + "/jwks",  "https://localhost:" + p + "/jwks",
          "https://127.0.0.1:" + p + "/x", "http://127.0.0.1:" + p + "/jwks",
          "https://[::ffff:10.1.2.3]/jwks"};
}

}  // namespace

TEST_CASE("openid provider: partner URLs on non-public addresses are refused before any connection", "[integration]") {
  Listener listener;
  net::EgressPolicy none;
  none.allow_http = true;
  fetch::Limits limits;
  limits.timeout = std::chrono::seconds(3);
  for (const auto& uri : InwardUris(listener)) {
    INFO(uri);
    auto answer = fetch::FetchPartner(uri, none, {}, nullptr, limits);
    REQUIRE_FALSE(answer.ok());
    CHECK(answer.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(std::string(answer.status().message()).find("which is not allowed") != std::string::npos);
  }
  CHECK(listener.accepted.load() == 0);
  // An allowed network is reached (here: a TLS handshake with something that is not a
  // TLS server, which fails after the connection was made).
  net::EgressPolicy loopback = none;
  loopback.allowed = {*net::ParseNetwork("127.0.0.0/8")};
  auto reached = fetch::FetchPartner("https://127.0.0.1:" + std::to_string(listener.port) + "/jwks", loopback, {},
                                     nullptr, limits);
  CHECK_FALSE(reached.ok());
  CHECK(reached.status().code() == absl::StatusCode::kUnavailable);
  CHECK(listener.accepted.load() == 1);
  // http:// to a public address is not allowed even where http is (development only).
  auto plain = fetch::FetchPartner("http://192.0.2.1/jwks", loopback, {}, nullptr, limits);
  CHECK(plain.status().code() != absl::StatusCode::kOk);
  CHECK(listener.accepted.load() == 1);
}

TEST_CASE("openid provider: a partner's key set on a non-public address is not fetched (invalid_client)",
          "[integration]") {
  Fixture f(false);
  Listener listener;
  auto person = f.Person();
  for (const auto& uri : InwardUris(listener)) {
    INFO(uri);
    const auto client = f.Partner("private_key_jwt");
    const std::string id = client.client().client_id();
    REQUIRE(f.schema.pool()
                .Transact([&](pqxx::work& tx) {
                  tx.exec_params("UPDATE partner_clients SET jwks = NULL, jwks_uri = $1 WHERE id = $2::uuid", uri, id);
                  return absl::OkStatus();
                })
                .ok());
    f.verifier = auth::RandomToken(32);
    v1::TokenResponse tokens;
    CheckRefused(f.Token({{"grant_type", "authorization_code"},
                          {"code", f.Code(id, person.session_id())},
                          {"redirect_uri", kRedirect},
                          {"code_verifier", f.verifier},
                          {"client_assertion_type", kJwtBearer},
                          {"client_assertion", f.partner_key.Assertion(id)}},
                         "", &tokens),
                 grpc::StatusCode::UNAUTHENTICATED, "invalid_client");
  }
  CHECK(listener.accepted.load() == 0);
}

TEST_CASE("openid provider: back-channel log-out to a non-public address is refused and given up at once",
          "[integration]") {
  Fixture f(false);
  Listener listener;
  const auto a = f.Partner();
  f.Person();
  for (const auto& uri : InwardUris(listener)) {
    INFO(uri);
    PointBackchannelAt(f, a.client().client_id(), uri);
    auto session = f.Login();
    f.verifier = auth::RandomToken(32);
    v1::TokenResponse tokens;
    REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), session.session_id()), &tokens).ok());
    v1::LogoutRequest logout;
    logout.set_session_id(session.session_id());
    v1::LogoutResponse out;
    REQUIRE(f.service.Logout(&f.ctx, &logout, &out).ok());
    auto n = f.op().DeliverBackchannelLogouts();
    REQUIRE(n.ok());
    CHECK(*n == 1);
    const std::string where = absl::StrCat(" FROM op_backchannel_deliveries WHERE uri = '", uri, "'");
    CHECK(testing::QueryValue(f.schema.pool(), "SELECT last_error" + where).find("which is not allowed") !=
          std::string::npos);
    CHECK(Count(f, "SELECT attempts" + where) == 1);
    CHECK(Count(f, "SELECT count(*)" + where + " AND gave_up_at IS NOT NULL AND delivered_at IS NULL") == 1);
    // Not tried again.
    n = f.op().DeliverBackchannelLogouts();
    REQUIRE(n.ok());
    CHECK(*n == 0);
  }
  CHECK(listener.accepted.load() == 0);
}

TEST_CASE("openid provider: back-channel log-out reaches a non-public network that is allowed", "[integration]") {
  Receiver receiver;
  {
    // Not allowed: not sent.
    Fixture f(false);
    const auto a = f.Partner();
    PointBackchannelAt(f, a.client().client_id(), receiver.Uri());
    auto person = f.Person();
    v1::TokenResponse tokens;
    REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &tokens).ok());
    v1::LogoutRequest logout;
    logout.set_session_id(person.session_id());
    v1::LogoutResponse out;
    REQUIRE(f.service.Logout(&f.ctx, &logout, &out).ok());
    REQUIRE(f.op().DeliverBackchannelLogouts().ok());
    CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE gave_up_at IS NOT NULL") == 1);
  }
  CHECK(receiver.Count() == 0);
  // 127.0.0.1 allowed (STADTPORTAL_OP_ALLOWED_NETWORKS=127.0.0.1): delivered.
  Fixture f(true);
  const auto a = f.Partner();
  PointBackchannelAt(f, a.client().client_id(), receiver.Uri());
  auto person = f.Person();
  v1::TokenResponse tokens;
  REQUIRE(f.Exchange(a, f.Code(a.client().client_id(), person.session_id()), &tokens).ok());
  v1::LogoutRequest logout;
  logout.set_session_id(person.session_id());
  v1::LogoutResponse out;
  REQUIRE(f.service.Logout(&f.ctx, &logout, &out).ok());
  auto n = f.op().DeliverBackchannelLogouts();
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(receiver.Count() == 1);
  CHECK(Count(f, "SELECT count(*) FROM op_backchannel_deliveries WHERE delivered_at IS NOT NULL") == 1);
}

}  // namespace stadtportal::identity

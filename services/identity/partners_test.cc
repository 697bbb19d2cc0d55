#include "services/identity/partners.h"

#include <catch2/catch.hpp>

#include "libs/grpc/handler.h"
#include "libs/status/status.h"
#include "libs/testing/testing.h"
#include "services/identity/service.h"

namespace stadtportal::identity {
namespace {

// Public keys made for these tests (and one private key, which must be refused).
constexpr char kRsa2048[] =
    R"({"kty":"RSA","kid":"rsa-1","n":"2SN6fte1wn5LRQ3fCs_hF07pIireQkzAYEKqWmcXnZRdUce0EyNCH-aCv5TlUxhJWsJ36Ykqhby3Mi3eKNBEELDZeviVwIpjxeWc2KFSmcWN2ceGBuj1KpE8jcdg9S1xyt5COGk7Hbk6aDu-DMtRBVuI70hcT3jdMcjMs1YBFMxj04EDZmSR0N4qarBzJ5kzQKWT7iUvxXxQV2FIzaxTHsgI7WFCYItFjljq0ba4YDtu2NUKkeZktOA7H_b6knLrMauf3kd3Llo3RxcpfM7UUdrmB-IQm1n2cAkDrLUTXQINndyWtD5EGVAFgJw3tUI1ARBueavOhAM315e5A70ZvQ","e":"AQAB"})";
constexpr char kRsa1024[] =
    R"({"kty":"RSA","kid":"rsa-weak","n":"wlSS48D9rz-WnT0y7aM713O-1SHSbMeaD_MXQRqXVe0XFSFif4A1aJXfRqyFTwhssrokKMxJyTzMn6JAmHvExBn4UB5iOPjBIDjoqvrdOhi4RCMaKgbv8FM_LnoFj1FD5T4kQW4lGlYlkq-BrauhxExX3yB_Y1t-iYina2wemZ8","e":"AQAB"})";
constexpr char kEc256[] =
    R"({"kty":"EC","crv":"P-256","kid":"ec-1","x":"Blrtv_-hGfeGzpHlUY5MFy-uWqundGkLsYpfaMg9l90","y":"hRWfmbyUMhpPVEzjCs9cOIZ97XZx90guBGJUZBAUEh8"})";
// The same x with another y: not a point on the curve.
constexpr char kEcOffCurve[] =
    R"({"kty":"EC","crv":"P-256","kid":"ec-bad","x":"Blrtv_-hGfeGzpHlUY5MFy-uWqundGkLsYpfaMg9l90","y":"hRWgmbyUMhpPVEzjCs9cOIZ97XZx90guBGJUZBAUEh8"})";
constexpr char kEc384[] =
    R"({"kty":"EC","crv":"P-384","kid":"ec-384","x":"gOIZADWiKX0YTjaUv3-SV8lhCLxjQ7iIrlWwibpMPxhszF8Nq2gFZbBv18PLFWkq","y":"-DiJJ1iDbWccZJ7Lk80oDCAolqT5EjCQ7nCfruHPyq8esUWK-oRkg9itBfirkHo1"})";
constexpr char kRsaPrivate[] =
    R"({"kty":"RSA","kid":"rsa-priv","n":"3PwyJAaePTncyK9fvIdOsDjAjwZuT0-W-o4jeyYDkqYRzDaN9vVf6QQIww-383KpfGcu4yXTPVgb5WIPNU1OILdNJfh74hcBa7Ax5UOHSrWyf1fM3hWQ42a5BkuL0sxKoiuYcytyilgarWDokj8MTUsDmFeEJ15mEiYzJCri9KVKWwnbx6eDLl-IupiLaeIlQlsUkDhJkzUrCfgj0uF2tIgxePab3nj5kNmyZJJyVTCQMk2YPIItfcWvnB9BZ19JQg3h7obInc0Tyfy9ThuPSlnU57Gtb3_88VnDOjXTQ9s7zzMspkb2zFOwIwLQRNKGNxcKemkYWxrTgJGJJHL_qQ","e":"AQAB","d":"F_Hex_8MleNHbFpuY_oAWYFowganHMJpwF_28cDaecEzY_6UTupjGFdW0LYLD17BBSkUEEpYs4iwyx_fOH4WJV7fRepBGCw4e-_1VBuHVR3Ph9NecEEDeFR433j_n1mCC8TwCaivSlTGHTvHL5OT1Gs4qkDvYamtozFO8NAR1ALCX08CscdQQjH1ak-LI3ocz28ASFkyPb1xzM2VY93mgm67mez_h1fF1rmacBL25QD4rGZcJ-jUPXgaTvAsy8-Qr6RVptcEWPOBfBAnSdDcdBCKBPmG9jxCcAWuc7HUNCpFi8NeHLAZbX2Sd4T-QWfxQ_8JSWwcvEORsULAgeGi5Q"})";

std::string Jwks(std::initializer_list<const char*> keys) {
  nlohmann::json set = {{"keys", nlohmann::json::array()}};
  for (const char* k : keys) set["keys"].push_back(nlohmann::json::parse(k));
  return set.dump();
}

auth::Caller Admin(const std::string& tenant = "09564000") {
  auth::Caller c;
  c.account_id = "77777777-7777-4777-8777-777777777777";
  c.tenant = tenant;
  c.roles = {"tenant-admin"};
  c.session_ref = "partner-admin-ref";
  return c;
}

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  Service service;
  grpc::ServerContext ctx;

  explicit Fixture(Options options = {}) : service(store, redis, options) {}

  static v1::CreatePartnerClientRequest Valid() {
    v1::CreatePartnerClientRequest r;
    r.set_name("Landesportal Bayern");
    r.add_redirect_uris("https://partner.example/callback?portal=1");
    r.add_post_logout_redirect_uris("https://partner.example/bye");
    r.set_backchannel_logout_uri("https://partner.example/backchannel");
    for (const char* s : {"openid", "profile", "submissions:read"}) r.add_scopes(s);
    r.set_token_endpoint_auth_method("client_secret_basic");
    return r;
  }

  grpc::Status Create(const v1::CreatePartnerClientRequest& req, v1::PartnerClientCredentials* out) {
    return service.CreatePartnerClient(&ctx, &req, out);
  }

  // The field violations of a refused registration, as "field: code".
  std::vector<std::string> Refusals(const v1::CreatePartnerClientRequest& req) {
    v1::PartnerClientCredentials out;
    auto s = Create(req, &out);
    if (s.error_code() != grpc::StatusCode::INVALID_ARGUMENT) return {"not refused: " + s.error_message()};
    std::vector<std::string> found;
    for (const auto& v : status::FieldViolations(status::FromGrpc(s))) found.push_back(v.field + ": " + v.code);
    return found;
  }

  int64_t Count(const std::string& sql) {
    int64_t n = 0;
    REQUIRE(schema.pool()
                .Read([&](pqxx::nontransaction& tx) {
                  n = tx.exec1(sql)[0].as<int64_t>();
                  return absl::OkStatus();
                })
                .ok());
    return n;
  }

  std::vector<v1::AuditEntry> Audit(const std::string& action) {
    v1::ListAuditLogRequest req;
    req.set_action(action);
    v1::ListAuditLogResponse resp;
    REQUIRE(service.ListAuditLog(&ctx, &req, &resp).ok());
    return {resp.entries().begin(), resp.entries().end()};
  }
};

}  // namespace

TEST_CASE("partner clients: hostile registrations are refused, each field named", "[integration]") {
  Fixture f;
  grpcx::TestCaller admin(Admin());
  using Edit = std::function<void(v1::CreatePartnerClientRequest&)>;
  const auto uri = [](std::string u) { return [u](v1::CreatePartnerClientRequest& r) { r.set_redirect_uris(0, u); }; };
  const auto jwt = [](std::string jwks) {
    return [jwks](v1::CreatePartnerClientRequest& r) {
      r.set_token_endpoint_auth_method("private_key_jwt");
      r.set_jwks_json(jwks);
    };
  };
  const std::vector<std::pair<std::string, Edit>> cases = {
      {"name: required", [](auto& r) { r.clear_name(); }},
      {"name: invalid", [](auto& r) { r.set_name(std::string(101, 'a')); }},
      {"name: control_characters", [](auto& r) { r.set_name("Portal\r\nBcc: x"); }},
      {"redirect_uris: required", [](auto& r) { r.clear_redirect_uris(); }},
      {"redirect_uris[0]: not_https", uri("http://partner.example/cb")},
      {"redirect_uris[0]: not_https", uri("ftp://partner.example/cb")},
      {"redirect_uris[0]: invalid", uri("/relative/cb")},
      {"redirect_uris[0]: invalid", uri("javascript:alert(1)")},
      {"redirect_uris[0]: invalid", uri("https:///cb")},
      {"redirect_uris[0]: invalid", uri("https://partner.example:99999/cb")},
      {"redirect_uris[0]: invalid", uri("https://partner.example/c b")},
      {"redirect_uris[0]: invalid", uri("https://partner.example\\@evil.example/")},
      {"redirect_uris[0]: invalid", uri("https://pärtner.example/cb")},
      {"redirect_uris[0]: fragment", uri("https://partner.example/cb#x")},
      {"redirect_uris[0]: user_info", uri("https://user:pw@partner.example/cb")},
      {"redirect_uris[0]: user_info", uri("https://evil.example@partner.example/cb")},
      {"redirect_uris[0]: wildcard", uri("https://*.partner.example/cb")},
      {"redirect_uris[0]: too_long", uri("https://partner.example/" + std::string(500, 'a'))},
      {"redirect_uris[1]: duplicate", [](auto& r) { r.add_redirect_uris(r.redirect_uris(0)); }},
      {"redirect_uris: too_many",
       [](auto& r) {
         for (int i = 0; i < 10; ++i) r.add_redirect_uris("https://partner.example/" + std::to_string(i));
       }},
      {"post_logout_redirect_uris[1]: not_https",
       [](auto& r) { r.add_post_logout_redirect_uris("http://partner.example/bye"); }},
      {"backchannel_logout_uri: not_https",
       [](auto& r) { r.set_backchannel_logout_uri("http://127.0.0.1:9000/logout"); }},
      {"backchannel_logout_uri: fragment",
       [](auto& r) { r.set_backchannel_logout_uri("https://partner.example/logout#x"); }},
      {"scopes[3]: unknown_scope", [](auto& r) { r.add_scopes("admin"); }},
      {"scopes[3]: duplicate", [](auto& r) { r.add_scopes("profile"); }},
      {"scopes: openid_required",
       [](auto& r) {
         r.clear_scopes();
         r.add_scopes("profile");
       }},
      {"token_endpoint_auth_method: invalid", [](auto& r) { r.set_token_endpoint_auth_method("none"); }},
      {"token_endpoint_auth_method: required", [](auto& r) { r.clear_token_endpoint_auth_method(); }},
      {"jwks: not_allowed", [](auto& r) { r.set_jwks_json(Jwks({kEc256})); }},
      {"jwks: required", jwt("")},
      {"jwks: jwks_or_jwks_uri",
       [&](auto& r) {
         jwt(Jwks({kEc256}))(r);
         r.set_jwks_uri("https://partner.example/jwks");
       }},
      {"jwks_uri: not_https",
       [&](auto& r) {
         jwt("")(r);
         r.set_jwks_uri("http://partner.example/jwks");
       }},
      {"jwks: invalid", jwt("not json")},
      {"jwks: invalid", jwt("[]")},
      {"jwks: invalid", jwt(R"({"keys": {}})")},
      {"jwks: no_keys", jwt(R"({"keys": []})")},
      {"jwks: private_key", jwt(Jwks({kRsaPrivate}))},
      {"jwks: private_key", jwt(R"({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]})")},
      {"jwks: invalid",
       jwt(R"({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "HS256", "x": "Blrtv_-hGfeGzpHlUY5MFy-uWqundGkLsYpfaMg9l90", "y": "hRWfmbyUMhpPVEzjCs9cOIZ97XZx90guBGJUZBAUEh8"}]})")},
      {"jwks: invalid",
       jwt(R"({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "enc", "x": "Blrtv_-hGfeGzpHlUY5MFy-uWqundGkLsYpfaMg9l90", "y": "hRWfmbyUMhpPVEzjCs9cOIZ97XZx90guBGJUZBAUEh8"}]})")},
      {"jwks: weak_key", jwt(Jwks({kRsa1024}))},
      {"jwks: weak_key", jwt(Jwks({kEc384}))},
      {"jwks: weak_key", jwt(Jwks({kEcOffCurve}))},
      {"jwks: kid", jwt(R"({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]})")},
      {"jwks: kid", jwt(Jwks({kEc256, kEc256}))},
      {"jwks: too_many_keys", jwt([] {
         nlohmann::json set = {{"keys", nlohmann::json::array()}};
         for (int i = 0; i < 11; ++i) {
           auto k = nlohmann::json::parse(kEc256);
           k["kid"] = "k" + std::to_string(i);
           set["keys"].push_back(k);
         }
         return set.dump();
       }())},
      {"jwks: too_large", jwt(R"({"keys": [], "pad": ")" + std::string(33 * 1024, 'a') + "\"}")},
  };
  for (const auto& [expected, edit] : cases) {
    INFO(expected);
    auto req = Fixture::Valid();
    edit(req);
    CHECK(f.Refusals(req) == std::vector<std::string>{expected});
  }
  // Several problems at once: each listed.
  auto req = Fixture::Valid();
  req.clear_name();
  req.set_redirect_uris(0, "https://partner.example/#");
  req.clear_scopes();
  CHECK(f.Refusals(req) ==
        std::vector<std::string>{"name: required", "redirect_uris[0]: fragment", "scopes: openid_required"});
  CHECK(f.Count("SELECT count(*) FROM partner_clients") == 0);
  CHECK(f.Audit("partner_client.create").empty());

  // Loopback http for partners under development; every URI kept exactly as given.
  req = Fixture::Valid();
  req.set_redirect_uris(0, "http://127.0.0.1:8400/cb?x=%2F");
  req.add_redirect_uris("http://127.0.0.1/cb");
  req.add_redirect_uris("HTTPS://partner.example/cb");
  CHECK(f.Refusals(req) == std::vector<std::string>{"redirect_uris[2]: not_https"});
  req.mutable_redirect_uris()->RemoveLast();
  // All redirect URIs on the first one's host (its sector: the pairwise subjects): a
  // partner naming another partner's host first would get that partner's subjects.
  {
    auto hosts = req;
    hosts.add_redirect_uris("http://localhost/cb");
    CHECK(f.Refusals(hosts) == std::vector<std::string>{"redirect_uris[2]: another_host"});
    hosts = Fixture::Valid();
    hosts.set_redirect_uris(0, "https://landesportal.example/cb");
    hosts.add_redirect_uris("https://evil.example/cb");
    hosts.add_redirect_uris("https://LANDESPORTAL.example:8443/cb");
    CHECK(f.Refusals(hosts) == std::vector<std::string>{"redirect_uris[1]: another_host"});
  }
  req.set_token_endpoint_auth_method("private_key_jwt");
  req.set_jwks_json(Jwks({kRsa2048, kEc256}));
  v1::PartnerClientCredentials out;
  REQUIRE(f.Create(req, &out).ok());
  CHECK(out.client_secret().empty());
  CHECK(std::vector<std::string>(out.client().redirect_uris().begin(), out.client().redirect_uris().end()) ==
        std::vector<std::string>{"http://127.0.0.1:8400/cb?x=%2F", "http://127.0.0.1/cb"});
  CHECK(nlohmann::json::parse(out.client().jwks_json()) == nlohmann::json::parse(Jwks({kRsa2048, kEc256})));
}

TEST_CASE("partner clients: back-channel URIs on loopback only in a development deployment", "[integration]") {
  auto with = [](const std::string& uri) {
    auto r = Fixture::Valid();
    r.set_backchannel_logout_uri(uri);
    return r;
  };
  Options development;
  development.loopback_backchannel = true;
  Fixture f(development);
  grpcx::TestCaller admin(Admin());
  v1::PartnerClientCredentials out;
  CHECK(f.Create(with("http://127.0.0.1:9000/logout"), &out).ok());
  CHECK(out.client().backchannel_logout_uri() == "http://127.0.0.1:9000/logout");
  CHECK(f.Refusals(with("http://partner.example/logout")) ==
        std::vector<std::string>{"backchannel_logout_uri: not_https"});
  CHECK(f.Refusals(with("http://127.0.0.1.evil.example/logout")) ==
        std::vector<std::string>{"backchannel_logout_uri: not_https"});
  // Production (the default, as in the case above): https only, loopback too.
  using Values = std::map<std::string, std::string>;
  CHECK_FALSE(Options::FromEnv(config::Env(Values{}), "09564000").loopback_backchannel);
  CHECK(Options::FromEnv(config::Env(Values{{"STADTPORTAL_ALLOW_TEST_PROVIDERS", "true"}}), "09564000")
            .loopback_backchannel);
}

TEST_CASE("partner clients: a secret shown once and kept hashed; disable, enable, rotate; all audited",
          "[integration]") {
  Fixture f;
  grpcx::TestCaller admin(Admin());
  v1::PartnerClientCredentials created;
  REQUIRE(f.Create(Fixture::Valid(), &created).ok());
  const std::string id = created.client().client_id();
  const std::string secret = created.client_secret();
  REQUIRE(secret.size() >= 40);
  CHECK(created.client().token_endpoint_auth_method() == "client_secret_basic");
  CHECK(created.client().scopes_size() == 3);
  CHECK_FALSE(created.client().disabled());
  // Only the SHA-256 is stored; the secret is nowhere in the row.
  CHECK(f.Count("SELECT count(*) FROM partner_clients WHERE secret_hash = encode(sha256('" + secret +
                "'::bytea), 'hex')") == 1);
  CHECK(f.Count("SELECT count(*) FROM partner_clients WHERE strpos(row_to_json(partner_clients)::text, '" + secret +
                "') > 0") == 0);

  // Reading never shows a secret.
  v1::GetPartnerClientRequest get;
  get.set_client_id(id);
  v1::PartnerClient read;
  REQUIRE(f.service.GetPartnerClient(&f.ctx, &get, &read).ok());
  CHECK(read.name() == "Landesportal Bayern");
  CHECK(read.backchannel_logout_uri() == "https://partner.example/backchannel");
  CHECK(read.DebugString().find(secret) == std::string::npos);

  v1::SetPartnerClientDisabledRequest disable;
  disable.set_client_id(id);
  disable.set_disabled(true);
  v1::PartnerClient state;
  REQUIRE(f.service.SetPartnerClientDisabled(&f.ctx, &disable, &state).ok());
  CHECK(state.disabled());
  REQUIRE(f.service.GetPartnerClient(&f.ctx, &get, &read).ok());
  CHECK(read.disabled());
  disable.set_disabled(false);
  REQUIRE(f.service.SetPartnerClientDisabled(&f.ctx, &disable, &state).ok());
  CHECK_FALSE(state.disabled());

  // A secret client gets a new secret; it brings no keys.
  v1::RotatePartnerClientCredentialsRequest rotate;
  rotate.set_client_id(id);
  rotate.set_jwks_json(Jwks({kEc256}));
  v1::PartnerClientCredentials rotated;
  CHECK(f.service.RotatePartnerClientCredentials(&f.ctx, &rotate, &rotated).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  rotate.clear_jwks_json();
  REQUIRE(f.service.RotatePartnerClientCredentials(&f.ctx, &rotate, &rotated).ok());
  CHECK_FALSE(rotated.client_secret().empty());
  CHECK(rotated.client_secret() != secret);
  CHECK(f.Count("SELECT count(*) FROM partner_clients WHERE secret_hash = encode(sha256('" + secret +
                "'::bytea), 'hex')") == 0);
  CHECK(f.Count("SELECT count(*) FROM partner_clients WHERE secret_hash = encode(sha256('" + rotated.client_secret() +
                "'::bytea), 'hex')") == 1);

  // A private_key_jwt client replaces its key set, or moves to a key set URL; hostile
  // keys are refused there too.
  auto jwt = Fixture::Valid();
  jwt.set_token_endpoint_auth_method("private_key_jwt");
  jwt.set_jwks_uri("https://partner.example/jwks.json");
  v1::PartnerClientCredentials signer;
  REQUIRE(f.Create(jwt, &signer).ok());
  CHECK(signer.client_secret().empty());
  CHECK(signer.client().jwks_uri() == "https://partner.example/jwks.json");
  v1::RotatePartnerClientCredentialsRequest rekey;
  rekey.set_client_id(signer.client().client_id());
  v1::PartnerClientCredentials rekeyed;
  CHECK(f.service.RotatePartnerClientCredentials(&f.ctx, &rekey, &rekeyed).error_message() == "jwks: required");
  rekey.set_jwks_json(Jwks({kRsaPrivate}));
  CHECK(f.service.RotatePartnerClientCredentials(&f.ctx, &rekey, &rekeyed).error_message() == "jwks: private_key");
  rekey.set_jwks_json(Jwks({kEc256}));
  REQUIRE(f.service.RotatePartnerClientCredentials(&f.ctx, &rekey, &rekeyed).ok());
  CHECK(rekeyed.client_secret().empty());
  CHECK(rekeyed.client().jwks_uri().empty());
  CHECK(nlohmann::json::parse(rekeyed.client().jwks_json())["keys"][0]["kid"] == "ec-1");

  // Listed, a page at a time.
  v1::ListPartnerClientsRequest list;
  list.mutable_page()->set_page_size(1);
  v1::ListPartnerClientsResponse first, second;
  REQUIRE(f.service.ListPartnerClients(&f.ctx, &list, &first).ok());
  REQUIRE(first.clients_size() == 1);
  REQUIRE_FALSE(first.page().next_page_token().empty());
  list.mutable_page()->set_page_token(first.page().next_page_token());
  REQUIRE(f.service.ListPartnerClients(&f.ctx, &list, &second).ok());
  REQUIRE(second.clients_size() == 1);
  CHECK(second.page().next_page_token().empty());
  CHECK(first.clients(0).client_id() != second.clients(0).client_id());

  // Every change is in the audit log: who, and which client.
  for (const auto& [action, count] :
       std::vector<std::pair<std::string, size_t>>{{"partner_client.create", 2},
                                                   {"partner_client.disable", 1},
                                                   {"partner_client.enable", 1},
                                                   {"partner_client.rotate_credentials", 2}}) {
    INFO(action);
    auto entries = f.Audit(action);
    REQUIRE(entries.size() == count);
    CHECK(entries.back().actor() == Admin().account_id);
    CHECK(entries.back().session_ref() == "partner-admin-ref");
    CHECK(nlohmann::json::parse(entries.back().targets_json())["partner_client_id"] == id);
  }
  // Refused attempts changed nothing and were not recorded as changes.
  CHECK(f.Count("SELECT count(*) FROM audit_log WHERE action LIKE 'partner_client.%'") == 6);
}

TEST_CASE("partner clients: tenant admins of their own tenant only", "[integration]") {
  Fixture f;
  v1::PartnerClientCredentials created;
  {
    grpcx::TestCaller admin(Admin());
    REQUIRE(f.Create(Fixture::Valid(), &created).ok());
  }
  const std::string id = created.client().client_id();
  v1::GetPartnerClientRequest get;
  get.set_client_id(id);
  v1::PartnerClient read;
  v1::SetPartnerClientDisabledRequest disable;
  disable.set_client_id(id);
  disable.set_disabled(true);
  v1::RotatePartnerClientCredentialsRequest rotate;
  rotate.set_client_id(id);
  v1::PartnerClientCredentials rotated;
  v1::ListPartnerClientsRequest list;
  v1::ListPartnerClientsResponse listed;
  {
    grpcx::TestCaller other_tenant(Admin("09162000"));
    CHECK(f.service.GetPartnerClient(&f.ctx, &get, &read).error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(f.service.SetPartnerClientDisabled(&f.ctx, &disable, &read).error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(f.service.RotatePartnerClientCredentials(&f.ctx, &rotate, &rotated).error_code() ==
          grpc::StatusCode::NOT_FOUND);
    REQUIRE(f.service.ListPartnerClients(&f.ctx, &list, &listed).ok());
    CHECK(listed.clients_size() == 0);
  }
  {
    auth::Caller citizen = Admin();
    citizen.roles.clear();
    grpcx::TestCaller as_citizen(citizen);
    CHECK(f.service.GetPartnerClient(&f.ctx, &get, &read).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(f.service.ListPartnerClients(&f.ctx, &list, &listed).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(f.Create(Fixture::Valid(), &rotated).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(f.service.SetPartnerClientDisabled(&f.ctx, &disable, &read).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpcx::TestCaller admin(Admin());
    get.set_client_id("not-a-uuid");
    CHECK(f.service.GetPartnerClient(&f.ctx, &get, &read).error_code() == grpc::StatusCode::NOT_FOUND);
    get.set_client_id(id);
    REQUIRE(f.service.GetPartnerClient(&f.ctx, &get, &read).ok());
    CHECK_FALSE(read.disabled());  // Nothing the others tried took effect.
    CHECK(f.Count("SELECT count(*) FROM audit_log WHERE action LIKE 'partner_client.%'") == 1);
  }
}

}  // namespace stadtportal::identity

#include "services/gateway/service.h"

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "libs/grpc/server.h"

#include "libs/testing/openapi.h"
#include "libs/testing/testing.h"

namespace stadtportal::gateway {
namespace {

// A gateway whose downstream services are all unreachable but `reachable` (name → target);
// `add` adds routes before it starts.
struct Fixture {
  std::unique_ptr<Service> gateway;
  uint16_t port = 0;

  explicit Fixture(const std::map<std::string, std::string>& reachable = {},
                   const std::function<void(Service&)>& add = nullptr) {
    Options o;
    o.http.host = "127.0.0.1";
    o.http.port = 0;
    o.admin_port = testing::FreePort();
    o.http.threads = 4;
    o.edge.max_body_bytes = 64 * 1024;
    o.grpc_deadline = std::chrono::milliseconds(300);
    o.ready_timeout = std::chrono::milliseconds(300);
    for (const std::string name : {"identity", "accounts", "submission", "payment", "messaging", "connector"}) {
      const auto it = reachable.find(name);
      o.downstreams.push_back(
          {name, it != reachable.end() ? it->second : "ipv4:127.0.0.1:" + std::to_string(testing::FreePort()),
           "x." + name});
    }
    auto signer = auth::Signer::FromKey(auth::NewSigningKey("test"), std::chrono::seconds(60));
    REQUIRE(signer.ok());
    gateway = std::make_unique<Service>(o, *signer, nullptr);
    if (add) add(*gateway);
    auto p = gateway->Start();
    REQUIRE(p.ok());
    port = *p;
  }
  ~Fixture() { gateway->Shutdown(); }
};

// Identity as far as resolving callers goes: the session "citizen" of a citizen, the
// session "admin" of a tenant admin who has not passed the second factor; no back-office
// token is valid.
class Sessions final : public identity::v1::IdentityService::Service {
 public:
  grpc::Status ResolveSession(grpc::ServerContext*, const identity::v1::ResolveSessionRequest* req,
                              identity::v1::Session* resp) override {
    if (req->session_id() != "citizen" && req->session_id() != "admin") {
      return {grpc::StatusCode::UNAUTHENTICATED, "session unknown or expired"};
    }
    resp->set_account_id("6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01");
    resp->mutable_tenant()->set_key(config::kDefaultTenant);
    resp->set_session_ref("ref");
    if (req->session_id() == "admin") {
      resp->add_roles("tenant-admin");
      resp->set_second_factor(identity::v1::SECOND_FACTOR_REQUIRED);
    }
    return grpc::Status::OK;
  }
  grpc::Status ResolveClientToken(grpc::ServerContext*, const identity::v1::ResolveClientTokenRequest*,
                                  identity::v1::ClientInfo*) override {
    return {grpc::StatusCode::UNAUTHENTICATED, "unknown token"};
  }
};

}  // namespace

TEST_CASE("the gateway is alive but not ready while services are down, and says which", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  REQUIRE(testing::Eventually([&] { return static_cast<bool>(c.Get("/healthz")); }, std::chrono::seconds(5)));
  auto alive = c.Get("/healthz");
  CHECK(alive->status == 200);

  auto ready = c.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK(ready->get_header_value("Content-Type") == "application/problem+json");
  auto body = nlohmann::json::parse(ready->body);
  CHECK(body["detail"] == "not ready: identity, accounts, submission, payment, messaging, connector");
  CHECK(body["services"]["connector"] != "serving");
  // Which, never why: no transport error, address or port of a downstream in the answer.
  CHECK(body["services"]["connector"] == "not_serving");
  CHECK(ready->body.find("health check") == std::string::npos);
  CHECK(ready->body.find("127.0.0.1") == std::string::npos);
  CHECK(ready->body.find("failed to connect") == std::string::npos);
  CHECK(ready->body.find("addresses") == std::string::npos);
}

TEST_CASE("a route whose service is down fails fast with 503 or 504 problem", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Get("/api/v1/services");
  REQUIRE(r);
  CHECK((r->status == 503 || r->status == 504));
  CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("bad query parameters and unknown routes get problems, not 5xx", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto bad = c.Get("/api/v1/services?page_size=1000", {{"Accept-Language", "en-GB,en;q=0.9"}});
  REQUIRE(bad);
  CHECK(bad->status == 400);
  auto problem = nlohmann::json::parse(bad->body);
  REQUIRE(problem["errors"].size() == 1);
  CHECK(problem["errors"][0]["field"] == "page_size");
  CHECK(problem["errors"][0]["message"] == "The value is not valid.");
  auto unknown = c.Get("/api/v1/nothing");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  auto method = c.Post("/api/v1/services", "{}", "application/json");
  REQUIRE(method);
  CHECK(method->status == 405);
  auto big = c.Post("/api/v1/services", std::string(128 * 1024, 'x'), "application/json");
  REQUIRE(big);
  CHECK(big->status == 413);
}

TEST_CASE("gateway metrics are served on the admin port only, labelled by route template", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  REQUIRE(c.Get("/api/v1/services/some-id"));
  REQUIRE(c.Get("/random/path/12345"));
  // The public port (behind the ingress) does not serve them.
  auto public_metrics = c.Get("/metrics");
  REQUIRE(public_metrics);
  CHECK(public_metrics->status == 404);
  CHECK(public_metrics->body.find("http_server_") == std::string::npos);
  REQUIRE(f.gateway->admin_port() != 0);
  REQUIRE(f.gateway->admin_port() != f.port);
  httplib::Client admin("127.0.0.1", f.gateway->admin_port());
  auto m = admin.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->body.find("operation=\"GET /api/v1/services/{id}\"") != std::string::npos);
  CHECK(m->body.find("operation=\"GET unmatched\"") != std::string::npos);
  CHECK(m->body.find("12345") == std::string::npos);
}

TEST_CASE("the route table refuses callers a route does not take before its handler runs", "[unit]") {
  grpcx::ServerOptions so;
  so.host = "127.0.0.1";
  grpcx::Server identity(so);
  identity.AddService(std::make_unique<Sessions>(), identity::v1::IdentityService::service_full_name());
  REQUIRE(identity.Start().ok());
  std::map<std::string, std::atomic<int>> called;
  for (const char* who : {"session", "admin", "backoffice"}) called[who] = 0;
  Fixture f({{"identity", "ipv4:127.0.0.1:" + std::to_string(identity.port())}}, [&](Service& s) {
    for (const auto& [path, who] : std::vector<std::pair<std::string, Who>>{
             {"session", Who::kSession}, {"admin", Who::kAdmin}, {"backoffice", Who::kBackoffice}}) {
      s.Add({"GET", "/test/" + path, who}, [&called, path = path](Req, Res res, P, const Authenticated&) {
        ++called[path];
        res.status = 204;
      });
    }
    // A handler without a caller cannot be given to a route that needs one, nor the reverse.
    CHECK_THROWS_AS(s.Add({"GET", "/test/wrong", Who::kSession}, Service::AnonymousHandler([](Req, Res, P) {})),
                    std::logic_error);
    CHECK_THROWS_AS(s.Add({"GET", "/test/wrong"}, Service::CallerHandler([](Req, Res, P, const Authenticated&) {})),
                    std::logic_error);
  });
  httplib::Client c("127.0.0.1", f.port);
  auto get = [&](const std::string& path, const std::string& session) {
    httplib::Headers headers;
    if (!session.empty()) headers.emplace("Authorization", "Bearer " + session);
    auto r = c.Get(path.c_str(), headers);
    REQUIRE(r);
    return r->status;
  };
  // No credentials: 401 on every route that needs a caller.
  CHECK(get("/test/session", "") == 401);
  CHECK(get("/test/admin", "") == 401);
  CHECK(get("/test/backoffice", "") == 401);
  CHECK(get("/test/session", "expired") == 401);
  // A citizen's session is no back office's access token.
  CHECK(get("/test/backoffice", "citizen") == 401);
  // An administrator's session before the second factor is refused on administrative routes.
  auto admin = c.Get("/test/admin", {{"Authorization", "Bearer admin"}});
  REQUIRE(admin);
  CHECK(admin->status == 403);
  CHECK(nlohmann::json::parse(admin->body)["second_factor"] == "verify");
  CHECK(called["session"].load() == 0);
  CHECK(called["admin"].load() == 0);
  CHECK(called["backoffice"].load() == 0);
  // The caller the route takes reaches the handler.
  CHECK(get("/test/session", "citizen") == 204);
  CHECK(get("/test/admin", "citizen") == 204);
  CHECK(called["session"].load() == 1);
  CHECK(called["admin"].load() == 1);
  CHECK(called["backoffice"].load() == 0);
  identity.Shutdown();
}

}  // namespace stadtportal::gateway

namespace stadtportal::gateway {

// docs/api/openapi.yaml is the contract: every route served is described, and every
// described operation is served.
TEST_CASE("the gateway serves exactly the routes of docs/api/openapi.yaml", "[unit]") {
  const auto operations = testing::OpenApiOperations(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/openapi.yaml");
  const std::set<std::string> documented(operations.begin(), operations.end());
  CHECK(documented.size() == operations.size());
  Fixture f;
  const auto routes = f.gateway->Routes();
  const std::set<std::string> served(routes.begin(), routes.end());
  CHECK(served.size() == routes.size());
  CHECK(served.size() > 10);
  for (const auto& r : served) CHECK(documented.count(r) == 1);
  for (const auto& d : documented) CHECK(served.count(d) == 1);
}

TEST_CASE("the catalogue cache serves only while live, and never an answer older than a change", "[unit]") {
  bool live = true;
  CatalogueCache cache([&] { return live; }, 3);
  CHECK(cache.Get("a") == nullptr);
  auto g = cache.generation();
  auto a = cache.Put("a", R"({"v":1})", g);
  REQUIRE(cache.Get("a") != nullptr);
  CHECK(cache.Get("a")->body == R"({"v":1})");
  CHECK(a->etag.size() == 34);
  CHECK(a->etag.front() == '"');
  // An answer fetched before a change is handed out but not kept.
  const auto before = cache.generation();
  cache.DropAll();
  CHECK(cache.Get("a") == nullptr);
  auto stale = cache.Put("a", R"({"v":1})", before);
  CHECK(stale->body == R"({"v":1})");
  CHECK(cache.Get("a") == nullptr);
  auto fresh = cache.Put("a", R"({"v":2})", cache.generation());
  CHECK(cache.Get("a")->body == R"({"v":2})");
  CHECK(fresh->etag != a->etag);
  // Not live (no invalidations arrive): nothing served, nothing kept.
  live = false;
  CHECK(cache.Get("a") == nullptr);
  cache.Put("b", "{}", cache.generation());
  live = true;
  CHECK(cache.Get("b") == nullptr);
  // Bounded: a full cache starts over.
  for (const std::string key : {"c", "d", "e"}) cache.Put(key, "{}", cache.generation());
  CHECK(cache.size() <= 3);
}

TEST_CASE("If-None-Match is compared weakly, lists and * included", "[unit]") {
  const std::string etag = "\"0123abcd\"";
  CHECK(EtagMatches(etag, etag));
  CHECK(EtagMatches("W/" + etag, etag));
  CHECK(EtagMatches("\"other\", " + etag, etag));
  CHECK(EtagMatches("*", etag));
  CHECK_FALSE(EtagMatches("", etag));
  CHECK_FALSE(EtagMatches("\"0123abc\"", etag));
  CHECK_FALSE(EtagMatches("0123abcd", etag));
}

}  // namespace stadtportal::gateway

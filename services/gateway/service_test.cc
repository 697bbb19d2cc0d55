#include "services/gateway/service.h"

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
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

// Identity as far as resolving callers goes: the session "citizen" of a citizen (logged
// in long ago), "fresh" of one who logged in just now, the session "admin" of a tenant
// admin who has not passed the second factor; no back-office token is valid.
class Sessions final : public identity::v1::IdentityService::Service {
 public:
  grpc::Status ResolveSession(grpc::ServerContext*, const identity::v1::ResolveSessionRequest* req,
                              identity::v1::Session* resp) override {
    if (req->session_id() != "citizen" && req->session_id() != "admin" && req->session_id() != "fresh") {
      return {grpc::StatusCode::UNAUTHENTICATED, "session unknown or expired"};
    }
    resp->set_account_id("6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01");
    resp->mutable_tenant()->set_key(config::kDefaultTenant);
    resp->set_session_ref("ref");
    if (req->session_id() == "fresh") {
      resp->mutable_authenticated_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) - 5);
    }
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

TEST_CASE("the export and the erasure refuse what they can before asking the services", "[unit]") {
  grpcx::ServerOptions so;
  so.host = "127.0.0.1";
  grpcx::Server identity(so);
  identity.AddService(std::make_unique<Sessions>(), identity::v1::IdentityService::service_full_name());
  REQUIRE(identity.Start().ok());
  Fixture f({{"identity", "ipv4:127.0.0.1:" + std::to_string(identity.port())}});
  httplib::Client c("127.0.0.1", f.port);
  auto as = [](const std::string& session) { return httplib::Headers{{"Authorization", "Bearer " + session}}; };
  auto erase = [&](const std::string& session, const std::string& body) {
    auto r = c.Delete("/api/v1/me", session.empty() ? httplib::Headers{} : as(session), body, "application/json");
    REQUIRE(r);
    return r->status;
  };
  const std::string confirm = R"({"confirm":"anna@example.de"})";

  // No session: 401.
  auto r = c.Get("/api/v1/me/export");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(erase("", confirm) == 401);
  CHECK(erase("expired", confirm) == 401);

  // A format that is none.
  for (const char* query : {"?format=bogus", "?format=", "?format=zip&format=json", "?format=ZIP"}) {
    INFO(query);
    r = c.Get((std::string("/api/v1/me/export") + query).c_str(), as("fresh"));
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  }

  // Bodies that are no confirmation: not JSON, no confirm, not a string, too large.
  CHECK(erase("citizen", "confirm=anna@example.de") == 400);
  CHECK(erase("citizen", "{}") == 422);
  CHECK(erase("citizen", R"({"confirm": 42})") == 422);
  CHECK(erase("citizen", R"({"confirm": ["anna@example.de"]})") == 422);
  CHECK(erase("citizen", R"({"confirm":")" + std::string(70 * 1024, 'a') + R"("})") == 413);

  // A log-in older than ten minutes: 403 asking to log in again, for both.
  for (const bool export_ : {true, false}) {
    r = export_ ? c.Get("/api/v1/me/export", as("citizen"))
                : c.Delete("/api/v1/me", as("citizen"), confirm, "application/json");
    REQUIRE(r);
    CHECK(r->status == 403);
    const auto problem = nlohmann::json::parse(r->body);
    CHECK(problem["code"] == "recent_login_required");
    CHECK(problem["max_age_seconds"] == 600);
  }

  // Services that do not answer: 503 naming them, never a partial document.
  r = c.Get("/api/v1/me/export?format=zip", as("fresh"));
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  CHECK(r->has_header("Retry-After"));
  const auto problem = nlohmann::json::parse(r->body);
  CHECK(problem["services"] ==
        nlohmann::json::array({"identity", "accounts", "submission", "payment", "messaging", "connector"}));
  CHECK(problem["detail"].get<std::string>().find("identity") != std::string::npos);
  identity.Shutdown();
}

namespace {

// The services of the export as a test sets them up: the session "fresh"; each service's
// section; a file each in submission and messaging; a retained record in submission;
// payment does not list its retained records; identity's erasure.
constexpr char kAccount[] = "6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01";
const std::string kPdf = std::string("%PDF-1.4\n\x00\x01\x02\xff binary", 22);

class ExportIdentity final : public identity::v1::IdentityService::Service {
 public:
  grpc::Status ResolveSession(grpc::ServerContext*, const identity::v1::ResolveSessionRequest* req,
                              identity::v1::Session* resp) override {
    const std::string& id = req->session_id();
    if (id != "fresh" && id != "owing" && id != "admin") {
      return {grpc::StatusCode::UNAUTHENTICATED, "session unknown or expired"};
    }
    resp->set_account_id(kAccount);
    resp->mutable_tenant()->set_key(config::kDefaultTenant);
    resp->set_session_ref("ref");
    resp->mutable_authenticated_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) - 5);
    // A session that still owes its second factor (the password only); an administrator's
    // account whose session has not passed one (the gateway drops its roles from the caller).
    if (id == "owing") resp->set_second_factor(identity::v1::SECOND_FACTOR_REQUIRED);
    if (id == "admin") resp->add_roles("tenant-admin");
    return grpc::Status::OK;
  }
  grpc::Status ExportPersonalData(grpc::ServerContext*, const common::v1::PersonalDataRequest*,
                                  common::v1::PersonalData* resp) override {
    resp->set_service("identity");
    resp->set_json(R"({"account":{"id":"6f1c1b1e-0d7e-4c5a-9a43-1f0d2b7c9e01"}})");
    return grpc::Status::OK;
  }
  grpc::Status RequestErasure(grpc::ServerContext*, const identity::v1::RequestErasureRequest* req,
                              identity::v1::RequestErasureResponse* resp) override {
    if (req->confirm() == "stale@example.de") return {grpc::StatusCode::FAILED_PRECONDITION, "log in again: old"};
    if (req->confirm() != "anna@example.de") {
      return status::ToGrpc(status::MalformedField("confirm", "mismatch", "type your e-mail address"));
    }
    resp->set_account_id(kAccount);
    resp->mutable_requested_at()->set_seconds(1796644800);
    auto* r = resp->add_retained();
    r->set_service("identity");
    r->set_kind("erasure_request");
    r->set_id(kAccount);
    r->set_until("2027-01-06");
    return grpc::Status::OK;
  }
};

template <class Base>
class Exporter : public Base {
 public:
  Exporter(std::string name, std::string file = "") : name_(std::move(name)), file_(std::move(file)) {}
  grpc::Status ExportPersonalData(grpc::ServerContext*, const common::v1::PersonalDataRequest*,
                                  common::v1::PersonalData* resp) override {
    resp->set_service(name_);
    resp->set_json(nlohmann::json{{"items", {{{"service", name_}}}}}.dump());
    if (!file_.empty()) {
      auto* f = resp->add_files();
      f->set_path(file_);
      f->set_content_type("application/octet-stream");
      f->set_size_bytes(static_cast<int64_t>(kPdf.size()));
    }
    return grpc::Status::OK;
  }
  grpc::Status ListRetainedRecords(grpc::ServerContext*, const common::v1::PersonalDataRequest*,
                                   common::v1::RetainedRecords* resp) override {
    if (name_ == "payment") return {grpc::StatusCode::UNAVAILABLE, "down"};
    if (name_ == "submission") {
      auto* r = resp->add_records();
      r->set_service("submission");
      r->set_kind("submission");
      r->set_id("s1");
      r->set_reference("2026-000123");
      r->set_rule("closed procedure");
      r->set_legal_basis("Art. 6 (1) (e) GDPR");
    }
    return grpc::Status::OK;
  }

 protected:
  grpc::Status File(const common::v1::PersonalDataFileRequest* req, common::v1::ExportFile* resp) {
    if (req->path() != file_) return {grpc::StatusCode::NOT_FOUND, "not found"};
    resp->set_path(file_);
    resp->set_content(name_ == "submission" ? kPdf : std::string());
    return grpc::Status::OK;
  }

 private:
  std::string name_, file_;
};

class SubmissionExporter final : public Exporter<submission::v1::SubmissionService::Service> {
 public:
  SubmissionExporter() : Exporter("submission", "submission/attachment/a1/antrag.pdf") {}
  grpc::Status GetPersonalDataFile(grpc::ServerContext*, const common::v1::PersonalDataFileRequest* req,
                                   common::v1::ExportFile* resp) override {
    return File(req, resp);
  }
};

class MessagingExporter final : public Exporter<messaging::v1::MessagingService::Service> {
 public:
  MessagingExporter() : Exporter("messaging", "messaging/attachment/m1/leer.txt") {}
  grpc::Status GetPersonalDataFile(grpc::ServerContext*, const common::v1::PersonalDataFileRequest* req,
                                   common::v1::ExportFile* resp) override {
    return File(req, resp);
  }
};

}  // namespace

TEST_CASE("the export assembles every service's section, as JSON and as a ZIP; the erasure lists what is kept",
          "[unit]") {
  grpcx::ServerOptions so;
  so.host = "127.0.0.1";
  grpcx::Server services(so);
  services.AddService(std::make_unique<ExportIdentity>(), identity::v1::IdentityService::service_full_name());
  services.AddService(std::make_unique<Exporter<accounts::v1::AccountsService::Service>>("accounts"),
                      accounts::v1::AccountsService::service_full_name());
  services.AddService(std::make_unique<SubmissionExporter>(), submission::v1::SubmissionService::service_full_name());
  services.AddService(std::make_unique<Exporter<payment::v1::PaymentService::Service>>("payment"),
                      payment::v1::PaymentService::service_full_name());
  services.AddService(std::make_unique<MessagingExporter>(), messaging::v1::MessagingService::service_full_name());
  services.AddService(std::make_unique<Exporter<connector::v1::ConnectorService::Service>>("connector"),
                      connector::v1::ConnectorService::service_full_name());
  REQUIRE(services.Start().ok());
  std::map<std::string, std::string> reachable;
  for (const char* name : {"identity", "accounts", "submission", "payment", "messaging", "connector"}) {
    reachable[name] = "ipv4:127.0.0.1:" + std::to_string(services.port());
  }
  Fixture f(reachable);
  httplib::Client c("127.0.0.1", f.port);
  const httplib::Headers fresh = {{"Authorization", "Bearer fresh"}};

  auto r = c.Get("/api/v1/me/export", fresh);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Cache-Control") == "no-store");
  CHECK(r->get_header_value("Content-Disposition").rfind("attachment; filename=\"stadtportal-export-", 0) == 0);
  const auto doc = nlohmann::json::parse(r->body);
  CHECK(doc["format"] == "stadtportal-export/1");
  CHECK(doc["account_id"] == kAccount);
  CHECK(doc["tenant"] == config::kDefaultTenant);
  CHECK(doc["exported_at"].get<std::string>().size() == 20);
  CHECK(doc["services"].size() == 6);
  CHECK(doc["services"]["identity"]["account"]["id"] == kAccount);
  CHECK(doc["services"]["connector"]["items"][0]["service"] == "connector");
  REQUIRE(doc["files"].size() == 2);
  CHECK(doc["files"][0] == nlohmann::json{{"path", "submission/attachment/a1/antrag.pdf"},
                                          {"content_type", "application/octet-stream"},
                                          {"size_bytes", kPdf.size()}});

  // The ZIP: export.json and each file at its path, read back by Python's zipfile.
  r = c.Get("/api/v1/me/export?format=zip", fresh);
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/zip");
  CHECK(r->get_header_value("Content-Disposition").find(".zip\"") != std::string::npos);
  const std::string path = testing::TempDir() + "/export-" + std::to_string(f.port) + ".zip";
  std::ofstream(path, std::ios::binary) << r->body;
  std::string out;
  REQUIRE(testing::RunCommand("/usr/bin/python3 -c 'import base64, json, sys, zipfile\n"
                              "z = zipfile.ZipFile(sys.argv[1])\n"
                              "print(json.dumps({\"bad\": z.testzip(), \"entries\": {i.filename: "
                              "base64.b64encode(z.read(i)).decode() for i in z.infolist()}}))' " +
                                  path + " 2>&1",
                              &out) == 0);
  std::remove(path.c_str());
  const auto zip = nlohmann::json::parse(out);
  CHECK(zip["bad"].is_null());
  REQUIRE(zip["entries"].size() == 3);
  std::string entry;
  REQUIRE(absl::Base64Unescape(zip["entries"]["export.json"].get<std::string>(), &entry));
  const auto inner = nlohmann::json::parse(entry);
  CHECK(inner["services"] == doc["services"]);
  CHECK(inner["files"] == doc["files"]);
  REQUIRE(absl::Base64Unescape(zip["entries"]["submission/attachment/a1/antrag.pdf"].get<std::string>(), &entry));
  CHECK(entry == kPdf);
  CHECK(zip["entries"]["messaging/attachment/m1/leer.txt"] == "");

  // Neither with the password alone while a second factor is owed, nor for an
  // administrator's account: refused before any service is asked.
  for (const char* session : {"owing", "admin"}) {
    INFO(session);
    const httplib::Headers h = {{"Authorization", std::string("Bearer ") + session}};
    r = c.Get("/api/v1/me/export", h);
    REQUIRE(r);
    CHECK(r->status == 403);
    r = c.Delete("/api/v1/me", h, R"({"confirm":"anna@example.de"})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 403);
  }

  // The erasure: every service's retained records, identity's first; payment pending.
  r = c.Delete("/api/v1/me", fresh, R"({"confirm":" anna@example.de "})", "application/json");
  REQUIRE(r);
  CHECK(r->status == 400);
  r = c.Delete("/api/v1/me", fresh, R"({"confirm":"stale@example.de"})", "application/json");
  REQUIRE(r);
  CHECK(r->status == 403);
  CHECK(nlohmann::json::parse(r->body)["code"] == "recent_login_required");
  r = c.Delete("/api/v1/me", fresh, R"({"confirm":"anna@example.de"})", "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 202);
  CHECK(r->get_header_value("Set-Cookie").find("Max-Age=0") != std::string::npos);
  const auto erased = nlohmann::json::parse(r->body);
  CHECK(erased["account_id"] == kAccount);
  CHECK(erased["requested_at"] == "2026-12-07T12:00:00Z");
  CHECK(erased["pending"] == nlohmann::json::array({"payment"}));
  REQUIRE(erased["retained"].size() == 2);
  CHECK(erased["retained"][0]["kind"] == "erasure_request");
  CHECK(erased["retained"][0]["until"] == "2027-01-06");
  CHECK(erased["retained"][1] == nlohmann::json{{"service", "submission"},
                                                {"kind", "submission"},
                                                {"id", "s1"},
                                                {"reference", "2026-000123"},
                                                {"rule", "closed procedure"},
                                                {"legal_basis", "Art. 6 (1) (e) GDPR"},
                                                {"until", nullptr}});
  services.Shutdown();
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

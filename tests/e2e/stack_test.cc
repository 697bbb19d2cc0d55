// The foundation's acceptance, run against the real binaries.
#include <csignal>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "libs/grpc/client.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;

// The services listed by server reflection; `code` gets the call's status.
std::vector<std::string> ReflectedServices(uint16_t port, grpc::StatusCode* code) {
  auto channel = grpcx::MakeChannel("ipv4:127.0.0.1:" + std::to_string(port));
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  auto ctx = grpcx::NewClientContext(5s);
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  stream->Write(req);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  std::vector<std::string> names;
  while (stream->Read(&resp)) {
    for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  }
  *code = stream->Finish().error_code();
  return names;
}

std::string FullServiceName(const std::string& svc) {
  std::string cap = svc;
  cap[0] = static_cast<char>(std::toupper(cap[0]));
  return "stadtportal." + svc + ".v1." + cap + "Service";
}

}  // namespace

TEST_CASE("all seven binaries start and the gateway becomes ready", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto r = stack.Http().Get("/readyz");
  REQUIRE(r);
  auto body = nlohmann::json::parse(r->body);
  for (const auto& svc : kServices) CHECK(body["services"][svc] == "serving");

  SECTION("every service answers health checks with SERVING; reflection is off unless enabled") {
    for (auto& i : stack.instances()) {
      auto channel = grpcx::MakeChannel("ipv4:127.0.0.1:" + std::to_string(i.grpc_port));
      CHECK(grpcx::CheckHealth(channel, "", 2s).ok());
      CHECK(grpcx::CheckHealth(channel, FullServiceName(i.service), 2s).ok());
      grpc::StatusCode code = grpc::StatusCode::OK;
      auto names = ReflectedServices(i.grpc_port, &code);
      INFO(i.service);
      CHECK(code == grpc::StatusCode::UNIMPLEMENTED);
      CHECK(names.empty());
    }
    // STADTPORTAL_GRPC_REFLECTION=true (scripts/run sets it) lists the services.
    auto& submission = stack.instance("submission");
    REQUIRE(stack.Restart(submission, {{"STADTPORTAL_GRPC_REFLECTION", "true"}}));
    grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
    std::vector<std::string> names;
    CHECK(testing::Eventually(
        [&] {
          names = ReflectedServices(submission.grpc_port, &code);
          return code == grpc::StatusCode::OK;
        },
        30s));
    CHECK(std::find(names.begin(), names.end(), FullServiceName("submission")) != names.end());
    CHECK(std::find(names.begin(), names.end(), "grpc.health.v1.Health") != names.end());
  }

  SECTION("the seeded catalogue is served through the gateway") {
    auto c = stack.Http();
    auto list = c.Get("/api/v1/services");
    REQUIRE(list);
    CHECK(list->status == 200);
    CHECK(nlohmann::json::parse(list->body)["items"].size() == 6);
    auto one = c.Get("/api/v1/services/civil-registry-certificate", {{"X-Request-Id", "e2e-catalogue-1"}});
    REQUIRE(one);
    CHECK(one->status == 200);
    auto svc = nlohmann::json::parse(one->body);
    CHECK(svc["fee"]["amount_minor"] == 1200);
    CHECK(svc["fee"]["per_unit"] == true);
    CHECK(svc["required_assurance_level"] == "low");
    CHECK(svc["form_version"] == 1);
    CHECK(svc["form"]["steps"][0]["fields"][0]["id"] == "certificate_type");
    auto missing = c.Get("/api/v1/services/no-such-service");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(missing->get_header_value("Content-Type") == "application/problem+json");
    // The request id is in the gateway's access log and travelled to the submission service.
    CHECK(
        testing::Eventually([&] { return stack.gateway().Output().find("e2e-catalogue-1") != std::string::npos; }, 2s));
    CHECK(testing::Eventually(
        [&] { return stack.instance("submission").process->Output().find("e2e-catalogue-1") != std::string::npos; },
        2s));
  }

  SECTION("promtool finds every /metrics endpoint clean; the public port serves none") {
    auto c = stack.Http();
    REQUIRE(c.Get("/api/v1/services"));  // Some traffic, so RED series exist.
    auto public_metrics = c.Get("/metrics");
    REQUIRE(public_metrics);
    CHECK(public_metrics->status == 404);
    std::vector<std::string> urls = {"http://127.0.0.1:" + std::to_string(stack.gateway_admin_port()) + "/metrics"};
    for (auto& i : stack.instances()) urls.push_back("http://127.0.0.1:" + std::to_string(i.admin_port) + "/metrics");
    for (const auto& url : urls) {
      std::string out;
      const int rc = testing::RunCommand("curl -fsS " + url + " | promtool check metrics", &out);
      INFO(url << "\n" << out);
      CHECK(rc == 0);
    }
    std::string text;
    testing::RunCommand(
        "curl -fsS http://127.0.0.1:" + std::to_string(stack.instance("submission").admin_port) + "/metrics", &text);
    CHECK(text.find("/stadtportal.submission.v1.SubmissionService/ListOnlineServices") != std::string::npos);
  }
}

TEST_CASE("a killed service is named by /readyz within 2 s and is ready again after a restart", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto& connector = stack.instance("connector");
  connector.process->Signal(SIGKILL);
  REQUIRE(connector.process->Wait(5s) == -2);

  const auto t0 = std::chrono::steady_clock::now();
  auto c = stack.Http();
  nlohmann::json problem;
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/readyz");
        if (!r || r->status != 503) return false;
        problem = nlohmann::json::parse(r->body);
        return true;
      },
      2s));
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  CHECK(problem["detail"] == "not ready: connector");
  CHECK(problem["services"]["identity"] == "serving");

  // Routes of other services keep working meanwhile.
  auto list = c.Get("/api/v1/services");
  REQUIRE(list);
  CHECK(list->status == 200);

  stack.Start(connector);
  CHECK(stack.WaitReady(20s));
}

TEST_CASE("SIGTERM stops every binary with exit code 0 within 10 s", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  for (auto& i : stack.instances()) {
    const auto t0 = std::chrono::steady_clock::now();
    i.process->Signal(SIGTERM);
    INFO(i.service << "\n" << i.process->Output());
    CHECK(i.process->Wait(10s) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  }
  stack.gateway().Signal(SIGTERM);
  CHECK(stack.gateway().Wait(10s) == 0);
}

TEST_CASE("two replicas of a service share the load behind the gateway", "[e2e]") {
  Stack stack({{"submission", 2}});
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  auto served = [&](int replica) {
    std::string text;
    testing::RunCommand(
        "curl -fsS http://127.0.0.1:" + std::to_string(stack.instance("submission", replica).admin_port) + "/metrics",
        &text);
    return text.find("code=\"OK\",operation=\"/stadtportal.submission.v1.SubmissionService/ListOnlineServices\"") !=
           std::string::npos;
  };
  // The gateway's channel connects to each replica on its own; once both are connected,
  // round_robin gives both a share.
  CHECK(testing::Eventually(
      [&] {
        for (int n = 0; n < 10; ++n) {
          auto r = c.Get("/api/v1/services");
          if (!r || r->status != 200) return false;
        }
        return served(0) && served(1);
      },
      15s));
}

TEST_CASE("missing or invalid configuration exits non-zero with one line naming the variable", "[e2e]") {
  const std::string dir = testing::TempDir();
  struct Case {
    std::string binary;
    std::map<std::string, std::string> env;
    std::string variable;
  };
  std::vector<Case> cases;
  for (const auto& svc : kServices) cases.push_back({svc, {}, "STADTPORTAL_DATABASE_URL"});
  cases.push_back({"identity",
                   {{"STADTPORTAL_DATABASE_URL", "postgresql://x@127.0.0.1/x"}, {"STADTPORTAL_GRPC_PORT", "http"}},
                   "STADTPORTAL_GRPC_PORT"});
  cases.push_back({"payment",
                   {{"STADTPORTAL_DATABASE_URL", "postgresql://x@127.0.0.1/x"}, {"STADTPORTAL_TENANT", "Nürnberg"}},
                   "STADTPORTAL_TENANT"});
  cases.push_back({"gateway", {}, "STADTPORTAL_IDENTITY_ADDR"});
  int n = 0;
  for (const auto& c : cases) {
    testing::Process p(BinaryPath(c.binary), {}, c.env, dir + "/config-" + std::to_string(n++) + ".log");
    const int rc = p.Wait(10s);
    const std::string out = p.Output();
    INFO(c.binary << ": " << out);
    CHECK(rc == 2);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    CHECK(out.find(c.variable) != std::string::npos);
  }
}

TEST_CASE("--migrate-only needs nothing but the database: it migrates, exits 0, and serves nothing", "[e2e]") {
  const std::string dir = testing::TempDir();
  // As the migration Job runs them: no caller keys, no Redis, no service settings
  // (the connector would otherwise insist on STADTPORTAL_SUBMISSION_ADDR).
  for (const auto& svc : kServices) {
    testing::Process p(BinaryPath(svc), {"--migrate-only"},
                       {{"STADTPORTAL_DATABASE_URL", testing::ServiceDatabaseUrl(svc)}},
                       dir + "/migrate-only-" + svc + ".log");
    const int rc = p.Wait(30s);
    INFO(svc << ": " << p.Output());
    CHECK(rc == 0);
    CHECK(p.Output().find("migrations up to date") != std::string::npos);
    CHECK(p.Output().find("grpc server listening") == std::string::npos);
  }
  testing::Process bad(BinaryPath("submission"), {"--serve-twice"}, {}, dir + "/migrate-only-bad.log");
  CHECK(bad.Wait(10s) == 2);
}

TEST_CASE("each service's database role owns its schema and cannot touch another's", "[e2e]") {
  const std::string dir = testing::TempDir();
  for (const auto& svc : kServices) {
    testing::Process p(BinaryPath(svc), {"--migrate-only"},
                       {{"STADTPORTAL_DATABASE_URL", testing::ServiceDatabaseUrl(svc)}},
                       dir + "/roles-migrate-" + svc + ".log");
    INFO(svc << ": " << p.Output());
    REQUIRE(p.Wait(30s) == 0);
  }
  {
    // Every table of a schema belongs to its service's role.
    pqxx::connection admin(testing::DatabaseUrl());
    pqxx::read_transaction tx(admin);
    for (const auto& svc : kServices) {
      INFO(svc);
      CHECK(tx.exec1("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                     " WHERE n.nspname = " +
                     tx.quote(svc) + " AND c.relkind = 'r' AND pg_get_userbyid(c.relowner) <> " +
                     tx.quote("stadtportal_" + svc))[0]
                .as<int>() == 0);
      CHECK(tx.exec1("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = " + tx.quote(svc))[0]
                .as<std::string>() == "stadtportal_" + svc);
    }
  }
  for (const auto& svc : kServices) {
    pqxx::connection conn(testing::ServiceDatabaseUrl(svc));
    for (const auto& other : kServices) {
      INFO(svc << " reads " << other);
      pqxx::work tx(conn);
      const std::string table = other + ".schema_migrations";
      if (other == svc) {
        CHECK(tx.exec1("SELECT count(*) FROM " + table)[0].as<int>() > 0);
        continue;
      }
      // Neither reading nor writing another service's tables, nor reaching them by name.
      CHECK_THROWS_AS(tx.exec("SELECT version FROM " + table + " LIMIT 1"), pqxx::insufficient_privilege);
    }
    pqxx::work tx(conn);
    CHECK_THROWS_AS(tx.exec("CREATE SCHEMA elsewhere"), pqxx::insufficient_privilege);
  }
  // A real table of another service, as the connector (the part with outside egress).
  pqxx::connection connector(testing::ServiceDatabaseUrl("connector"));
  pqxx::work tx(connector);
  CHECK_THROWS_AS(tx.exec("SELECT count(*) FROM identity.accounts"), pqxx::insufficient_privilege);
}

}  // namespace stadtportal::e2e

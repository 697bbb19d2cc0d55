// The operations view queries only what exists: every metric the Grafana dashboards and
// the chart's recording and alert rules name is exported by some part of the running
// platform (a series at 0 counts: families are registered when a part starts).
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "tests/e2e/federated.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) + "/" + path);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The platform's own metric names in a dashboard or rule file (not Kubernetes' or
// Prometheus' own, not recording rules, which hold a colon).
std::set<std::string> MetricNames(const std::string& text) {
  static const std::regex kName(R"(\b((?:stadtportal|http_server|grpc_server)_[a-z0-9_]+))");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kName); it != std::sregex_iterator(); ++it) {
    out.insert((*it)[1]);
  }
  return out;
}

// Whether the exposition text has a series of `name` (or of the histogram it is part of).
bool Exported(const std::string& exposition, const std::string& name) {
  for (const std::string& series : {name, name + "_bucket", name + "_count", name + "_sum"}) {
    std::istringstream lines(exposition);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(series + "{", 0) == 0 || line.rfind(series + " ", 0) == 0) return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("every metric the dashboards and alert rules name is exported by some part", "[e2e]") {
  // The whole platform, the upstream identity providers included: the federation's
  // figures exist per configured provider.
  Federated f;
  Stack& stack = f.stack;
  auto c = stack.Http();
  // A little traffic: requests through the gateway and calls into the services.
  json anna = Onboard(stack, c, UniqueEmail());
  REQUIRE(Status(c.Get("/api/v1/services")) == 200);
  const std::string submission = SubmitCertificate(c, anna)["id"].get<std::string>();
  // A rating: the satisfaction histogram of the KPI dashboard.
  REQUIRE(Status(PostJson(c, "/api/v1/submissions/" + submission + "/feedback", {{"rating", 4}}, Bearer(anna))) == 201);

  std::set<std::string> named;
  int dashboards = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(STADTPORTAL_SOURCE_DIR) + "/deploy/grafana")) {
    if (entry.path().extension() != ".json") continue;
    const auto names = MetricNames(ReadSource("deploy/grafana/" + entry.path().filename().string()));
    named.insert(names.begin(), names.end());
    ++dashboards;
  }
  CHECK(dashboards >= 2);  // Operations and KPIs.
  const auto rules = MetricNames(ReadSource("helm/stadtportal/templates/prometheusrule.yaml"));
  named.insert(rules.begin(), rules.end());
  REQUIRE(named.size() > 10);

  std::string exposition;
  auto scrape = [&](uint16_t port) {
    httplib::Client admin("127.0.0.1", port);
    auto r = admin.Get("/metrics");
    REQUIRE(Status(r) == 200);
    exposition += r->body;
  };
  scrape(stack.gateway_admin_port());
  for (auto& i : stack.instances()) scrape(i.admin_port);

  std::vector<std::string> missing;
  for (const auto& name : named) {
    if (!Exported(exposition, name)) missing.push_back(name);
  }
  INFO("named in dashboards or rules, exported by no part: " << absl::StrJoin(missing, ", "));
  CHECK(missing.empty());
}

}  // namespace stadtportal::e2e

// The web portal in a real browser: the whole platform as processes (tests/e2e/stack.h),
// stadtportal-web in front of its gateway, and tests/web/journey.js driving Debian's
// chromium through the citizen's journey with and without JavaScript and by keyboard,
// axe-core on every page, the start page's weight and a draft resumed in another browser.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;

// The figures journey.js printed ("figure: NAME VALUE"), for the run's report.
void ReportFigures(const std::string& out) {
  static const std::regex re("figure: ([a-z0-9_]+) ([0-9.]+)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) {
    testing::Report("web browser test: " + (*it)[1].str() + " = " + (*it)[2].str());
  }
}

// What a script of the repository printed last (its result), run with the build folder of
// this test; fails the test (with what the script said) when it fails.
std::string Tool(const std::string& script) {
  std::string out;
  const int rc = testing::RunCommand("STADTPORTAL_BUILD_DIR='" STADTPORTAL_BUILD_DIR "' '" STADTPORTAL_SOURCE_DIR
                                     "/scripts/" + script + "'", &out);
  INFO(script << ": " << out);
  REQUIRE(rc == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out.substr(out.find_last_of('\n') == std::string::npos ? 0 : out.find_last_of('\n') + 1);
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

}  // namespace

TEST_CASE("the portal in chromium: the journey with and without JavaScript and by keyboard, axe on every page",
          "[e2e]") {
  const std::string web_bin = BinaryPath("web");
  REQUIRE(access(web_bin.c_str(), X_OK) == 0);
  // The web part calls the gateway from loopback and names the browser in X-Forwarded-For.
  Stack stack({}, {{"STADTPORTAL_TRUSTED_PROXIES", "127.0.0.1/32"}});
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();

  const uint16_t web_port = testing::FreePort();
  const std::string web = "http://127.0.0.1:" + std::to_string(web_port);
  // The account mails' links lead to the web part, and so does the payment provider's way back.
  stack.SetEnv("identity", "STADTPORTAL_PORTAL_URL", web);
  REQUIRE(stack.Restart(stack.instance("identity")));
  stack.SetEnv("payment", "STADTPORTAL_PAYMENT_RETURN_URL", web + "/submissions/{submission}/paid?payment={payment}");
  REQUIRE(stack.Restart(stack.instance("payment")));
  REQUIRE(stack.WaitReady(60s));

  // The Standesamt's back office answers in the mailbox over the back-office API: a pull
  // destination and its client, whose credentials journey.js exchanges for tokens as needed.
  const nlohmann::json admin = Admin(stack, c);
  REQUIRE(Status(c.Put("/api/v1/admin/destinations/standesamt", Bearer(admin),
                       nlohmann::json{{"name", "Standesamt"}, {"mode", "pull"}}.dump(), "application/json")) == 200);
  auto client = PostJson(c, "/api/v1/admin/backoffice-clients",
                         {{"destination", "standesamt"}, {"department", "Standesamt"}}, Bearer(admin));
  REQUIRE(Status(client) == 201);
  const auto backoffice = nlohmann::json::parse(client->body);

  // The design system's files, fetched once into the build folder.
  const std::string assets = Tool("web-assets");
  REQUIRE_FALSE(assets.empty());
  const std::string dir = testing::TempDir() + "/web-" + std::to_string(web_port);
  testing::Process portal(web_bin, {},
                          {{"STADTPORTAL_WEB_PORT", std::to_string(web_port)},
                           {"STADTPORTAL_ADMIN_PORT", std::to_string(testing::FreePort())},
                           {"STADTPORTAL_LISTEN_HOST", "127.0.0.1"},
                           {"STADTPORTAL_WEB_GATEWAY_URL", stack.issuer()},
                           {"STADTPORTAL_WEB_ASSETS_DIR", assets},
                           {"STADTPORTAL_REDIS_URL", StackRedisUrl()},
                           {"STADTPORTAL_LOG_LEVEL", "debug"}},
                          dir + ".log");
  httplib::Client probe("127.0.0.1", web_port);
  probe.set_connection_timeout(1s);
  REQUIRE(testing::Eventually(
      [&] {
        auto r = probe.Get("/");
        return r && r->status == 200;
      },
      20s));

  // The pinned playwright-core and axe-core (scripts/npm-tools installs them once).
  const std::string tools = Tool("npm-tools");
  std::ofstream(dir + ".env") << "WEB_URL=" << web << "\nGATEWAY_URL=" << stack.issuer()
                              << "\nMAILDIR=" << stack.maildir()
                              << "\nBACKOFFICE_CLIENT_ID=" << backoffice["client_id"].get<std::string>()
                              << "\nBACKOFFICE_CLIENT_SECRET=" << backoffice["client_secret"].get<std::string>()
                              << "\nSCREENSHOT_DIR=" << EnvOr("STADTPORTAL_WEB_SCREENSHOT_DIR", "")
                              << "\nJOURNEYS=" << EnvOr("STADTPORTAL_WEB_JOURNEYS", "js,nojs,keyboard")
                              << "\n";
  // To drive the running platform by hand (NODE_PATH and the env file as below):
  // STADTPORTAL_WEB_TEST_HOLD_S=600 keeps it up that long before the journey.
  if (const int hold = std::atoi(EnvOr("STADTPORTAL_WEB_TEST_HOLD_S", "0").c_str()); hold > 0) {
    std::cerr << "holding the platform for " << hold << " s: " << dir << ".env\n";
    std::this_thread::sleep_for(std::chrono::seconds(std::min(hold, 3600)));
  }
  // To drive the running platform by hand (NODE_PATH and the env file as below):
  // STADTPORTAL_WEB_TEST_HOLD_S=600 keeps it up that long before the journey.
  if (const int hold = std::atoi(EnvOr("STADTPORTAL_WEB_TEST_HOLD_S", "0").c_str()); hold > 0) {
    std::cerr << "holding the platform for " << hold << " s: " << dir << ".env\n";
    std::this_thread::sleep_for(std::chrono::seconds(std::min(hold, 3600)));
  }
  std::string out;
  const int rc = testing::RunCommand("NODE_PATH='" + tools + "/web-test/node_modules' WEB_TEST_ENV_FILE='" + dir +
                                         ".env' node '" + std::string(STADTPORTAL_SOURCE_DIR) +
                                         "/tests/web/journey.js' 2>&1",
                                     &out);
  INFO(out);
  ReportFigures(out);
  if (rc != 0) {
    UNSCOPED_INFO("web part's log (tail):\n" << portal.Output().substr(portal.Output().size() > 8000
                                                                           ? portal.Output().size() - 8000
                                                                           : 0));
  }
  CHECK(rc == 0);
  CHECK(out.find("all steps passed") != std::string::npos);
}

}  // namespace stadtportal::e2e

// Our OpenID Provider accepted by a certified relying party: openid-client (tests/oidc-rp)
// against the running platform, with a partner registered by a tenant admin and a person
// who logs in on our page.
#include <catch2/catch.hpp>

#include "tests/e2e/federated.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {

TEST_CASE("openid-client logs in, refreshes, logs out and gets the back-channel log-out", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
  auto c = stack.Http();
  const json admin = Admin(stack, c);
  const std::string email = UniqueEmail();
  Onboard(stack, c, email);
  // The pinned relying party (scripts/npm-tools installs it once).
  const std::string tools = Shell("\"$SP_ROOT/scripts/npm-tools\" | tail -n 1");
  const std::string dir = UniqueDir();
  std::ofstream(dir + "/rp.env") << "OIDC_RP_ISSUER=" << stack.issuer()
                                 << "\nOIDC_RP_ADMIN_TOKEN=" << admin["token"].get<std::string>()
                                 << "\nOIDC_RP_EMAIL=" << email << "\nOIDC_RP_PASSWORD=" << kPassword << "\n";
  std::string out;
  const int rc = testing::RunCommand("NODE_PATH='" + tools + "/oidc-rp/node_modules' OIDC_RP_ENV_FILE='" + dir +
                                         "/rp.env' node '" + std::string(STADTPORTAL_SOURCE_DIR) +
                                         "/tests/oidc-rp/rp_test.js' 2>&1",
                                     &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("all steps passed") != std::string::npos);
}

}  // namespace stadtportal::e2e

#include "libs/config/config.h"

#include <cstdio>
#include <fstream>

#include <catch2/catch.hpp>

namespace stadtportal::config {

TEST_CASE("required variables fail fast naming the variable", "[unit]") {
  Env env(std::map<std::string, std::string>{{"STADTPORTAL_EMPTY", ""}});
  CHECK_THROWS_WITH(env.Required("STADTPORTAL_DATABASE_URL"), "STADTPORTAL_DATABASE_URL: required but not set");
  CHECK_THROWS_WITH(env.Required("STADTPORTAL_EMPTY"), "STADTPORTAL_EMPTY: required but not set");
}

TEST_CASE("numbers, ports and booleans are checked", "[unit]") {
  Env env(std::map<std::string, std::string>{{"A", "42"}, {"B", "x"}, {"P", "70000"}, {"T", "yes"}, {"F", "maybe"}});
  CHECK(env.Int("A", 1, 0, 100) == 42);
  CHECK(env.Int("MISSING", 7, 0, 100) == 7);
  CHECK_THROWS_WITH(env.Int("B", 1, 0, 100), "B: expected an integer in [0, 100], got \"x\"");
  CHECK_THROWS_WITH(env.Int("A", 1, 0, 10), "A: expected an integer in [0, 10], got \"42\"");
  CHECK_THROWS_AS(env.Port("P", 1), Error);
  CHECK(env.Bool("T", false));
  CHECK_THROWS_WITH(env.Bool("F", false), "F: expected true or false, got \"maybe\"");
}

TEST_CASE("tenant keys are eight digits", "[unit]") {
  Env env(std::map<std::string, std::string>{{"BAD", "Nürnberg"}, {"GOOD", "09162000"}});
  CHECK(env.TenantKey("UNSET", kDefaultTenant) == "09564000");
  CHECK(env.TenantKey("GOOD", kDefaultTenant) == "09162000");
  CHECK_THROWS_AS(env.TenantKey("BAD", kDefaultTenant), Error);
  CHECK_FALSE(IsTenantKey("0956400"));
}

TEST_CASE("secrets come from the variable or from a mounted file", "[unit]") {
  const std::string path = "/tmp/stadtportal_config_test_secret";
  {
    std::ofstream out(path);
    out << "s3cret\n";
  }
  Env from_file(std::map<std::string, std::string>{{"STADTPORTAL_KEY_FILE", path}});
  CHECK(from_file.Secret("STADTPORTAL_KEY") == "s3cret");
  Env direct(std::map<std::string, std::string>{{"STADTPORTAL_KEY", "direct"}, {"STADTPORTAL_KEY_FILE", path}});
  CHECK(direct.Secret("STADTPORTAL_KEY") == "direct");
  Env missing(std::map<std::string, std::string>{{"STADTPORTAL_KEY_FILE", "/nonexistent/secret"}});
  CHECK_THROWS_AS(missing.Secret("STADTPORTAL_KEY"), Error);
  std::remove(path.c_str());
}

}  // namespace stadtportal::config

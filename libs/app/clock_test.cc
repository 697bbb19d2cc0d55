#include "libs/app/clock.h"

#include <fstream>
#include <map>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "libs/testing/testing.h"

namespace stadtportal::app {

TEST_CASE("the clock file is read at every call; anything but an RFC 3339 time is an error", "[unit]") {
  const std::string path = testing::TempDir() + "/clock-test.txt";
  auto clock = FileClock(path);
  std::remove(path.c_str());
  CHECK(clock().status().code() == absl::StatusCode::kFailedPrecondition);
  for (const std::string& bad : std::vector<std::string>{"", "tomorrow", "2027-03-01", std::string(200, '2')}) {
    std::ofstream(path) << bad;
    INFO(bad);
    CHECK_FALSE(clock().ok());
  }
  std::ofstream(path) << "2027-03-01T08:00:00Z\n";
  REQUIRE(clock().ok());
  CHECK(*clock() == absl::FromUnixSeconds(1803888000));
  std::ofstream(path) << "2030-01-01T00:00:00+01:00";
  CHECK(*clock() == absl::FromUnixSeconds(1893452400));
  CHECK(*FixedClock(absl::UnixEpoch())() == absl::UnixEpoch());
}

TEST_CASE("the clock file is refused outside test deployments", "[unit]") {
  using Env = std::map<std::string, std::string>;
  CHECK_THROWS_WITH(ClockFromEnv(config::Env(Env{{"STADTPORTAL_CLOCK_FILE", "/tmp/clock"}})),
                    Catch::Contains("STADTPORTAL_ALLOW_TEST_PROVIDERS"));
  CHECK_NOTHROW(ClockFromEnv(
      config::Env(Env{{"STADTPORTAL_CLOCK_FILE", "/tmp/clock"}, {"STADTPORTAL_ALLOW_TEST_PROVIDERS", "true"}})));
  // The setting's former name is refused, not ignored.
  CHECK_THROWS_WITH(ClockFromEnv(config::Env(Env{{"STADTPORTAL_REMINDER_CLOCK_FILE", "/tmp/clock"},
                                                 {"STADTPORTAL_ALLOW_TEST_PROVIDERS", "true"}})),
                    Catch::Contains("STADTPORTAL_CLOCK_FILE"));
  auto system = ClockFromEnv(config::Env(Env{}));
  auto now = system();
  REQUIRE(now.ok());
  CHECK(absl::AbsDuration(*now - absl::Now()) < absl::Seconds(5));
}

}  // namespace stadtportal::app

#include "libs/testing/testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

#include <catch2/catch.hpp>

namespace stadtportal::testing {
namespace {

std::set<uint16_t> Ports(int n) {
  std::set<uint16_t> out;
  for (int i = 0; i < n; ++i) out.insert(FreePort());
  return out;
}

TEST_CASE("FreePort never hands out a port twice in one run, also across processes", "[unit]") {
  REQUIRE(std::getenv("STADTPORTAL_TEST_TMP") != nullptr);
  constexpr int kEach = 300;  // Of 12,000: two independent draws would share ~7 ports.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Another test process of the same run (as CTest runs them side by side).
    ::close(fds[0]);
    for (uint16_t p : Ports(kEach)) {
      if (::write(fds[1], &p, sizeof p) != static_cast<ssize_t>(sizeof p)) ::_exit(1);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::set<uint16_t> theirs;
  uint16_t p = 0;
  while (::read(fds[0], &p, sizeof p) == static_cast<ssize_t>(sizeof p)) theirs.insert(p);
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(theirs.size() == kEach);

  const auto ours = Ports(kEach);
  CHECK(ours.size() == kEach);
  int shared = 0;
  for (uint16_t q : ours) shared += static_cast<int>(theirs.count(q));
  CHECK(shared == 0);
  for (uint16_t q : ours) {
    CHECK(q >= 20000);
    CHECK(q <= 32000);
  }
}

}  // namespace
}  // namespace stadtportal::testing

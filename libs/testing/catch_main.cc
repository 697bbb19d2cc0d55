// Catch2's main, compiled once into stadtportal_test_main.
#define CATCH_CONFIG_RUNNER
#include <csignal>

#include <catch2/catch.hpp>

#include "libs/db/network_guard.h"
#include "libs/testing/testing.h"

int main(int argc, char* argv[]) {
  // A server that closes a connection while a test still writes (a refused large body)
  // is an error return for the test to check, not the end of the test process.
  std::signal(SIGPIPE, SIG_IGN);
  stadtportal::testing::KillProcessesAtAbnormalEnd();
  // A call across the network inside a database transaction ends the test.
  stadtportal::db::SetStrictTransactions(true);
  return Catch::Session().run(argc, argv);
}

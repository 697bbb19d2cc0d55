#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "libs/db/migrate.h"
#include "libs/db/pool.h"

// Helpers for integration and e2e tests. PostgreSQL and Redis are real servers started
// by scripts/test, which passes their addresses in STADTPORTAL_TEST_DATABASE_URL and
// STADTPORTAL_TEST_REDIS_URL.
namespace stadtportal::testing {

// The addresses from the environment; throws (failing the test) when unset.
std::string DatabaseUrl();
// The test database as a service's own role (stadtportal_<service>, which scripts/test
// creates with deploy/containers/postgres-roles.sql): its schema only.
std::string ServiceDatabaseUrl(const std::string& service);
std::string RedisUrl();
// Appends a line to the run's report ($STADTPORTAL_TEST_REPORT, which scripts/test
// prints after all tests): figures a test measured. Without the variable: nothing.
void Report(const std::string& line);
int RedisPort();

// A schema of its own for one test: created with the given migrations applied, and
// dropped when the object goes away.
class TestSchema {
 public:
  explicit TestSchema(const std::vector<db::MigrationFile>& migrations, const std::string& prefix = "t");
  ~TestSchema();
  const std::string& name() const { return name_; }
  db::Pool& pool(db::Prepare prepare = nullptr);

 private:
  std::string name_;
  std::unique_ptr<db::Pool> pool_;
};

// The text of the first column of the first row `sql` returns, read in its own
// transaction of `pool`; throws (failing the test) when the query fails or returns no row.
std::string QueryValue(db::Pool& pool, const std::string& sql);
// How many rows of each table of the pool's schema hold `value` anywhere: in their text,
// or in a bytea column as the value's bytes (hex). For erasure tests: the tables that
// still name a person.
std::map<std::string, int64_t> RowsNaming(db::Pool& pool, const std::string& value);

// The test run's directory for logs and files ($STADTPORTAL_TEST_TMP, which scripts/test
// sets and removes afterwards; /tmp when unset).
std::string TempDir();

// A random unused TCP port on 127.0.0.1, never handed out twice in one test run (also
// across the test processes CTest runs side by side; see testing.cc).
uint16_t FreePort();

// Polls `pred` every 20 ms until it holds or `timeout` passes; returns whether it held.
bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// A child process (a stadtportal binary) with its own environment; output goes to `log_path`.
class Process {
 public:
  Process(std::string path, std::vector<std::string> args, std::map<std::string, std::string> env,
          std::string log_path);
  ~Process();  // Kills the process if still running.
  int pid() const { return pid_; }
  void Signal(int sig);
  // Waits up to `timeout`; returns the exit code, or -1 if still running, -2 if killed by a signal.
  int Wait(std::chrono::milliseconds timeout);
  bool running();
  std::string Output() const;

 private:
  int pid_ = -1;
  int status_ = 0;
  bool exited_ = false;
  std::string log_path_;
};

// Makes a test binary that ends abnormally (a fatal signal, exit without unwinding) kill
// the processes it started first, so that none outlives it and serves the next test's
// database. Called once by the tests' main.
void KillProcessesAtAbnormalEnd();

// Runs a shell command, returns its exit status and fills `output` with stdout+stderr.
int RunCommand(const std::string& command, std::string* output);

}  // namespace stadtportal::testing

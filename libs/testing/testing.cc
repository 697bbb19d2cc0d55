#include "libs/testing/testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "absl/strings/numbers.h"

extern char** environ;

namespace stadtportal::testing {
namespace {

std::string RequiredEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string(name) + " is not set: run the tests through scripts/test");
  }
  return v;
}

}  // namespace

std::string DatabaseUrl() { return RequiredEnv("STADTPORTAL_TEST_DATABASE_URL"); }

std::string ServiceDatabaseUrl(const std::string& service) {
  // postgresql://stadtportal[:password]@host:port/db → the user stadtportal_<service>.
  std::string url = DatabaseUrl();
  const size_t user = url.find("://");
  const size_t at = url.find('@');
  if (user == std::string::npos || at == std::string::npos || at < user) {
    throw std::runtime_error("STADTPORTAL_TEST_DATABASE_URL names no user");
  }
  const size_t end = std::min(at, url.find(':', user + 3));
  return url.insert(end, "_" + service);
}
std::string RedisUrl() { return RequiredEnv("STADTPORTAL_TEST_REDIS_URL"); }

std::string QueryValue(db::Pool& pool, const std::string& sql) {
  std::string out;
  auto s = pool.Transact([&](pqxx::work& tx) {
    out = tx.exec1(sql)[0].as<std::string>();
    return absl::OkStatus();
  });
  if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  return out;
}

std::map<std::string, int64_t> RowsNaming(db::Pool& pool, const std::string& value) {
  std::map<std::string, int64_t> out;
  auto s = pool.Transact([&](pqxx::work& tx) {
    for (const auto& t : tx.exec("SELECT table_name FROM information_schema.tables WHERE table_schema ="
                                 " current_schema() AND table_type = 'BASE TABLE'")) {
      const auto n = tx.exec_params1("SELECT count(*) FROM " + tx.quote_name(t[0].as<std::string>()) +
                                         " t WHERE strpos(to_jsonb(t)::text, $1) > 0"
                                         " OR strpos(to_jsonb(t)::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0",
                                     value)[0]
                         .as<int64_t>();
      if (n > 0) out[t[0].as<std::string>()] = n;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) throw std::runtime_error(std::string(s.message()));
  return out;
}

std::string TempDir() {
  const char* dir = std::getenv("STADTPORTAL_TEST_TMP");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

void Report(const std::string& line) {
  const char* path = std::getenv("STADTPORTAL_TEST_REPORT");
  if (path == nullptr || *path == '\0') return;
  std::ofstream(path, std::ios::app) << line << "\n";
}

int RedisPort() {
  const std::string url = RedisUrl();
  int port = 0;
  if (!absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &port)) throw std::runtime_error("bad redis url " + url);
  return port;
}

TestSchema::TestSchema(const std::vector<db::MigrationFile>& migrations, const std::string& prefix) {
  std::random_device rd;
  name_ = prefix + "_" + std::to_string(rd()) + std::to_string(rd() % 1000);
  auto r = db::Migrate(DatabaseUrl(), name_, migrations);
  if (!r.ok()) throw std::runtime_error("migrations failed: " + std::string(r.status().message()));
}

TestSchema::~TestSchema() {
  pool_.reset();
  try {
    pqxx::connection conn(DatabaseUrl());
    pqxx::nontransaction tx(conn);
    tx.exec("DROP SCHEMA IF EXISTS " + tx.quote_name(name_) + " CASCADE");
  } catch (const std::exception&) {
    // A leftover schema in a throwaway test database is harmless.
  }
}

db::Pool& TestSchema::pool(db::Prepare prepare) {
  if (pool_ == nullptr) {
    db::PoolOptions o;
    o.url = DatabaseUrl();
    o.schema = name_;
    o.size = 4;
    pool_ = std::make_unique<db::Pool>(o, std::move(prepare));
  }
  return *pool_;
}

uint16_t FreePort() {
  // Below Linux's ephemeral range (32768-60999): a port handed to a server under test
  // cannot meanwhile be taken by some process's outgoing connection.
  // And never the same port twice in one test run: a port handed out but not yet bound
  // by its server still tests free, also in the test processes CTest runs alongside.
  // Each port handed out is claimed by creating $STADTPORTAL_TEST_TMP/ports/<port>
  // (O_EXCL), which scripts/test removes with the rest of the run's files.
  static std::mutex mu;
  static std::set<int> handed_out;
  static std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(20000, 32000);
  std::lock_guard<std::mutex> lock(mu);
  const char* tmp = std::getenv("STADTPORTAL_TEST_TMP");
  const std::string claims = tmp != nullptr && *tmp != '\0' ? std::string(tmp) + "/ports" : "";
  if (!claims.empty()) ::mkdir(claims.c_str(), 0755);  // Exists already for all but the first.
  for (;;) {
    const int port = pick(rng);
    if (handed_out.count(port) > 0) continue;
    if (!claims.empty()) {
      const int claim = ::open((claims + "/" + std::to_string(port)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (claim < 0) continue;  // Another test process of this run has it.
      ::close(claim);
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (!free) continue;
    handed_out.insert(port);
    return static_cast<uint16_t>(port);
  }
}

bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace {

// Started processes not yet seen to exit, for the fatal-signal handler (no locks there).
constexpr size_t kMaxProcesses = 512;
std::atomic<pid_t> started[kMaxProcesses];

void Track(pid_t pid) {
  for (auto& slot : started) {
    pid_t none = 0;
    if (slot.compare_exchange_strong(none, pid)) return;
  }
}

void Untrack(pid_t pid) {
  for (auto& slot : started) {
    pid_t mine = pid;
    if (slot.compare_exchange_strong(mine, 0)) return;
  }
}

void KillStarted() {
  for (auto& slot : started) {
    const pid_t pid = slot.exchange(0);
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

void OnFatalSignal(int sig) {
  KillStarted();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void KillProcessesAtAbnormalEnd() {
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, OnFatalSignal);
  std::atexit(KillStarted);
}

Process::Process(std::string path, std::vector<std::string> args, std::map<std::string, std::string> env,
                 std::string log_path)
    : log_path_(std::move(log_path)) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    if (kv.rfind("STADTPORTAL_", 0) == 0) continue;  // Only what the test passes.
    env_strings.push_back(kv);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  args.insert(args.begin(), path);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&pid_, path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + path);
  Track(pid_);
}

Process::~Process() {
  if (running()) {
    Signal(SIGKILL);
    Wait(std::chrono::seconds(5));
  }
}

void Process::Signal(int sig) {
  if (!exited_) ::kill(pid_, sig);
}

bool Process::running() {
  if (exited_) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    Untrack(pid_);
    exited_ = true;
    status_ = st;
    return false;
  }
  return true;
}

int Process::Wait(std::chrono::milliseconds timeout) {
  if (!Eventually([&] { return !running(); }, timeout)) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return -2;
}

std::string Process::Output() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunCommand(const std::string& command, std::string* output) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
    if (output != nullptr) output->append(buf, n);
  }
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace stadtportal::testing

// Resource limits of the real gateway and identity processes: request bodies, slow
// clients, Argon2 concurrency, and the memory (peak RSS) they need under attack,
// against the chart's memory limits.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A raw TCP connection to the gateway, for what HTTP clients will not send.
class Raw {
 public:
  explicit Raw(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Raw() { close(fd_); }
  bool Send(const std::string& s) {
    return send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Everything until the server closes the connection (or 5 s pass without a byte).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
};

// services.<part>.resources.limits.memory in helm/stadtportal/values.yaml, in bytes.
int64_t ChartMemoryLimit(const std::string& part) {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) + "/helm/stadtportal/values.yaml");
  REQUIRE(in);
  std::string line;
  bool in_part = false;
  const std::regex limit(R"(^\s+limits: \{.*memory: (\d+)(Mi|Gi)\})");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line == "  " + part + ":") in_part = true;
    if (in_part && std::regex_search(line, m, limit)) {
      return std::stoll(m[1].str()) * (m[2].str() == "Gi" ? (1LL << 30) : (1LL << 20));
    }
  }
  FAIL("no memory limit for " << part << " in values.yaml");
  return 0;
}

// A line of /proc/<pid>/status in bytes (VmRSS now, VmHWM the peak so far).
int64_t ProcStatus(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return -1;
}

std::string Multipart(size_t file_bytes, const std::string& boundary) {
  std::string body = "--" + boundary +
                     "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"scan.pdf\"\r\n"
                     "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n";
  body.append(file_bytes, 'x');
  body += "\r\n--" + boundary + "--\r\n";
  return body;
}

int StatusOf(const std::string& response) {
  std::smatch m;
  static const std::regex status_line(R"(^HTTP/1\.1 (\d{3}) )");
  return std::regex_search(response, m, status_line) ? std::stoi(m[1].str()) : 0;
}

}  // namespace

TEST_CASE("bodies over a route's limit are refused before or while they are read", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));

  SECTION("a declared length over the limit: 413 at once, nothing read") {
    Raw raw(stack.gateway_port());
    const auto t0 = Clock::now();
    REQUIRE(
        raw.Send("POST /api/v1/auth/login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1073741824\r\n\r\n{\"email\":"));
    const std::string response = raw.ReadAll();
    CHECK(StatusOf(response) == 413);
    CHECK(response.find("application/problem+json") != std::string::npos);
    CHECK(response.find("Connection: close") != std::string::npos);
    CHECK(Clock::now() - t0 < 2s);
  }
  SECTION("a JSON route takes 64 KiB, also when the length is not declared (chunked)") {
    Raw raw(stack.gateway_port());
    REQUIRE(
        raw.Send("POST /api/v1/auth/login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk(8192, ' ');
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    for (int i = 0; i < 12; ++i) raw.Send(size + chunk + "\r\n");  // 96 KiB of JSON whitespace.
    raw.Send("0\r\n\r\n");
    CHECK(StatusOf(raw.ReadAll()) == 413);
  }
  SECTION("an upload route takes its own limit, an upload over it is refused before it is sent") {
    Raw raw(stack.gateway_port());
    const auto t0 = Clock::now();
    REQUIRE(
        raw.Send("POST /api/v1/drafts/d/attachments HTTP/1.1\r\nHost: portal\r\n"
                 "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 30000000\r\n"
                 "Expect: 100-continue\r\n\r\n"));
    const std::string response = raw.ReadAll();
    CHECK(StatusOf(response) == 413);
    CHECK(response.find("HTTP/1.1 100") == std::string::npos);
    CHECK(Clock::now() - t0 < 2s);
    // Within the limit (and the Content-Length check), a body of 100 KiB is fine for it.
    auto c = stack.Http();
    auto small = c.Post("/api/v1/drafts/d/attachments", Multipart(100 * 1024, "b"), "multipart/form-data; boundary=b");
    REQUIRE(small);
    CHECK(small->status == 401);  // No caller named: refused before a slot is taken or a byte read.
  }
  SECTION("a GET with a body is refused, not taken for the next request") {
    Raw raw(stack.gateway_port());
    const std::string hidden = "GET /api/v1/services HTTP/1.1\r\nHost: portal\r\n\r\n";
    REQUIRE(raw.Send("GET /healthz HTTP/1.1\r\nHost: portal\r\nContent-Length: " + std::to_string(hidden.size()) +
                     "\r\n\r\n" + hidden));
    const std::string response = raw.ReadAll();
    CHECK(StatusOf(response) == 400);
    CHECK(response.find("HTTP/1.1", 10) == std::string::npos);  // One answer: nothing smuggled.
  }
  SECTION("a body framed two ways (Content-Length and Transfer-Encoding, or a coding besides chunked) is refused") {
    const std::string hidden = "GET /api/v1/services HTTP/1.1\r\nHost: portal\r\n\r\n";
    for (const std::string framing :
         {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n",
          "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "Transfer-Encoding: xchunked\r\n"}) {
      INFO(framing);
      Raw raw(stack.gateway_port());
      REQUIRE(raw.Send("POST /api/v1/auth/login HTTP/1.1\r\nHost: portal\r\nContent-Type: application/json\r\n" +
                       framing + "\r\n0\r\n\r\n" + hidden));
      const std::string response = raw.ReadAll();
      CHECK(StatusOf(response) == 400);
      CHECK(response.find("HTTP/1.1", 10) == std::string::npos);  // One answer: nothing smuggled.
    }
  }
  CHECK(stack.WaitReady(5s));
}

TEST_CASE("a slow client is cut off at the whole-request deadline, however steadily it trickles", "[e2e]") {
  Stack stack({}, {{"STADTPORTAL_HTTP_REQUEST_TIMEOUT_MS", "3000"}});
  REQUIRE(stack.WaitReady(60s));
  Raw raw(stack.gateway_port());
  const auto t0 = Clock::now();
  REQUIRE(raw.Send("GET /healthz HTTP/1.1\r\nHost: portal\r\nX-Slow: "));
  // One byte every 300 ms: every read comes well within the read timeout (10 s).
  bool cut = false;
  while (Clock::now() - t0 < 12s) {
    std::this_thread::sleep_for(300ms);
    if (!raw.Send("a")) {
      cut = true;
      break;
    }
  }
  const auto lasted = Clock::now() - t0;
  CHECK(cut);
  CHECK(lasted >= 2500ms);
  CHECK(lasted < 8s);  // Well before the 12 s the client would go on for; read timeouts are 10 s.
  CHECK(stack.WaitReady(5s));
}

TEST_CASE("gateway and identity stay under their chart memory limits under maximal requests and slow clients",
          "[e2e]") {
  // Production's Argon2id memory (64 MiB per run; one pass keeps the test quick), 2 at once.
  Stack stack({}, {{"STADTPORTAL_HTTP_REQUEST_TIMEOUT_MS", "5000"}});
  auto& identity = stack.instance("identity");
  REQUIRE(
      stack.Restart(identity, {{"STADTPORTAL_ARGON2_MEMLIMIT_KIB", "65536"}, {"STADTPORTAL_ARGON2_OPSLIMIT", "1"}}));
  REQUIRE(stack.WaitReady(60s));
  // Uploads come from a logged-in citizen (without credentials they are refused unread),
  // to a draft that does not exist: read whole, handed to the submission service, 404.
  auto login_client = stack.Http();
  const nlohmann::json uploader = Onboard(stack, login_client, UniqueEmail());
  const std::string upload_path = "/api/v1/drafts/7d1c2f0e-5b7a-4c1e-9a53-0c2b7f3e9d41/attachments";
  const int gateway_pid = stack.gateway().pid(), identity_pid = identity.process->pid();
  const int64_t gateway_limit = ChartMemoryLimit("gateway"), identity_limit = ChartMemoryLimit("identity");
  const int64_t gateway_before = ProcStatus(gateway_pid, "VmRSS"), identity_before = ProcStatus(identity_pid, "VmRSS");

  constexpr int kLogins = 40, kUploads = 24, kSlow = 24;
  // The largest upload accepted: 21 MiB with the multipart framing and the 512 bytes each part is counted for.
  const std::string upload = Multipart(21 * 1024 * 1024 - 1024, "limits");
  std::vector<std::future<int>> uploads, logins;
  std::atomic<bool> stop{false};
  // Slow clients: headers trickling in, holding connections.
  std::vector<std::thread> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.emplace_back([&] {
      Raw raw(stack.gateway_port());
      raw.Send("POST /api/v1/auth/login HTTP/1.1\r\nHost: portal\r\nX-Slow: ");
      while (!stop && raw.Send("a")) std::this_thread::sleep_for(200ms);
    });
  }
  for (int i = 0; i < kUploads; ++i) {
    uploads.push_back(std::async(std::launch::async, [&] {
      auto c = stack.Http();
      c.set_read_timeout(60s);
      c.set_write_timeout(60s);
      auto r = c.Post(upload_path.c_str(), Bearer(uploader), upload, "multipart/form-data; boundary=limits");
      return r ? r->status : 0;
    }));
  }
  for (int i = 0; i < kLogins; ++i) {
    logins.push_back(std::async(std::launch::async, [&, i] {
      auto c = stack.Http();
      c.set_read_timeout(60s);
      auto r =
          PostJson(c, "/api/v1/auth/login",
                   {{"email", "burst." + std::to_string(i) + "." + UniqueEmail()}, {"password", "falsches Passwort"}});
      return r ? r->status : 0;
    }));
  }
  std::map<int, int> upload_statuses, login_statuses;
  for (auto& f : uploads) ++upload_statuses[f.get()];
  for (auto& f : logins) ++login_statuses[f.get()];
  stop = true;
  for (auto& t : slow) t.join();

  const int64_t gateway_peak = ProcStatus(gateway_pid, "VmHWM"), identity_peak = ProcStatus(identity_pid, "VmHWM");
  std::string summary = " uploads";
  for (const auto& [status, n] : upload_statuses) summary += " " + std::to_string(status) + "×" + std::to_string(n);
  summary += ", log-ins";
  for (const auto& [status, n] : login_statuses) summary += " " + std::to_string(status) + "×" + std::to_string(n);
  const auto mib = [](int64_t b) { return std::to_string(b >> 20) + " MiB"; };
  const std::string figures = "limits: " + std::to_string(kUploads) + " uploads of 21 MiB, " + std::to_string(kLogins) +
                              " log-ins (Argon2id 64 MiB), " + std::to_string(kSlow) +
                              " slow clients: gateway peak RSS " + mib(gateway_peak) + " (idle " + mib(gateway_before) +
                              ", chart limit " + mib(gateway_limit) + "), identity peak RSS " + mib(identity_peak) +
                              " (idle " + mib(identity_before) + ", chart limit " + mib(identity_limit) +
                              "); answers:" + summary;
  testing::Report(figures);
  INFO(figures);
  CHECK(gateway_peak > 0);
  CHECK(identity_peak > 0);
  CHECK(gateway_peak < gateway_limit);
  CHECK(identity_peak < identity_limit);
  // Every answer is one the client can act on, never a 500 or 502, never no answer.
  // Uploads: read and refused for the missing draft (404), busy (503), or not sent
  // within the request deadline after waiting for a slot (408); never 413.
  CHECK(upload_statuses[404] > 0);
  for (const auto& [status, n] : upload_statuses) {
    INFO("upload " << status);
    CHECK((status == 404 || status == 408 || status == 503));
  }
  // Log-ins: wrong password (401), this client's failures slowed down (429), busy (503),
  // or — for the first hashes, which start at once on two cores shared with 500 MiB of
  // uploads — too slow (504).
  for (const auto& [status, n] : login_statuses) {
    INFO("log-in " << status);
    CHECK((status == 401 || status == 429 || status == 503 || status == 504));
  }
  CHECK(stack.gateway().running());
  CHECK(identity.process->running());
  CHECK(stack.WaitReady(10s));
}

}  // namespace stadtportal::e2e

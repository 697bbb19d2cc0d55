// Hostile input at the edge, against the real platform: every route of
// docs/api/openapi.yaml (path parameters filled with plausible and hostile values) ×
// every header the gateway reads and some it does not × hostile values, sent on raw
// sockets so that malformed requests arrive as written. The gateway must answer each
// with a 4xx or its normal answer — never a 5xx, never a dropped connection — and still
// be ready afterwards.
//
// The short variant (scripts/test) sends a few thousand inputs; the nightly one
// (STADTPORTAL_FUZZ_INPUTS=100000 or more) repeats with other picks and adds body
// fuzzing (hostile JSON documents and random mutations of valid ones).
// STADTPORTAL_FUZZ_SEED makes a run repeatable; the seed is printed.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Operation {
  std::string method;
  std::string path;  // Template, e.g. /api/v1/drafts/{id}
};

// The documented operations, read as the contract test reads them.
std::vector<Operation> DocumentedOperations() {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/openapi.yaml");
  REQUIRE(in);
  std::vector<Operation> ops;
  std::string line, path;
  bool in_paths = false;
  const std::regex path_line(R"(^  (/[^:]*):\s*$)");
  const std::regex method_line(R"(^    (get|post|put|patch|delete):\s*$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line == "paths:")
      in_paths = true;
    else if (!line.empty() && line[0] != ' ')
      in_paths = false;
    if (!in_paths) continue;
    if (std::regex_match(line, m, path_line))
      path = m[1].str();
    else if (std::regex_match(line, m, method_line))
      ops.push_back({absl::AsciiStrToUpper(m[1].str()), path});
  }
  return ops;
}

// The answer to one raw request: the status, 0 when the connection closed without one.
int SendRaw(uint16_t port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  timeval tv{15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return 0;
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);  // The whole request is there: a server waiting for more sees its end.
  std::string answer;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    if (answer.size() < 4096) answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  // "HTTP/1.1 200 OK"; after an interim "100 Continue", the final answer.
  size_t at = 0;
  for (;;) {
    if (answer.size() < at + 12 || answer.compare(at, 5, "HTTP/") != 0) return 0;
    int status = 0;
    for (size_t i = at + 9; i < at + 12; ++i) {
      if (!absl::ascii_isdigit(answer[i])) return 0;
      status = status * 10 + (answer[i] - '0');
    }
    if (status >= 200) return status;
    at = answer.find("\r\n\r\n", at);
    if (at == std::string::npos) return 0;
    at += 4;
  }
}

std::string Repeat(const std::string& s, size_t bytes) {
  std::string out;
  while (out.size() < bytes) out += s;
  return out;
}

const std::string kValidTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Hostile header values: percent-encoded control bytes (httplib decodes header values),
// raw non-ASCII and invalid UTF-8, NUL, 8 KB values, malformed W3C and HTTP syntaxes.
const std::vector<std::string>& HostileValues() {
  static const std::vector<std::string> kValues = {
      "%7F",
      "%00",
      "%0D%0AX-Injected: yes",
      "%FF%FE",
      "%C0%AF",
      "%E2%80%A8",
      "%C2%85",
      "%",
      "%%",
      "%zz",
      "%2",
      "\xc3\xbc\xe2\x82\xac",
      "\xff\xfe",
      "\x80",
      "\x01\x02\x1b[31m",
      "\x7f",
      std::string("a\0b", 3),
      "a\tb",
      "a\rb",
      "",
      " ",
      Repeat("A", 8192),
      Repeat("%7F", 8192),
      Repeat("\xc3\xbc", 8192),
      kValidTraceparent,
      "00-" + std::string(32, '0') + "-" + std::string(16, '0') + "-00",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      "00--",
      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,%FF=x",
      "Bearer",
      "Bearer ",
      "Bearer %FF",
      "Bearer " + Repeat("x", 8192),
      "Basic !!!",
      "Basic " + std::string("w7w6//8="),  // Decodes to invalid UTF-8 with no colon.
      "Basic Ym86JWZm",                    // "bo:%ff"
      "Basic /w==",
      "W/\"",
      "\"",
      "\"1",
      "*",
      "W/\"99999999999999999999999\"",
      "\"-1\"",
      ";;;",
      ",,,",
      "=",
      "__Host-stadtportal_session=%FF; __Host-stadtportal_session=x",
      "-1",
      "18446744073709551616",
      "1e999999",
      "application/json; charset=\xff",
      "multipart/form-data; boundary=",
      "multipart/form-data; boundary=" + Repeat("b", 4096),
      "application/x-www-form-urlencoded",
      "chunked",
      "gzip, chunked",
      "100-continue",
      "bytes=0-99999999999999999999999",
      "bytes=-1,-2,-3,-4,-5,-6,-7,-8,-9",
      "1.1.1.1, %FF, 999.999.999.999, ::ffff:127.0.0.1, unknown",
      "for=\"[::1]\";proto=http;by=%00",
      "null",
      "https://evil.example\r\nX-Injected: yes",
      "de;q=1e999, en;q=-1, *;q=NaN",
      "keep-alive, Upgrade",
  };
  return kValues;
}

// Headers the gateway reads, and some it does not.
const std::vector<std::string>& FuzzedHeaders() {
  static const std::vector<std::string> kHeaders = {
      "traceparent",
      "tracestate",
      "X-Request-Id",
      "Authorization",
      "Cookie",
      "Content-Type",
      "Content-Length",
      "Transfer-Encoding",
      "If-Match",
      "If-None-Match",
      "Idempotency-Key",
      "X-Forwarded-For",
      "Forwarded",
      "X-Real-IP",
      "Origin",
      "Accept",
      "Accept-Language",
      "Accept-Encoding",
      "X-CSRF-Token",
      "Host",
      "Range",
      "Expect",
      "Connection",
      "User-Agent",
      "Referer",
      "Testpay-Signature",
      "Paypal-Transmission-Sig",
      "Paypal-Cert-Url",
      "X-Stadtportal-Signature",
      "X-\xff\x7f",
  };
  return kHeaders;
}

// Values for path parameters: plausible ones and hostile ones (percent-encoded as a
// client would put them into the request line).
const std::vector<std::string>& PathValues() {
  static const std::vector<std::string> kValues = {
      "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b",
      "civil-registry-certificate",
      "testpay",
      "paypal",
      "%7F",
      "%FF",
      "%00",
      "..",
      "%2E%2E%2F%2E%2E",
      "%252F",
      "'%20OR%201=1--",
      "%C3%BC",
      "%C0%AF",
      "%0D%0AX-Injected:%20yes",
      "{id}",
      "-1",
      Repeat("a", 8192),
      Repeat("%C3%BC", 4096),
  };
  return kValues;
}

const std::vector<std::string>& Queries() {
  static const std::vector<std::string> kQueries = {
      "",
      "?q=%7F",
      "?q=%C3%BC",
      "?page_size=1e999",
      "?page_size=99999999999999999999",
      "?page_size=-1",
      "?page_token=!!!",
      "?page_token=%FF",
      "?page_token=" + Repeat("QUFB", 8192),
      "?a=%FF&%FE=b",
      "?=&&=&",
      "?archived=maybe&unread=%00",
      "?after=18446744073709551616",
      "?day=2026-13-45",
      "?step=%0A",
      "?field=%E2%80%A8",
      "?status=" + Repeat("x", 8192),
  };
  return kQueries;
}

// Hostile JSON bodies: number edge cases, depth, strings with escapes, wrong types.
const std::vector<std::string>& HostileBodies() {
  static const std::vector<std::string> kBodies = {
      "",
      "{}",
      "{",
      "null",
      "[]",
      R"({"email":1e999999})",
      R"({"email":-1e999999,"password":1e-999999})",
      R"({"amount_minor":18446744073709551616,"refund_amount_available":-9223372036854775809})",
      R"({"rating":1e308,"comment":"\u0000"})",
      R"({"data":{"copies":1e400}})",
      R"({"data":{"copies":123456789012345678901234567890}})",
      R"({"token":"\ud800"})",
      R"({"email":"a\u0000@example.de","password":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"})",
      R"({"body":"\u202e\u0007\u001b[31m","display_name":"X\r\nX-Injected: yes"})",
      R"({"definition":{"id":"x","steps":[{"fields":[{"type":"number","min":1e999}]}]}})",
      R"({"definition":{"id":1e999}})",
      R"({"older_than_seconds":-1e300})",
      R"({"name":"n","mode":"push","endpoint_url":"http://169.254.169.254/","secret":"%00"})",
      R"({"email":"x","email":"y"})",
      Repeat("[", 10000),
      Repeat("{\"a\":", 5000),
      "\xff\xfe{}",
      "{\"email\":\"\xc3\x28\"}",
      "grant_type=client_credentials&client_id=%FF&client_secret=%00",
      "grant_type=client_credentials&client_assertion_type=%0A&client_assertion=" + Repeat("a", 8192),
  };
  return kBodies;
}

struct Input {
  std::string description;
  std::string request;
};

struct Tally {
  std::mutex mu;
  int64_t total = 0, ok = 0, client_errors = 0, server_errors = 0, no_answer = 0;
  std::vector<std::string> failures;

  void Add(const Input& in, int status) {
    std::lock_guard<std::mutex> lock(mu);
    ++total;
    if (status == 0) {
      ++no_answer;
    } else if (status >= 500) {
      ++server_errors;
    } else if (status >= 400) {
      ++client_errors;
      return;
    } else {
      ++ok;
      return;
    }
    if (failures.size() < 25) failures.push_back(absl::StrCat(status, " ← ", in.description));
  }
};

// Builds the raw requests of a run.
class Generator {
 public:
  Generator(uint16_t port, std::string citizen, std::string admin, uint64_t seed)
      : port_(port), citizen_(std::move(citizen)), admin_(std::move(admin)), rng_(seed) {}

  // One raw request. `header`/`value` is the header under test (added once, or twice
  // when `duplicate`), overriding a default of the same name.
  Input Make(const Operation& op, const std::string& path_value, const std::string& query, const std::string& header,
             const std::string& value, bool duplicate, bool authenticated, const std::string& body) {
    static const std::regex kParam(R"(\{[a-z_]+\})");
    std::string target = std::regex_replace(op.path, kParam, path_value) + query;
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Host", absl::StrCat("127.0.0.1:", port_)},
        {"Content-Type",
         absl::StrContains(body, "grant_type=") ? "application/x-www-form-urlencoded" : "application/json"},
        {"Content-Length", std::to_string(body.size())},
        {"Connection", "close"},
    };
    // Session-ending and session-rotating routes never get the shared sessions.
    const bool ends_session = absl::StrContains(op.path, "/logout") || absl::StrContains(op.path, "acting-party") ||
                              absl::StrContains(op.path, "password-change");
    if (authenticated && !ends_session) {
      headers.push_back({"Authorization", "Bearer " + (absl::StrContains(op.path, "/admin/") ? admin_ : citizen_)});
      headers.push_back({"Idempotency-Key", absl::StrCat("fuzz-", rng_())});
      headers.push_back({"If-Match", "\"1\""});
    }
    if (!header.empty()) {
      auto same = [&](const auto& h) { return absl::EqualsIgnoreCase(h.first, header); };
      if (!duplicate) headers.erase(std::remove_if(headers.begin(), headers.end(), same), headers.end());
      headers.push_back({header, value});
      if (duplicate) headers.push_back({header, value + "2"});
    }
    std::string request = absl::StrCat(op.method, " ", target, " HTTP/1.1\r\n");
    for (const auto& [name, v] : headers) absl::StrAppend(&request, name, ": ", v, "\r\n");
    absl::StrAppend(&request, "\r\n", body);
    std::string description = absl::StrCat(
        op.method, " ", target.substr(0, 120), " ", header, ": ", absl::CHexEscape(value.substr(0, 60)),
        duplicate ? " (twice)" : "", authenticated ? " [session]" : "", " body ", absl::CHexEscape(body.substr(0, 60)));
    return {std::move(description), std::move(request)};
  }

  // A random mutation of `body`: flipped, inserted, deleted or repeated bytes.
  std::string Mutate(std::string body) {
    static const std::string kInteresting[] = {"1e999999", "-0",   "\\u0000", "\\ud800", "\xff",
                                               "\x7f",     "[[[[", "}}",      "\"",      "18446744073709551616",
                                               "NaN",      "\r\n", "%00"};
    const int edits = 1 + static_cast<int>(rng_() % 4);
    for (int i = 0; i < edits; ++i) {
      const size_t at = body.empty() ? 0 : rng_() % (body.size() + 1);
      switch (rng_() % 4) {
        case 0:
          if (!body.empty() && at < body.size()) body[at] = static_cast<char>(rng_() & 0xff);
          break;
        case 1: body.insert(at, kInteresting[rng_() % std::size(kInteresting)]); break;
        case 2:
          if (at < body.size()) body.erase(at, 1 + rng_() % 8);
          break;
        default: body.insert(at, body.substr(at, std::min<size_t>(64, body.size() - at))); break;
      }
    }
    return body;
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  uint16_t port_;
  std::string citizen_, admin_;
  std::mt19937_64 rng_;
};

// Valid bodies of some routes, the seeds of body mutations. No log-in or registration
// bodies: a valid one costs a password hash, and the run is about parsing, not load.
const std::vector<std::string>& SeedBodies() {
  static const std::vector<std::string> kSeeds = {
      R"({"token":"abcdefghijklmnopqrstuvwxyz012345"})",
      R"({"data":{"certificate_type":"birth","copies":2,"event_date":"1990-02-28","address":{"postcode":"90403"}}})",
      R"({"rating":5,"comment":"gut"})",
      R"({"amount_minor":1200,"refund_amount_available":2400,"currency":"EUR","reason":"x"})",
      R"({"body":"Guten Tag"})",
      R"({"name":"Verein","kind":"association"})",
      R"({"definition":{"id":"x","version":2,"steps":[{"id":"s","fields":[{"id":"f","type":"text"}]}]}})",
  };
  return kSeeds;
}

int64_t Inputs() {
  const char* v = std::getenv("STADTPORTAL_FUZZ_INPUTS");
  return v != nullptr ? std::max<int64_t>(std::atoll(v), 1) : 3000;
}

uint64_t Seed() {
  const char* v = std::getenv("STADTPORTAL_FUZZ_SEED");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : std::random_device{}();
}

}  // namespace

TEST_CASE("hostile traceparent values and JSON numbers do not take the gateway down", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  // The issue's example: httplib decodes "%7F" to DEL, which gRPC refused by aborting.
  for (const std::string traceparent : {"%7F", "\xc3\xbc\xe2\x82\xac", "%00", "%0D%0A", "\xff"}) {
    INFO(absl::CHexEscape(traceparent));
    auto r = c.Get("/api/v1/services", {{"traceparent", traceparent}});
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  auto kept = c.Get("/api/v1/services", {{"traceparent", kValidTraceparent}, {"X-Request-Id", "edge-trace-1"}});
  REQUIRE(kept);
  CHECK(kept->status == 200);
  // A number too large for a double is the client's error on every JSON route.
  for (const std::string path : {"/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/verify-email",
                                 "/api/v1/auth/password-reset", "/api/v1/auth/password-reset/confirm"}) {
    INFO(path);
    auto r = c.Post(path, R"({"email":1e999999})", "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  }
  const auto login = Onboard(stack, c, UniqueEmail());
  auto acting = c.Post("/api/v1/me/acting-party", Bearer(login), R"({"party_id":1e999999})", "application/json");
  REQUIRE(acting);
  CHECK(acting->status == 400);
  auto ready = c.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  CHECK(stack.gateway().running());
  // The services saw the kept traceparent, bound to their log lines.
  CHECK(stack.AllLogs().find(kValidTraceparent) != std::string::npos);
}

TEST_CASE("header fuzz: every route × header × hostile value is a 4xx or the normal answer", "[e2e]") {
  Stack stack({},
              {{"STADTPORTAL_RATE_LIMIT_AUTH", "100000000/60"}, {"STADTPORTAL_RATE_LIMIT_DEFAULT", "100000000/60"}});
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string citizen = Onboard(stack, c, UniqueEmail())["token"];
  const std::string admin = Admin(stack, c)["token"];
  const auto ops = DocumentedOperations();
  REQUIRE(ops.size() > 60);

  const int64_t wanted = Inputs();
  const uint64_t seed = Seed();
  std::cout << "edge fuzz: seed " << seed << " (STADTPORTAL_FUZZ_SEED), " << wanted << " inputs wanted" << std::endl;
  Generator gen(stack.gateway_port(), citizen, admin, seed);
  const auto& headers = FuzzedHeaders();
  const auto& values = HostileValues();
  const auto& paths = PathValues();
  const auto& queries = Queries();
  const auto& bodies = HostileBodies();

  // Round one covers every (route, header) pair; later rounds pick other values, path
  // parameters, queries and duplicates; past the header rounds' share, body fuzzing.
  std::vector<Input> inputs;
  int64_t header_inputs = 0, body_inputs = 0;
  const bool nightly = wanted >= 100000;
  const int64_t header_share = nightly ? wanted / 2 : wanted;
  for (size_t round = 0; static_cast<int64_t>(inputs.size()) < header_share; ++round) {
    for (size_t o = 0; o < ops.size() && static_cast<int64_t>(inputs.size()) < header_share; ++o) {
      for (size_t h = 0; h < headers.size() && static_cast<int64_t>(inputs.size()) < header_share; ++h) {
        auto& rng = gen.rng();
        const size_t k = round == 0 ? (o * headers.size() + h) : rng();
        const bool body_method = ops[o].method != "GET" && ops[o].method != "DELETE";
        inputs.push_back(gen.Make(ops[o], paths[(k / 3) % paths.size()],
                                  round == 0 ? "" : queries[rng() % queries.size()], headers[h],
                                  values[k % values.size()], rng() % 8 == 0, rng() % 2 == 0,
                                  body_method ? bodies[rng() % bodies.size()] : ""));
        ++header_inputs;
      }
    }
  }
  // Queries and path parameters on their own, so each is seen without a hostile header.
  for (const auto& op : ops) {
    for (const auto& q : queries) inputs.push_back(gen.Make(op, paths[0], q, "", "", false, true, ""));
    for (const auto& p : paths) inputs.push_back(gen.Make(op, p, "", "", "", false, false, ""));
    header_inputs += static_cast<int64_t>(queries.size() + paths.size());
  }
  // Bodies: every hostile body on every route with a body, then mutations of valid ones.
  for (const auto& op : ops) {
    if (op.method == "GET" || op.method == "DELETE") continue;
    for (const auto& b : bodies) {
      inputs.push_back(gen.Make(op, paths[0], "", "", "", false, true, b));
      ++body_inputs;
    }
  }
  std::vector<Operation> body_ops;
  for (const auto& op : ops) {
    if (op.method != "GET" && op.method != "DELETE") body_ops.push_back(op);
  }
  while (static_cast<int64_t>(inputs.size()) < wanted) {
    auto& rng = gen.rng();
    const auto& op = body_ops[rng() % body_ops.size()];
    const std::string body = gen.Mutate(SeedBodies()[rng() % SeedBodies().size()]);
    inputs.push_back(gen.Make(op, paths[rng() % 4], "", "", "", false, rng() % 4 != 0, body));
    ++body_inputs;
  }

  Tally tally;
  std::atomic<size_t> next{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < inputs.size(); i = next++) {
        tally.Add(inputs[i], SendRaw(stack.gateway_port(), inputs[i].request));
      }
    });
  }
  for (auto& t : workers) t.join();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;

  auto ready = c.Get("/readyz");
  const bool still_ready = ready && ready->status == 200;
  std::ostringstream summary;
  summary << "edge fuzz: " << tally.total << " inputs (" << header_inputs << " header/path/query, " << body_inputs
          << " body) in " << static_cast<int>(took.count()) << " s: " << tally.ok << " 2xx/3xx, " << tally.client_errors
          << " 4xx, " << tally.server_errors << " 5xx, " << tally.no_answer
          << " without answer; ready afterwards: " << (still_ready ? "yes" : "no") << "; seed " << seed;
  std::cout << summary.str() << std::endl;
  for (const auto& f : tally.failures) std::cout << "  " << f << std::endl;
  testing::Report(summary.str());

  CHECK(tally.total == static_cast<int64_t>(inputs.size()));
  CHECK(tally.server_errors == 0);
  CHECK(tally.no_answer == 0);
  CHECK(still_ready);
  CHECK(stack.gateway().running());
}

}  // namespace stadtportal::e2e

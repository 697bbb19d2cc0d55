// HTTP/1.1 load against the gateway (or nginx) for bench/all, on keep-alive
// connections, one thread per connection. Prints one line
//   calls=N errors=N rate=R/s p50_ms=… p90_ms=… p99_ms=…
// and exits 1 when any answer was not the expected status (the first one on stderr).
//
//   stadtportal-bench-http rate   BASE PATH RATE SECONDS CONNECTIONS [HEADER]
//       GET PATH at a constant RATE (requests/s over all connections), open loop: each
//       connection sends on its own fixed schedule and a latency counts from the
//       scheduled send time, so a stall is charged to every request it delays
//       (no coordinated omission). HEADER: one "Name: value" sent with each request.
//   stadtportal-bench-http submit BASE SESSION SERVICE DATA_JSON SECONDS CONNECTIONS
//       A citizen's submit path, closed loop: create a draft of SERVICE (201), save
//       DATA_JSON into it (200), submit it (201); one call = all three.
//   stadtportal-bench-http login  BASE EMAIL PASSWORD SECONDS CONNECTIONS
//       POST /api/v1/auth/login (200), closed loop.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

// Latencies and errors of all connections.
class Results {
 public:
  explicit Results(int connections) : latencies_(connections) {}
  void Add(int connection, Clock::time_point from) {
    latencies_[connection].push_back(std::chrono::duration<double, std::milli>(Clock::now() - from).count());
  }
  // Counts an error; the first one is kept for the report.
  void Fail(const std::string& what) {
    if (errors_++ == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      first_error_ = what;
    }
  }
  int Print(double seconds) {
    std::vector<double> all;
    for (auto& l : latencies_) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
      return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
    };
    std::printf("calls=%zu errors=%ld rate=%.1f/s p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n", all.size(), errors_.load(),
                all.size() / seconds, pct(0.50), pct(0.90), pct(0.99));
    if (errors_ > 0) std::fprintf(stderr, "first error: %s\n", first_error_.c_str());
    return errors_ > 0 || all.empty() ? 1 : 0;
  }

 private:
  std::vector<std::vector<double>> latencies_;
  std::atomic<long> errors_{0};
  std::mutex mu_;
  std::string first_error_;
};

std::string Describe(const char* what, const httplib::Result& r) {
  if (!r) return std::string(what) + ": " + httplib::to_string(r.error());
  return std::string(what) + ": HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 300);
}

std::unique_ptr<httplib::Client> Connect(const std::string& base) {
  auto c = std::make_unique<httplib::Client>(base);
  c->set_keep_alive(true);
  // As wrk: a request's header and body go out at once, not 40 ms apart (Nagle waiting
  // for the server's delayed ACK).
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(5);
  c->set_read_timeout(30);
  return c;
}

// Runs `connections` threads, each with its own keep-alive client, for `seconds`.
int RunThreads(const std::string& base, int connections, double seconds,
               const std::function<void(int, httplib::Client&, Clock::time_point, Results&)>& body) {
  Results results(connections);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i) {
    threads.emplace_back([&, i] {
      auto client = Connect(base);
      body(i, *client, start, results);
    });
  }
  for (auto& t : threads) t.join();
  return results.Print(seconds);
}

httplib::Headers ParseHeader(const std::string& h) {
  const auto colon = h.find(':');
  if (colon == std::string::npos) return {};
  const auto value = h.find_first_not_of(' ', colon + 1);
  return {{h.substr(0, colon), value == std::string::npos ? "" : h.substr(value)}};
}

int Rate(const std::string& base, const std::string& path, double rate, double seconds, int connections,
         const httplib::Headers& headers) {
  // Connection i sends at start + i·gap + k·interval: together `rate` per second, spread evenly.
  const auto interval = std::chrono::duration<double>(connections / rate);
  const auto gap = interval / connections;
  return RunThreads(
      base, connections, seconds, [&](int i, httplib::Client& c, Clock::time_point start, Results& results) {
        const auto until = start + std::chrono::duration<double>(seconds);
        for (long k = 0;; ++k) {
          const auto due = start + std::chrono::duration_cast<Clock::duration>(gap * (i + 1) + interval * k);
          if (due >= until) break;
          std::this_thread::sleep_until(due);
          auto r = c.Get(path, headers);
          if (!r || r->status / 100 != 2) {
            results.Fail(Describe("GET", r));
            continue;
          }
          results.Add(i, due);
        }
      });
}

int Submit(const std::string& base, const std::string& session, const std::string& service, const json& data,
           double seconds, int connections) {
  const httplib::Headers auth = {{"Authorization", "Bearer " + session}};
  const std::string body = json{{"data", data}}.dump();
  return RunThreads(
      base, connections, seconds, [&](int i, httplib::Client& c, Clock::time_point start, Results& results) {
        const auto until = start + std::chrono::duration<double>(seconds);
        while (Clock::now() < until) {
          const auto from = Clock::now();
          auto created = c.Post("/api/v1/services/" + service + "/drafts", auth, "{}", "application/json");
          if (!created || created->status != 201) {
            results.Fail(Describe("create draft", created));
            continue;
          }
          const json draft = json::parse(created->body, nullptr, false);
          if (!draft.is_object() || !draft.contains("id") || !draft["id"].is_string()) {
            results.Fail(Describe("create draft (no id)", created));
            continue;
          }
          const std::string id = draft["id"].get<std::string>();
          httplib::Headers save_headers = auth;
          save_headers.emplace("If-Match", "\"1\"");
          auto saved = c.Patch("/api/v1/drafts/" + id, save_headers, body, "application/json");
          if (!saved || saved->status != 200) {
            results.Fail(Describe("save draft", saved));
            continue;
          }
          httplib::Headers submit_headers = auth;
          submit_headers.emplace("Idempotency-Key", "bench-" + id);
          auto submitted = c.Post("/api/v1/drafts/" + id + "/submit", submit_headers, "", "application/json");
          if (!submitted || submitted->status != 201) {
            results.Fail(Describe("submit", submitted));
            continue;
          }
          results.Add(i, from);
        }
      });
}

int Login(const std::string& base, const std::string& email, const std::string& password, double seconds,
          int connections) {
  const std::string body = json{{"email", email}, {"password", password}}.dump();
  return RunThreads(base, connections, seconds,
                    [&](int i, httplib::Client& c, Clock::time_point start, Results& results) {
                      const auto until = start + std::chrono::duration<double>(seconds);
                      while (Clock::now() < until) {
                        const auto from = Clock::now();
                        auto r = c.Post("/api/v1/auth/login", body, "application/json");
                        if (!r || r->status != 200) {
                          results.Fail(Describe("login", r));
                          continue;
                        }
                        results.Add(i, from);
                      }
                    });
}

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s rate BASE PATH RATE SECONDS CONNECTIONS [HEADER]\n"
               "       %s submit BASE SESSION SERVICE DATA_JSON SECONDS CONNECTIONS\n"
               "       %s login BASE EMAIL PASSWORD SECONDS CONNECTIONS\n",
               argv0, argv0, argv0);
  return 2;
}

// A positive number from the command line, or 0.
double Positive(const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  return end != s && *end == '\0' && v > 0 ? v : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage(argv[0]);
  const std::string mode = argv[1];
  if (mode == "rate" && (argc == 7 || argc == 8)) {
    const double rate = Positive(argv[4]), seconds = Positive(argv[5]);
    const int connections = static_cast<int>(Positive(argv[6]));
    if (rate <= 0 || seconds <= 0 || connections <= 0) return Usage(argv[0]);
    return Rate(argv[2], argv[3], rate, seconds, connections, argc == 8 ? ParseHeader(argv[7]) : httplib::Headers{});
  }
  if (mode == "submit" && argc == 8) {
    const double seconds = Positive(argv[6]);
    const int connections = static_cast<int>(Positive(argv[7]));
    const json data = json::parse(argv[5], nullptr, false);
    if (seconds <= 0 || connections <= 0 || !data.is_object()) return Usage(argv[0]);
    return Submit(argv[2], argv[3], argv[4], data, seconds, connections);
  }
  if (mode == "login" && argc == 7) {
    const double seconds = Positive(argv[5]);
    const int connections = static_cast<int>(Positive(argv[6]));
    if (seconds <= 0 || connections <= 0) return Usage(argv[0]);
    return Login(argv[2], argv[3], argv[4], seconds, connections);
  }
  return Usage(argv[0]);
}

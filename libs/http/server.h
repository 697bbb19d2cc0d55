#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "libs/config/config.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::http {

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;
  int threads = 32;  // Worker threads; one per open connection while it is served.
  int queue = 256;   // Accepted connections waiting for a worker; beyond, accept waits.
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{5000};
  int keep_alive_max_requests = 100;

  // STADTPORTAL_HTTP_PORT, STADTPORTAL_LISTEN_HOST, STADTPORTAL_HTTP_THREADS, STADTPORTAL_HTTP_QUEUE,
  // STADTPORTAL_HTTP_MAX_BODY_BYTES, STADTPORTAL_HTTP_READ_TIMEOUT_MS, STADTPORTAL_HTTP_WRITE_TIMEOUT_MS,
  // STADTPORTAL_HTTP_KEEPALIVE_TIMEOUT_MS, STADTPORTAL_HTTP_KEEPALIVE_MAX_REQUESTS.
  static ServerOptions FromEnv(const config::Env& env, uint16_t default_port);
};

// A fixed set of workers with a bounded queue: when every worker is busy and the
// queue is full, the accept loop waits, and new connections queue in the kernel's
// listen backlog instead of growing threads or memory without bound.
class BoundedThreadPool : public httplib::TaskQueue {
 public:
  BoundedThreadPool(int threads, int queue);
  ~BoundedThreadPool() override;
  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void Work();
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool shutdown_ = false;
};

// Headers every response carries, and the CORS allow-list.
struct EdgeOptions {
  // Strict-Transport-Security max-age; 0 leaves the header out (plain-HTTP development).
  int64_t hsts_max_age = 31536000;
  // Origins allowed to call the API from a browser (exact match, e.g. https://www.nuernberg.de).
  std::vector<std::string> cors_origins;

  // STADTPORTAL_HSTS_MAX_AGE_S, STADTPORTAL_CORS_ORIGINS (comma-separated).
  static EdgeOptions FromEnv(const config::Env& env);
};

// Path parameters captured by a route's pattern, e.g. "/api/v1/services/{id}" → {"id": "…"}.
using Params = std::map<std::string, std::string>;
using Handler = std::function<void(const httplib::Request&, httplib::Response&, const Params&)>;

// Routes by method and path template. Unknown paths get 404 and known paths with
// another method 405 (with Allow), both as problem+json. Every response carries the
// request id; RED metrics are labelled by route template, never by raw path.
class Router {
 public:
  explicit Router(std::string metrics_prefix, EdgeOptions edge = {});
  void Add(const std::string& method, const std::string& pattern, Handler handler);
  // Installs the router and the uniform error handling on `server`.
  void Install(httplib::Server& server);
  // All routes as "METHOD /path/{param}" (for the OpenAPI contract test).
  std::vector<std::string> Routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::regex re;
    std::vector<std::string> names;
    Handler handler;
  };
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  void EdgeHeaders(const httplib::Request& req, httplib::Response& res) const;
  std::vector<Route> routes_;
  EdgeOptions edge_;
  metrics::Red red_;
};

// Writes an RFC 9457 problem for `s` with the current request id.
void WriteProblem(httplib::Response& res, const absl::Status& s);
// Writes a problem the HTTP layer raises itself (405, 413, …), see status::HttpProblem.
void WriteHttpProblem(httplib::Response& res, int http_status, const std::string& detail);
void WriteJson(httplib::Response& res, int status, const nlohmann::json& body);

// Applies the options (TCP_NODELAY on, timeouts, keep-alive and body limits, the
// bounded pool) to a server.
void Configure(httplib::Server& server, const ServerOptions& options);

}  // namespace stadtportal::http

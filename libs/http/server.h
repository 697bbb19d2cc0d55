#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "libs/config/config.h"
#include "libs/http/deadline_server.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::http {

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;
  int threads = 32;  // Worker threads; one per open connection while it is served.
  int queue = 256;   // Accepted connections waiting for a worker; beyond, accept waits.
  std::chrono::milliseconds read_timeout{10000};
  // Reading a whole request (line, headers, body) takes at most this, however it trickles.
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{5000};
  int keep_alive_max_requests = 100;

  // STADTPORTAL_HTTP_PORT, STADTPORTAL_LISTEN_HOST, STADTPORTAL_HTTP_THREADS, STADTPORTAL_HTTP_QUEUE,
  // STADTPORTAL_HTTP_READ_TIMEOUT_MS, STADTPORTAL_HTTP_REQUEST_TIMEOUT_MS, STADTPORTAL_HTTP_WRITE_TIMEOUT_MS,
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
  // Request bodies, checked before (Content-Length) and while they are read: routes
  // take max_body_bytes unless they name their own limit; upload routes take
  // max_upload_bytes, and only max_uploads of them are read and handled at once (more
  // wait up to upload_wait, then get 503 with Retry-After before their body is read).
  size_t max_body_bytes = 64 * 1024;
  size_t max_upload_bytes = 21 << 20;
  int max_uploads = 4;
  std::chrono::milliseconds upload_wait{5000};

  // STADTPORTAL_HSTS_MAX_AGE_S, STADTPORTAL_CORS_ORIGINS (comma-separated), STADTPORTAL_HTTP_MAX_BODY_BYTES,
  // STADTPORTAL_HTTP_MAX_UPLOAD_BYTES, STADTPORTAL_HTTP_MAX_UPLOADS.
  static EdgeOptions FromEnv(const config::Env& env);
};

// Path parameters captured by a route's pattern, e.g. "/api/v1/services/{id}" → {"id": "…"}.
using Params = std::map<std::string, std::string>;
using Handler = std::function<void(const httplib::Request&, httplib::Response&, const Params&)>;

// Routes by method and path template. Unknown paths get 404 and known paths with
// another method 405 (with Allow), both as problem+json. Every response carries the
// request id; RED metrics are labelled by route template, never by raw path. Bodies
// are limited per route (EdgeOptions): a declared length over the limit gets 413
// before any byte is read, a longer body 413 as soon as it passes the limit.
class Router {
 public:
  explicit Router(std::string metrics_prefix, EdgeOptions edge = {});
  void Add(const std::string& method, const std::string& pattern, Handler handler);
  // A body limit of its own for a route added before (else EdgeOptions::max_body_bytes).
  void SetBodyLimit(const std::string& method, const std::string& pattern, size_t max_body);
  // A route added before takes files (multipart or large JSON): EdgeOptions' upload
  // limit and slots.
  void SetUpload(const std::string& method, const std::string& pattern);
  // A cheap check an upload must pass before it waits for a slot or a byte of its body is
  // read (e.g. that it names a caller at all); refused uploads get 401 at once, so that
  // anonymous clients cannot hold the slots.
  void SetUploadGate(std::function<bool(const httplib::Request&)> gate) { upload_gate_ = std::move(gate); }
  // A part that answers browsers (the web portal) instead of API clients: `headers` sets
  // every response's security headers in place of the API's, and `error` writes the
  // router's own refusals (400, 404, 405, 408, 413, 501, a failed handler) as its pages in
  // place of problem documents. Set before Install.
  using HeadersWriter = std::function<void(const httplib::Request&, httplib::Response&)>;
  using ErrorWriter =
      std::function<void(const httplib::Request&, httplib::Response&, int status, const std::string& detail)>;
  void SetPresentation(HeadersWriter headers, ErrorWriter error) {
    headers_ = std::move(headers);
    error_ = std::move(error);
  }
  // Installs the router and the uniform error handling on `server`.
  void Install(Server& server);
  // All routes as "METHOD /path/{param}" (for the OpenAPI contract test).
  std::vector<std::string> Routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    // The pattern's segments between slashes; "{name}" takes one non-empty segment.
    std::vector<std::string> segments;
    std::vector<std::string> names;
    Handler handler;
    size_t max_body;
    bool upload;
  };
  // The route a request matches (null if none), with its captures and, when only the
  // method differs, the methods allowed.
  struct Match {
    const Route* route = nullptr;
    std::vector<std::string> captures;  // The values of the route's names, in order.
    std::vector<std::string> allowed;
  };
  Match Find(const httplib::Request& req) const;
  // Find's answer for `req`, computed once per request (before its body is read).
  Match& Matched(const httplib::Request& req) const;
  size_t BodyLimit(const Route* route) const { return route != nullptr ? route->max_body : edge_.max_body_bytes; }
  // Refuses a request before (the rest of) its body is read; the connection closes.
  void Refuse(const httplib::Request& req, httplib::Response& res, int status, const std::string& detail) const;
  // Reads the body within the route's limit (files of multipart bodies into req.files).
  void DispatchWithBody(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  void EdgeHeaders(const httplib::Request& req, httplib::Response& res) const;
  // The router's own refusal: the ErrorWriter's page, or the problem document.
  void Fail(const httplib::Request& req, httplib::Response& res, int status, const std::string& detail) const;
  std::vector<Route> routes_;
  HeadersWriter headers_;
  ErrorWriter error_;
  EdgeOptions edge_;
  metrics::Red red_;
  std::function<bool(const httplib::Request&)> upload_gate_;
  std::mutex uploads_mu_;
  std::condition_variable upload_done_;
  int uploads_ = 0;
};

// Writes an RFC 9457 problem for `s` with the current request id (status::Problem), built
// once: its field errors get their message in `language` ("de" or "en"), and the members
// of `extra` (an object) join the document, replacing those of the same name.
void WriteProblem(httplib::Response& res, const absl::Status& s, const std::string& language = "de",
                  const nlohmann::json& extra = nlohmann::json::object());
// Writes a problem the HTTP layer raises itself (405, 413, …), see status::HttpProblem.
void WriteHttpProblem(httplib::Response& res, int http_status, const std::string& detail);
// `body` as the API writes JSON (compact; invalid UTF-8 replaced).
std::string JsonText(const nlohmann::json& body);
void WriteJson(httplib::Response& res, int status, const nlohmann::json& body);

// Applies the options (TCP_NODELAY on, timeouts and the request deadline, keep-alive
// limits, the bounded pool) to a server.
void Configure(Server& server, const ServerOptions& options);

}  // namespace stadtportal::http

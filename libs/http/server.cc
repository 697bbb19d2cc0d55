#include "libs/http/server.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::http {

ServerOptions ServerOptions::FromEnv(const config::Env& env, uint16_t default_port) {
  ServerOptions o;
  o.host = env.String("STADTPORTAL_LISTEN_HOST", o.host);
  o.port = env.Port("STADTPORTAL_HTTP_PORT", default_port);
  o.threads = static_cast<int>(env.Int("STADTPORTAL_HTTP_THREADS", o.threads, 1, 4096));
  o.queue = static_cast<int>(env.Int("STADTPORTAL_HTTP_QUEUE", o.queue, 0, 65536));
  o.max_body_bytes = static_cast<size_t>(
      env.Int("STADTPORTAL_HTTP_MAX_BODY_BYTES", static_cast<int64_t>(o.max_body_bytes), 1024, 1LL << 30));
  o.read_timeout = env.Millis("STADTPORTAL_HTTP_READ_TIMEOUT_MS", o.read_timeout);
  o.write_timeout = env.Millis("STADTPORTAL_HTTP_WRITE_TIMEOUT_MS", o.write_timeout);
  o.keep_alive_timeout = env.Millis("STADTPORTAL_HTTP_KEEPALIVE_TIMEOUT_MS", o.keep_alive_timeout);
  o.keep_alive_max_requests =
      static_cast<int>(env.Int("STADTPORTAL_HTTP_KEEPALIVE_MAX_REQUESTS", o.keep_alive_max_requests, 1, 1000000));
  return o;
}

BoundedThreadPool::BoundedThreadPool(int threads, int queue) : capacity_(static_cast<size_t>(std::max(queue, 1))) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

BoundedThreadPool::~BoundedThreadPool() { shutdown(); }

void BoundedThreadPool::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  not_full_.wait(lock, [&] { return shutdown_ || jobs_.size() < capacity_; });
  jobs_.push_back(std::move(fn));
  lock.unlock();
  not_empty_.notify_one();
}

void BoundedThreadPool::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && threads_.empty()) return;
    shutdown_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void BoundedThreadPool::Work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      not_empty_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // Shut down and drained.
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    not_full_.notify_one();
    job();
  }
}

namespace {

// "/api/v1/services/{id}" → ^/api/v1/services/([^/]+)$ and names {"id"}.
std::regex Compile(const std::string& pattern, std::vector<std::string>& names) {
  static const std::regex kParam(R"(\{([a-z_]+)\})");
  std::string re = "^";
  auto begin = std::sregex_iterator(pattern.begin(), pattern.end(), kParam);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    re += pattern.substr(last, static_cast<size_t>(it->position()) - last);
    re += "([^/]+)";
    names.push_back((*it)[1].str());
    last = static_cast<size_t>(it->position() + it->length());
  }
  re += pattern.substr(last) + "$";
  return std::regex(re);
}

const std::string& RequestId(const httplib::Request& req) {
  // Set by the pre-routing handler; see Router::Install.
  static const std::string kEmpty;
  auto it = req.headers.find("X-Request-Id");
  return it == req.headers.end() ? kEmpty : it->second;
}

}  // namespace

EdgeOptions EdgeOptions::FromEnv(const config::Env& env) {
  EdgeOptions o;
  o.hsts_max_age = env.Int("STADTPORTAL_HSTS_MAX_AGE_S", o.hsts_max_age, 0, 63072000);
  for (absl::string_view origin : absl::StrSplit(env.String("STADTPORTAL_CORS_ORIGINS", ""), ',', absl::SkipEmpty())) {
    o.cors_origins.emplace_back(absl::StripAsciiWhitespace(origin));
  }
  return o;
}

Router::Router(std::string metrics_prefix, EdgeOptions edge)
    : edge_(std::move(edge)), red_(metrics_prefix, "HTTP requests") {}

void Router::EdgeHeaders(const httplib::Request& req, httplib::Response& res) const {
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
  // API answers may carry personal data: never stored by browsers or proxies.
  res.set_header("Cache-Control", "no-store");
  if (edge_.hsts_max_age > 0) {
    res.set_header("Strict-Transport-Security",
                   "max-age=" + std::to_string(edge_.hsts_max_age) + "; includeSubDomains");
  }
  const std::string origin = req.get_header_value("Origin");
  if (!origin.empty() &&
      std::find(edge_.cors_origins.begin(), edge_.cors_origins.end(), origin) != edge_.cors_origins.end()) {
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Access-Control-Allow-Credentials", "true");
    res.set_header("Access-Control-Expose-Headers",
                   "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset");
    res.set_header("Vary", "Origin");
  }
}

void Router::Add(const std::string& method, const std::string& pattern, Handler handler) {
  Route r{method, pattern, {}, {}, std::move(handler)};
  r.re = Compile(pattern, r.names);
  routes_.push_back(std::move(r));
}

std::vector<std::string> Router::Routes() const {
  std::vector<std::string> out;
  for (const auto& r : routes_) out.push_back(r.method + " " + r.pattern);
  return out;
}

void WriteJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

namespace {

void SetProblem(httplib::Response& res, const nlohmann::json& problem) {
  res.status = problem["status"].get<int>();
  res.set_content(problem.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), status::kProblemContentType);
}

}  // namespace

void WriteProblem(httplib::Response& res, const absl::Status& s) {
  SetProblem(res, status::Problem(s, log::CurrentRequestId()));
}

void WriteHttpProblem(httplib::Response& res, int http_status, const std::string& detail) {
  SetProblem(res, status::HttpProblem(http_status, detail, log::CurrentRequestId()));
}

void Router::Dispatch(const httplib::Request& req, httplib::Response& res) {
  const auto start = std::chrono::steady_clock::now();
  std::string request_id = RequestId(req);
  std::string traceparent = req.get_header_value("traceparent");
  log::RequestScope scope(request_id, traceparent);
  res.set_header("X-Request-Id", request_id);
  EdgeHeaders(req, res);

  std::vector<std::string> allowed;
  const Route* match = nullptr;
  std::smatch m;
  for (const auto& r : routes_) {
    if (!std::regex_match(req.path, m, r.re)) continue;
    if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) {
      match = &r;
      break;
    }
    allowed.push_back(r.method);
  }
  // Bounded label: the route template, or "unmatched" for any unknown path.
  const std::string op = req.method + " " + (match != nullptr ? match->pattern : std::string("unmatched"));
  red_.Started(op);
  if (req.method == "OPTIONS" && (match != nullptr || !allowed.empty())) {
    // CORS preflight: allowed origins got their headers above; others get none.
    res.status = 204;
    if (res.has_header("Access-Control-Allow-Origin")) {
      allowed.push_back("OPTIONS");
      res.set_header("Access-Control-Allow-Methods", absl::StrJoin(allowed, ", "));
      res.set_header("Access-Control-Allow-Headers",
                     "Authorization, Content-Type, X-CSRF-Token, X-Request-Id, Idempotency-Key, If-Match");
      res.set_header("Access-Control-Max-Age", "600");
    }
  } else if (match != nullptr) {
    Params params;
    for (size_t i = 0; i < match->names.size(); ++i) params[match->names[i]] = m[i + 1].str();
    try {
      match->handler(req, res, params);
    } catch (const std::exception& e) {
      log::Error("handler failed", {{"route", op}, {"error", e.what()}});
      WriteProblem(res, absl::InternalError(e.what()));
    }
  } else if (!allowed.empty()) {
    res.set_header("Allow", absl::StrJoin(allowed, ", "));
    WriteHttpProblem(
        res, 405, absl::StrCat("method ", req.method, " is not allowed here; allowed: ", absl::StrJoin(allowed, ", ")));
  } else {
    WriteProblem(res, absl::NotFoundError("no such resource"));
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  red_.Handled(op, std::to_string(res.status), elapsed);
  // Access log: the route template, never the raw path or query (they may carry personal data).
  log::Info("request", {{"route", op}, {"status", res.status}, {"duration_ms", elapsed.count() * 1000}});
}

void Router::Install(httplib::Server& server) {
  // Accept a well-formed caller request id or make one; every later step sees it.
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    auto& mutable_req = const_cast<httplib::Request&>(req);
    std::string id = req.get_header_value("X-Request-Id");
    if (!log::IsValidRequestId(id)) id = log::NewRequestId();
    mutable_req.headers.erase("X-Request-Id");
    mutable_req.headers.emplace("X-Request-Id", id);
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto dispatch = [this](const httplib::Request& req, httplib::Response& res) { Dispatch(req, res); };
  server.Get(".*", dispatch);
  server.Post(".*", dispatch);
  server.Put(".*", dispatch);
  server.Patch(".*", dispatch);
  server.Delete(".*", dispatch);
  server.Options(".*", dispatch);
  // Errors raised by the HTTP layer itself (413 too large, 400 bad request line…).
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // Already a problem from Dispatch.
    std::string id = RequestId(req);
    if (id.empty()) id = log::NewRequestId();
    log::RequestScope scope(id, "");
    res.set_header("X-Request-Id", id);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
    const int code = res.status;
    WriteHttpProblem(res, code, code == 413 ? "request body too large" : "malformed request");
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    WriteProblem(res, absl::InternalError("unhandled exception"));
  });
}

void Configure(httplib::Server& server, const ServerOptions& o) {
  server.set_tcp_nodelay(true);
  server.set_read_timeout(o.read_timeout);
  server.set_write_timeout(o.write_timeout);
  server.set_keep_alive_timeout(std::chrono::duration_cast<std::chrono::seconds>(o.keep_alive_timeout).count());
  server.set_keep_alive_max_count(static_cast<size_t>(o.keep_alive_max_requests));
  server.set_payload_max_length(o.max_body_bytes);
  const int threads = o.threads;
  const int queue = o.queue;
  server.new_task_queue = [threads, queue] { return new BoundedThreadPool(threads, queue); };
}

}  // namespace stadtportal::http

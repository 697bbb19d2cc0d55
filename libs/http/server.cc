#include "libs/http/server.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/api/api.h"
#include "libs/http/json_body.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::http {

ServerOptions ServerOptions::FromEnv(const config::Env& env, uint16_t default_port) {
  ServerOptions o;
  o.host = env.String("STADTPORTAL_LISTEN_HOST", o.host);
  o.port = env.Port("STADTPORTAL_HTTP_PORT", default_port);
  o.threads = static_cast<int>(env.Int("STADTPORTAL_HTTP_THREADS", o.threads, 1, 4096));
  o.queue = static_cast<int>(env.Int("STADTPORTAL_HTTP_QUEUE", o.queue, 0, 65536));
  o.read_timeout = env.Millis("STADTPORTAL_HTTP_READ_TIMEOUT_MS", o.read_timeout);
  o.request_timeout = env.Millis("STADTPORTAL_HTTP_REQUEST_TIMEOUT_MS", o.request_timeout);
  if (o.request_timeout.count() < 1000) throw config::Error("STADTPORTAL_HTTP_REQUEST_TIMEOUT_MS: at least 1000");
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

// "/api/v1/services/{id}" → segments {"api", "v1", "services", "{id}"}, names {"id"}.
// Segments are compared as strings: matching costs no regular expression per route.
std::vector<std::string> Segments(const std::string& pattern, std::vector<std::string>& names) {
  std::vector<std::string> segments = absl::StrSplit(pattern, '/');
  for (const auto& segment : segments) {
    if (segment.size() > 2 && segment.front() == '{' && segment.back() == '}') {
      names.push_back(segment.substr(1, segment.size() - 2));
    } else if (segment.find_first_of("{}") != std::string::npos) {
      throw std::logic_error("a route parameter must be a whole segment: " + pattern);
    }
  }
  return segments;
}

bool IsParameter(const std::string& segment) { return !segment.empty() && segment.front() == '{'; }

// Which part of a request holds a value no handler may see: httplib has URL-decoded
// the path, the query and even header values, so "%7F" or "%FF" arrive as raw bytes.
// Every value must be valid UTF-8 without control characters (they would go on into
// gRPC messages, metadata, logs and headers). "" when the request is clean.
std::string UncleanPart(const httplib::Request& req) {
  if (!api::IsPlainText(req.path)) return "the path";
  for (const auto& [name, value] : req.params) {
    if (!api::IsPlainText(name) || !api::IsPlainText(value)) return "a query parameter";
  }
  for (const auto& [name, value] : req.headers) {
    if (!api::IsPlainText(name) || !api::IsPlainText(value)) return "a header";
  }
  // Multipart parts: their names and file names (the content is the part's business).
  for (const auto& [name, part] : req.files) {
    if (!api::IsPlainText(name) || !api::IsPlainText(part.filename) || !api::IsPlainText(part.content_type)) {
      return "a multipart part's name";
    }
  }
  return "";
}

std::string RequestId(const httplib::Request& req) {
  // Made valid by the pre-routing handler; a request refused before it (Expect, a
  // malformed request) may still carry the client's raw value, which is never echoed.
  auto it = req.headers.find("X-Request-Id");
  if (it != req.headers.end() && log::IsValidRequestId(it->second)) return it->second;
  return log::NewRequestId();
}

}  // namespace

EdgeOptions EdgeOptions::FromEnv(const config::Env& env) {
  EdgeOptions o;
  o.hsts_max_age = env.Int("STADTPORTAL_HSTS_MAX_AGE_S", o.hsts_max_age, 0, 63072000);
  for (absl::string_view origin : absl::StrSplit(env.String("STADTPORTAL_CORS_ORIGINS", ""), ',', absl::SkipEmpty())) {
    o.cors_origins.emplace_back(absl::StripAsciiWhitespace(origin));
  }
  o.max_body_bytes = static_cast<size_t>(
      env.Int("STADTPORTAL_HTTP_MAX_BODY_BYTES", static_cast<int64_t>(o.max_body_bytes), 1024, 16 << 20));
  o.max_upload_bytes = static_cast<size_t>(
      env.Int("STADTPORTAL_HTTP_MAX_UPLOAD_BYTES", static_cast<int64_t>(o.max_upload_bytes), 1024, 1LL << 30));
  o.max_uploads = static_cast<int>(env.Int("STADTPORTAL_HTTP_MAX_UPLOADS", o.max_uploads, 1, 1024));
  return o;
}

Router::Router(std::string metrics_prefix, EdgeOptions edge)
    : edge_(std::move(edge)), red_(metrics_prefix, "HTTP requests") {}

void Router::EdgeHeaders(const httplib::Request& req, httplib::Response& res) const {
  if (headers_) return headers_(req, res);
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
  Route r{method, pattern, {}, {}, std::move(handler), edge_.max_body_bytes, false};
  r.segments = Segments(pattern, r.names);
  routes_.push_back(std::move(r));
}

void Router::SetBodyLimit(const std::string& method, const std::string& pattern, size_t max_body) {
  for (auto& r : routes_) {
    if (r.method == method && r.pattern == pattern) {
      r.max_body = max_body;
      return;
    }
  }
  throw std::logic_error("no route " + method + " " + pattern);
}

void Router::SetUpload(const std::string& method, const std::string& pattern) {
  SetBodyLimit(method, pattern, edge_.max_upload_bytes);
  for (auto& r : routes_) {
    if (r.method == method && r.pattern == pattern) r.upload = true;
  }
}

Router::Match Router::Find(const httplib::Request& req) const {
  Match out;
  const std::vector<absl::string_view> path = absl::StrSplit(req.path, '/');
  for (const auto& r : routes_) {
    if (r.segments.size() != path.size()) continue;
    bool matches = true;
    for (size_t i = 0; i < path.size() && matches; ++i) {
      matches = IsParameter(r.segments[i]) ? !path[i].empty() : path[i] == r.segments[i];
    }
    if (!matches) continue;
    out.captures.clear();
    for (size_t i = 0; i < path.size(); ++i) {
      if (IsParameter(r.segments[i])) out.captures.emplace_back(path[i]);
    }
    if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) {
      out.route = &r;
      return out;
    }
    out.allowed.push_back(r.method);
  }
  return out;
}

namespace {

// The match of the request being handled on this thread: made once before its body is
// read (pre-routing), used again to dispatch it.
struct MatchCache {
  const void* router = nullptr;
  const httplib::Request* req = nullptr;
};
thread_local MatchCache match_cache;

}  // namespace

Router::Match& Router::Matched(const httplib::Request& req) const {
  thread_local Match match;
  if (match_cache.router != this || match_cache.req != &req) {
    match = Find(req);
    match_cache = {this, &req};
  }
  return match;
}

void Router::Refuse(const httplib::Request& req, httplib::Response& res, int status, const std::string& detail) const {
  Server::CloseAfterResponse();
  const_cast<httplib::Request&>(req).set_header("Connection", "close");
  const std::string id = RequestId(req);
  log::RequestScope scope(id, "");
  res.set_header("X-Request-Id", id);
  EdgeHeaders(req, res);
  Fail(req, res, status, detail);
}

void Router::Fail(const httplib::Request& req, httplib::Response& res, int status, const std::string& detail) const {
  if (error_) return error_(req, res, status, detail);
  if (status == 404) return WriteProblem(res, absl::NotFoundError(detail));
  WriteHttpProblem(res, status, detail);
}

void Router::DispatchWithBody(const httplib::Request& req, httplib::Response& res,
                              const httplib::ContentReader& reader) {
  const Route* route = Matched(req).route;
  // A body is declared by Content-Length or Transfer-Encoding; without either there is none.
  if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) return Dispatch(req, res);
  if (route != nullptr && route->upload && upload_gate_ && !upload_gate_(req)) {
    res.set_header("WWW-Authenticate", "Bearer");
    return Refuse(req, res, 401, "log in before uploading");
  }
  // Upload slots bound the memory of large bodies: taken before reading, kept until answered.
  bool slot = false;
  if (route != nullptr && route->upload) {
    std::unique_lock<std::mutex> lock(uploads_mu_);
    slot = upload_done_.wait_for(lock, edge_.upload_wait, [&] { return uploads_ < edge_.max_uploads; });
    if (slot) ++uploads_;
  }
  if (route != nullptr && route->upload && !slot) {
    res.set_header("Retry-After", "5");
    return Refuse(req, res, 503, "too many uploads at once; retry later");
  }
  struct Release {
    Router* router;
    bool slot;
    ~Release() {
      if (!slot) return;
      {
        std::lock_guard<std::mutex> lock(router->uploads_mu_);
        --router->uploads_;
      }
      router->upload_done_.notify_one();
    }
  } release{this, slot};

  auto& mutable_req = const_cast<httplib::Request&>(req);
  const size_t limit = BodyLimit(route);
  size_t total = 0;
  bool too_large = false;
  auto fits = [&](size_t n) {
    total += n;
    too_large = total > limit;
    return !too_large;
  };
  bool read = false;
  if (req.is_multipart_form_data()) {
    auto part = mutable_req.files.end();
    // A part costs its headers and its bookkeeping, not only its name: many empty parts
    // must not grow memory far beyond the bytes counted.
    constexpr size_t kPartOverhead = 512;
    constexpr size_t kMaxParts = 64;
    read = reader(
        [&](const httplib::MultipartFormData& file) {
          if (mutable_req.files.size() >= kMaxParts) {
            too_large = true;
            return false;
          }
          if (!fits(kPartOverhead + file.name.size() + file.filename.size() + file.content_type.size())) return false;
          part = mutable_req.files.emplace(file.name, file);
          return true;
        },
        [&](const char* data, size_t n) {
          if (!fits(n) || part == mutable_req.files.end()) return false;
          part->second.content.append(data, n);
          return true;
        });
  } else {
    read = reader([&](const char* data, size_t n) {
      if (!fits(n)) return false;
      mutable_req.body.append(data, n);
      return true;
    });
  }
  if (too_large) return Refuse(req, res, 413, "request body too large");
  if (!read) {
    return Server::RequestDeadlinePassed() ? Refuse(req, res, 408, "request not received in time")
                                           : Refuse(req, res, 400, "malformed or incomplete request body");
  }
  Dispatch(req, res);
}

std::vector<std::string> Router::Routes() const {
  std::vector<std::string> out;
  for (const auto& r : routes_) out.push_back(r.method + " " + r.pattern);
  return out;
}

std::string JsonText(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void WriteJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(JsonText(body), "application/json");
}

namespace {

void SetProblem(httplib::Response& res, const nlohmann::json& problem) {
  res.status = problem["status"].get<int>();
  res.set_content(problem.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), status::kProblemContentType);
}

}  // namespace

void WriteProblem(httplib::Response& res, const absl::Status& s, const std::string& language,
                  const nlohmann::json& extra) {
  nlohmann::json problem = status::Problem(s, log::CurrentRequestId());
  if (problem.contains("errors")) {
    for (auto& e : problem["errors"]) e["message"] = Message(e["code"].get<std::string>(), language);
  }
  for (const auto& [key, value] : extra.items()) problem[key] = value;
  SetProblem(res, problem);
}

void WriteHttpProblem(httplib::Response& res, int http_status, const std::string& detail) {
  SetProblem(res, status::HttpProblem(http_status, detail, log::CurrentRequestId()));
}

void Router::Dispatch(const httplib::Request& req, httplib::Response& res) {
  const auto start = std::chrono::steady_clock::now();
  std::string request_id = RequestId(req);
  // Normalised (or made) by the pre-routing handler; see Router::Install.
  std::string traceparent = req.get_header_value("traceparent");
  log::RequestScope scope(request_id, traceparent);
  res.set_header("X-Request-Id", request_id);
  EdgeHeaders(req, res);

  // A request with control characters or invalid UTF-8 in its path, query or headers
  // reaches no handler.
  const std::string unclean = UncleanPart(req);
  Match& found = Matched(req);
  std::vector<std::string>& allowed = found.allowed;
  const Route* match = unclean.empty() ? found.route : nullptr;
  // Bounded label: the route template, or "unmatched" for any unknown path.
  const std::string op = req.method + " " + (match != nullptr ? match->pattern : std::string("unmatched"));
  red_.Started(op);
  if (!unclean.empty()) {
    Fail(req, res, 400, unclean + " holds control characters or invalid UTF-8");
  } else if (req.method == "OPTIONS" && (match != nullptr || !allowed.empty())) {
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
    for (size_t i = 0; i < match->names.size(); ++i) params[match->names[i]] = found.captures[i];
    try {
      match->handler(req, res, params);
    } catch (const std::exception& e) {
      log::Error("handler failed", {{"route", op}, {"error", e.what()}});
      if (error_) {
        res.headers.erase("Location");
        error_(req, res, 500, "internal error");
      } else {
        WriteProblem(res, absl::InternalError(e.what()));
      }
    }
  } else if (!allowed.empty()) {
    res.set_header("Allow", absl::StrJoin(allowed, ", "));
    Fail(req, res, 405,
         absl::StrCat("method ", req.method, " is not allowed here; allowed: ", absl::StrJoin(allowed, ", ")));
  } else {
    Fail(req, res, 404, "no such resource");
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  red_.Handled(op, std::to_string(res.status), elapsed);
  // Access log: the route template, never the raw path or query (they may carry personal data).
  log::Info("request", {{"route", op}, {"status", res.status}, {"duration_ms", elapsed.count() * 1000}});
}

namespace {

// The status refusing a request's declared body (0: none), before a byte of it is read.
int CheckDeclaredBody(const httplib::Request& req, size_t limit, std::string* detail) {
  const bool has_length = req.has_header("Content-Length");
  const bool chunked = req.has_header("Transfer-Encoding");
  uint64_t length = 0;
  if (has_length) {
    const std::string value = req.get_header_value("Content-Length");
    if (req.get_header_value_count("Content-Length") != 1 || value.empty() || value.size() > 18 ||
        !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !absl::SimpleAtoi(value, &length)) {
      *detail = "malformed Content-Length";
      return 400;
    }
  }
  // One framing only (RFC 9112 6.1, 6.3): a proxy in front and cpp-httplib (which takes
  // only the exact value "chunked" as chunked, else Content-Length, else reads to the
  // end) must never see different request boundaries.
  if (chunked) {
    if (has_length || req.get_header_value_count("Transfer-Encoding") != 1 ||
        !absl::EqualsIgnoreCase(req.get_header_value("Transfer-Encoding"), "chunked")) {
      *detail = "Transfer-Encoding other than a single \"chunked\", or with Content-Length";
      return 400;
    }
  }
  const bool takes_body =
      req.method == "POST" || req.method == "PUT" || req.method == "PATCH" || req.method == "DELETE";
  if (!takes_body && (chunked || length > 0)) {
    // cpp-httplib would not read it, and would take it for the next request.
    *detail = "a " + req.method + " request carries no body";
    return 400;
  }
  if (length > limit) {
    *detail = absl::StrCat("request body too large (at most ", limit, " bytes here)");
    return 413;
  }
  return 0;
}

}  // namespace

void Router::Install(Server& server) {
  size_t largest = edge_.max_body_bytes;
  for (const auto& r : routes_) largest = std::max(largest, r.max_body);
  // cpp-httplib's own limit: what no route exceeds.
  server.set_payload_max_length(largest);
  // "Expect: 100-continue": refused before the client sends the body.
  server.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    std::string detail;
    const int status = CheckDeclaredBody(req, BodyLimit(Find(req).route), &detail);
    if (status == 0) return 100;
    Refuse(req, res, status, detail);
    return status;
  });
  // Accept a well-formed caller request id and W3C traceparent or make them; every later
  // step sees them. Then the route, and its body limit against the declared length, before the body is read.
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Methods the API has no use for (cpp-httplib would read a PRI request's body
    // without a length, until the deadline) end here.
    static const std::set<std::string> kMethods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    if (kMethods.count(req.method) == 0) {
      Refuse(req, res, 501, "method not implemented");
      return httplib::Server::HandlerResponse::Handled;
    }
    auto& mutable_req = const_cast<httplib::Request&>(req);
    std::string id = req.get_header_value("X-Request-Id");
    if (!log::IsValidRequestId(id)) id = log::NewRequestId();
    std::string traceparent = log::NormalizeTraceparent(req.get_header_value("traceparent"));
    if (traceparent.empty()) traceparent = log::NewTraceparent();
    mutable_req.headers.erase("X-Request-Id");
    mutable_req.headers.emplace("X-Request-Id", id);
    mutable_req.headers.erase("traceparent");
    mutable_req.headers.emplace("traceparent", traceparent);
    match_cache = {};  // A new request (possibly at the last one's address).
    std::string detail;
    const int status = CheckDeclaredBody(req, BodyLimit(Matched(req).route), &detail);
    if (status == 0) return httplib::Server::HandlerResponse::Unhandled;
    Refuse(req, res, status, detail);
    return httplib::Server::HandlerResponse::Handled;
  });
  auto dispatch = [this](const httplib::Request& req, httplib::Response& res) { Dispatch(req, res); };
  auto with_body = [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    DispatchWithBody(req, res, reader);
  };
  server.Get(".*", dispatch);
  server.Post(".*", with_body);
  server.Put(".*", with_body);
  server.Patch(".*", with_body);
  server.Delete(".*", with_body);
  server.Options(".*", dispatch);
  // Errors raised by the HTTP layer itself (413 too large, 400 bad request line…).
  server.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // Already a problem from Dispatch.
    const std::string id = RequestId(req);
    log::RequestScope scope(id, "");
    res.set_header("X-Request-Id", id);
    const int code = res.status;
    if (error_) {
      EdgeHeaders(req, res);
      return error_(req, res, code, code == 413 ? "request body too large" : "malformed request");
    }
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
    WriteHttpProblem(res, code, code == 413 ? "request body too large" : "malformed request");
  });
  // Dispatch catches whatever a handler throws, so an exception arriving here comes from
  // httplib reading and parsing the request (headers, multipart, ranges): bytes from
  // outside, hence the client's error. Only running out of memory is ours.
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    const std::string id = RequestId(req);
    log::RequestScope scope(id, "");
    res.set_header("X-Request-Id", id);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-store");
    try {
      std::rethrow_exception(ep);
    } catch (const std::bad_alloc&) {
      WriteProblem(res, absl::UnavailableError("out of memory"));
    } catch (const std::exception& e) {
      log::Warn("request not readable", {{"error", e.what()}});
      WriteHttpProblem(res, 400, "malformed request");
    } catch (...) {
      WriteHttpProblem(res, 400, "malformed request");
    }
  });
}

void Configure(Server& server, const ServerOptions& o) {
  server.set_tcp_nodelay(true);
  server.set_read_timeout(o.read_timeout);
  server.set_request_timeout(o.request_timeout);
  server.set_write_timeout(o.write_timeout);
  server.set_keep_alive_timeout(std::chrono::duration_cast<std::chrono::seconds>(o.keep_alive_timeout).count());
  server.set_keep_alive_max_count(static_cast<size_t>(o.keep_alive_max_requests));
  const int threads = o.threads;
  const int queue = o.queue;
  server.new_task_queue = [threads, queue] { return new BoundedThreadPool(threads, queue); };
}

}  // namespace stadtportal::http

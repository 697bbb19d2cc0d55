#include "services/web/api.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::web {

namespace {

metrics::Red& ApiRed() {
  static metrics::Red red("web_api_client", "calls of the web part to the REST API");
  return red;
}

// "/api/v1/drafts/123/steps" → "/api/v1/drafts/{}/steps": a bounded label and log field.
std::string RouteOf(const std::string& path) {
  std::string out;
  size_t start = 0;
  const std::string bare = path.substr(0, path.find('?'));
  while (start <= bare.size()) {
    size_t end = bare.find('/', start);
    if (end == std::string::npos) end = bare.size();
    const std::string segment = bare.substr(start, end - start);
    bool digits = !segment.empty();
    bool id = false;
    for (char c : segment) {
      if (c < '0' || c > '9') digits = false;
      if (c == '-' || c == '_') id = true;
    }
    id = id || digits;
    // Segments with hyphens or underscores, or only digits, are ids or slugs; the API's own
    // words ("v1", "drafts") have neither.
    if (start != 0) out += "/";
    out += id ? "{}" : segment;
    if (end == bare.size()) break;
    start = end + 1;
  }
  return out;
}

}  // namespace

std::map<std::string, std::string> ApiResult::FieldErrors() const {
  std::map<std::string, std::string> out;
  if (!body.is_object() || !body.contains("errors") || !body["errors"].is_array()) return out;
  for (const auto& e : body["errors"]) {
    if (!e.is_object()) continue;
    const std::string field = e.value("field", "");
    std::string message = e.value("message", "");
    if (message.empty()) message = e.value("code", "invalid");
    if (!field.empty() && out.count(field) == 0) out[field] = message;
  }
  return out;
}

std::map<std::string, std::string> ApiResult::FieldCodes() const {
  std::map<std::string, std::string> out;
  if (!body.is_object() || !body.contains("errors") || !body["errors"].is_array()) return out;
  for (const auto& e : body["errors"]) {
    if (!e.is_object()) continue;
    const std::string field = e.value("field", "");
    if (!field.empty() && out.count(field) == 0) out[field] = e.value("code", "invalid");
  }
  return out;
}

Api::Api(ApiOptions options) : options_(std::move(options)) {
  const std::string& url = options_.base_url;
  if (!absl::StartsWith(url, "http://")) throw config::Error("STADTPORTAL_WEB_GATEWAY_URL: must begin with http://");
  std::string rest = url.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (rest.find('/') != std::string::npos) throw config::Error("STADTPORTAL_WEB_GATEWAY_URL: scheme, host and port only");
  if (colon == std::string::npos) {
    host_ = rest;
  } else {
    host_ = rest.substr(0, colon);
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &port_) || port_ < 1 || port_ > 65535) {
      throw config::Error("STADTPORTAL_WEB_GATEWAY_URL: invalid port");
    }
  }
  if (host_.empty()) throw config::Error("STADTPORTAL_WEB_GATEWAY_URL: no host");
}

std::string Api::Escape(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::unique_ptr<httplib::Client> Api::Take() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<httplib::Client>(host_, port_);
  c->set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(options_.connect_timeout).count(),
                            static_cast<time_t>((options_.connect_timeout.count() % 1000) * 1000));
  c->set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count(),
                      static_cast<time_t>((options_.timeout.count() % 1000) * 1000));
  c->set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count(),
                       static_cast<time_t>((options_.timeout.count() % 1000) * 1000));
  c->set_keep_alive(true);
  c->set_follow_location(false);
  return c;
}

void Api::Give(std::unique_ptr<httplib::Client> client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(idle_.size()) < options_.pool) idle_.push_back(std::move(client));
}

ApiResult Api::Run(const ApiCaller& caller, const std::string& method, const std::string& route, const Call& call,
                   size_t limit, bool json) {
  const auto start = std::chrono::steady_clock::now();
  const std::string op = method + " " + route;
  ApiRed().Started(op);
  httplib::Headers headers;
  if (!caller.token.empty()) headers.emplace("Authorization", "Bearer " + caller.token);
  headers.emplace("Accept-Language", caller.lang == "en" ? "en" : "de");
  if (!caller.client_address.empty()) headers.emplace("X-Forwarded-For", caller.client_address);
  if (!log::CurrentRequestId().empty()) headers.emplace("X-Request-Id", log::CurrentRequestId());
  if (!log::CurrentTraceparent().empty()) headers.emplace("traceparent", log::ChildTraceparent(log::CurrentTraceparent()));
  auto client = Take();
  ApiResult out;
  auto res = call(*client, headers);
  bool reusable = static_cast<bool>(res);
  if (!res) {
    log::Warn("API call failed", {{"route", op}, {"error", httplib::to_string(res.error())}});
  } else if (res->body.size() > limit) {
    // Multipart uploads' answers are read whole by httplib; held to the limit here.
    log::Warn("API answer too large", {{"route", op}, {"bytes", res->body.size()}});
    reusable = false;
  } else {
    out.status = res->status;
    out.content_type = res->get_header_value("Content-Type");
    for (const char* name : {"Location", "Content-Disposition", "Retry-After", "ETag"}) {
      if (res->has_header(name)) out.headers[name] = res->get_header_value(name);
    }
    const bool is_json = absl::StrContains(out.content_type, "json");
    if (is_json && !res->body.empty()) {
      out.body = nlohmann::json::parse(res->body, nullptr, false);
      if (out.body.is_discarded()) {
        log::Warn("API answer not JSON", {{"route", op}, {"status", res->status}});
        out.status = 0;
        out.body = nullptr;
      }
    } else if (!json) {
      out.raw = std::move(res->body);
    } else if (!res->body.empty() && res->status != 304) {
      log::Warn("API answer not JSON", {{"route", op}, {"status", res->status}});
      out.status = 0;
    }
  }
  if (reusable) Give(std::move(client));
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  ApiRed().Handled(op, std::to_string(out.status), elapsed);
  return out;
}

namespace {

// One request whose answer is read only up to `limit` bytes (beyond: Canceled).
httplib::Result Exchange(httplib::Client& c, const std::string& method, const std::string& path,
                         const httplib::Headers& headers, std::string body, const std::string& content_type,
                         size_t limit) {
  httplib::Request req;
  req.method = method;
  req.path = path;
  req.headers = headers;
  if (!content_type.empty()) {
    req.headers.emplace("Content-Type", content_type);
    req.body = std::move(body);
  }
  std::string received;
  bool too_large = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (received.size() + n > limit) {
      too_large = true;
      return false;
    }
    received.append(data, n);
    return true;
  };
  auto res = c.send(req);
  if (too_large) return httplib::Result(nullptr, httplib::Error::Canceled);
  if (res) res.value().body = std::move(received);
  return res;
}

}  // namespace

ApiResult Api::Get(const ApiCaller& caller, const std::string& path,
                   const std::map<std::string, std::string>& extra_headers) {
  return Run(caller, "GET", RouteOf(path), [&](httplib::Client& c, const httplib::Headers& base) {
    httplib::Headers h = base;
    for (const auto& [k, v] : extra_headers) h.emplace(k, v);
    return Exchange(c, "GET", path, h, "", "", options_.max_body);
  }, options_.max_body, true);
}

ApiResult Api::Download(const ApiCaller& caller, const std::string& path) {
  return Run(caller, "GET", RouteOf(path), [&](httplib::Client& c, const httplib::Headers& h) {
    return Exchange(c, "GET", path, h, "", "", options_.max_download);
  }, options_.max_download, false);
}

ApiResult Api::Send(const ApiCaller& caller, const std::string& method, const std::string& path,
                    const nlohmann::json& body, const std::map<std::string, std::string>& extra_headers) {
  // null: no body at all.
  std::string text = body.is_null() ? "" : body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string type = body.is_null() ? "" : "application/json";
  return Run(caller, method, RouteOf(path), [&](httplib::Client& c, const httplib::Headers& base) {
    httplib::Headers h = base;
    for (const auto& [k, v] : extra_headers) h.emplace(k, v);
    return Exchange(c, method, path, h, text, type, options_.max_body);
  }, options_.max_body, true);
}

ApiResult Api::Upload(const ApiCaller& caller, const std::string& path, const std::vector<ApiFile>& files,
                      const std::map<std::string, std::string>& fields) {
  return Run(caller, "POST", RouteOf(path), [&](httplib::Client& c, const httplib::Headers& h) {
    httplib::MultipartFormDataItems items;
    for (const auto& [k, v] : fields) items.push_back({k, v, "", ""});
    for (const auto& f : files) items.push_back({f.field, f.content, f.filename, f.content_type});
    return c.Post(path, h, items);
  }, options_.max_body, true);
}

}  // namespace stadtportal::web

#include "services/web/service.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "libs/auth/tokens.h"
#include "libs/http/json_body.h"
#include "libs/log/log.h"

namespace stadtportal::web {

// The templates, texts and the part's own script and styles, compiled in
// (services/web/{templates,i18n,assets}).
const std::vector<std::pair<std::string, std::string>>& WebFiles();

namespace {

std::string CookieOf(Req req, const std::string& name) {
  for (auto [it, end] = req.headers.equal_range("Cookie"); it != end; ++it) {
    for (absl::string_view part : absl::StrSplit(it->second, ';')) {
      part = absl::StripAsciiWhitespace(part);
      const size_t eq = part.find('=');
      if (eq != absl::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
    }
  }
  return "";
}

// Valid UTF-8 without control characters other than tab and line breaks (text areas).
bool IsFormText(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
      ++i;
      continue;
    }
    int n = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string ContentType(const std::string& path) {
  if (absl::EndsWith(path, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(path, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(path, ".woff2")) return "font/woff2";
  if (absl::EndsWith(path, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(path, ".png")) return "image/png";
  return "application/octet-stream";
}

std::optional<std::string> ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string ShortHash(const std::string& content) {
  return absl::BytesToHexString(auth::Sha256(content)).substr(0, 12);
}

}  // namespace

Options Options::FromEnv(const config::Env& env) {
  Options o;
  o.http = http::ServerOptions::FromEnv(env, 8090);
  o.http.port = env.Port("STADTPORTAL_WEB_PORT", o.http.port);
  o.admin_port = env.Port("STADTPORTAL_ADMIN_PORT", o.admin_port);
  o.edge = http::EdgeOptions::FromEnv(env);
  // Wizard steps with file fields and mailbox replies are upload routes: every post of
  // such a step takes a slot, so the portal has more of them than the gateway's default.
  if (env.String("STADTPORTAL_HTTP_MAX_UPLOADS", "").empty()) o.edge.max_uploads = 16;
  o.api.base_url = env.String("STADTPORTAL_WEB_GATEWAY_URL", o.api.base_url);
  o.api.timeout = env.Millis("STADTPORTAL_WEB_API_TIMEOUT_MS", o.api.timeout);
  o.assets_dir = env.String("STADTPORTAL_WEB_ASSETS_DIR", o.assets_dir);
  o.anonymous_session =
      std::chrono::seconds(env.Int("STADTPORTAL_WEB_ANONYMOUS_SESSION_S", o.anonymous_session.count(), 60, 86400));
  auto trusted = http::TrustedProxies::Parse(env.String("STADTPORTAL_TRUSTED_PROXIES", ""));
  if (!trusted.ok()) throw config::Error("STADTPORTAL_TRUSTED_PROXIES: " + std::string(trusted.status().message()));
  o.trusted_proxies = *trusted;
  o.ready_timeout = env.Millis("STADTPORTAL_READY_TIMEOUT_MS", o.ready_timeout);
  o.shutdown_delay = env.Millis("STADTPORTAL_SHUTDOWN_DELAY_MS", o.shutdown_delay);
  return o;
}

Service::Service(Options options, redis::Client* redis)
    : options_(std::move(options)),
      sessions_(redis, options_.anonymous_session),
      redis_(redis),
      api_(options_.api),
      renderer_(WebFiles()),
      router_("web_http_server", options_.edge) {
  LoadAssets();
  router_.SetPresentation([this](Req req, Res res) { SecurityHeaders(req, res); },
                          [this](Req req, Res res, int status, const std::string&) {
                            Visit v;
                            v.lang = http::Language(req);
                            const std::string chosen = CookieOf(req, kLangCookie);
                            if (chosen == "de" || chosen == "en") v.lang = chosen;
                            v.path = "/";
                            ErrorPage(res, v, status);
                          });
  AddAssetRoutes();
  AddRoutes();
  AddAccountRoutes();
  AddWizardRoutes();
  AddSubmissionRoutes();
  AddMailboxRoutes();
  AddProfileRoutes();
  http::Configure(server_, options_.http);
  router_.Install(server_);
}

void Service::SecurityHeaders(Req req, Res res) const {
  // Pages are compressed by the server with gzip only: its brotli (at the highest
  // quality) costs more time per page than it saves on the wire.
  const bool gzip = absl::StrContains(req.get_header_value("Accept-Encoding"), "gzip");
  auto& mutable_req = const_cast<httplib::Request&>(req);
  mutable_req.headers.erase("Accept-Encoding");
  if (gzip) mutable_req.headers.emplace("Accept-Encoding", "gzip");
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
                 "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "same-origin");
  res.set_header("Cross-Origin-Opener-Policy", "same-origin");
  res.set_header("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()");
  // Pages may show personal data: never kept by browsers or proxies (assets say otherwise).
  res.set_header("Cache-Control", "no-store");
  if (options_.edge.hsts_max_age > 0) {
    res.set_header("Strict-Transport-Security",
                   "max-age=" + std::to_string(options_.edge.hsts_max_age) + "; includeSubDomains");
  }
}

void Service::LoadAssets() {
  // The part's own files, compiled in, under names with their content's hash.
  for (const auto& [path, text] : WebFiles()) {
    if (!absl::StartsWith(path, "assets/")) continue;
    const std::string file = path.substr(7);
    const size_t dot = file.rfind('.');
    const std::string url = absl::StrCat("/assets/", file.substr(0, dot), "-", ShortHash(text), file.substr(dot));
    assets_[url] = {text, "", ContentType(file)};
    if (file == "app.js") app_js_ = url;
    if (file == "site.css") site_css_ = url;
  }
  if (options_.assets_dir.empty()) {
    log::Warn("no design system files (STADTPORTAL_WEB_ASSETS_DIR unset): pages come without KERN UX styles");
    return;
  }
  namespace fs = std::filesystem;
  const fs::path dir(options_.assets_dir);
  auto css = ReadFile(dir / "kern.min.css");
  if (!css) {
    log::Warn("no kern.min.css in STADTPORTAL_WEB_ASSETS_DIR: pages come without KERN UX styles",
              {{"dir", options_.assets_dir}});
    return;
  }
  kern_base_ = "/assets/kern/" + ShortHash(*css);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string rel = fs::relative(it->path(), dir).generic_string();
    if (absl::EndsWith(rel, ".gz")) continue;
    if (!(absl::EndsWith(rel, ".css") || absl::EndsWith(rel, ".woff2"))) continue;
    auto content = ReadFile(it->path());
    if (!content) continue;
    Asset a{*content, ReadFile(it->path().string() + ".gz").value_or(""), ContentType(rel)};
    assets_[kern_base_ + "/" + rel] = std::move(a);
  }
  log::Info("design system files loaded", {{"files", assets_.size()}, {"base", kern_base_}});
}

void Service::AddAssetRoutes() {
  auto serve = [this](Req req, Res res, P) {
    auto it = assets_.find(req.path);
    if (it == assets_.end()) {
      Visit v;
      v.lang = http::Language(req);
      return ErrorPage(res, v, 404);
    }
    res.headers.erase("Cache-Control");
    // Names change with their content: kept for a year.
    res.set_header("Cache-Control", "public, max-age=31536000, immutable");
    res.set_header("Vary", "Accept-Encoding");
    // Sent as they are, from memory: a provider of known length is not compressed again
    // by the server (which would brotli 340 KB of stylesheet on every request).
    const bool gzip =
        !it->second.gzip.empty() && absl::StrContains(req.get_header_value("Accept-Encoding"), "gzip");
    if (gzip) res.set_header("Content-Encoding", "gzip");
    const std::string* body = gzip ? &it->second.gzip : &it->second.content;
    res.status = 200;
    res.set_content_provider(body->size(), it->second.type,
                             [body](size_t offset, size_t length, httplib::DataSink& sink) {
                               return sink.write(body->data() + offset, std::min(length, body->size() - offset));
                             });
  };
  router_.Add("GET", "/assets/{file}", serve);
  router_.Add("GET", "/assets/kern/{hash}/{file}", serve);
  router_.Add("GET", "/assets/kern/{hash}/fonts/{file}", serve);
  router_.Add("GET", "/assets/kern/{hash}/fonts/{family}/{file}", serve);
}

void Service::Get(const std::string& path, Handler handler) {
  router_.Add("GET", path, [this, handler](Req req, Res res, P p) {
    Visit v = Begin(req, res);
    handler(req, res, p, v);
  });
}

void Service::Post(const std::string& path, Handler handler, bool upload) {
  router_.Add("POST", path, [this, handler](Req req, Res res, P p) {
    Visit v = Begin(req, res);
    // The CSRF token of the session, in the form (urlencoded or multipart): checked before
    // anything else; without it nothing changes.
    std::string sent;
    if (req.is_multipart_form_data()) {
      auto it = req.files.find("csrf");
      if (it != req.files.end()) sent = it->second.content;
    } else {
      httplib::Params params;
      httplib::detail::parse_query_text(req.body, params);
      auto it = params.find("csrf");
      if (it != params.end()) sent = it->second;
    }
    if (!v.session || sent.empty() || sent.size() > 128 || !auth::ConstantTimeEqual(sent, v.session->csrf)) {
      log::Info("form refused: no valid CSRF token");
      return ErrorPage(res, v, 403);
    }
    handler(req, res, p, v);
  });
  if (upload) router_.SetUpload("POST", path);
}

std::optional<Form> Service::ParseForm(Req req) {
  Form form;
  if (req.is_multipart_form_data()) {
    for (const auto& [name, part] : req.files) {
      if (!part.filename.empty()) continue;  // Files are the handler's business.
      form.fields.emplace(name, part.content);
    }
  } else {
    httplib::Params params;
    httplib::detail::parse_query_text(req.body, params);
    for (auto& [k, val] : params) form.fields.emplace(k, val);
  }
  for (const auto& [k, val] : form.fields) {
    if (k.size() > 200 || val.size() > kMaxFieldChars * 4 || !IsFormText(k) || !IsFormText(val)) return std::nullopt;
  }
  return form;
}

Visit Service::Begin(Req req, Res res) {
  Visit v;
  v.path = req.path;
  const std::string asked = req.get_param_value("lang");
  const std::string chosen = CookieOf(req, kLangCookie);
  if (asked == "de" || asked == "en") {
    v.lang = asked;
    res.set_header("Set-Cookie", absl::StrCat(kLangCookie, "=", asked,
                                              "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000"));
  } else if (chosen == "de" || chosen == "en") {
    v.lang = chosen;
  } else {
    v.lang = http::Language(req);
  }
  const std::string id = CookieOf(req, kSessionCookie);
  if (!id.empty()) {
    auto loaded = sessions_.Load(id);
    if (!loaded.ok()) {
      log::Warn("sessions unavailable", {{"error", std::string(loaded.status().message())}});
    } else {
      v.session = *loaded;
    }
  }
  v.caller.lang = v.lang;
  v.caller.client_address = http::ClientAddress(req, options_.trusted_proxies);
  if (v.logged_in()) v.caller.token = v.session->api_token;
  return v;
}

void Service::SetSessionCookie(Res res, const std::string& id, int64_t max_age_s) {
  std::string cookie = absl::StrCat(kSessionCookie, "=", id, "; Path=/; Secure; HttpOnly; SameSite=Lax");
  if (max_age_s >= 0) absl::StrAppend(&cookie, "; Max-Age=", max_age_s);
  res.headers.emplace("Set-Cookie", cookie);
}

WebSession& Service::EnsureSession(Visit& v, Res res) {
  if (v.session) return *v.session;
  auto made = sessions_.Create(v.lang);
  if (!made.ok()) throw std::runtime_error("sessions unavailable: " + std::string(made.status().message()));
  v.session = *made;
  SetSessionCookie(res, v.session->id, -1);
  return *v.session;
}

void Service::SaveSession(Visit& v) {
  if (!v.session) return;
  if (auto s = sessions_.Save(*v.session); !s.ok()) {
    log::Warn("session not saved", {{"error", std::string(s.message())}});
  }
}

void Service::Flash(Visit& v, Res res, const std::string& key) {
  EnsureSession(v, res).flash = key;
  SaveSession(v);
}

void Service::SeeOther(Res res, const std::string& location) {
  res.status = 303;
  res.set_header("Location", location);
  res.body.clear();
}

std::string Service::SafeNext(const std::string& next) {
  static const std::regex kPath("^/[A-Za-z0-9/_-]{0,200}$");
  if (next.empty() || absl::StartsWith(next, "//") || !std::regex_match(next, kPath)) return "/";
  return next;
}

bool Service::RequireLogin(Req req, Res res, Visit& v) {
  if (v.logged_in()) return true;
  SeeOther(res, "/login?next=" + Api::Escape(SafeNext(req.path)));
  return false;
}

void Service::Page(Res res, Visit& v, int status, const std::string& page, nlohmann::json model) {
  const std::string other = v.lang == "de" ? "en" : "de";
  model["lang"] = v.lang;
  model["lang_switch"] = {{"href", v.path + "?lang=" + other}, {"label", renderer_.Text(v.lang, "switch_language")},
                          {"hreflang", other}};
  model["logged_in"] = v.logged_in();
  model["csrf"] = v.session ? v.session->csrf : "";
  model["assets"] = {{"kern", !kern_base_.empty()},
                     {"kern_css", kern_base_ + "/kern.min.css"},
                     {"fonts_css", kern_base_ + "/fonts/fira-sans.css"},
                     {"site_css", site_css_},
                     {"app_js", app_js_}};
  if (v.session && !v.session->flash.empty()) {
    model["flash"] = renderer_.Text(v.lang, v.session->flash);
    v.session->flash.clear();
    SaveSession(v);
  }
  model["has_errors"] = model.contains("errors") && model["errors"].is_array() && !model["errors"].empty();
  if (!model.contains("title")) model["title"] = renderer_.Text(v.lang, "site_name");
  const std::string content = model.contains("prerendered") && model["prerendered"].is_string()
                                  ? model["prerendered"].get<std::string>()
                                  : renderer_.Render(page, model, v.lang);
  // The layout needs only its own names, not the page's data again.
  nlohmann::json layout = nlohmann::json::object();
  for (const char* key : {"lang", "lang_switch", "logged_in", "csrf", "assets", "flash", "title", "has_errors"}) {
    if (model.contains(key)) layout[key] = std::move(model[key]);
  }
  layout["content"] = content;
  res.status = status;
  res.set_content(renderer_.Render("layout", layout, v.lang), "text/html; charset=utf-8");
}

void Service::ErrorPage(Res res, Visit& v, int status) {
  int shown = status;
  static const std::set<int> kKnown = {400, 403, 404, 405, 408, 409, 413, 429, 500, 501, 503};
  if (kKnown.count(shown) == 0) shown = status >= 500 ? 500 : 400;
  const std::string key = absl::StrCat("error_", shown);
  nlohmann::json model = {{"title", renderer_.Text(v.lang, key + "_title")},
                          {"heading", renderer_.Text(v.lang, key + "_title")},
                          {"text", renderer_.Text(v.lang, key + "_text")},
                          {"request_id", log::CurrentRequestId()}};
  res.headers.erase("Location");
  res.headers.erase("Content-Disposition");
  res.headers.erase("Content-Encoding");
  try {
    Page(res, v, status, "error", model);
  } catch (const std::exception& e) {
    log::Error("error page failed", {{"error", e.what()}});
    res.status = status;
    res.set_content("<!doctype html><title>Error</title><h1>Error</h1>", "text/html; charset=utf-8");
  }
}

void Service::ApiFailure(Res res, Visit& v, const ApiResult& r) {
  if (r.status == 0) return ErrorPage(res, v, 503);
  if (r.status == 401 && v.session) {
    // The API session ended (expired, logged out elsewhere): log in again.
    v.session->api_token.clear();
    v.session->flash = "session_expired";
    SaveSession(v);
    return SeeOther(res, "/login?next=" + Api::Escape(SafeNext(v.path)));
  }
  if (r.status == 401) return SeeOther(res, "/login");
  if (r.status >= 500) return ErrorPage(res, v, r.status == 503 ? 503 : 500);
  ErrorPage(res, v, r.status);
}

void Service::AddRoutes() {
  router_.Add("GET", "/healthz", [](Req, Res res, P) { http::WriteJson(res, 200, {{"status", "alive"}}); });
  router_.Add("GET", "/readyz", [this](Req, Res res, P) { Readyz(res); });
  Get("/", [this](Req req, Res res, P, Visit& v) { Home(req, res, v); });
  Get("/services/{id}", [this](Req req, Res res, P p, Visit& v) { ServicePage(req, res, p.at("id"), v); });
}

void Service::Readyz(Res res) {
  if (stopping_) return http::WriteJson(res, 503, {{"status", "shutting down"}});
  auto redis = std::async(std::launch::async, [this] { return redis_->Ping(); });
  ApiOptions probe = options_.api;
  probe.timeout = options_.ready_timeout;
  probe.connect_timeout = options_.ready_timeout;
  Api api(probe);
  const ApiResult gateway = api.Get(ApiCaller{}, "/healthz");
  const absl::Status r = redis.get();
  nlohmann::json parts = {{"gateway", gateway.ok() ? "serving" : "not_serving"},
                          {"redis", r.ok() ? "serving" : "not_serving"}};
  if (gateway.ok() && r.ok()) return http::WriteJson(res, 200, {{"status", "ready"}, {"services", parts}});
  log::Warn("not ready", {{"services", parts}});
  http::WriteJson(res, 503, {{"status", "not ready"}, {"services", parts}});
}

nlohmann::json Service::ServiceModel(const nlohmann::json& s, const std::string& lang) const {
  auto text = [&](const nlohmann::json& t) -> std::string {
    if (t.is_string()) return t.get<std::string>();
    if (!t.is_object()) return "";
    if (t.contains(lang) && t[lang].is_string()) return t[lang].get<std::string>();
    if (t.contains("de") && t["de"].is_string()) return t["de"].get<std::string>();
    return "";
  };
  nlohmann::json m;
  m["id"] = s.value("id", "");
  m["href"] = "/services/" + s.value("id", "");
  m["name"] = text(s.value("name", nlohmann::json()));
  m["description"] = text(s.value("description", nlohmann::json()));
  m["department"] = s.value("department", "");
  const auto fee = s.value("fee", nlohmann::json::object());
  const int64_t amount = fee.is_object() && fee.contains("amount_minor") && fee["amount_minor"].is_number_integer()
                             ? fee["amount_minor"].get<int64_t>()
                             : 0;
  m["has_fee"] = amount > 0;
  m["fee"] = FormatMoney(amount, fee.is_object() ? fee.value("currency", "EUR") : "EUR", lang);
  m["fee_per_unit"] = fee.is_object() && fee.value("per_unit", false);
  const std::string level = s.value("required_assurance_level", "low");
  m["level"] = renderer_.Text(lang, "level_" + (level == "substantial" || level == "high" ? level : "low"));
  return m;
}

void Service::Home(Req req, Res res, Visit& v) {
  const std::string q = req.get_param_value("q");
  nlohmann::json model = {{"title", T(v, "home_title")}, {"q", q}};
  if (q.size() > 200) {
    model["search_error"] = T(v, "search_too_long");
    return Page(res, v, 400, "home", model);
  }
  std::string path = "/api/v1/services?page_size=100";
  if (!q.empty()) absl::StrAppend(&path, "&q=", Api::Escape(q));
  // The list is the same for everyone: its rendering is kept per language and search
  // words while the catalogue's ETag holds (asked each time with If-None-Match).
  const std::string key = absl::StrCat(v.lang, "\x1f", q);
  std::string etag;
  std::shared_ptr<const std::string> cached;
  {
    std::lock_guard<std::mutex> lock(home_mu_);
    auto it = home_.find(key);
    if (it != home_.end()) {
      etag = it->second.first;
      cached = it->second.second;
    }
  }
  const ApiResult r = api_.Get(v.caller, path, etag.empty() ? std::map<std::string, std::string>{}
                                                            : std::map<std::string, std::string>{{"If-None-Match", etag}});
  if (r.status == 304 && cached) {
    model["prerendered"] = *cached;
    return Page(res, v, 200, "home", model);
  }
  if (!r.ok() || !r.body.contains("items") || !r.body["items"].is_array()) return ApiFailure(res, v, r);
  nlohmann::json items = nlohmann::json::array();
  for (const auto& s : r.body["items"]) {
    if (s.is_object()) items.push_back(ServiceModel(s, v.lang));
  }
  model["services"] = items;
  model["searched"] = !q.empty();
  model["none"] = items.empty();
  model["count"] = std::to_string(items.size());
  auto content = std::make_shared<const std::string>(renderer_.Render("home", model, v.lang));
  auto tag = r.headers.find("ETag");
  if (tag != r.headers.end() && !tag->second.empty() && tag->second.size() < 200) {
    std::lock_guard<std::mutex> lock(home_mu_);
    if (home_.size() >= 256) home_.clear();  // Search words anyone can vary: bounded.
    home_[key] = {tag->second, content};
  }
  model["prerendered"] = *content;
  Page(res, v, 200, "home", model);
}

void Service::ServicePage(Req req, Res res, const std::string& id, Visit& v) {
  static const std::regex kId("^[a-z][a-z0-9-]{0,63}$");
  if (!std::regex_match(id, kId)) return ErrorPage(res, v, 404);
  const ApiResult r = api_.Get(v.caller, "/api/v1/services/" + id);
  if (!r.ok() || !r.body.is_object()) return ApiFailure(res, v, r);
  nlohmann::json model = ServiceModel(r.body, v.lang);
  model["title"] = model["name"];
  // What you need: the documents the form asks for, and how many steps it has.
  nlohmann::json needs = nlohmann::json::array();
  size_t steps = 0;
  const auto form = r.body.value("form", nlohmann::json::object());
  if (form.is_object() && form.contains("steps") && form["steps"].is_array()) {
    steps = form["steps"].size();
    for (const auto& step : form["steps"]) {
      if (!step.is_object() || !step.contains("fields") || !step["fields"].is_array()) continue;
      for (const auto& f : step["fields"]) {
        if (!f.is_object() || f.value("type", "") != "file") continue;
        const auto label = f.value("label", nlohmann::json::object());
        std::string text = label.is_object() ? label.value(v.lang, label.value("de", "")) : "";
        if (!text.empty()) needs.push_back({{"text", text}, {"optional", !f.value("required", false)}});
      }
    }
  }
  model["needs"] = needs;
  model["has_needs"] = !needs.empty();
  model["steps"] = std::to_string(steps);
  model["minutes"] = std::to_string(std::max<size_t>(5, steps * 4));
  model["start_action"] = "/services/" + id + "/start";
  if (!v.logged_in()) model["login_href"] = "/login?next=" + Api::Escape("/services/" + id);
  EnsureSession(v, res);
  Page(res, v, 200, "service", model);
}

absl::StatusOr<uint16_t> Service::Start() {
  try {
    admin_ = std::make_unique<metrics::AdminServer>(options_.http.host, options_.admin_port);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", options_.http.host, ":", options_.admin_port, ": ", e.what()));
  }
  log::Info("metrics listening", {{"port", admin_->port()}});
  const int port = server_.Bind(options_.http.host, options_.http.port);
  if (port <= 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.http.host, ":", options_.http.port));
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_.is_running()) {
    if (std::chrono::steady_clock::now() > until) return absl::UnavailableError("http server did not start");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log::Info("http server listening", {{"port", port}});
  return static_cast<uint16_t>(port);
}

void Service::Shutdown() {
  if (stopping_.exchange(true)) return;
  log::Info("shutting down: not ready, finishing in-flight requests", {{"delay_ms", options_.shutdown_delay.count()}});
  if (options_.shutdown_delay.count() > 0) std::this_thread::sleep_for(options_.shutdown_delay);
  server_.stop();
  if (thread_.joinable()) thread_.join();
  log::Info("http server stopped");
}

}  // namespace stadtportal::web

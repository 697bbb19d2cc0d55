#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/config/config.h"
#include "libs/http/client_address.h"
#include "libs/http/server.h"
#include "libs/metrics/metrics.h"
#include "libs/redis/client.h"
#include "services/web/api.h"
#include "services/web/render.h"
#include "services/web/session.h"

namespace stadtportal::web {

struct Options {
  http::ServerOptions http;  // Port: STADTPORTAL_WEB_PORT (default 8090).
  uint16_t admin_port = 9100;  // /metrics.
  // Form bodies (max_body_bytes, 64 KiB) and uploads (max_upload_bytes) are limited as
  // the gateway limits them (STADTPORTAL_HTTP_MAX_BODY_BYTES, …).
  http::EdgeOptions edge;
  ApiOptions api;  // STADTPORTAL_WEB_GATEWAY_URL, STADTPORTAL_WEB_API_TIMEOUT_MS.
  // Where the design system's files are (STADTPORTAL_WEB_ASSETS_DIR: kern.min.css,
  // fonts/…, as scripts/web-assets lays them out); "" or missing: pages without it.
  std::string assets_dir;
  std::chrono::seconds anonymous_session{7200};  // STADTPORTAL_WEB_ANONYMOUS_SESSION_S
  http::TrustedProxies trusted_proxies;  // STADTPORTAL_TRUSTED_PROXIES
  std::chrono::milliseconds ready_timeout{800};
  std::chrono::milliseconds shutdown_delay{0};

  static Options FromEnv(const config::Env& env);
};

using Req = const httplib::Request&;
using Res = httplib::Response&;
using P = const http::Params&;

// The browser's request as a page sees it: its session (if any), language and the API
// caller made from them.
struct Visit {
  std::string lang = "de";
  std::optional<WebSession> session;
  ApiCaller caller;
  std::string path;  // The request's path (for the language switcher).
  bool logged_in() const { return session && session->logged_in(); }
};

// A form as posted: fields by name (a name may repeat: checkboxes), files of multipart forms.
struct Form {
  std::multimap<std::string, std::string> fields;
  std::string Get(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? "" : it->second;
  }
  std::vector<std::string> All(const std::string& name) const {
    std::vector<std::string> out;
    for (auto [it, end] = fields.equal_range(name); it != end; ++it) out.push_back(it->second);
    return out;
  }
};

// The citizens' portal: server-rendered HTML over the public REST API (through the
// gateway, as any partner portal), sessions in Redis, KERN UX design.
class Service {
 public:
  // `redis` holds the sessions and outlives the service.
  Service(Options options, redis::Client* redis);

  absl::StatusOr<uint16_t> Start();
  uint16_t admin_port() const { return admin_ != nullptr ? admin_->port() : 0; }
  void Shutdown();
  std::vector<std::string> Routes() const { return router_.Routes(); }

  static constexpr char kSessionCookie[] = "__Host-sp";
  static constexpr char kLangCookie[] = "__Host-sp-lang";
  // One form field's value, however the form came (a text area at most).
  static constexpr size_t kMaxFieldChars = 10000;

 private:
  using Handler = std::function<void(Req, Res, P, Visit&)>;
  // GET routes and POST routes (each POST checks the CSRF token before the handler runs;
  // a POST without a valid one gets 403 and changes nothing).
  void Get(const std::string& path, Handler handler);
  void Post(const std::string& path, Handler handler, bool upload = false);

  void AddRoutes();
  void AddAccountRoutes();
  void AddWizardRoutes();
  void AddSubmissionRoutes();
  void AddMailboxRoutes();
  void AddProfileRoutes();
  void AddAssetRoutes();
  void LoadAssets();

  // The visit of a request: language (?lang=, its cookie, Accept-Language), session.
  Visit Begin(Req req, Res res);
  // The session of the visit, made (and its cookie set) if it has none yet.
  WebSession& EnsureSession(Visit& v, Res res);
  void SaveSession(Visit& v);
  void SetSessionCookie(Res res, const std::string& id, int64_t max_age_s);

  // Renders `page` into the layout with `status`.
  void Page(Res res, Visit& v, int status, const std::string& page, nlohmann::json model);
  // The error page of `status` in the layout (never upstream text or internals).
  void ErrorPage(Res res, Visit& v, int status);
  // An API answer that is no success, as the page of its status (503 when unreachable).
  void ApiFailure(Res res, Visit& v, const ApiResult& r);
  // 303 to `location` (a path of this site).
  static void SeeOther(Res res, const std::string& location);
  // Refuses visits without a log-in: 303 to /login with the page to return to.
  bool RequireLogin(Req req, Res res, Visit& v);
  // The text `key` in the visit's language.
  std::string T(const Visit& v, const std::string& key) const { return renderer_.Text(v.lang, key); }
  // The message of a form field's error: the part's own words for the API's `code`.
  std::string FieldMessage(const Visit& v, const std::string& code, const std::string& api_message) const;
  // A one-time notice (a text key) shown on the next page of the session.
  void Flash(Visit& v, Res res, const std::string& key);

  // The posted form (urlencoded or multipart), or nullopt when a value is no plain text
  // (invalid UTF-8, control characters) or too long.
  static std::optional<Form> ParseForm(Req req);
  // The security headers of every answer (CSP, frames, referrer, HSTS, no-store).
  void SecurityHeaders(Req req, Res res) const;

  // Pages.
  void Home(Req req, Res res, Visit& v);
  void ServicePage(Req req, Res res, const std::string& id, Visit& v);
  void RegisterForm(Req req, Res res, Visit& v);
  void Register(Req req, Res res, Visit& v, const Form& form);
  void VerifyForm(Req req, Res res, Visit& v);
  void Verify(Req req, Res res, Visit& v, const Form& form);
  void LoginForm(Req req, Res res, Visit& v, const std::string& next);
  void Login(Req req, Res res, Visit& v, const Form& form);
  void Logout(Req req, Res res, Visit& v);
  void Readyz(Res res);

  // The wizard (wizard.cc).
  void StartDraft(Req req, Res res, const std::string& service_id, Visit& v);
  void StepPage(Req req, Res res, const std::string& draft_id, const std::string& n, Visit& v);
  void SaveStep(Req req, Res res, const std::string& draft_id, const std::string& n, Visit& v, const Form& form);
  void CheckPage(Req req, Res res, const std::string& draft_id, Visit& v);
  void Submit(Req req, Res res, const std::string& draft_id, Visit& v, const Form& form);
  // A step page of `draft` with `errors` (field → message) and the values as entered.
  void RenderStep(Res res, Visit& v, const nlohmann::json& draft, const nlohmann::json& service, size_t index,
                  const nlohmann::json& data, const std::map<std::string, std::string>& errors, bool return_check,
                  int status);
  // The service (with its form) a draft was made from: cached per service and form version,
  // so that wizard pages do not count as views of the service page.
  std::optional<nlohmann::json> FormOf(Visit& v, const std::string& service_id, int64_t form_version);

  // Submissions (submissions.cc).
  void SubmissionsPage(Req req, Res res, Visit& v);
  void SubmissionPage(Req req, Res res, const std::string& id, Visit& v);
  void Pay(Req req, Res res, const std::string& id, Visit& v, const Form& form);
  void Paid(Req req, Res res, const std::string& id, Visit& v);
  void Receipt(Req req, Res res, const std::string& id, Visit& v);

  // Mailbox (mailbox.cc): a thread with its messages (unread ones marked read), and the
  // reply form with `errors` and the text as entered.
  void ThreadPage(Req req, Res res, const std::string& thread, Visit& v,
                  const std::map<std::string, std::string>& errors, const std::string& draft);

  // The account page (profile.cc) with `errors` and the values `entered` (form field → text).
  void ProfilePage(Req req, Res res, Visit& v, const std::map<std::string, std::string>& errors,
                   const nlohmann::json& entered);

  // A catalogue entry for the pages (texts in `lang`, fee formatted).
  nlohmann::json ServiceModel(const nlohmann::json& s, const std::string& lang) const;
  // "/path" when safe to return to after log-in (a path of this site), else "/".
  static std::string SafeNext(const std::string& next);

  struct Asset {
    std::string content;
    std::string gzip;  // Precompressed, when the assets folder has it.
    std::string type;
  };

  Options options_;
  Sessions sessions_;
  redis::Client* redis_;
  Api api_;
  Renderer renderer_;
  std::map<std::string, Asset> assets_;  // URL path → file.
  std::string kern_base_;  // "/assets/kern/<hash>" ("" without the design system's files).
  std::string app_js_;     // "/assets/app-<hash>.js"
  std::string site_css_;   // "/assets/site-<hash>.css"
  std::mutex home_mu_;
  // "lang\x1fsearch words" → (the catalogue's ETag, the start page's content rendered).
  std::map<std::string, std::pair<std::string, std::shared_ptr<const std::string>>> home_;
  std::mutex forms_mu_;
  std::map<std::string, std::pair<int64_t, nlohmann::json>> forms_;  // Service id → (form version, service).
  http::Router router_;
  http::Server server_;
  std::unique_ptr<metrics::AdminServer> admin_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace stadtportal::web

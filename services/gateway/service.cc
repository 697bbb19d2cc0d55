#include "services/gateway/service.h"

#include <future>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"

namespace stadtportal::gateway {
namespace {

// The six services behind the gateway and the gRPC service each must serve.
const std::vector<std::pair<std::string, std::string>>& KnownServices() {
  static const std::vector<std::pair<std::string, std::string>> kServices = {
      {"identity", "stadtportal.identity.v1.IdentityService"},
      {"accounts", "stadtportal.accounts.v1.AccountsService"},
      {"submission", "stadtportal.submission.v1.SubmissionService"},
      {"payment", "stadtportal.payment.v1.PaymentService"},
      {"messaging", "stadtportal.messaging.v1.MessagingService"},
      {"connector", "stadtportal.connector.v1.ConnectorService"},
  };
  return kServices;
}

nlohmann::json ServiceJson(const submission::v1::OnlineService& s) {
  nlohmann::json fee = json::Money(s.fee());
  fee["per_unit"] = s.fee_per_unit();
  return {
      {"id", s.id()},
      {"name", json::Text(s.name())},
      {"description", json::Text(s.description())},
      {"category", s.category()},
      {"leika", s.leika()},
      {"department", s.department()},
      {"required_assurance_level", json::AssuranceLevel(s.required_assurance_level())},
      {"fee", fee},
      {"form_version", s.form_version()},
  };
}

}  // namespace

Options Options::FromEnv(const config::Env& env) {
  Options o;
  o.http = http::ServerOptions::FromEnv(env, 8080);
  o.admin_port = env.Port("STADTPORTAL_ADMIN_PORT", o.admin_port);
  auto trusted = http::TrustedProxies::Parse(env.String("STADTPORTAL_TRUSTED_PROXIES", ""));
  if (!trusted.ok()) throw config::Error("STADTPORTAL_TRUSTED_PROXIES: " + std::string(trusted.status().message()));
  o.trusted_proxies = *trusted;
  o.edge = http::EdgeOptions::FromEnv(env);
  o.tenant = env.TenantKey("STADTPORTAL_TENANT", config::kDefaultTenant);
  for (auto [name, rate] : {std::make_pair("STADTPORTAL_RATE_LIMIT_AUTH", &o.auth_rate),
                            std::make_pair("STADTPORTAL_RATE_LIMIT_DEFAULT", &o.default_rate)}) {
    if (env.String(name, "").empty()) continue;
    auto parsed = http::Rate::Parse(env.String(name, ""));
    if (!parsed.ok()) throw config::Error(std::string(name) + ": " + std::string(parsed.status().message()));
    *rate = *parsed;
  }
  for (const auto& [name, service_name] : KnownServices()) {
    o.downstreams.push_back({name, env.Required("STADTPORTAL_" + absl::AsciiStrToUpper(name) + "_ADDR"), service_name});
  }
  o.grpc_deadline = env.Millis("STADTPORTAL_GRPC_DEADLINE_MS", o.grpc_deadline);
  o.ready_timeout = env.Millis("STADTPORTAL_READY_TIMEOUT_MS", o.ready_timeout);
  o.shutdown_delay = env.Millis("STADTPORTAL_SHUTDOWN_DELAY_MS", o.shutdown_delay);
  o.token_url = env.String("STADTPORTAL_OAUTH_TOKEN_URL", o.token_url);
  o.events_redis = redis::Options::FromEnv(env);
  o.export_concurrency = static_cast<int>(env.Int("STADTPORTAL_EXPORT_CONCURRENCY", o.export_concurrency, 1, 64));
  o.export_deadline = env.Millis("STADTPORTAL_EXPORT_DEADLINE_MS", o.export_deadline);
  o.export_stream =
      std::chrono::seconds(env.Int("STADTPORTAL_EXPORT_STREAM_SECONDS", o.export_stream.count(), 60, 86400));
  o.retained_deadline = env.Millis("STADTPORTAL_RETAINED_DEADLINE_MS", o.retained_deadline);
  return o;
}

Service::Service(Options options, auth::Signer signer, redis::Client* redis)
    : options_(std::move(options)),
      signer_(std::move(signer)),
      router_("http_server", options_.edge),
      catalogue_([this] { return CatalogueLive(); }),
      catalogue_pages_([this] { return CatalogueLive(); }, 256),
      views_job_("catalogue-views", std::chrono::seconds(10), [this] { ReportViews(); }) {
  if (redis != nullptr) limiter_ = std::make_unique<http::RateLimiter>(*redis);
  if (options_.events_redis) {
    catalogue_events_ = std::make_unique<events::Broadcast>(
        *options_.events_redis,
        std::vector<std::string>{std::string(events::Topic<events::v1::CatalogueChanged>::kName)},
        [this](const events::Event&) { DropCatalogue(); }, [this] { DropCatalogue(); });
  }
  for (const auto& d : options_.downstreams) channels_[d.name] = grpcx::MakeChannel(d.target);
  identity_ = identity::v1::IdentityService::NewStub(channels_.at("identity"));
  accounts_ = accounts::v1::AccountsService::NewStub(channels_.at("accounts"));
  submission_ = submission::v1::SubmissionService::NewStub(channels_.at("submission"));
  payment_ = payment::v1::PaymentService::NewStub(channels_.at("payment"));
  messaging_ = messaging::v1::MessagingService::NewStub(channels_.at("messaging"));
  connector_ = connector::v1::ConnectorService::NewStub(channels_.at("connector"));
  AddRoutes();
  AddAuthRoutes();
  AddAccountsRoutes();
  AddSubmissionRoutes();
  AddPaymentRoutes();
  AddMailboxRoutes();
  AddBackofficeRoutes();
  // Every upload route needs a caller: without credentials, no slot and no reading.
  router_.SetUploadGate([](const httplib::Request& req) { return NamesCaller(req); });
  AddOperatorRoutes();
  AddFederationRoutes();
  AddOpenIdRoutes();
  AddPersonalDataRoutes();
  http::Configure(server_, options_.http);
  router_.Install(server_);
}

void Service::AddRoutes() {
  Add({"GET", "/healthz", Who::kAnyone, ""}, [](Req, Res res, P) { http::WriteJson(res, 200, {{"status", "alive"}}); });
  Add({"GET", "/readyz", Who::kAnyone, ""}, [this](Req, Res res, P) { Readyz(res); });
  Add({"GET", "/api/v1/services"}, [this](Req req, Res res, P) { ListServices(req, res); });
  Add({"GET", "/api/v1/services/{id}"}, [this](Req req, Res res, P p) { GetService(req, p.at("id"), res); });
}

std::string Service::AnonymousToken(const std::string& service) const {
  // The signer hands the same token out again for a part of its lifetime.
  auth::Caller anonymous;
  anonymous.tenant = options_.tenant;
  return signer_.Sign(anonymous, service);
}

void Service::Fail(Req req, Res res, const absl::Status& s, const nlohmann::json& extra) {
  const std::string m(s.message());
  const auto pos = m.find("retry after ");
  if (s.code() == absl::StatusCode::kResourceExhausted && !res.has_header("Retry-After")) {
    // "… retry after N s" from the identity service's log-in throttle.
    res.set_header("Retry-After",
                   pos == std::string::npos ? "60" : m.substr(pos + 12, m.find(' ', pos + 12) - pos - 12));
  } else if (s.code() == absl::StatusCode::kUnavailable && pos != std::string::npos) {
    // "… busy; retry after N s": a bounded queue (identity's password hashing) is full.
    res.set_header("Retry-After", m.substr(pos + 12, m.find(' ', pos + 12) - pos - 12));
  }
  if (s.code() == absl::StatusCode::kPermissionDenied && absl::StartsWith(m, "assurance_level: ")) {
    // Step-up hint: the level to log in with.
    nlohmann::json with_level = extra;
    with_level["required_assurance_level"] = m.substr(17);
    with_level["step_up_providers"] = StepUpProviders(m.substr(17));
    return http::WriteProblem(res, s, http::Language(req), with_level);
  }
  http::WriteProblem(res, s, http::Language(req), extra);
}

absl::Status Service::ParsePageParams(Req req, common::v1::PageRequest* page) {
  if (req.has_param("page_size")) {
    int size = 0;
    if (!absl::SimpleAtoi(req.get_param_value("page_size"), &size) || size < 1 || size > 100) {
      return status::MalformedField("page_size", "invalid");
    }
    page->set_page_size(size);
  }
  page->set_page_token(req.get_param_value("page_token"));
  return absl::OkStatus();
}

std::optional<nlohmann::json> Service::Body(Req req, Res res, const std::map<std::string, http::FieldSpec>& fields,
                                            size_t max_bytes) {
  // Upload routes take files; a JSON body there is held to the JSON limit.
  if (req.body.size() > (max_bytes != 0 ? max_bytes : options_.edge.max_body_bytes)) {
    http::WriteHttpProblem(res, 413, "request body too large");
    return std::nullopt;
  }
  auto body = http::ParseJsonBody(req, fields);
  if (!body.ok()) {
    Fail(req, res, body.status());
    return std::nullopt;
  }
  return *body;
}

void Service::Readyz(Res res) {
  if (stopping_) {
    http::WriteProblem(res, absl::UnavailableError("shutting down"));
    return;
  }
  // All checks at once, so the answer takes at most one timeout.
  std::vector<std::future<absl::Status>> checks;
  for (const auto& d : options_.downstreams) {
    checks.push_back(std::async(std::launch::async, [this, &d] {
      return grpcx::CheckHealth(channels_.at(d.name), d.service_name, options_.ready_timeout);
    }));
  }
  // Which services are not serving, never why: the reasons (transport errors, addresses)
  // go to the log only.
  nlohmann::json services = nlohmann::json::object();
  std::vector<std::string> not_ready;
  nlohmann::json reasons = nlohmann::json::object();
  for (size_t i = 0; i < checks.size(); ++i) {
    absl::Status s = checks[i].get();
    const auto& name = options_.downstreams[i].name;
    services[name] = s.ok() ? "serving" : "not_serving";
    if (!s.ok()) {
      not_ready.push_back(name);
      reasons[name] = std::string(s.message());
    }
  }
  if (not_ready.empty()) {
    http::WriteJson(res, 200, {{"status", "ready"}, {"services", services}});
    return;
  }
  log::Warn("not ready", {{"services", reasons}});
  // Which services, not why: a server-side problem's own detail is generic.
  http::WriteProblem(res, absl::UnavailableError("not ready"), "de",
                     {{"detail", absl::StrCat("not ready: ", absl::StrJoin(not_ready, ", "))}, {"services", services}});
}

namespace {

// The two counters, looked up once (not per request).
prometheus::Counter& CatalogueCacheCounter(bool hit) {
  static auto& family = metrics::CounterFamily("stadtportal_gateway_catalogue_cache_total",
                                               "Catalogue requests answered from the cache (hit) or not (miss).");
  static prometheus::Counter& hits = family.Add({{"result", "hit"}});
  static prometheus::Counter& misses = family.Add({{"result", "miss"}});
  return hit ? hits : misses;
}

}  // namespace

bool Service::CatalogueLive() const { return catalogue_events_ != nullptr && catalogue_events_->live(); }

void Service::DropCatalogue() {
  catalogue_.DropAll();
  catalogue_pages_.DropAll();
}

void Service::WriteCatalogue(Req req, Res res, const CatalogueCache::Entry& entry) {
  res.set_header("ETag", entry.etag);
  // Caches (an ingress, a CDN) may keep it, but ask again each time: a new form version
  // applies at once. Asking with If-None-Match costs a 304 without a body. (In place of
  // the edge's "no-store" for every other answer.) What concerns only this client (its
  // rate-limit budget) is not kept for others; CORS headers depend on the Origin.
  for (const char* name : {"Cache-Control", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Vary"}) {
    res.headers.erase(name);
  }
  res.set_header("Cache-Control", "public, no-cache");
  res.set_header("Vary", "Origin");
  if (EtagMatches(req.get_header_value("If-None-Match"), entry.etag)) {
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(entry.body, "application/json");
}

void Service::ListServices(Req req, Res res) {
  submission::v1::ListOnlineServicesRequest in;
  in.set_query(req.get_param_value("q"));
  in.set_category(req.get_param_value("category"));
  in.set_leika(req.get_param_value("leika"));
  if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
  // First pages only, in a cache of their own: later pages (tokens anyone can make) and
  // search words must not push the services out.
  const bool cacheable = in.page().page_token().empty();
  const std::string key =
      absl::StrCat(in.query(), "\x1f", in.category(), "\x1f", in.leika(), "\x1f", in.page().page_size());
  auto entry = cacheable ? catalogue_pages_.Get(key) : nullptr;
  CatalogueCacheCounter(entry != nullptr).Increment();
  if (entry == nullptr) {
    const uint64_t generation = catalogue_pages_.generation();
    submission::v1::ListOnlineServicesResponse out;
    if (!Call(req, res, *submission_, &submission::v1::SubmissionService::Stub::ListOnlineServices, in, &out)) return;
    std::string body = http::JsonText(json::Page(json::Array(out.services(), ServiceJson), out.page()));
    entry =
        cacheable ? catalogue_pages_.Put(key, std::move(body), generation) : CatalogueCache::Uncached(std::move(body));
  }
  WriteCatalogue(req, res, *entry);
}

void Service::GetService(Req req, const std::string& id, Res res) {
  const std::string& key = id;
  auto entry = catalogue_.Get(key);
  CatalogueCacheCounter(entry != nullptr).Increment();
  if (entry != nullptr) {
    // Answered here, not by the submission service: counted here for its funnel.
    std::lock_guard<std::mutex> lock(views_mu_);
    ++views_[id];
  } else {
    const uint64_t generation = catalogue_.generation();
    submission::v1::GetOnlineServiceRequest in;
    in.set_id(id);
    submission::v1::OnlineService out;
    if (!Call(req, res, *submission_, &submission::v1::SubmissionService::Stub::GetOnlineService, in, &out)) return;
    nlohmann::json body = ServiceJson(out);
    body["retention_days"] = out.retention_days();
    body["retention_years"] = out.retention_years();
    body["retention_legal_basis"] = out.retention_legal_basis();
    body["lasting_value"] = out.lasting_value();
    body["form"] = nlohmann::json::parse(out.form_json())["form"];
    entry = catalogue_.Put(key, http::JsonText(body), generation);
  }
  WriteCatalogue(req, res, *entry);
}

void Service::ReportViews() {
  std::map<std::string, int64_t> views;
  {
    std::lock_guard<std::mutex> lock(views_mu_);
    views.swap(views_);
  }
  submission::v1::RecordViewsRequest in;
  int64_t total = 0;
  const auto send = [&] {
    submission::v1::RecordViewsResponse out;
    if (auto s = Invoke(AnonymousToken("submission"), *submission_,
                        &submission::v1::SubmissionService::Stub::RecordViews, in, &out);
        !s.ok()) {
      log::Warn("catalogue views lost", {{"error", std::string(s.message())}, {"count", total}});
    }
    in.clear_views();
    total = 0;
  };
  for (const auto& [id, count] : views) {
    auto* v = in.add_views();
    v->set_service_id(id);
    v->set_count(std::min<int64_t>(count, 1000000000));
    total += count;
    if (in.views_size() == 1000) send();  // A report carries up to 1,000 services.
  }
  if (in.views_size() > 0) send();
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
  if (catalogue_events_ != nullptr) catalogue_events_->Start();
  views_job_.Start();
  // Until the loop runs, stop() would race with it: wait for it (a few milliseconds).
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
  if (catalogue_events_ != nullptr) catalogue_events_->Stop();
  views_job_.Stop();
  ReportViews();
  log::Info("http server stopped");
}

}  // namespace stadtportal::gateway

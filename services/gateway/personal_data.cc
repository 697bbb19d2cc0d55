// The person's own data (docs/data-protection.md "Export and erasure", ADR 0026): the
// export, assembled from every service over gRPC, as one JSON document or a ZIP with the
// files; and the erasure of the account, which identity starts and every service applies.
#include <algorithm>
#include <future>
#include <memory>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/api/zip.h"
#include "libs/log/log.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace idv1 = identity::v1;
using common::v1::PersonalData;
using common::v1::PersonalDataRequest;
using common::v1::RetainedRecords;
using http::FieldType;

// The export and the erasure need a log-in at most this old.
constexpr int64_t kRecentLoginSeconds = 10 * 60;
// Exports per account.
const http::Rate kExportRate{5, std::chrono::seconds(3600)};
// Seconds a client waits before asking again when every export slot is taken or a
// service did not answer.
constexpr char kRetryAfter[] = "30";
constexpr char kFormat[] = "stadtportal-export/1";

// The services holding a person's data, in the document's order.
const std::vector<std::string>& ExportServices() {
  static const std::vector<std::string> kServices = {"identity", "accounts",  "submission",
                                                     "payment",  "messaging", "connector"};
  return kServices;
}

// The services whose sections list files (fetched with GetPersonalDataFile).
bool HasFiles(const std::string& service) { return service == "submission" || service == "messaging"; }

nlohmann::json RetainedJson(const common::v1::RetainedRecord& r) {
  return {{"service", r.service()},
          {"kind", r.kind()},
          {"id", r.id()},
          {"reference", r.reference().empty() ? nlohmann::json(nullptr) : nlohmann::json(r.reference())},
          {"rule", r.rule()},
          {"legal_basis", r.legal_basis()},
          {"until", r.until().empty() ? nlohmann::json(nullptr) : nlohmann::json(r.until())}};
}

// One service's answer, checked: a JSON object, files under its own name with paths the
// ZIP takes.
absl::Status CheckSection(const std::string& service, const PersonalData& data, nlohmann::json* section) {
  *section = nlohmann::json::parse(data.json(), nullptr, /*allow_exceptions=*/false);
  if (!section->is_object()) return absl::InternalError("section is not a JSON object");
  for (const auto& f : data.files()) {
    auto parts = privacy::ParseExportPath(f.path());
    if (!parts.ok() || parts->service != service || !HasFiles(service) || f.size_bytes() < 0) {
      return absl::InternalError("file path refused");
    }
  }
  return absl::OkStatus();
}

// The export slot of a running export, and its account's one running export; given back
// when the last holder goes (the ZIP's stream ends after the handler returned).
class ExportSlot {
 public:
  ExportSlot(std::atomic<int>& running, std::mutex& mu, std::set<std::string>& accounts, std::string account)
      : running_(running), mu_(mu), accounts_(accounts), account_(std::move(account)) {}
  ~ExportSlot() {
    running_.fetch_sub(1);
    std::lock_guard<std::mutex> lock(mu_);
    accounts_.erase(account_);
  }
  ExportSlot(const ExportSlot&) = delete;
  ExportSlot& operator=(const ExportSlot&) = delete;

 private:
  std::atomic<int>& running_;
  std::mutex& mu_;
  std::set<std::string>& accounts_;
  std::string account_;
};

// The ZIP's bytes go out in pieces of this size, the stream's time checked before each:
// a client that reads slowly cannot hold an export slot past the stream's budget.
constexpr size_t kStreamPiece = 64 * 1024;

// What the ZIP's stream needs once the handler has returned.
struct ZipJob {
  std::string document;
  std::vector<common::v1::ExportFile> files;
  auth::Caller caller;
  std::string session_id;  // Checked before each file: a session ended ends the stream.
  absl::Time exported_at;
  absl::Time stream_until;
  std::shared_ptr<ExportSlot> slot;
};

}  // namespace

void Service::AddPersonalDataRoutes() {
  // The person acting as themself, with a log-in of the last ten minutes; otherwise the
  // problem is written and false returned.
  auto own_person_recently = [this](Req req, Res res, const Authenticated& a) {
    if (auto party = privacy::OwnPerson(a.caller); !party.ok()) {
      Fail(req, res, party.status());
      return false;
    }
    // A session still owing its second factor has the password only; an account with an
    // administrative role is an administrator's, whatever this session may do.
    if (a.session.second_factor() == idv1::SECOND_FACTOR_REQUIRED) {
      Fail(req, res, absl::PermissionDeniedError("the second factor is required first"),
           {{"code", "second_factor_required"}});
      return false;
    }
    if (!a.session.roles().empty()) {
      Fail(req, res, absl::PermissionDeniedError("an administrative account cannot do this"));
      return false;
    }
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    if (google::protobuf::util::TimeUtil::TimestampToSeconds(a.session.authenticated_at()) <
        now - kRecentLoginSeconds) {
      Fail(req, res, absl::PermissionDeniedError("log in again: the last log-in was more than 10 minutes ago"),
           {{"code", "recent_login_required"}, {"max_age_seconds", kRecentLoginSeconds}});
      return false;
    }
    return true;
  };

  Add({"GET", "/api/v1/me/export", Who::kSession}, [this, own_person_recently](Req req, Res res, P,
                                                                               const Authenticated& a) {
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
    if ((format != "json" && format != "zip") || req.get_param_value_count("format") > 1) {
      return Fail(req, res, status::MalformedField("format", "invalid", "json or zip"));
    }
    if (!own_person_recently(req, res, a)) return;
    if (limiter_ != nullptr) {
      auto d = limiter_->Take("export", a.caller.account_id, kExportRate);
      if (!d.ok()) {
        log::Warn("rate limit unavailable", {{"error", std::string(d.status().message())}});
      } else if (!d->allowed) {
        res.set_header("Retry-After", std::to_string(d->retry_after));
        return Fail(req, res, absl::ResourceExhaustedError("at most 5 exports per hour; retry later"));
      }
    }
    {
      std::lock_guard<std::mutex> lock(exports_mu_);
      if (!exports_by_account_.insert(a.caller.account_id).second) {
        res.set_header("Retry-After", kRetryAfter);
        return Fail(req, res, absl::ResourceExhaustedError("an export of this account is running; retry later"));
      }
    }
    if (exports_running_.fetch_add(1) >= options_.export_concurrency) {
      exports_running_.fetch_sub(1);
      std::lock_guard<std::mutex> lock(exports_mu_);
      exports_by_account_.erase(a.caller.account_id);
      res.set_header("Retry-After", kRetryAfter);
      return Fail(req, res, absl::UnavailableError("too many exports at once; retry later"));
    }
    auto slot = std::make_shared<ExportSlot>(exports_running_, exports_mu_, exports_by_account_, a.caller.account_id);

    // Every service's section at once, each within the export's deadline.
    PersonalDataRequest in;
    const auto d = options_.export_deadline;
    std::map<std::string, std::string> tokens;
    for (const auto& name : ExportServices()) tokens[name] = a.Token(name);
    std::vector<std::future<std::pair<absl::Status, PersonalData>>> calls;
    for (const auto& name : ExportServices()) {
      calls.push_back(std::async(std::launch::async, [this, &in, d, name, token = tokens[name]] {
        PersonalData out;
        absl::Status s;
        if (name == "identity") {
          s = InvokeWithin(d, token, *identity_, &idv1::IdentityService::Stub::ExportPersonalData, in, &out);
        } else if (name == "accounts") {
          s = InvokeWithin(d, token, *accounts_, &accounts::v1::AccountsService::Stub::ExportPersonalData, in, &out);
        } else if (name == "submission") {
          s = InvokeWithin(d, token, *submission_, &submission::v1::SubmissionService::Stub::ExportPersonalData, in,
                           &out);
        } else if (name == "payment") {
          s = InvokeWithin(d, token, *payment_, &payment::v1::PaymentService::Stub::ExportPersonalData, in, &out);
        } else if (name == "messaging") {
          s = InvokeWithin(d, token, *messaging_, &messaging::v1::MessagingService::Stub::ExportPersonalData, in, &out);
        } else {
          s = InvokeWithin(d, token, *connector_, &connector::v1::ConnectorService::Stub::ExportPersonalData, in, &out);
        }
        return std::make_pair(s, std::move(out));
      }));
    }
    const absl::Time exported_at = absl::Now();
    nlohmann::json services = nlohmann::json::object();
    nlohmann::json files = nlohmann::json::array();
    std::vector<common::v1::ExportFile> listed;
    std::vector<std::string> failed;
    for (size_t i = 0; i < calls.size(); ++i) {
      const auto& name = ExportServices()[i];
      auto [s, out] = calls[i].get();
      nlohmann::json section;
      if (s.ok()) s = CheckSection(name, out, &section);
      if (!s.ok()) {
        log::Warn(
            "export: a service failed",
            {{"service", name}, {"account_id", a.caller.account_id}, {"code", absl::StatusCodeToString(s.code())}});
        failed.push_back(name);
        continue;
      }
      services[name] = std::move(section);
      for (const auto& f : out.files()) {
        files.push_back({{"path", f.path()}, {"content_type", f.content_type()}, {"size_bytes", f.size_bytes()}});
        listed.push_back(f);
      }
    }
    // All or nothing: no partial document.
    if (!failed.empty()) {
      res.set_header("Retry-After", kRetryAfter);
      return Fail(req, res, absl::UnavailableError("export unavailable"),
                  {{"detail", "the export is not available now: " + absl::StrJoin(failed, ", ") +
                                  " did not answer; nothing was exported"},
                   {"services", failed}});
    }
    const nlohmann::json document = {
        {"format", kFormat},
        {"exported_at", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", exported_at, absl::UTCTimeZone())},
        {"tenant", a.caller.tenant},
        {"account_id", a.caller.account_id},
        {"services", std::move(services)},
        {"files", std::move(files)}};
    const std::string day = absl::FormatTime("%Y-%m-%d", exported_at, absl::UTCTimeZone());
    res.set_header("Cache-Control", "no-store");
    log::Info("export", {{"account_id", a.caller.account_id}, {"format", format}, {"files", listed.size()}});
    if (format == "json") {
      res.set_header("Content-Disposition", "attachment; filename=\"stadtportal-export-" + day + ".json\"");
      return http::WriteJson(res, 200, document);
    }

    // The ZIP: export.json, then each file as it comes from its service. It must fit
    // without ZIP64.
    auto job = std::make_shared<ZipJob>();
    job->document = http::JsonText(document);
    uint64_t total = 22 + 76 + 2 * std::string("export.json").size() + job->document.size();
    for (const auto& f : listed) total += 76 + 2 * f.path().size() + static_cast<uint64_t>(f.size_bytes());
    if (total > api::ZipWriter::kMaxBytes) {
      return Fail(req, res,
                  status::FieldConflict("format", "too_large", "the files pass 2 GiB: export as JSON, ask for them"));
    }
    job->files = std::move(listed);
    job->caller = a.caller;
    job->session_id = a.session_id;
    job->exported_at = exported_at;
    job->stream_until = absl::Now() + absl::FromChrono(options_.export_stream);
    job->slot = slot;
    res.set_header("Content-Disposition", "attachment; filename=\"stadtportal-export-" + day + ".zip\"");
    res.set_chunked_content_provider("application/zip", [this, job](size_t, httplib::DataSink& sink) {
      api::ZipWriter zip(
          [&sink, &job](const char* data, size_t size) {
            for (size_t at = 0; at < size; at += kStreamPiece) {
              if (absl::Now() > job->stream_until) return false;  // Read too slowly: cut off.
              if (!sink.write(data + at, std::min(kStreamPiece, size - at))) return false;
            }
            return true;
          },
          job->exported_at);
      auto fail = [&](const std::string& what, const absl::Status& s) {
        // The status line is sent: the client sees a cut-off archive, never a whole one.
        log::Warn(
            "export: ZIP stopped",
            {{"account_id", job->caller.account_id}, {"step", what}, {"code", absl::StatusCodeToString(s.code())}});
        return false;
      };
      if (auto s = zip.Add("export.json", job->document); !s.ok()) return fail("export.json", s);
      for (const auto& f : job->files) {
        // The session must still be alive (not logged out, the account not erased).
        idv1::ResolveSessionRequest check;
        check.set_session_id(job->session_id);
        idv1::Session alive;
        if (auto s = Invoke(AnonymousToken("identity"), *identity_, &idv1::IdentityService::Stub::ResolveSession, check,
                            &alive);
            !s.ok()) {
          return fail("session", s);
        }
        if (absl::Now() > job->stream_until) return fail("stream budget", absl::DeadlineExceededError("too slow"));
        common::v1::PersonalDataFileRequest in;
        in.set_path(f.path());
        common::v1::ExportFile out;
        const std::string service = privacy::ParseExportPath(f.path())->service;
        const std::string token = signer_.Sign(job->caller, service);
        absl::Status s = service == "submission"
                             ? InvokeWithin(options_.export_deadline, token, *submission_,
                                            &submission::v1::SubmissionService::Stub::GetPersonalDataFile, in, &out)
                             : InvokeWithin(options_.export_deadline, token, *messaging_,
                                            &messaging::v1::MessagingService::Stub::GetPersonalDataFile, in, &out);
        if (!s.ok()) return fail(service, s);
        if (s = zip.Add(f.path(), out.content()); !s.ok()) return fail(service, s);
      }
      if (auto s = zip.Finish(); !s.ok()) return fail("finish", s);
      sink.done();
      return true;
    });
  });

  Add({"DELETE", "/api/v1/me", Who::kSession}, [this, own_person_recently](Req req, Res res, P,
                                                                           const Authenticated& a) {
    auto body = Body(req, res, {{"confirm", {FieldType::kString}}});
    if (!body) return;
    if (!own_person_recently(req, res, a)) return;

    // What every other service keeps by a retention rule, at once and briefly; one
    // that does not answer applies the erasure when it catches up and is named pending.
    PersonalDataRequest in;
    const auto d = options_.retained_deadline;
    std::vector<std::string> listing = {"accounts", "submission", "payment", "messaging", "connector"};
    std::map<std::string, std::string> tokens;
    for (const auto& name : listing) tokens[name] = a.Token(name);
    std::vector<std::future<std::pair<absl::Status, RetainedRecords>>> calls;
    for (const auto& name : listing) {
      calls.push_back(std::async(std::launch::async, [this, &in, d, name, token = tokens[name]] {
        RetainedRecords out;
        absl::Status s;
        if (name == "accounts") {
          s = InvokeWithin(d, token, *accounts_, &accounts::v1::AccountsService::Stub::ListRetainedRecords, in, &out);
        } else if (name == "submission") {
          s = InvokeWithin(d, token, *submission_, &submission::v1::SubmissionService::Stub::ListRetainedRecords, in,
                           &out);
        } else if (name == "payment") {
          s = InvokeWithin(d, token, *payment_, &payment::v1::PaymentService::Stub::ListRetainedRecords, in, &out);
        } else if (name == "messaging") {
          s = InvokeWithin(d, token, *messaging_, &messaging::v1::MessagingService::Stub::ListRetainedRecords, in,
                           &out);
        } else {
          s = InvokeWithin(d, token, *connector_, &connector::v1::ConnectorService::Stub::ListRetainedRecords, in,
                           &out);
        }
        return std::make_pair(s, std::move(out));
      }));
    }
    std::vector<RetainedRecords> answers(listing.size());
    std::vector<std::string> pending;
    for (size_t i = 0; i < calls.size(); ++i) {
      auto [s, out] = calls[i].get();
      if (!s.ok()) {
        log::Warn("erasure: retained records not listed", {{"service", listing[i]},
                                                           {"account_id", a.caller.account_id},
                                                           {"code", absl::StatusCodeToString(s.code())}});
        pending.push_back(listing[i]);
      } else {
        answers[i] = std::move(out);
      }
    }

    idv1::RequestErasureRequest erase;
    erase.set_confirm((*body)["confirm"].get<std::string>());
    idv1::RequestErasureResponse erased;
    absl::Status s =
        Invoke(a.Token("identity"), *identity_, &idv1::IdentityService::Stub::RequestErasure, erase, &erased);
    if (s.code() == absl::StatusCode::kFailedPrecondition && absl::StartsWith(s.message(), "log in again")) {
      return Fail(req, res, absl::PermissionDeniedError(s.message()),
                  {{"code", "recent_login_required"}, {"max_age_seconds", kRecentLoginSeconds}});
    }
    if (!Succeeded(req, res, s)) return;

    nlohmann::json retained = json::Array(erased.retained(), RetainedJson);
    for (const auto& answer : answers) {
      for (const auto& r : answer.records()) retained.push_back(RetainedJson(r));
    }
    log::Info("erasure requested", {{"account_id", erased.account_id()}, {"pending", pending}});
    res.set_header("Set-Cookie", std::string(kSessionCookie) + "=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0");
    res.set_header("Cache-Control", "no-store");
    http::WriteJson(res, 202,
                    {{"account_id", erased.account_id()},
                     {"requested_at", json::Time(erased.requested_at())},
                     {"retained", std::move(retained)},
                     {"pending", pending}});
  });
}

}  // namespace stadtportal::gateway

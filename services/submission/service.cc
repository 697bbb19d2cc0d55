#include "services/submission/service.h"

#include <algorithm>
#include <regex>
#include <set>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/api/api.h"
#include "libs/api/files.h"
#include "libs/api/idempotency.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"
#include "services/submission/catalogue.h"
#include "services/submission/receipt.h"
#include "services/submission/reference.h"
#include "services/submission/status.h"

namespace stadtportal::submission {
namespace {

int Rank(const std::string& level) {
  if (level == "high") return 3;
  if (level == "substantial") return 2;
  if (level == "low") return 1;
  return 0;
}

// PERMISSION_DENIED naming the level the service needs when the session's is lower.
absl::Status CheckAssurance(const auth::Caller& caller, const std::string& required) {
  if (Rank(caller.assurance) >= Rank(required)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("assurance_level: ", required));
}

// A federal service key (LeiKa / FIM Leistungsschlüssel): 14 digits.
bool IsServiceKey(const std::string& key) {
  return key.size() == 14 && std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
}

absl::CivilDay Today() { return absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()); }

std::vector<FunnelEvent> ValidationFailed(const std::string& service_id, const std::string& draft_id,
                                          const std::string& step, const std::vector<FieldError>& errors) {
  std::vector<FunnelEvent> events;
  for (const auto& e : errors) events.push_back({"validation_failed", service_id, draft_id, step, e.field, e.code});
  return events;
}

constexpr char kExportService[] = "submission";

std::string Rfc3339(const google::protobuf::Timestamp& t) { return google::protobuf::util::TimeUtil::ToString(t); }

// A file of the export, listed without its content.
common::v1::ExportFile ExportFileOf(const std::string& kind, const std::string& id, const std::string& filename,
                                    const std::string& content_type, int64_t size) {
  common::v1::ExportFile f;
  f.set_path(privacy::ExportPath(kExportService, kind, id, filename));
  f.set_content_type(content_type);
  f.set_size_bytes(size);
  return f;
}

nlohmann::json AttachmentsJson(const google::protobuf::RepeatedPtrField<v1::Attachment>& attachments,
                               common::v1::PersonalData* out) {
  auto list = nlohmann::json::array();
  for (const auto& a : attachments) {
    auto file = ExportFileOf("attachment", a.id(), a.filename(), a.media_type(), a.size());
    list.push_back({{"id", a.id()},
                    {"field", a.field()},
                    {"filename", a.filename()},
                    {"media_type", a.media_type()},
                    {"size_bytes", a.size()},
                    {"sha256", a.sha256()},
                    {"created_at", Rfc3339(a.created_at())},
                    {"file", file.path()}});
    *out->add_files() = std::move(file);
  }
  return list;
}

nlohmann::json DraftJson(const v1::Draft& d, common::v1::PersonalData* out) {
  return {{"id", d.id()},
          {"online_service", d.service_id()},
          {"online_service_name", {{"de", d.service_name().de()}, {"en", d.service_name().en()}}},
          {"form_version", d.form_version()},
          {"answers", nlohmann::json::parse(d.data_json())},
          {"last_completed_step", d.last_completed_step()},
          {"created_at", Rfc3339(d.created_at())},
          {"updated_at", Rfc3339(d.updated_at())},
          {"expires_at", Rfc3339(d.expires_at())},
          {"attachments", AttachmentsJson(d.attachments(), out)}};
}

nlohmann::json SubmissionJson(const v1::Submission& s, const std::map<std::string, v1::Feedback>& feedback,
                              const std::string& receipt_path, common::v1::PersonalData* out) {
  auto history = nlohmann::json::array();
  for (const auto& h : s.history()) {
    history.push_back({{"status", h.status()}, {"at", Rfc3339(h.at())}, {"note", h.note()}});
  }
  nlohmann::json j = {
      {"id", s.id()},
      {"reference", s.reference()},
      {"online_service", s.service_id()},
      {"online_service_name", {{"de", s.service_name().de()}, {"en", s.service_name().en()}}},
      {"form_version", s.form_version()},
      {"status", s.status()},
      {"answers", nlohmann::json::parse(s.data_json())},
      {"fee", {{"amount_minor", s.fee().amount_minor()}, {"currency", s.fee().currency()}}},
      {"submitted_at", Rfc3339(s.submitted_at())},
      {"closed_at", s.has_closed_at() ? nlohmann::json(Rfc3339(s.closed_at())) : nlohmann::json()},
      {"retain_until", s.has_retain_until() ? nlohmann::json(Rfc3339(s.retain_until())) : nlohmann::json()},
      {"delivery_delayed", s.delivery_delayed()},
      {"status_history", std::move(history)},
      {"feedback", nullptr},
      {"attachments", AttachmentsJson(s.attachments(), out)},
      {"receipt", receipt_path}};
  if (auto f = feedback.find(s.id()); f != feedback.end()) {
    j["feedback"] = {
        {"rating", f->second.rating()}, {"comment", f->second.comment()}, {"given_at", Rfc3339(f->second.given_at())}};
  }
  return j;
}

}  // namespace

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.reference_prefix = env.String("STADTPORTAL_SUBMISSION_REFERENCE_PREFIX", o.reference_prefix);
  if (!IsReferencePrefix(o.reference_prefix)) {
    throw config::Error("STADTPORTAL_SUBMISSION_REFERENCE_PREFIX: 2 to 6 capital letters");
  }
  o.draft_lifetime =
      std::chrono::hours(env.Int("STADTPORTAL_DRAFT_LIFETIME_HOURS", o.draft_lifetime.count(), 1, 24 * 366));
  o.kpi_min_citizens = static_cast<int>(env.Int("STADTPORTAL_KPI_MIN_CITIZENS", o.kpi_min_citizens, 1, 100));
  return o;
}

absl::StatusOr<Owner> OwnerOf(const auth::Caller& caller) {
  auto party = auth::ScopeParty(caller);
  if (!party.ok()) return party.status();
  return Owner{caller.tenant, *party};
}

absl::Status FieldErrors(const std::vector<FieldError>& errors, const std::string& prefix) {
  std::vector<status::FieldViolation> violations;
  for (const auto& e : errors) violations.push_back({prefix + e.field, e.code});
  return status::InvalidFields(std::move(violations));
}

absl::StatusOr<std::shared_ptr<const Service::Published>> Service::Load(const std::string& tenant,
                                                                        const std::string& service_id, int version) {
  const auto key = std::make_tuple(tenant, service_id, version);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  auto definition = store_->GetDefinition(tenant, service_id, version);
  if (!definition.ok()) return definition.status();
  auto form = Form::Parse((*definition)["form"]);
  if (!form.ok()) return absl::InternalError(absl::StrCat("stored form does not parse: ", form.status().message()));
  auto published = std::make_shared<const Published>(Published{*std::move(definition), *std::move(form)});
  std::lock_guard<std::mutex> lock(cache_mu_);
  cache_[key] = published;
  return published;
}

absl::StatusOr<std::pair<v1::Draft, std::shared_ptr<const Service::Published>>> Service::LoadDraft(
    const Owner& owner, const std::string& id) {
  if (auto s = api::CheckId(id, "draft"); !s.ok()) return s;
  auto draft = store_->GetDraft(owner, id);
  if (!draft.ok()) return draft.status();
  auto published = Load(owner.tenant, draft->service_id(), draft->form_version());
  if (!published.ok()) return published.status();
  SetFee(**published, nlohmann::json::parse(draft->data_json()), draft->mutable_fee());
  return std::make_pair(*std::move(draft), *std::move(published));
}

void Service::SetFee(const Published& p, const nlohmann::json& data, common::v1::Money* fee) const {
  const auto& f = p.definition["fee"];
  int64_t units = 1;
  const std::string unit_field = f.value("per_unit_field", "");
  if (!unit_field.empty()) {
    units = data.contains(unit_field) && data[unit_field].is_number_integer() ? data[unit_field].get<int64_t>() : 0;
    units = std::clamp<int64_t>(units, 0, 1000);
  }
  fee->set_amount_minor(f["amount_minor"].get<int64_t>() * units);
  fee->set_currency(f["currency"].get<std::string>());
}

std::vector<FieldError> Service::Check(const Published& p, const v1::Draft& d, const std::string& step) const {
  std::map<std::string, int> files;
  for (const auto& a : d.attachments()) ++files[a.field()];
  return p.form.Validate(nlohmann::json::parse(d.data_json()), files, step, Today());
}

grpc::Status Service::ListOnlineServices(grpc::ServerContext* ctx, const v1::ListOnlineServicesRequest* req,
                                         v1::ListOnlineServicesResponse* resp) {
  return grpcx::Handle(ctx, "ListOnlineServices", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), options_.default_tenant);
    if (!tenant.ok()) return tenant.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    if (!req->query().empty()) {
      if (auto s = api::ValidateText(req->query(), "query", 200); !s.ok()) return s;
    }
    if (!req->category().empty()) {
      if (auto s = api::ValidateSlug(req->category(), "category"); !s.ok()) return s;
    }
    if (!req->leika().empty() && !IsServiceKey(req->leika())) {
      return status::FieldError("leika", "invalid", "expected a federal service key of 14 digits");
    }
    return grpcx::Respond(resp,
                          store_->ListOnlineServices({*tenant, req->query(), req->category(), req->leika(), *page}));
  });
}

grpc::Status Service::GetOnlineService(grpc::ServerContext* ctx, const v1::GetOnlineServiceRequest* req,
                                       v1::OnlineService* resp) {
  return grpcx::Handle(ctx, "GetOnlineService", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), options_.default_tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateSlug(req->id(), "id"); !s.ok()) return s;
    auto service = store_->GetOnlineService(*tenant, req->id());
    if (!service.ok()) return service.status();
    {
      std::lock_guard<std::mutex> lock(views_mu_);
      ++views_[{*tenant, req->id()}];
    }
    *resp = *std::move(service);
    return absl::OkStatus();
  });
}

grpc::Status Service::RecordViews(grpc::ServerContext* ctx, const v1::RecordViewsRequest* req,
                                  v1::RecordViewsResponse*) {
  return grpcx::Handle(ctx, "RecordViews", [&](const auth::Caller& caller) -> absl::Status {
    // The gateway's own anonymous token only: no account, no service key, no role.
    if (!caller.anonymous() || !caller.roles.empty())
      return absl::PermissionDeniedError("only the gateway reports views");
    // Counted where GetOnlineService counts a view without a tenant.
    auto tenant = api::ResolveTenant({}, options_.default_tenant);
    if (!tenant.ok()) return tenant.status();
    if (req->views_size() > 1000) return status::MalformedField("views", "too_many");
    for (const auto& v : req->views()) {
      if (auto s = api::ValidateSlug(v.service_id(), "service_id"); !s.ok()) return s;
      if (v.count() < 1 || v.count() > 1000000000) return status::MalformedField("count", "out_of_range");
    }
    std::lock_guard<std::mutex> lock(views_mu_);
    for (const auto& v : req->views()) {
      // Bounded until the next flush: beyond kMaxViewKeys services, new ones wait for it.
      if (views_.size() >= kMaxViewKeys && views_.find({*tenant, v.service_id()}) == views_.end()) continue;
      int& n = views_[{*tenant, v.service_id()}];
      n = static_cast<int>(std::min<int64_t>(int64_t{n} + v.count(), 1000000000));
    }
    return absl::OkStatus();
  });
}

void Service::FlushViews() {
  std::map<std::pair<std::string, std::string>, int> views;
  {
    std::lock_guard<std::mutex> lock(views_mu_);
    views.swap(views_);
  }
  for (const auto& [key, count] : views) {
    FunnelEvent e{"viewed", key.second, "", "", "", ""};
    e.count = count;
    if (auto s = store_->RecordFunnel(key.first, {e}); !s.ok()) {
      log::Warn("funnel views lost", {{"error", std::string(s.message())}, {"count", count}});
    }
  }
}

grpc::Status Service::PublishOnlineService(grpc::ServerContext* ctx, const v1::PublishOnlineServiceRequest* req,
                                           v1::OnlineService* resp) {
  return grpcx::Handle(ctx, "PublishOnlineService", [&](const auth::Caller& caller) -> absl::Status {
    if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
    if (auto s = auth::RequireRole(caller, "tenant-admin"); !s.ok()) return s;
    if (req->definition_json().size() > (1 << 20)) return status::FieldError("definition", "too_long");
    auto d = CheckDefinition(req->definition_json());
    if (!d.ok()) return d.status();
    if (!req->service_id().empty() && d->id != req->service_id()) {
      return status::FieldError("definition.id", "invalid", "must match the path");
    }
    if (d->tenant != caller.tenant) return absl::PermissionDeniedError("definition of another tenant");
    return grpcx::Respond(resp, store_->Publish(*d, caller.account_id));
  });
}

grpc::Status Service::CreateDraft(grpc::ServerContext* ctx, const v1::CreateDraftRequest* req, v1::Draft* resp) {
  return grpcx::Handle(ctx, "CreateDraft", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (!api::ValidateSlug(req->service_id(), "service_id").ok())
      return absl::NotFoundError("online service not found");
    auto service = store_->GetOnlineService(owner->tenant, req->service_id());
    if (!service.ok()) return service.status();
    auto published = Load(owner->tenant, service->id(), service->form_version());
    if (!published.ok()) return published.status();
    if (auto s = CheckAssurance(caller, (*published)->definition["required_assurance_level"]); !s.ok()) return s;
    std::map<std::string, ProfileValue> profile;
    for (const auto& [name, v] : req->profile()) profile[name] = {v.value(), v.verified()};
    std::vector<std::string> read_only;
    const nlohmann::json data = (*published)->form.Prefill(profile, &read_only);
    auto draft = store_->CreateDraft(*owner, caller.account_id, service->id(), service->form_version(), data, read_only,
                                     options_.draft_lifetime);
    if (!draft.ok()) return draft.status();
    SetFee(**published, data, draft->mutable_fee());
    *resp = *std::move(draft);
    return absl::OkStatus();
  });
}

grpc::Status Service::GetDraft(grpc::ServerContext* ctx, const v1::GetDraftRequest* req, v1::Draft* resp) {
  return grpcx::Handle(ctx, "GetDraft", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    auto loaded = LoadDraft(*owner, req->id());
    if (!loaded.ok()) return loaded.status();
    *resp = std::move(loaded->first);
    return absl::OkStatus();
  });
}

grpc::Status Service::UpdateDraft(grpc::ServerContext* ctx, const v1::UpdateDraftRequest* req, v1::Draft* resp) {
  return grpcx::Handle(ctx, "UpdateDraft", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (req->expected_version() <= 0) return status::FieldError("version", "required");
    auto patch = nlohmann::json::parse(req->data_json(), nullptr, false);
    if (patch.is_discarded() || !patch.is_object()) return status::FieldError("data", "wrong_type");
    auto loaded = LoadDraft(*owner, req->id());
    if (!loaded.ok()) return loaded.status();
    auto& [draft, published] = *loaded;
    if (!req->completed_step().empty() && !published->form.HasStep(req->completed_step())) {
      return status::FieldError("completed_step", "invalid_option");
    }
    if (draft.version() != req->expected_version()) {
      return status::Stale("version", absl::StrCat("the draft changed; current version ", draft.version()));
    }
    const std::set<std::string> read_only(draft.read_only_fields().begin(), draft.read_only_fields().end());
    auto data = nlohmann::json::parse(draft.data_json());
    // Sending a read-only answer back unchanged (a whole form saved at once) is no change.
    for (const auto& id : read_only) {
      if (patch.contains(id) && data.contains(id) && patch[id] == data[id]) patch.erase(id);
    }
    if (auto errors = published->form.CheckPatch(patch, read_only); !errors.empty()) return FieldErrors(errors, "");
    for (const auto& [id, value] : patch.items()) {
      if (value.is_null()) {
        data.erase(id);
      } else {
        data[id] = value;
      }
    }
    auto updated = store_->UpdateDraft(*owner, draft.id(), req->expected_version(), data, req->completed_step(),
                                       options_.draft_lifetime);
    if (!updated.ok()) return updated.status();
    SetFee(*published, data, updated->mutable_fee());
    *resp = *std::move(updated);
    return absl::OkStatus();
  });
}

grpc::Status Service::ListDrafts(grpc::ServerContext* ctx, const v1::ListDraftsRequest* req,
                                 v1::ListDraftsResponse* resp) {
  return grpcx::Handle(ctx, "ListDrafts", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    if (!page->after.empty() && !std::regex_match(page->after, std::regex("^[0-9]{1,18}$"))) {
      return status::MalformedField("page_token", "invalid");
    }
    auto list = store_->ListDrafts(*owner, *page);
    if (!list.ok()) return list.status();
    for (auto& d : *list->mutable_drafts()) {
      auto published = Load(owner->tenant, d.service_id(), d.form_version());
      if (!published.ok()) return published.status();
      SetFee(**published, nlohmann::json::parse(d.data_json()), d.mutable_fee());
    }
    *resp = *std::move(list);
    return absl::OkStatus();
  });
}

grpc::Status Service::DeleteDraft(grpc::ServerContext* ctx, const v1::DeleteDraftRequest* req,
                                  v1::DeleteDraftResponse*) {
  return grpcx::Handle(ctx, "DeleteDraft", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "draft"); !s.ok()) return s;
    return store_->DeleteDraft(*owner, req->id());
  });
}

grpc::Status Service::ValidateDraft(grpc::ServerContext* ctx, const v1::ValidateDraftRequest* req,
                                    v1::ValidateDraftResponse* resp) {
  return grpcx::Handle(ctx, "ValidateDraft", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    auto loaded = LoadDraft(*owner, req->id());
    if (!loaded.ok()) return loaded.status();
    const auto& [draft, published] = *loaded;
    if (!req->step().empty() && !published->form.HasStep(req->step())) {
      return status::FieldError("step", "invalid_option");
    }
    const auto errors = Check(*published, draft, req->step());
    resp->set_valid(errors.empty());
    for (const auto& e : errors) {
      auto* out = resp->add_errors();
      out->set_field(e.field);
      out->set_code(e.code);
    }
    if (auto s =
            store_->RecordFunnel(owner->tenant, ValidationFailed(draft.service_id(), draft.id(), req->step(), errors));
        !s.ok()) {
      log::Warn("funnel event lost", {{"error", std::string(s.message())}});
    }
    return absl::OkStatus();
  });
}

grpc::Status Service::AddAttachment(grpc::ServerContext* ctx, const v1::AddAttachmentRequest* req,
                                    v1::Attachment* resp) {
  return grpcx::Handle(ctx, "AddAttachment", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    auto loaded = LoadDraft(*owner, req->draft_id());
    if (!loaded.ok()) return loaded.status();
    const FieldDef* field = loaded->second->form.Find(req->field());
    if (field == nullptr) return status::FieldError("field", "unknown_field");
    if (field->type != "file") return status::FieldError("field", "not_a_file_field");
    if (req->content().empty()) return status::FieldError("file", "required");
    if (static_cast<int64_t>(req->content().size()) > field->max_size_bytes) {
      return status::FieldError("file", "too_large");
    }
    const std::string type = api::SniffMediaType(req->content());
    if (type.empty() || std::find(field->accept.begin(), field->accept.end(), type) == field->accept.end()) {
      return status::FieldError("file", "type_not_allowed");
    }
    v1::Attachment meta;
    meta.set_field(field->id);
    meta.set_filename(api::SafeFilename(req->filename()));
    meta.set_media_type(type);
    meta.set_size(static_cast<int64_t>(req->content().size()));
    meta.set_sha256(absl::BytesToHexString(auth::Sha256(req->content())));
    return grpcx::Respond(resp, store_->AddAttachment(*owner, req->draft_id(), meta, req->content(), field->max_files));
  });
}

grpc::Status Service::DeleteAttachment(grpc::ServerContext* ctx, const v1::DeleteAttachmentRequest* req,
                                       v1::DeleteAttachmentResponse*) {
  return grpcx::Handle(ctx, "DeleteAttachment", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "attachment"); !s.ok()) return s;
    return store_->DeleteAttachment(*owner, req->id());
  });
}

grpc::Status Service::GetAttachment(grpc::ServerContext* ctx, const v1::GetAttachmentRequest* req,
                                    v1::AttachmentContent* resp) {
  return grpcx::Handle(ctx, "GetAttachment", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "attachment"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->GetAttachment(*owner, req->id()));
  });
}

grpc::Status Service::SubmitDraft(grpc::ServerContext* ctx, const v1::SubmitDraftRequest* req, v1::Submission* resp) {
  return grpcx::Handle(ctx, "SubmitDraft", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::ValidateIdempotencyKey(req->idempotency_key()); !s.ok()) return s;
    if (auto s = api::CheckId(req->draft_id(), "draft"); !s.ok()) return s;
    // The same key again answers with what it produced; with another draft it is refused.
    auto replay = [&]() -> std::optional<absl::Status> {
      auto earlier = store_->FindByIdempotencyKey(*owner, req->idempotency_key());
      if (!earlier.ok()) return earlier.status();
      if (!earlier->has_value()) return std::nullopt;
      // The same request is the same draft.
      if (auto s = api::CheckRepeat((*earlier)->second, req->draft_id()); !s.ok()) return s;
      *resp = std::move((*earlier)->first);
      return absl::OkStatus();
    };
    if (auto done = replay()) return *done;

    auto loaded = LoadDraft(*owner, req->draft_id());
    if (!loaded.ok()) return loaded.status();
    const auto& [draft, published] = *loaded;
    if (auto s = CheckAssurance(caller, published->definition["required_assurance_level"]); !s.ok()) return s;
    if (auto errors = Check(*published, draft, ""); !errors.empty()) {
      if (auto s = store_->RecordFunnel(owner->tenant, ValidationFailed(draft.service_id(), draft.id(), "", errors));
          !s.ok()) {
        log::Warn("funnel event lost", {{"error", std::string(s.message())}});
      }
      return FieldErrors(errors, "");
    }
    NewSubmission n;
    n.owner = *owner;
    n.account_id = caller.account_id;
    n.draft_id = draft.id();
    n.draft_version = draft.version();
    n.idempotency_key = req->idempotency_key();
    n.reference_prefix = options_.reference_prefix;
    n.data = published->form.VisibleData(nlohmann::json::parse(draft.data_json()));
    n.fee_minor = draft.fee().amount_minor();
    n.fee_currency = draft.fee().currency();
    auto submitted = store_->Submit(n);
    if (submitted.status().code() == absl::StatusCode::kAlreadyExists) {
      // A concurrent request with the same key won the race: answer as it did.
      if (auto done = replay()) return *done;
    }
    return grpcx::Respond(resp, std::move(submitted));
  });
}

grpc::Status Service::ListSubmissions(grpc::ServerContext* ctx, const v1::ListSubmissionsRequest* req,
                                      v1::ListSubmissionsResponse* resp) {
  return grpcx::Handle(ctx, "ListSubmissions", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (!req->status().empty() && !IsStatus(req->status())) {
      return status::FieldError("status", "invalid_option");
    }
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    if (!page->after.empty() && !std::regex_match(page->after, std::regex("^[0-9]{1,18}$"))) {
      return status::MalformedField("page_token", "invalid");
    }
    auto list = store_->ListSubmissions(
        *owner, req->status(), req->has_archived() ? std::optional<bool>(req->archived()) : std::nullopt, *page);
    if (!list.ok()) return list.status();
    // A partner portal's read is on the person's access log before it is answered.
    if (caller.partner()) {
      if (auto s = store_->RecordAccess(audit::PartnerRead(caller, "submission", "", "", "list")); !s.ok()) return s;
    }
    *resp = *std::move(list);
    return absl::OkStatus();
  });
}

grpc::Status Service::GetSubmission(grpc::ServerContext* ctx, const v1::GetSubmissionRequest* req,
                                    v1::Submission* resp) {
  return grpcx::Handle(ctx, "GetSubmission", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "submission"); !s.ok()) return s;
    auto submission = store_->GetSubmission(*owner, req->id());
    if (!submission.ok()) return submission.status();
    if (caller.partner()) {
      auto read = audit::PartnerRead(caller, "submission", submission->id(), submission->reference());
      if (auto s = store_->RecordAccess(read); !s.ok()) return s;
    }
    *resp = *std::move(submission);
    return absl::OkStatus();
  });
}

grpc::Status Service::WithdrawSubmission(grpc::ServerContext* ctx, const v1::WithdrawSubmissionRequest* req,
                                         v1::Submission* resp) {
  return grpcx::Handle(ctx, "WithdrawSubmission", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "submission"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->Withdraw(*owner, req->id()));
  });
}

grpc::Status Service::GetReceipt(grpc::ServerContext* ctx, const v1::GetReceiptRequest* req, v1::Receipt* resp) {
  return grpcx::Handle(ctx, "GetReceipt", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "submission"); !s.ok()) return s;
    auto submission = store_->GetSubmission(*owner, req->id());
    if (!submission.ok()) return submission.status();
    auto receipt = Receipt(owner->tenant, *submission, req->language() == "en" ? "en" : "de");
    if (!receipt.ok()) return receipt.status();
    resp->set_pdf(std::move(receipt->first));
    resp->set_filename(std::move(receipt->second));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::pair<std::string, std::string>> Service::Receipt(const std::string& tenant, const v1::Submission& s,
                                                                     const std::string& language) {
  auto published = Load(tenant, s.service_id(), s.form_version());
  if (!published.ok()) return published.status();
  const std::string title = language == "de" ? "Eingangsbestätigung" : "Receipt";
  return std::make_pair(RenderPdf(title, ReceiptLines(s, (*published)->definition, language)),
                        absl::StrCat(s.reference(), ".pdf"));
}

grpc::Status Service::GiveFeedback(grpc::ServerContext* ctx, const v1::GiveFeedbackRequest* req, v1::Feedback* resp) {
  return grpcx::Handle(ctx, "GiveFeedback", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = OwnerOf(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->submission_id(), "submission"); !s.ok()) return s;
    if (req->rating() < 1 || req->rating() > 5) return status::FieldError("rating", "out_of_range");
    if (!req->comment().empty()) {
      if (auto s = api::ValidateText(req->comment(), "comment", 1000, api::TextKind::kMultiline); !s.ok()) {
        if (s.message().find("control_characters") != absl::string_view::npos) return s;
        const bool utf8 = s.message().find("UTF-8") != absl::string_view::npos;
        return status::FieldError("comment", utf8 ? "wrong_type" : "too_long");
      }
    }
    auto feedback = store_->GiveFeedback(*owner, req->submission_id(), req->rating(), req->comment());
    if (feedback.status().code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError("feedback was already given for this submission");
    }
    return grpcx::Respond(resp, std::move(feedback));
  });
}

grpc::Status Service::GetDeliverySnapshot(grpc::ServerContext* ctx, const v1::GetDeliverySnapshotRequest* req,
                                          v1::DeliverySnapshot* resp) {
  return grpcx::Handle(ctx, "GetDeliverySnapshot", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireService(caller, "connector"); !s.ok()) return s;
    auto tenant = api::ResolveTenant(req->tenant(), caller.tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::CheckId(req->id(), "submission"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->Snapshot(*tenant, req->id()));
  });
}

grpc::Status Service::GetPaymentTerms(grpc::ServerContext* ctx, const v1::GetPaymentTermsRequest* req,
                                      v1::PaymentTerms* resp) {
  return grpcx::Handle(ctx, "GetPaymentTerms", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireService(caller, "payment"); !s.ok()) return s;
    auto tenant = api::ResolveTenant(req->tenant(), caller.tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::CheckId(req->submission_id(), "submission"); !s.ok()) return s;
    if (auto s = api::ValidateUuid(req->party_id(), "party_id"); !s.ok()) return s;
    // Read as the paying party: another party's submission is not found.
    auto submission = store_->GetSubmission(Owner{*tenant, req->party_id()}, req->submission_id());
    if (!submission.ok()) return submission.status();
    resp->set_submission_id(submission->id());
    resp->set_status(submission->status());
    *resp->mutable_fee() = submission->fee();
    resp->set_reference(submission->reference());
    *resp->mutable_service_name() = submission->service_name();
    return absl::OkStatus();
  });
}

grpc::Status Service::SetStatus(grpc::ServerContext* ctx, const v1::SetStatusRequest* req, v1::Submission* resp) {
  return grpcx::Handle(ctx, "SetStatus", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireService(caller, "connector"); !s.ok()) return s;
    auto tenant = api::ResolveTenant(req->tenant(), caller.tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::CheckId(req->submission_id(), "submission"); !s.ok()) return s;
    if (!MayCause(Actor::kDepartment, req->status())) return status::FieldError("status", "invalid_option");
    if (req->note().size() > 2000) return status::FieldError("note", "too_long");
    if (!req->note().empty()) {
      if (auto s = api::ValidateText(req->note(), "note", 2000, api::TextKind::kMultiline); !s.ok()) return s;
    }
    return grpcx::Respond(resp, store_->SetStatus(*tenant, req->submission_id(), req->status(), req->note()));
  });
}

grpc::Status Service::ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                         common::v1::PersonalData* resp) {
  return grpcx::Handle(ctx, "ExportPersonalData", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    auto records = store_->PersonalData(caller.tenant, *party);
    if (!records.ok()) return records.status();
    common::v1::PersonalData out;
    out.set_service(kExportService);
    nlohmann::json drafts = nlohmann::json::array(), submissions = nlohmann::json::array();
    for (const auto& d : records->drafts) drafts.push_back(DraftJson(d, &out));
    for (const auto& s : records->submissions) {
      // The receipt as GetReceipt gives it, made again when the file is fetched.
      auto receipt = Receipt(caller.tenant, s, "de");
      if (!receipt.ok()) return receipt.status();
      auto file = ExportFileOf("receipt", s.id(), receipt->second, "application/pdf",
                               static_cast<int64_t>(receipt->first.size()));
      submissions.push_back(SubmissionJson(s, records->feedback, file.path(), &out));
      *out.add_files() = std::move(file);
    }
    out.set_json(nlohmann::json{{"drafts", std::move(drafts)}, {"submissions", std::move(submissions)}}.dump());
    *resp = std::move(out);
    return absl::OkStatus();
  });
}

grpc::Status Service::GetPersonalDataFile(grpc::ServerContext* ctx, const common::v1::PersonalDataFileRequest* req,
                                          common::v1::ExportFile* resp) {
  return grpcx::Handle(ctx, "GetPersonalDataFile", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    auto parts = privacy::ParseExportPath(req->path());
    if (!parts.ok()) return parts.status();
    const auto not_found = [] { return absl::NotFoundError("file not found"); };
    if (parts->service != kExportService || !api::ValidateUuid(parts->id, "path").ok()) return not_found();
    const Owner owner{caller.tenant, *party};
    common::v1::ExportFile out;
    if (parts->kind == "attachment") {
      auto a = store_->GetAttachment(owner, parts->id);
      if (a.status().code() == absl::StatusCode::kNotFound) return not_found();
      if (!a.ok()) return a.status();
      out = ExportFileOf("attachment", a->attachment().id(), a->attachment().filename(), a->attachment().media_type(),
                         static_cast<int64_t>(a->content().size()));
      out.set_content(std::move(*a->mutable_content()));
    } else if (parts->kind == "receipt") {
      auto s = store_->GetSubmission(owner, parts->id);
      if (s.status().code() == absl::StatusCode::kNotFound) return not_found();
      if (!s.ok()) return s.status();
      auto receipt = Receipt(caller.tenant, *s, "de");
      if (!receipt.ok()) return receipt.status();
      out = ExportFileOf("receipt", s->id(), receipt->second, "application/pdf",
                         static_cast<int64_t>(receipt->first.size()));
      out.set_content(std::move(receipt->first));
    } else {
      return not_found();
    }
    // The path names the file exactly as the export listed it.
    if (out.path() != req->path()) return not_found();
    *resp = std::move(out);
    return absl::OkStatus();
  });
}

grpc::Status Service::ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                          common::v1::RetainedRecords* resp) {
  return grpcx::Handle(ctx, "ListRetainedRecords", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    return grpcx::Respond(resp, store_->RetainedRecords(caller.tenant, *party));
  });
}

absl::StatusOr<KpiQuery> Service::KpiRequest(const auth::Caller& caller, const std::string& service_id,
                                             const std::string& from, const std::string& to,
                                             const std::string& granularity) {
  if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
  if (auto s = auth::RequireRole(caller, "kpi-reader"); !s.ok()) return s;
  if (service_id.empty()) return status::MalformedField("service", "required");
  if (auto s = api::ValidateSlug(service_id, "service"); !s.ok()) return s;
  KpiQuery q;
  if (auto s = ParseKpiRange(from, to, granularity, &q); !s.ok()) return s;
  q.tenant = caller.tenant;
  q.service_id = service_id;
  q.min_citizens = options_.kpi_min_citizens;
  return q;
}

grpc::Status Service::GetKpis(grpc::ServerContext* ctx, const v1::GetKpisRequest* req, v1::GetKpisResponse* resp) {
  return grpcx::Handle(ctx, "GetKpis", [&](const auth::Caller& caller) -> absl::Status {
    auto q = KpiRequest(caller, req->service_id(), req->from(), req->to(), req->granularity());
    if (!q.ok()) return q.status();
    if (auto service = store_->GetOnlineService(q->tenant, q->service_id); !service.ok()) return service.status();
    return grpcx::Respond(resp, kpis_.Get(*q));
  });
}

grpc::Status Service::GetFunnel(grpc::ServerContext* ctx, const v1::GetFunnelRequest* req,
                                v1::GetFunnelResponse* resp) {
  return grpcx::Handle(ctx, "GetFunnel", [&](const auth::Caller& caller) -> absl::Status {
    // The funnel sums its range: the longest range of any granularity.
    auto q = KpiRequest(caller, req->service_id(), req->from(), req->to(), "month");
    if (!q.ok()) return q.status();
    auto service = store_->GetOnlineService(q->tenant, q->service_id);
    if (!service.ok()) return service.status();
    auto published = Load(q->tenant, q->service_id, service->form_version());
    if (!published.ok()) return published.status();
    return grpcx::Respond(resp, kpis_.Funnel(*q, (*published)->form.steps()));
  });
}

}  // namespace stadtportal::submission

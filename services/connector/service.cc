#include "services/connector/service.h"

#include <regex>

#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"

namespace stadtportal::connector {
namespace {

namespace sv1 = submission::v1;
namespace mv1 = messaging::v1;

absl::Status RequireAdmin(const auth::Caller& c) { return auth::RequireRole(c, "tenant-admin"); }

nlohmann::json Rfc3339(const google::protobuf::Timestamp& t) { return google::protobuf::util::TimeUtil::ToString(t); }

// A delivery as the export shows it: where it went and when, not the snapshot, the
// endpoint or the errors of the department's system.
nlohmann::json DeliveryJson(const PersonalDelivery& p) {
  const auto& d = p.delivery;
  return {{"submission_id", d.submission_id()},
          {"reference", d.reference()},
          {"online_service", d.service_id()},
          {"destination", d.destination()},
          {"destination_name", p.destination_name},
          {"state", d.state()},
          {"attempts", d.attempts()},
          {"created_at", Rfc3339(d.created_at())},
          {"delivered_at", d.has_delivered_at() ? Rfc3339(d.delivered_at()) : nlohmann::json()},
          {"acknowledged_at", d.has_acknowledged_at() ? Rfc3339(d.acknowledged_at()) : nlohmann::json()}};
}

nlohmann::json ReadJson(const PersonalRead& r) {
  return {{"id", r.id},
          {"submission_id", r.submission_id},
          {"reference", r.reference},
          {"client_id", r.client_id},
          {"department", r.department},
          {"action", r.action},
          {"purpose", r.purpose},
          {"at", Rfc3339(r.at)}};
}

absl::Status CheckId(const std::string& id) { return api::CheckId(id, "submission"); }

// A document issued on approval: a document type's shape (accounts knows the types and
// refuses an unknown one), a date, a one-line label.
absl::Status CheckIssuedDocument(const std::string& status, const v1::IssuedDocument& d) {
  if (status != "approved") return status::FieldError("document", "invalid", "only with the status approved");
  static const std::regex kType("^[a-z][a-z0-9_]{0,63}$");
  static const std::regex kDate("^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$");
  if (d.type().empty()) return status::FieldError("document.type", "required");
  if (!std::regex_match(d.type(), kType)) return status::FieldError("document.type", "invalid_option");
  if (!std::regex_match(d.expires_on(), kDate)) return status::FieldError("document.expires_on", "invalid_date");
  if (!d.label().empty()) {
    if (d.label().size() > 4 * 80) return status::FieldError("document.label", "invalid");
    if (auto s = api::ValidateText(d.label(), "document.label", 80); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A back office's read of a delivered submission's data for the applicant's access log
// (the party is the delivery's, filled in by Store::LogAccess). The purpose is the
// procedure the submission was made for: the department reads it to handle that.
audit::Access BackofficeRead(const auth::Caller& caller, const v1::Delivery& d, std::string resource) {
  audit::Access a;
  a.tenant = caller.tenant;
  a.accessor_kind = "back_office";
  a.accessor_id = caller.account_id;
  // The department's name as citizens see it (the client's), else its destination.
  a.accessor_name = caller.acting_party.empty() ? d.destination() : caller.acting_party;
  a.resource = std::move(resource);
  a.resource_id = d.submission_id();
  a.reference = d.reference();
  a.action = "read";
  a.purpose = "procedure: " + d.service_id();
  return a;
}

}  // namespace

absl::StatusOr<BackofficeCaller> BackofficeOf(const auth::Caller& caller) {
  if (!auth::HasRole(caller, "department")) return absl::PermissionDeniedError("back-office clients only");
  const std::string destination = auth::DestinationOf(caller);
  if (destination.empty()) return absl::PermissionDeniedError("the token names no destination");
  return BackofficeCaller{destination, caller.acting_party, caller.account_id};
}

Service::Service(std::shared_ptr<Store> store, Options options, std::shared_ptr<grpc::Channel> submission,
                 std::shared_ptr<grpc::Channel> messaging, auth::Signer signer)
    : store_(std::move(store)),
      options_(std::move(options)),
      submission_(sv1::SubmissionService::NewStub(submission)),
      messaging_(mv1::MessagingService::NewStub(messaging)),
      signer_(std::move(signer)) {}

std::string Service::ServiceToken(const std::string& tenant, const std::string& service) const {
  // The only caller the connector's key may assert: itself, as a platform service.
  auth::Caller c;
  c.account_id = signer_.issuer();
  c.tenant = tenant;
  c.roles = {"service"};
  return signer_.Sign(c, service);
}

grpc::Status Service::PutDestination(grpc::ServerContext* ctx, const v1::PutDestinationRequest* req,
                                     v1::Destination* resp) {
  return grpcx::Handle(ctx, "PutDestination", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (auto s = api::ValidateSlug(req->id(), "id"); !s.ok()) return s;
    if (auto s = api::ValidateText(req->name(), "name", 200); !s.ok()) return s;
    DestinationRow d{caller.tenant, req->id(), req->name(), "", req->endpoint_url(), req->secret()};
    if (!d.secret.empty() && (d.secret.size() < kMinSecretBytes || d.secret.size() > 200)) {
      return status::FieldError("secret", "invalid", "32 to 200 characters");
    }
    switch (req->mode()) {
      case v1::DELIVERY_MODE_PUSH: {
        d.mode = "push";
        // Resolved now and again at every send: only public addresses, or allowed ones.
        if (auto e = ResolveEndpoint(d.endpoint_url, options_.egress); !e.ok()) return e.status();
        if (d.secret.empty()) {
          // Pushes are always signed: without a new secret, the stored one must do.
          auto stored = store_->FindDestination(caller.tenant, d.id);
          if (!stored.ok()) return stored.status();
          if (!*stored || (*stored)->secret.size() < kMinSecretBytes) {
            return status::FieldError("secret", "invalid", "required for push destinations (32 to 200 characters)");
          }
        }
        break;
      }
      case v1::DELIVERY_MODE_PULL:
        d.mode = "pull";
        if (!d.endpoint_url.empty()) return status::FieldError("endpoint_url", "invalid", "must be empty for pull");
        break;
      default: return status::FieldError("mode", "invalid", "PUSH or PULL required");
    }
    return grpcx::Respond(resp, store_->PutDestination(d, audit::Of(caller, "destination.put",
                                                                    {{"destination", d.id}, {"mode", d.mode}})));
  });
}

grpc::Status Service::ListDestinations(grpc::ServerContext* ctx, const v1::ListDestinationsRequest* req,
                                       v1::ListDestinationsResponse* resp) {
  return grpcx::Handle(ctx, "ListDestinations", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    return grpcx::Respond(resp, store_->ListDestinations(caller.tenant, *page));
  });
}

grpc::Status Service::ListDeadLetters(grpc::ServerContext* ctx, const v1::ListDeadLettersRequest* req,
                                      v1::ListDeliveriesResponse* resp) {
  return grpcx::Handle(ctx, "ListDeadLetters", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (!req->destination().empty()) {
      if (auto s = api::ValidateSlug(req->destination(), "destination"); !s.ok()) return s;
    }
    return grpcx::Respond(resp, store_->ListDeliveries(caller.tenant, req->destination(), "dead", 500));
  });
}

grpc::Status Service::ListAttempts(grpc::ServerContext* ctx, const v1::ListAttemptsRequest* req,
                                   v1::ListAttemptsResponse* resp) {
  return grpcx::Handle(ctx, "ListAttempts", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (auto s = CheckId(req->submission_id()); !s.ok()) return s;
    return grpcx::Respond(resp, store_->ListAttempts(caller.tenant, req->submission_id()));
  });
}

grpc::Status Service::Replay(grpc::ServerContext* ctx, const v1::ReplayRequest* req, v1::ReplayResponse* resp) {
  return grpcx::Handle(ctx, "Replay", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (req->submission_id().empty() == req->destination().empty()) {
      return status::FieldError("submission_id", "invalid", "give a submission or a destination");
    }
    if (!req->submission_id().empty()) {
      if (auto s = CheckId(req->submission_id()); !s.ok()) return s;
    } else if (auto s = api::ValidateSlug(req->destination(), "destination"); !s.ok()) {
      return s;
    }
    auto n = store_->Replay(caller.tenant, req->submission_id(), req->destination(),
                            audit::Of(caller, "dead_letter.replay",
                                      {{"submission_id", req->submission_id()}, {"destination", req->destination()}}));
    if (!n.ok()) return n.status();
    if (*n == 0 && !req->submission_id().empty()) return absl::NotFoundError("no such dead letter");
    resp->set_replayed(*n);
    log::Info("dead letters replayed", {{"count", *n}, {"by", caller.account_id}});
    return absl::OkStatus();
  });
}

absl::StatusOr<sv1::DeliverySnapshot> Service::Snapshot(const std::string& tenant,
                                                        const std::string& submission_id) const {
  sv1::GetDeliverySnapshotRequest get;
  get.mutable_tenant()->set_key(tenant);
  get.set_id(submission_id);
  sv1::DeliverySnapshot snap;
  auto c = grpcx::NewClientContext(options_.snapshot_deadline, ServiceToken(tenant, "submission"));
  if (auto s = status::FromGrpc(submission_->GetDeliverySnapshot(c.get(), get, &snap)); !s.ok()) return s;
  return snap;
}

absl::StatusOr<v1::Delivery> Service::OwnDelivery(const auth::Caller& caller, const std::string& id) {
  auto bo = BackofficeOf(caller);
  if (!bo.ok()) return bo.status();
  if (auto s = CheckId(id); !s.ok()) return s;
  auto d = store_->FindDelivery(caller.tenant, bo->destination, id);
  // Withdrawn before delivery: nothing more of it is read or changed by the department.
  if (d.ok() && d->state() == "withdrawn") return WithdrawnRefusal();
  return d;
}

grpc::Status Service::ListNew(grpc::ServerContext* ctx, const v1::ListNewRequest* req,
                              v1::ListDeliveriesResponse* resp) {
  return grpcx::Handle(ctx, "ListNew", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    const int limit = req->limit() <= 0 ? 50 : std::min(req->limit(), 200);
    auto pending = store_->ListDeliveries(caller.tenant, bo->destination, "pending", limit);
    if (!pending.ok()) return pending.status();
    // Pushed ones not acknowledged yet are new to the department too.
    auto delivered = store_->ListDeliveries(caller.tenant, bo->destination, "delivered", limit);
    if (!delivered.ok()) return delivered.status();
    *resp = *std::move(pending);
    for (auto& d : *delivered->mutable_deliveries()) *resp->add_deliveries() = std::move(d);
    return absl::OkStatus();
  });
}

grpc::Status Service::Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req, sv1::DeliverySnapshot* resp) {
  return grpcx::Handle(ctx, "Fetch", [&](const auth::Caller& caller) -> absl::Status {
    auto d = OwnDelivery(caller, req->submission_id());
    if (!d.ok()) return d.status();
    auto snap = Snapshot(caller.tenant, req->submission_id());
    if (!snap.ok()) return snap.status();
    // Every read of personal data is on the citizen's access log, before it is answered:
    // the submission with its attachments.
    if (auto s = store_->LogAccess(BackofficeRead(caller, *d, "submission"), req->submission_id(), "fetch"); !s.ok()) {
      return s;
    }
    *resp = *std::move(snap);
    return absl::OkStatus();
  });
}

grpc::Status Service::Acknowledge(grpc::ServerContext* ctx, const v1::AcknowledgeRequest* req, v1::Delivery* resp) {
  return grpcx::Handle(ctx, "Acknowledge", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    if (auto s = CheckId(req->submission_id()); !s.ok()) return s;
    return grpcx::Respond(resp, store_->Acknowledge(caller.tenant, bo->destination, req->submission_id()));
  });
}

absl::Status Service::PostToMailbox(const std::string& tenant, const sv1::DeliverySnapshot& snapshot,
                                    const BackofficeCaller& bo, const std::string& key, const std::string& body,
                                    bool notice,
                                    const google::protobuf::RepeatedPtrField<v1::BackofficeAttachment>& files,
                                    v1::BackofficeMessageResponse* out) {
  mv1::PostMessageRequest m;
  m.mutable_tenant()->set_key(tenant);
  m.mutable_party()->set_id(snapshot.party_id());
  m.mutable_party()->set_kind(snapshot.party_kind() == "organisation" ? common::v1::PARTY_KIND_ORGANISATION
                                                                      : common::v1::PARTY_KIND_PERSON);
  m.set_sender_kind(mv1::SENDER_KIND_DEPARTMENT);
  m.set_department(bo.department);
  m.set_destination(bo.destination);
  m.set_subject(absl::StrCat(snapshot.submission().service_name().de(), " – ", snapshot.submission().reference()));
  m.set_body(body);
  m.set_message_key(key);
  m.set_submission_id(snapshot.submission().id());
  m.set_notice(notice);
  for (const auto& f : files) {
    auto* a = m.add_attachments();
    a->set_filename(f.filename());
    a->set_content(f.content());
  }
  mv1::Message posted;
  auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(tenant, "messaging"));
  if (auto s = status::FromGrpc(messaging_->PostMessage(c.get(), m, &posted)); !s.ok()) return s;
  if (out != nullptr) {
    out->set_message_id(posted.id());
    out->set_thread_id(posted.thread_id());
  }
  return absl::OkStatus();
}

grpc::Status Service::SetStatus(grpc::ServerContext* ctx, const v1::BackofficeStatusRequest* req,
                                sv1::Submission* resp) {
  return grpcx::Handle(ctx, "SetStatus", [&](const auth::Caller& caller) -> absl::Status {
    if (req->message().size() > 20000) return status::FieldError("message", "too_long");
    if (!req->message().empty()) {
      if (auto s = api::ValidateText(req->message(), "message", 20000, api::TextKind::kMultiline); !s.ok()) return s;
    }
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    // Checked here, then set by submission (setting the current status again is a no-op,
    // and the message is posted once by its key: a repeated request changes nothing).
    if (auto d = OwnDelivery(caller, req->submission_id()); !d.ok()) return d.status();
    if (req->has_document()) {
      if (auto s = CheckIssuedDocument(req->status(), req->document()); !s.ok()) return s;
    }
    sv1::SetStatusRequest set;
    set.mutable_tenant()->set_key(caller.tenant);
    set.set_submission_id(req->submission_id());
    set.set_status(req->status());
    auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "submission"));
    if (auto s = status::FromGrpc(submission_->SetStatus(c.get(), set, resp)); !s.ok()) return s;
    if (req->message().empty() && !req->has_document()) return absl::OkStatus();
    auto snap = Snapshot(caller.tenant, req->submission_id());
    if (!snap.ok()) return snap.status();
    if (req->has_document()) {
      // Accounts records it once per submission and type: a repeated request changes nothing.
      events::v1::DocumentRecorded e;
      e.set_tenant(caller.tenant);
      e.set_party_id(snap->party_id());
      e.set_submission_id(req->submission_id());
      e.set_reference(snap->submission().reference());
      e.set_destination(bo->destination);
      e.set_document_type(req->document().type());
      e.set_expires_on(req->document().expires_on());
      e.set_label(req->document().label());
      if (auto s = store_->RecordDocument(e); !s.ok()) return s;
    }
    if (req->message().empty()) return absl::OkStatus();
    return PostToMailbox(caller.tenant, *snap, *bo, absl::StrCat("status-", req->submission_id(), "-", req->status()),
                         req->message(), false, {}, nullptr);
  });
}

grpc::Status Service::SendMessage(grpc::ServerContext* ctx, const v1::BackofficeMessageRequest* req,
                                  v1::BackofficeMessageResponse* resp) {
  return grpcx::Handle(ctx, "SendMessage", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    if (req->message_key().empty() || req->message_key().size() > 150) {
      return status::FieldError("message_key", "required");
    }
    if (auto s = api::ValidateText(req->message_key(), "message_key", 150); !s.ok()) return s;
    if (auto d = OwnDelivery(caller, req->submission_id()); !d.ok()) return d.status();
    auto snap = Snapshot(caller.tenant, req->submission_id());
    if (!snap.ok()) return snap.status();
    return PostToMailbox(caller.tenant, *snap, *bo,
                         absl::StrCat(bo->destination, "-", req->submission_id(), "-", req->message_key()), req->body(),
                         req->notice(), req->attachments(), resp);
  });
}

grpc::Status Service::ListMessages(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                                   mv1::ListRepliesResponse* resp) {
  return grpcx::Handle(ctx, "ListMessages", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    auto d = OwnDelivery(caller, req->submission_id());
    if (!d.ok()) return d.status();
    mv1::ListSubmissionMessagesRequest in;
    in.mutable_tenant()->set_key(caller.tenant);
    in.set_submission_id(req->submission_id());
    in.set_destination(bo->destination);
    auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "messaging"));
    if (auto s = status::FromGrpc(messaging_->ListSubmissionMessages(c.get(), in, resp)); !s.ok()) return s;
    // The applicant's replies are their data too: on the access log before they are answered.
    if (auto s = store_->LogAccess(BackofficeRead(caller, *d, "mailbox"), req->submission_id(), "messages"); !s.ok()) {
      resp->Clear();
      return s;
    }
    return absl::OkStatus();
  });
}

grpc::Status Service::ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                         common::v1::PersonalData* resp) {
  return grpcx::Handle(ctx, "ExportPersonalData", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    auto records = store_->PersonalData(caller.tenant, *party);
    if (!records.ok()) return records.status();
    auto deliveries = nlohmann::json::array(), reads = nlohmann::json::array();
    for (const auto& d : records->deliveries) deliveries.push_back(DeliveryJson(d));
    for (const auto& r : records->reads) reads.push_back(ReadJson(r));
    resp->set_service("connector");
    resp->set_json(nlohmann::json{{"deliveries", std::move(deliveries)}, {"reads", std::move(reads)}}.dump());
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

}  // namespace stadtportal::connector

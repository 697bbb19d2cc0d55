#include "services/messaging/service.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/api/files.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"

namespace stadtportal::messaging {
namespace {

constexpr size_t kMaxBody = 20000;
constexpr int kMaxAttachments = 5;
constexpr size_t kMaxAttachmentBytes = 10 << 20;

// Departments (back-office clients) post into mailboxes, and the connector for them.
absl::Status CheckPoster(const auth::Caller& caller) {
  if (auth::HasRole(caller, "department") || auth::IsService(caller, "connector")) return absl::OkStatus();
  return absl::PermissionDeniedError("the department role is required");
}

// The destination whose threads a back-office call reads or writes: a department
// caller's own (its token names it; asking for another is refused), or the one a
// platform service names. Never the department's display name.
absl::StatusOr<std::string> DestinationScope(const auth::Caller& caller, const std::string& requested) {
  if (auth::HasRole(caller, "department")) {
    const std::string own = auth::DestinationOf(caller);
    if (own.empty()) return absl::PermissionDeniedError("the token names no destination");
    if (!requested.empty() && requested != own) return absl::PermissionDeniedError("destination: not the caller's");
    return own;
  }
  if (auto s = CheckPoster(caller); !s.ok()) return s;
  if (auto s = api::ValidateSlug(requested, "destination"); !s.ok()) return s;
  return requested;
}

absl::Status CheckBody(const std::string& body) {
  if (body.size() > 4 * kMaxBody) return status::FieldError("body", "too_long");
  auto s = api::ValidateText(body, "body", kMaxBody, api::TextKind::kMultiline);
  if (s.ok()) return s;
  const std::string m(s.message());
  return status::FieldError("body", m.find("required") != std::string::npos             ? "required"
                                    : m.find("control_characters") != std::string::npos ? "control_characters"
                                    : m.find("UTF-8") != std::string::npos              ? "wrong_type"
                                                                                        : "too_long");
}

}  // namespace

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.public_url = env.String("STADTPORTAL_PUBLIC_URL", o.public_url);
  o.portal_name = env.String("STADTPORTAL_PORTAL_NAME", o.portal_name);
  return o;
}

absl::StatusOr<std::vector<NewAttachment>> CheckAttachments(
    const google::protobuf::RepeatedPtrField<v1::NewAttachment>& in) {
  if (in.size() > kMaxAttachments) return status::FieldError("attachments", "too_many_files");
  std::vector<NewAttachment> out;
  for (const auto& a : in) {
    if (a.content().empty()) return status::FieldError("attachments", "required");
    if (a.content().size() > kMaxAttachmentBytes) return status::FieldError("attachments", "too_large");
    const std::string type = api::SniffMediaType(a.content());
    if (type.empty()) return status::FieldError("attachments", "type_not_allowed");
    out.push_back(
        {api::SafeFilename(a.filename()), type, absl::BytesToHexString(auth::Sha256(a.content())), a.content()});
  }
  return out;
}

grpc::Status Service::PostMessage(grpc::ServerContext* ctx, const v1::PostMessageRequest* req, v1::Message* resp) {
  return grpcx::Handle(ctx, "PostMessage", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = CheckPoster(caller); !s.ok()) return s;
    auto tenant = api::ResolveTenant(req->tenant(), caller.tenant.empty() ? options_.default_tenant : caller.tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateUuid(req->party().id(), "party.id"); !s.ok()) return s;
    if (req->party().kind() != common::v1::PARTY_KIND_PERSON &&
        req->party().kind() != common::v1::PARTY_KIND_ORGANISATION) {
      return status::FieldError("party.kind", "invalid_option");
    }
    if (req->sender_kind() != v1::SENDER_KIND_DEPARTMENT && req->sender_kind() != v1::SENDER_KIND_SYSTEM) {
      return status::FieldError("sender_kind", "invalid_option");
    }
    // Departments write as themselves, into threads of their destination; only the
    // platform writes as the system.
    std::string destination;
    if (req->sender_kind() == v1::SENDER_KIND_DEPARTMENT) {
      auto scope = DestinationScope(caller, req->destination());
      if (!scope.ok()) return scope.status();
      destination = *scope;
    } else if (!auth::IsService(caller, "connector")) {
      return absl::PermissionDeniedError("only the connector service may write as the system");
    }
    if (auto s = CheckBody(req->body()); !s.ok()) return s;
    if (auto s = api::ValidateText(req->message_key(), "message_key", 200); !s.ok()) return s;
    if (req->thread_id().empty()) {
      if (auto s = api::ValidateText(req->subject(), "subject", 200); !s.ok()) return s;
    } else if (auto s = api::CheckId(req->thread_id(), "thread"); !s.ok()) {
      return s;
    }
    if (req->sender_kind() == v1::SENDER_KIND_DEPARTMENT) {
      if (auto s = api::ValidateText(req->department(), "department", 200); !s.ok()) return s;
    }
    auto attachments = CheckAttachments(req->attachments());
    if (!attachments.ok()) return attachments.status();
    if (req->notice() && attachments->empty()) return status::FieldError("attachments", "required");

    NewMessage m;
    m.tenant = *tenant;
    m.party_id = req->party().id();
    m.party_kind = req->party().kind() == common::v1::PARTY_KIND_PERSON ? "person" : "organisation";
    m.sender_kind = req->sender_kind() == v1::SENDER_KIND_DEPARTMENT ? "department" : "system";
    m.sender_name = req->sender_kind() == v1::SENDER_KIND_DEPARTMENT ? req->department() : options_.portal_name;
    m.subject = req->subject();
    m.body = req->body();
    m.message_key = req->message_key();
    m.thread_id = req->thread_id();
    m.submission_id = req->submission_id();
    m.department = req->department();
    m.destination = destination;
    m.notice = req->notice();
    m.attachments = *std::move(attachments);
    bool queued = false;
    auto posted = store_->Post(m, [&](pqxx::work& tx, const v1::Message& message) {
      // That something arrived — never what — to the party's address, if it wants mail.
      auto contact = Store::FindContact(tx, m.party_id);
      if (!contact || contact->email.empty() || !contact->notify_messages) return;
      auto rendered = templates_.Render(m.notice ? "notice" : "message", contact->language, contact->email,
                                        {{"sender", m.sender_name},
                                         {"mailbox_url", options_.public_url + "/postfach/" + message.thread_id()},
                                         {"portal_name", options_.portal_name}});
      if (!rendered.ok()) {
        log::Error("notification not rendered", {{"error", std::string(rendered.status().message())}});
        return;
      }
      mail::Outbox::Enqueue(tx, m.tenant, *rendered);
      queued = true;
    });
    if (!posted.ok()) return posted.status();
    if (queued && mails_ != nullptr) mails_->Notify();
    *resp = std::move(posted->first);
    return absl::OkStatus();
  });
}

grpc::Status Service::ListReplies(grpc::ServerContext* ctx, const v1::ListRepliesRequest* req,
                                  v1::ListRepliesResponse* resp) {
  return grpcx::Handle(ctx, "ListReplies", [&](const auth::Caller& caller) -> absl::Status {
    auto destination = DestinationScope(caller, req->destination());
    if (!destination.ok()) return destination.status();
    auto tenant = api::ResolveTenant(req->tenant(), caller.tenant.empty() ? options_.default_tenant : caller.tenant);
    if (!tenant.ok()) return tenant.status();
    if (req->after_sequence() < 0) return status::MalformedField("after_sequence", "out_of_range");
    const int limit = req->limit() <= 0 ? 50 : std::min(req->limit(), 200);
    return grpcx::Respond(resp, store_->ListReplies(*tenant, *destination, req->after_sequence(), limit));
  });
}

grpc::Status Service::GetDepartmentAttachment(grpc::ServerContext* ctx, const v1::GetAttachmentRequest* req,
                                              v1::AttachmentContent* resp) {
  return grpcx::Handle(ctx, "GetDepartmentAttachment", [&](const auth::Caller& caller) -> absl::Status {
    auto destination = DestinationScope(caller, "");
    if (!destination.ok()) return destination.status();
    if (auto s = api::CheckId(req->id(), "attachment"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->GetDepartmentAttachment(caller.tenant, *destination, req->id()));
  });
}

grpc::Status Service::ListSubmissionMessages(grpc::ServerContext* ctx, const v1::ListSubmissionMessagesRequest* req,
                                             v1::ListRepliesResponse* resp) {
  return grpcx::Handle(ctx, "ListSubmissionMessages", [&](const auth::Caller& caller) -> absl::Status {
    auto destination = DestinationScope(caller, req->destination());
    if (!destination.ok()) return destination.status();
    auto tenant = api::ResolveTenant(req->tenant(), caller.tenant.empty() ? options_.default_tenant : caller.tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateUuid(req->submission_id(), "submission_id"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->SubmissionMessages(*tenant, req->submission_id(), *destination));
  });
}

absl::Status Service::RecordPartnerRead(const auth::Caller& caller, const std::string& resource, const std::string& id,
                                        const std::string& action) {
  if (!caller.partner()) return absl::OkStatus();
  return store_->RecordAccess(audit::PartnerRead(caller, resource, id, "", action));
}

grpc::Status Service::ListThreads(grpc::ServerContext* ctx, const v1::ListThreadsRequest* req,
                                  v1::ListThreadsResponse* resp) {
  return grpcx::Handle(ctx, "ListThreads", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    auto list = store_->ListThreads({caller.tenant, *party}, req->archived(), req->unread_only(), *page);
    if (!list.ok()) return list.status();
    // A partner portal's read is on the person's access log before it is answered.
    if (auto s = RecordPartnerRead(caller, "mailbox", "", "list"); !s.ok()) return s;
    *resp = *std::move(list);
    return absl::OkStatus();
  });
}

grpc::Status Service::GetThread(grpc::ServerContext* ctx, const v1::GetThreadRequest* req, v1::Thread* resp) {
  return grpcx::Handle(ctx, "GetThread", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    if (auto s = api::CheckId(req->id(), "thread"); !s.ok()) return s;
    auto thread = store_->GetThread({caller.tenant, *party}, req->id());
    if (!thread.ok()) return thread.status();
    if (auto s = RecordPartnerRead(caller, "mailbox", thread->id(), "read"); !s.ok()) return s;
    *resp = *std::move(thread);
    return absl::OkStatus();
  });
}

grpc::Status Service::Reply(grpc::ServerContext* ctx, const v1::ReplyRequest* req, v1::Message* resp) {
  return grpcx::Handle(ctx, "Reply", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    if (auto s = api::CheckId(req->thread_id(), "thread"); !s.ok()) return s;
    if (auto s = CheckBody(req->body()); !s.ok()) return s;
    auto attachments = CheckAttachments(req->attachments());
    if (!attachments.ok()) return attachments.status();
    auto thread = store_->ThreadHeader({caller.tenant, *party}, req->thread_id());
    if (!thread.ok()) return thread.status();
    NewMessage m;
    m.tenant = caller.tenant;
    m.party_id = *party;
    m.party_kind = caller.acting_party.empty() ? "person" : "organisation";
    m.sender_kind = "citizen";
    m.body = req->body();
    m.message_key = "reply-" + auth::RandomToken(16);
    m.thread_id = req->thread_id();
    m.attachments = *std::move(attachments);
    auto posted = store_->Post(m, nullptr);
    if (!posted.ok()) return posted.status();
    *resp = std::move(posted->first);
    return absl::OkStatus();
  });
}

grpc::Status Service::MarkRead(grpc::ServerContext* ctx, const v1::MarkReadRequest* req, v1::Message* resp) {
  return grpcx::Handle(ctx, "MarkRead", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    if (auto s = api::CheckId(req->message_id(), "message"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->MarkRead({caller.tenant, *party}, req->message_id()));
  });
}

grpc::Status Service::GetAttachment(grpc::ServerContext* ctx, const v1::GetAttachmentRequest* req,
                                    v1::AttachmentContent* resp) {
  return grpcx::Handle(ctx, "GetAttachment", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    if (auto s = api::CheckId(req->id(), "attachment"); !s.ok()) return s;
    auto attachment = store_->GetAttachment({caller.tenant, *party}, req->id());
    if (!attachment.ok()) return attachment.status();
    if (auto s = RecordPartnerRead(caller, "attachment", req->id(), "download"); !s.ok()) return s;
    *resp = *std::move(attachment);
    return absl::OkStatus();
  });
}

grpc::Status Service::SetArchived(grpc::ServerContext* ctx, const v1::SetArchivedRequest* req, v1::Thread* resp) {
  return grpcx::Handle(ctx, "SetArchived", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    if (auto s = api::CheckId(req->thread_id(), "thread"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->SetArchived({caller.tenant, *party}, req->thread_id(), req->archived()));
  });
}

grpc::Status Service::ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                         common::v1::PersonalData* resp) {
  return grpcx::Handle(ctx, "ExportPersonalData", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    return grpcx::Respond(resp, store_->ExportPersonalData(caller.tenant, *party));
  });
}

grpc::Status Service::GetPersonalDataFile(grpc::ServerContext* ctx, const common::v1::PersonalDataFileRequest* req,
                                          common::v1::ExportFile* resp) {
  return grpcx::Handle(ctx, "GetPersonalDataFile", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    auto parts = privacy::ParseExportPath(req->path());
    if (!parts.ok()) return status::FieldError("path", "invalid");
    const auto not_found = absl::NotFoundError("file not found");
    if (parts->service != "messaging" || parts->kind != "attachment" || !api::ValidateUuid(parts->id, "id").ok()) {
      return not_found;
    }
    auto file = store_->PersonalDataFile(caller.tenant, *party, parts->id);
    if (!file.ok()) return file.status();
    if (file->path() != req->path()) return not_found;  // The id's file, under another name.
    *resp = *std::move(file);
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

}  // namespace stadtportal::messaging

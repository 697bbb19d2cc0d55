#pragma once

#include <memory>
#include <string>

#include "libs/auth/caller.h"
#include "libs/config/config.h"
#include "libs/mail/mail.h"
#include "services/messaging/store.h"
#include "services/messaging/templates.h"
#include "stadtportal/messaging/v1/messaging.grpc.pb.h"

namespace stadtportal::messaging {

struct Options {
  std::string default_tenant = config::kDefaultTenant;
  // The portal's address: notification mails link to its mailbox page.
  std::string public_url = "http://127.0.0.1:8080";
  std::string portal_name = "stadtportal";
  // STADTPORTAL_PUBLIC_URL, STADTPORTAL_PORTAL_NAME.
  static Options FromEnv(const config::Env& env, const std::string& tenant);
};

// gRPC edge of the mailbox: validates requests, checks who may read and write, calls the
// store, and queues the notification mail with the message.
class Service final : public v1::MessagingService::Service {
 public:
  // `mails` may be null (then nothing is woken after a commit; the relay polls).
  Service(std::shared_ptr<Store> store, Templates templates, Options options, mail::Relay* mails)
      : store_(std::move(store)), templates_(std::move(templates)), options_(std::move(options)), mails_(mails) {}

  grpc::Status PostMessage(grpc::ServerContext* ctx, const v1::PostMessageRequest* req, v1::Message* resp) override;
  grpc::Status ListReplies(grpc::ServerContext* ctx, const v1::ListRepliesRequest* req,
                           v1::ListRepliesResponse* resp) override;
  grpc::Status GetDepartmentAttachment(grpc::ServerContext* ctx, const v1::GetAttachmentRequest* req,
                                       v1::AttachmentContent* resp) override;
  grpc::Status ListSubmissionMessages(grpc::ServerContext* ctx, const v1::ListSubmissionMessagesRequest* req,
                                      v1::ListRepliesResponse* resp) override;
  grpc::Status ListThreads(grpc::ServerContext* ctx, const v1::ListThreadsRequest* req,
                           v1::ListThreadsResponse* resp) override;
  grpc::Status GetThread(grpc::ServerContext* ctx, const v1::GetThreadRequest* req, v1::Thread* resp) override;
  grpc::Status Reply(grpc::ServerContext* ctx, const v1::ReplyRequest* req, v1::Message* resp) override;
  grpc::Status MarkRead(grpc::ServerContext* ctx, const v1::MarkReadRequest* req, v1::Message* resp) override;
  grpc::Status GetAttachment(grpc::ServerContext* ctx, const v1::GetAttachmentRequest* req,
                             v1::AttachmentContent* resp) override;
  grpc::Status SetArchived(grpc::ServerContext* ctx, const v1::SetArchivedRequest* req, v1::Thread* resp) override;
  // The person's own data (libs/privacy: only a person acting as themself).
  grpc::Status ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                  common::v1::PersonalData* resp) override;
  // An attachment of the export by its path ("messaging/attachment/<id>/<name>"); NOT_FOUND
  // unless it is in the caller's own mailbox under that very path.
  grpc::Status GetPersonalDataFile(grpc::ServerContext* ctx, const common::v1::PersonalDataFileRequest* req,
                                   common::v1::ExportFile* resp) override;
  grpc::Status ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                   common::v1::RetainedRecords* resp) override;

 private:
  // A partner portal's read of the person's mailbox, published for their access log
  // (nothing for the person's own reads).
  absl::Status RecordPartnerRead(const auth::Caller& caller, const std::string& resource, const std::string& id,
                                 const std::string& action);

  std::shared_ptr<Store> store_;
  Templates templates_;
  Options options_;
  mail::Relay* mails_;
};

// Checks and types the attachments of a message (at most 5, 10 MiB each, PDF/PNG/JPEG
// by content); INVALID_ARGUMENT "attachments: …" otherwise.
absl::StatusOr<std::vector<NewAttachment>> CheckAttachments(
    const google::protobuf::RepeatedPtrField<v1::NewAttachment>& in);

}  // namespace stadtportal::messaging

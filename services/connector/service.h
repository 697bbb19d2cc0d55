#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "libs/auth/caller.h"
#include "services/connector/options.h"
#include "services/connector/store.h"
#include "stadtportal/connector/v1/connector.grpc.pb.h"
#include "stadtportal/messaging/v1/messaging.grpc.pb.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

namespace stadtportal::connector {

// The back-office caller's destination ("destination:<id>" role) and department.
struct BackofficeCaller {
  std::string destination;
  std::string department;
  std::string client_id;
};

// gRPC edge of the connector. Calls submission (snapshots, statuses) and messaging
// (department messages) as the platform service, never inside a transaction: a call is
// checked in one short transaction and recorded in another.
class Service final : public v1::ConnectorService::Service {
 public:
  Service(std::shared_ptr<Store> store, Options options, std::shared_ptr<grpc::Channel> submission,
          std::shared_ptr<grpc::Channel> messaging, auth::Signer signer);

  grpc::Status PutDestination(grpc::ServerContext* ctx, const v1::PutDestinationRequest* req,
                              v1::Destination* resp) override;
  grpc::Status ListDestinations(grpc::ServerContext* ctx, const v1::ListDestinationsRequest* req,
                                v1::ListDestinationsResponse* resp) override;
  grpc::Status ListDeadLetters(grpc::ServerContext* ctx, const v1::ListDeadLettersRequest* req,
                               v1::ListDeliveriesResponse* resp) override;
  grpc::Status ListAttempts(grpc::ServerContext* ctx, const v1::ListAttemptsRequest* req,
                            v1::ListAttemptsResponse* resp) override;
  grpc::Status Replay(grpc::ServerContext* ctx, const v1::ReplayRequest* req, v1::ReplayResponse* resp) override;
  grpc::Status ListNew(grpc::ServerContext* ctx, const v1::ListNewRequest* req,
                       v1::ListDeliveriesResponse* resp) override;
  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                     submission::v1::DeliverySnapshot* resp) override;
  grpc::Status Acknowledge(grpc::ServerContext* ctx, const v1::AcknowledgeRequest* req, v1::Delivery* resp) override;
  grpc::Status SetStatus(grpc::ServerContext* ctx, const v1::BackofficeStatusRequest* req,
                         submission::v1::Submission* resp) override;
  grpc::Status SendMessage(grpc::ServerContext* ctx, const v1::BackofficeMessageRequest* req,
                           v1::BackofficeMessageResponse* resp) override;
  grpc::Status ListMessages(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                            messaging::v1::ListRepliesResponse* resp) override;
  // The person's own deliveries and the back offices' reads of them
  // (docs/api/export/connector.schema.json), and the deliveries an erasure leaves; only
  // the person acting as themself.
  grpc::Status ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                  common::v1::PersonalData* resp) override;
  grpc::Status ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                   common::v1::RetainedRecords* resp) override;

  // The submission's snapshot with its files, from submission (the delivery worker's source).
  absl::StatusOr<submission::v1::DeliverySnapshot> Snapshot(const std::string& tenant,
                                                            const std::string& submission_id) const;

 private:
  std::string ServiceToken(const std::string& tenant, const std::string& service) const;
  // A delivery of the caller's destination; NOT_FOUND otherwise, WithdrawnRefusal once the
  // applicant withdrew it.
  absl::StatusOr<v1::Delivery> OwnDelivery(const auth::Caller& caller, const std::string& id);
  absl::Status PostToMailbox(const std::string& tenant, const submission::v1::DeliverySnapshot& snapshot,
                             const BackofficeCaller& bo, const std::string& key, const std::string& body, bool notice,
                             const google::protobuf::RepeatedPtrField<v1::BackofficeAttachment>& files,
                             v1::BackofficeMessageResponse* out);

  std::shared_ptr<Store> store_;
  Options options_;
  std::unique_ptr<submission::v1::SubmissionService::Stub> submission_;
  std::unique_ptr<messaging::v1::MessagingService::Stub> messaging_;
  auth::Signer signer_;
};

absl::StatusOr<BackofficeCaller> BackofficeOf(const auth::Caller& caller);

}  // namespace stadtportal::connector

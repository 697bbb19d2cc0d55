#pragma once

#include <memory>
#include <string>

#include "services/submission/store.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

namespace stadtportal::submission {

// gRPC edge of the submission service: validates requests, calls the store, maps errors.
class Service final : public v1::SubmissionService::Service {
 public:
  Service(std::shared_ptr<Store> store, std::string default_tenant)
      : store_(std::move(store)), default_tenant_(std::move(default_tenant)) {}

  grpc::Status ListOnlineServices(grpc::ServerContext* ctx, const v1::ListOnlineServicesRequest* req,
                                  v1::ListOnlineServicesResponse* resp) override;
  grpc::Status GetOnlineService(grpc::ServerContext* ctx, const v1::GetOnlineServiceRequest* req,
                                v1::OnlineService* resp) override;

 private:
  std::shared_ptr<Store> store_;
  std::string default_tenant_;
};

}  // namespace stadtportal::submission

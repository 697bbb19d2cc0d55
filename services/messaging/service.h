#pragma once

#include <memory>
#include <string>

#include "services/messaging/store.h"
#include "stadtportal/messaging/v1/messaging.grpc.pb.h"

namespace stadtportal::messaging {

// gRPC edge of the messaging service: validates requests, calls the store, maps errors.
class Service final : public v1::MessagingService::Service {
 public:
  Service(std::shared_ptr<Store> store, std::string default_tenant)
      : store_(std::move(store)), default_tenant_(std::move(default_tenant)) {}

  grpc::Status PostMessage(grpc::ServerContext* ctx, const v1::PostMessageRequest* req, v1::Message* resp) override;
  grpc::Status ListMessages(grpc::ServerContext* ctx, const v1::ListMessagesRequest* req,
                            v1::ListMessagesResponse* resp) override;

 private:
  std::shared_ptr<Store> store_;
  std::string default_tenant_;
};

}  // namespace stadtportal::messaging

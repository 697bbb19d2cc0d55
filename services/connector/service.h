#pragma once

#include <memory>
#include <string>

#include "services/connector/store.h"
#include "stadtportal/connector/v1/connector.grpc.pb.h"

namespace stadtportal::connector {

// gRPC edge of the connector service: validates requests, calls the store, maps errors.
class Service final : public v1::ConnectorService::Service {
 public:
  Service(std::shared_ptr<Store> store, std::string default_tenant)
      : store_(std::move(store)), default_tenant_(std::move(default_tenant)) {}

  grpc::Status PutDestination(grpc::ServerContext* ctx, const v1::PutDestinationRequest* req,
                              v1::Destination* resp) override;
  grpc::Status ListDestinations(grpc::ServerContext* ctx, const v1::ListDestinationsRequest* req,
                                v1::ListDestinationsResponse* resp) override;

 private:
  std::shared_ptr<Store> store_;
  std::string default_tenant_;
};

}  // namespace stadtportal::connector

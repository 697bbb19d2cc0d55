#pragma once

#include <memory>
#include <string>

#include "services/accounts/store.h"
#include "stadtportal/accounts/v1/accounts.grpc.pb.h"

namespace stadtportal::accounts {

// gRPC edge of the accounts service: validates requests, calls the store, maps errors.
class Service final : public v1::AccountsService::Service {
 public:
  Service(std::shared_ptr<Store> store, std::string default_tenant)
      : store_(std::move(store)), default_tenant_(std::move(default_tenant)) {}

  grpc::Status CreateParty(grpc::ServerContext* ctx, const v1::CreatePartyRequest* req, v1::Party* resp) override;
  grpc::Status GetParty(grpc::ServerContext* ctx, const v1::GetPartyRequest* req, v1::Party* resp) override;

 private:
  std::shared_ptr<Store> store_;
  std::string default_tenant_;
};

}  // namespace stadtportal::accounts

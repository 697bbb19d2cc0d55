#pragma once

#include <memory>
#include <string>

#include "services/identity/store.h"
#include "stadtportal/identity/v1/identity.grpc.pb.h"

namespace stadtportal::identity {

// gRPC edge of the identity service: validates requests, calls the store, maps errors.
class Service final : public v1::IdentityService::Service {
 public:
  Service(std::shared_ptr<Store> store, std::string default_tenant)
      : store_(std::move(store)), default_tenant_(std::move(default_tenant)) {}

  grpc::Status CreateAccount(grpc::ServerContext* ctx, const v1::CreateAccountRequest* req, v1::Account* resp) override;
  grpc::Status GetAccount(grpc::ServerContext* ctx, const v1::GetAccountRequest* req, v1::Account* resp) override;

 private:
  std::shared_ptr<Store> store_;
  std::string default_tenant_;
};

// "  Anna.Muster@Example.DE " → "anna.muster@example.de"; INVALID_ARGUMENT if it is no address.
absl::StatusOr<std::string> NormalizeEmail(const std::string& email);

}  // namespace stadtportal::identity

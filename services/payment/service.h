#pragma once

#include <memory>
#include <string>

#include "services/payment/store.h"
#include "stadtportal/payment/v1/payment.grpc.pb.h"

namespace stadtportal::payment {

// gRPC edge of the payment service: validates requests, calls the store, maps errors.
class Service final : public v1::PaymentService::Service {
 public:
  Service(std::shared_ptr<Store> store, std::string default_tenant)
      : store_(std::move(store)), default_tenant_(std::move(default_tenant)) {}

  grpc::Status CreatePayment(grpc::ServerContext* ctx, const v1::CreatePaymentRequest* req, v1::Payment* resp) override;
  grpc::Status GetPayment(grpc::ServerContext* ctx, const v1::GetPaymentRequest* req, v1::Payment* resp) override;

 private:
  std::shared_ptr<Store> store_;
  std::string default_tenant_;
};

}  // namespace stadtportal::payment

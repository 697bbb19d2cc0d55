#include "services/payment/service.h"

#include "absl/strings/escaping.h"
#include "libs/api/api.h"
#include "libs/grpc/handler.h"

namespace stadtportal::payment {

grpc::Status Service::CreatePayment(grpc::ServerContext* ctx, const v1::CreatePaymentRequest* req, v1::Payment* resp) {
  return grpcx::Handle(ctx, "CreatePayment", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateUuid(req->party().id(), "party.id"); !s.ok()) return s;
    if (req->party().kind() != common::v1::PARTY_KIND_PERSON &&
        req->party().kind() != common::v1::PARTY_KIND_ORGANISATION) {
      return absl::InvalidArgumentError("party.kind: PERSON or ORGANISATION required");
    }
    if (auto s = api::ValidateText(req->submission_id(), "submission_id", 64); !s.ok()) return s;
    if (auto s = api::ValidateMoney(req->amount(), "amount"); !s.ok()) return s;
    if (req->amount().amount_minor() == 0) return absl::InvalidArgumentError("amount.amount_minor: must be positive");
    if (auto s = api::ValidateText(req->description(), "description", 140); !s.ok()) return s;
    if (auto s = api::ValidateText(req->idempotency_key(), "idempotency_key", 255); !s.ok()) return s;
    // Everything but the key: a repeat with the same key must carry exactly this.
    v1::CreatePaymentRequest content = *req;
    content.clear_idempotency_key();
    content.mutable_tenant()->set_key(*tenant);
    std::string fingerprint;
    content.SerializeToString(&fingerprint);
    NewPayment p{*tenant,
                 req->party().id(),
                 req->party().kind() == common::v1::PARTY_KIND_PERSON ? "person" : "organisation",
                 req->submission_id(),
                 req->amount().amount_minor(),
                 req->amount().currency(),
                 req->description(),
                 req->idempotency_key(),
                 absl::BytesToHexString(fingerprint)};
    return grpcx::Respond(resp, store_->CreatePayment(p));
  });
}

grpc::Status Service::GetPayment(grpc::ServerContext* ctx, const v1::GetPaymentRequest* req, v1::Payment* resp) {
  return grpcx::Handle(ctx, "GetPayment", [&]() -> absl::Status {
    if (auto s = api::ValidateUuid(req->id(), "id"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->GetPayment(default_tenant_, req->id()));
  });
}

}  // namespace stadtportal::payment

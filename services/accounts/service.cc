#include "services/accounts/service.h"

#include "libs/api/api.h"
#include "libs/grpc/handler.h"

namespace stadtportal::accounts {

grpc::Status Service::CreateParty(grpc::ServerContext* ctx, const v1::CreatePartyRequest* req, v1::Party* resp) {
  return grpcx::Handle(ctx, "CreateParty", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateText(req->display_name(), "display_name", 200); !s.ok()) return s;
    NewParty p{*tenant, "", req->display_name(), req->identity_account_id()};
    switch (req->kind()) {
      case common::v1::PARTY_KIND_PERSON:
        p.kind = "person";
        if (auto s = api::ValidateUuid(p.identity_account_id, "identity_account_id"); !s.ok()) return s;
        break;
      case common::v1::PARTY_KIND_ORGANISATION:
        p.kind = "organisation";
        if (!p.identity_account_id.empty()) {
          return absl::InvalidArgumentError("identity_account_id: only persons log in with an identity account");
        }
        break;
      default: return absl::InvalidArgumentError("kind: PERSON or ORGANISATION required");
    }
    auto created = store_->CreateParty(p);
    if (!created.ok()) return created.status();
    *resp = *created;
    return absl::OkStatus();
  });
}

grpc::Status Service::GetParty(grpc::ServerContext* ctx, const v1::GetPartyRequest* req, v1::Party* resp) {
  return grpcx::Handle(ctx, "GetParty", [&]() -> absl::Status {
    if (auto s = api::ValidateUuid(req->id(), "id"); !s.ok()) return s;
    auto found = store_->GetParty(default_tenant_, req->id());
    if (!found.ok()) return found.status();
    *resp = *found;
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::accounts

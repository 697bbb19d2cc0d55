#include "services/submission/service.h"

#include "libs/grpc/handler.h"

namespace stadtportal::submission {

grpc::Status Service::ListOnlineServices(grpc::ServerContext* ctx, const v1::ListOnlineServicesRequest* req,
                                         v1::ListOnlineServicesResponse* resp) {
  return grpcx::Handle(ctx, "ListOnlineServices", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    if (!req->query().empty()) {
      if (auto s = api::ValidateText(req->query(), "query", 200); !s.ok()) return s;
    }
    if (!req->category().empty()) {
      if (auto s = api::ValidateSlug(req->category(), "category"); !s.ok()) return s;
    }
    return grpcx::Respond(resp, store_->ListOnlineServices({*tenant, req->query(), req->category(), *page}));
  });
}

grpc::Status Service::GetOnlineService(grpc::ServerContext* ctx, const v1::GetOnlineServiceRequest* req,
                                       v1::OnlineService* resp) {
  return grpcx::Handle(ctx, "GetOnlineService", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateSlug(req->id(), "id"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->GetOnlineService(*tenant, req->id()));
  });
}

}  // namespace stadtportal::submission

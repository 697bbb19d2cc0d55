#include "services/connector/service.h"

#include <regex>

#include "libs/grpc/handler.h"

namespace stadtportal::connector {

grpc::Status Service::PutDestination(grpc::ServerContext* ctx, const v1::PutDestinationRequest* req,
                                     v1::Destination* resp) {
  return grpcx::Handle(ctx, "PutDestination", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateSlug(req->id(), "id"); !s.ok()) return s;
    if (auto s = api::ValidateText(req->name(), "name", 200); !s.ok()) return s;
    DestinationRow d{*tenant, req->id(), req->name(), "", req->endpoint_url()};
    static const std::regex kHttpsUrl(R"(^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$)");
    switch (req->mode()) {
      case v1::DELIVERY_MODE_PUSH:
        d.mode = "push";
        if (d.endpoint_url.size() > 2048 || !std::regex_match(d.endpoint_url, kHttpsUrl)) {
          return absl::InvalidArgumentError("endpoint_url: push destinations need an https:// URL");
        }
        break;
      case v1::DELIVERY_MODE_PULL:
        d.mode = "pull";
        if (!d.endpoint_url.empty()) return absl::InvalidArgumentError("endpoint_url: must be empty for pull");
        break;
      default: return absl::InvalidArgumentError("mode: PUSH or PULL required");
    }
    return grpcx::Respond(resp, store_->PutDestination(d));
  });
}

grpc::Status Service::ListDestinations(grpc::ServerContext* ctx, const v1::ListDestinationsRequest* req,
                                       v1::ListDestinationsResponse* resp) {
  return grpcx::Handle(ctx, "ListDestinations", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    return grpcx::Respond(resp, store_->ListDestinations(*tenant, *page));
  });
}

}  // namespace stadtportal::connector

#include "services/messaging/service.h"

#include "libs/grpc/handler.h"

namespace stadtportal::messaging {
namespace {

absl::StatusOr<std::string> PartyKind(const common::v1::PartyRef& party) {
  if (auto s = api::ValidateUuid(party.id(), "party.id"); !s.ok()) return s;
  switch (party.kind()) {
    case common::v1::PARTY_KIND_PERSON: return std::string("person");
    case common::v1::PARTY_KIND_ORGANISATION: return std::string("organisation");
    default: return absl::InvalidArgumentError("party.kind: PERSON or ORGANISATION required");
  }
}

}  // namespace

grpc::Status Service::PostMessage(grpc::ServerContext* ctx, const v1::PostMessageRequest* req, v1::Message* resp) {
  return grpcx::Handle(ctx, "PostMessage", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    auto kind = PartyKind(req->party());
    if (!kind.ok()) return kind.status();
    std::string sender;
    switch (req->sender_kind()) {
      case v1::SENDER_KIND_CITIZEN: sender = "citizen"; break;
      case v1::SENDER_KIND_DEPARTMENT: sender = "department"; break;
      case v1::SENDER_KIND_SYSTEM: sender = "system"; break;
      default: return absl::InvalidArgumentError("sender_kind: CITIZEN, DEPARTMENT or SYSTEM required");
    }
    if (auto s = api::ValidateText(req->subject(), "subject", 200); !s.ok()) return s;
    if (auto s = api::ValidateText(req->body(), "body", 20000); !s.ok()) return s;
    if (auto s = api::ValidateText(req->message_key(), "message_key", 255); !s.ok()) return s;
    return grpcx::Respond(resp, store_->PostMessage({*tenant, req->party().id(), *kind, sender, req->subject(),
                                                     req->body(), req->message_key()}));
  });
}

grpc::Status Service::ListMessages(grpc::ServerContext* ctx, const v1::ListMessagesRequest* req,
                                   v1::ListMessagesResponse* resp) {
  return grpcx::Handle(ctx, "ListMessages", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    if (auto kind = PartyKind(req->party()); !kind.ok()) return kind.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    return grpcx::Respond(resp, store_->ListMessages(*tenant, req->party().id(), *page));
  });
}

}  // namespace stadtportal::messaging

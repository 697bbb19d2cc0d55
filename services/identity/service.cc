#include "services/identity/service.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "libs/api/api.h"
#include "libs/grpc/handler.h"

namespace stadtportal::identity {

absl::StatusOr<std::string> NormalizeEmail(const std::string& email) {
  std::string e = absl::AsciiStrToLower(absl::StripAsciiWhitespace(email));
  // Deliberately simple: one @, a dot in the domain, no spaces; the verification mail proves the rest.
  static const std::regex kEmail(R"(^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$)");
  if (e.size() > 254 || !std::regex_match(e, kEmail)) return absl::InvalidArgumentError("email: not an e-mail address");
  return e;
}

grpc::Status Service::CreateAccount(grpc::ServerContext* ctx, const v1::CreateAccountRequest* req, v1::Account* resp) {
  return grpcx::Handle(ctx, "CreateAccount", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), default_tenant_);
    if (!tenant.ok()) return tenant.status();
    auto normalized = NormalizeEmail(req->email());
    if (!normalized.ok()) return normalized.status();
    if (auto s = api::ValidateText(req->display_name(), "display_name", 100); !s.ok()) return s;
    NewAccount a{*tenant, std::string(absl::StripAsciiWhitespace(req->email())), *normalized, req->display_name(),
                 req->language() == v1::LANGUAGE_EN ? "en" : "de"};
    auto created = store_->CreateAccount(a);
    if (!created.ok()) return created.status();
    *resp = *created;
    return absl::OkStatus();
  });
}

grpc::Status Service::GetAccount(grpc::ServerContext* ctx, const v1::GetAccountRequest* req, v1::Account* resp) {
  return grpcx::Handle(ctx, "GetAccount", [&]() -> absl::Status {
    if (auto s = api::ValidateUuid(req->id(), "id"); !s.ok()) return s;
    auto found = store_->GetAccount(default_tenant_, req->id());
    if (!found.ok()) return found.status();
    *resp = *found;
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::identity

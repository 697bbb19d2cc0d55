// The identity service's OpenID Provider RPCs: the browser's session and the log-in on
// the authorization page are the service's; the protocol is provider.cc's.
#include "absl/strings/numbers.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "services/identity/service.h"

namespace stadtportal::identity {
namespace {

// N of "… retry after N s" (the log-in throttle's message).
int RetryAfterSeconds(const absl::Status& s) {
  const absl::string_view m = s.message();
  const size_t at = m.rfind("retry after ");
  int n = 0;
  if (at == absl::string_view::npos) return 0;
  absl::string_view rest = m.substr(at + 12);
  rest = rest.substr(0, rest.find(' '));
  return absl::SimpleAtoi(rest, &n) ? n : 0;
}

}  // namespace

absl::StatusOr<provider::OpenIdProvider*> Service::Op() {
  if (op_ == nullptr) return absl::FailedPreconditionError("openid provider not configured");
  return op_.get();
}

absl::StatusOr<std::optional<v1::Session>> Service::BrowserSession(const std::string& session_id) {
  if (session_id.empty()) return std::optional<v1::Session>();
  auto session = CurrentSession(session_id);
  if (session.status().code() == absl::StatusCode::kUnauthenticated) return std::optional<v1::Session>();
  if (!session.ok()) return session.status();
  return std::optional<v1::Session>(*std::move(session));
}

grpc::Status Service::GetOpenIdConfiguration(grpc::ServerContext* ctx, const v1::GetOpenIdConfigurationRequest*,
                                             v1::JsonDocument* resp) {
  return grpcx::Handle(ctx, "GetOpenIdConfiguration", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    *resp = (*op)->Discovery();
    return absl::OkStatus();
  });
}

grpc::Status Service::GetProviderJwks(grpc::ServerContext* ctx, const v1::GetProviderJwksRequest*,
                                      v1::JsonDocument* resp) {
  return grpcx::Handle(ctx, "GetProviderJwks", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    return grpcx::Respond(resp, (*op)->Jwks());
  });
}

grpc::Status Service::Authorize(grpc::ServerContext* ctx, const v1::AuthorizeRequest* req,
                                v1::AuthorizeResponse* resp) {
  return grpcx::Handle(ctx, "Authorize", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    auto session = BrowserSession(req->session_id());
    if (!session.ok()) return session.status();
    return grpcx::Respond(resp, (*op)->Authorize(*req, *session));
  });
}

grpc::Status Service::ContinueAuthorization(grpc::ServerContext* ctx, const v1::ContinueAuthorizationRequest* req,
                                            v1::AuthorizeResponse* resp) {
  return grpcx::Handle(ctx, "ContinueAuthorization", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    v1::AuthorizeResponse refused;
    const bool credentials = !req->email().empty() || !req->password().empty();
    // The page's forms (log-in, consent) carry the CSRF token; the way back from a step-up
    // (a redirect) need not.
    const bool csrf_required = credentials || req->decision() != v1::ContinueAuthorizationRequest::DECISION_UNSPECIFIED;
    auto pending = (*op)->OpenPending(req->pending_id(), req->csrf_token(), csrf_required, &refused);
    if (!pending.ok()) return pending.status();
    if (!*pending) {
      *resp = refused;
      return absl::OkStatus();
    }
    std::optional<v1::Session> session;
    std::optional<v1::LoginResponse> login;
    if (credentials) {
      // The page's log-in: the same checks and throttling as the Login RPC.
      v1::LoginRequest credentials;
      credentials.mutable_tenant()->set_key((*pending)->tenant);
      credentials.set_email(req->email());
      credentials.set_password(req->password());
      credentials.set_client_ip(req->client_ip());
      auto logged_in = PasswordLogin(ctx, credentials);
      if (!logged_in.ok()) {
        const auto code = logged_in.status().code();
        std::string problem;
        if (code == absl::StatusCode::kUnauthenticated || code == absl::StatusCode::kInvalidArgument) {
          problem = "credentials";
        } else if (code == absl::StatusCode::kResourceExhausted) {
          problem = "throttled";
        } else if (code == absl::StatusCode::kPermissionDenied) {
          problem = "locked";
        } else if (code == absl::StatusCode::kFailedPrecondition) {
          problem = "not_verified";
        } else {
          return logged_in.status();
        }
        *resp =
            (*op)->LoginAgain(**pending, problem, problem == "throttled" ? RetryAfterSeconds(logged_in.status()) : 0);
        return absl::OkStatus();
      }
      // Another log-in in the same browser ends the session it had.
      if (!req->session_id().empty()) {
        if (auto d = EndSessionById(req->session_id()); !d.ok()) return d;
      }
      session = logged_in->session();
      login = *std::move(logged_in);
    } else {
      auto current = BrowserSession(req->session_id());
      if (!current.ok()) return current.status();
      session = *current;
    }
    auto next = (*op)->Continue(**pending, session, req->decision());
    if (!next.ok()) return next.status();
    *resp = *std::move(next);
    if (login) *resp->mutable_login() = *login;
    return absl::OkStatus();
  });
}

grpc::Status Service::ExchangeToken(grpc::ServerContext* ctx, const v1::TokenRequest* req, v1::TokenResponse* resp) {
  return grpcx::Handle(ctx, "ExchangeToken", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    return grpcx::Respond(resp, (*op)->ExchangeToken(*req));
  });
}

grpc::Status Service::ResolveAccessToken(grpc::ServerContext* ctx, const v1::ResolveAccessTokenRequest* req,
                                         v1::AccessTokenInfo* resp) {
  return grpcx::Handle(ctx, "ResolveAccessToken", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    return grpcx::Respond(resp, (*op)->ResolveAccessToken(req->access_token()));
  });
}

grpc::Status Service::IntrospectToken(grpc::ServerContext* ctx, const v1::IntrospectTokenRequest* req,
                                      v1::IntrospectTokenResponse* resp) {
  return grpcx::Handle(ctx, "IntrospectToken", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    return grpcx::Respond(resp, (*op)->Introspect(*req));
  });
}

grpc::Status Service::EndSession(grpc::ServerContext* ctx, const v1::EndSessionRequest* req,
                                 v1::EndSessionResponse* resp) {
  return grpcx::Handle(ctx, "EndSession", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    auto result = (*op)->EndSession(req->params());
    if (!result.ok()) return result.status();
    resp->set_redirect_uri(result->redirect_uri);
    if (result->sid.empty() || req->session_id().empty()) return absl::OkStatus();
    auto session = sessions_.Resolve(req->session_id());
    if (!session.ok() || session->sid() != result->sid) return absl::OkStatus();
    // The browser's session is the one the hint names: it ends, and the session's other
    // partner portals are told (the one logging out knows).
    if (auto d = sessions_.Delete(req->session_id()); !d.ok()) return d;
    if (auto g = (*op)->EndSessionGrants(result->sid, result->client_id); !g.ok()) return g;
    resp->set_session_ended(true);
    return absl::OkStatus();
  });
}

grpc::Status Service::ListConnectedPortals(grpc::ServerContext* ctx, const v1::ListConnectedPortalsRequest* req,
                                           v1::ListConnectedPortalsResponse* resp) {
  return grpcx::Handle(ctx, "ListConnectedPortals", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    return grpcx::Respond(resp, (*op)->ConnectedPortals(session->tenant().key(), session->account_id()));
  });
}

grpc::Status Service::RevokeConnectedPortal(grpc::ServerContext* ctx, const v1::RevokeConnectedPortalRequest* req,
                                            v1::ListConnectedPortalsResponse* resp) {
  return grpcx::Handle(ctx, "RevokeConnectedPortal", [&]() -> absl::Status {
    auto op = Op();
    if (!op.ok()) return op.status();
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    if (auto s = (*op)->RevokeConnectedPortal(session->tenant().key(), session->account_id(), req->client_id());
        !s.ok()) {
      return s;
    }
    return grpcx::Respond(resp, (*op)->ConnectedPortals(session->tenant().key(), session->account_id()));
  });
}

}  // namespace stadtportal::identity

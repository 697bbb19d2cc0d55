#include "services/identity/service.h"

#include <algorithm>
#include <optional>
#include <regex>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/api/api.h"
#include "libs/audit/audit.h"
#include "libs/auth/tokens.h"
#include "libs/auth/totp.h"
#include "libs/events/events.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::identity {
namespace {

// The password policy names "password"; in a change or reset the field is "new_password".
absl::Status NewPassword(const absl::Status& policy) {
  std::vector<status::FieldViolation> violations = status::FieldViolations(policy);
  for (auto& v : violations) v.field = "new_" + v.field;
  return status::InvalidFields(std::move(violations), "new_" + std::string(policy.message()));
}

// One answer for an unknown e-mail and a wrong password alike.
absl::Status BadCredentials() { return absl::UnauthenticatedError("invalid e-mail or password"); }

std::string LanguageCode(v1::Language l) { return l == v1::LANGUAGE_EN ? "en" : "de"; }

// The calling request's deadline on the steady clock (none: max).
Clock::time_point Deadline(const grpc::ServerContext* ctx) {
  const auto left = ctx->deadline() - std::chrono::system_clock::now();
  if (left > std::chrono::hours(1)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

}  // namespace

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.public_url = env.String("STADTPORTAL_PUBLIC_URL", o.public_url);
  o.portal_url = env.String("STADTPORTAL_PORTAL_URL", o.public_url);
  o.hash.opslimit = static_cast<unsigned long long>(env.Int("STADTPORTAL_ARGON2_OPSLIMIT", 3, 1, 20));
  o.hash.memlimit = static_cast<size_t>(env.Int("STADTPORTAL_ARGON2_MEMLIMIT_KIB", 65536, 8, 4 * 1024 * 1024)) * 1024;
  o.hash.concurrency = static_cast<int>(env.Int("STADTPORTAL_ARGON2_CONCURRENCY", o.hash.concurrency, 1, 256));
  o.hash.queue = static_cast<int>(env.Int("STADTPORTAL_ARGON2_QUEUE", o.hash.queue, 0, 1024));
  o.hash.max_wait =
      std::chrono::milliseconds(env.Int("STADTPORTAL_ARGON2_MAX_WAIT_MS", o.hash.max_wait.count(), 0, 60000));
  o.sessions.idle = std::chrono::seconds(env.Int("STADTPORTAL_SESSION_IDLE_S", 1800, 60, 86400));
  o.sessions.absolute = std::chrono::seconds(env.Int("STADTPORTAL_SESSION_ABSOLUTE_S", 43200, 300, 30 * 86400));
  o.throttle.free_failures = static_cast<int>(env.Int("STADTPORTAL_LOGIN_FREE_FAILURES", 2, 0, 100));
  // At most 15 minutes: a delay is never a long lock-out.
  o.throttle.base_delay = std::chrono::milliseconds(env.Int("STADTPORTAL_LOGIN_DELAY_BASE_MS", 1000, 1, 900000));
  o.throttle.max_delay = std::chrono::milliseconds(env.Int("STADTPORTAL_LOGIN_DELAY_MAX_MS", 60000, 1, 900000));
  if (o.throttle.max_delay < o.throttle.base_delay) {
    throw config::Error("STADTPORTAL_LOGIN_DELAY_MAX_MS: must not be below STADTPORTAL_LOGIN_DELAY_BASE_MS");
  }
  o.throttle.max_failures_per_ip = static_cast<int>(env.Int("STADTPORTAL_LOGIN_MAX_FAILURES_PER_IP", 50, 1, 100000));
  o.throttle.window = std::chrono::seconds(env.Int("STADTPORTAL_LOGIN_THROTTLE_WINDOW_S", 900, 10, 86400));
  auto mail_rate = http::Rate::Parse(env.String("STADTPORTAL_MAIL_PER_ADDRESS", "5/3600"));
  if (!mail_rate.ok())
    throw config::Error("STADTPORTAL_MAIL_PER_ADDRESS: " + std::string(mail_rate.status().message()));
  o.mail_per_address = *mail_rate;
  o.portal_name = env.String("STADTPORTAL_PORTAL_NAME", o.portal_name);
  auto totp_rate = http::Rate::Parse(env.String("STADTPORTAL_TOTP_RATE", "5/300"));
  if (!totp_rate.ok()) throw config::Error("STADTPORTAL_TOTP_RATE: " + std::string(totp_rate.status().message()));
  o.totp_rate = *totp_rate;
  o.op = provider::ProviderOptions::FromEnv(env);
  o.loopback_backchannel = env.Bool("STADTPORTAL_ALLOW_TEST_PROVIDERS", false);
  o.event_retention = events::EventRetention::FromEnv(env).age;
  return o;
}

Service::Service(std::shared_ptr<Store> store, redis::Client& redis, Options options, mail::Relay* relay,
                 std::shared_ptr<Clients> clients, std::shared_ptr<federation::Federation> federation)
    : store_(std::move(store)),
      options_(std::move(options)),
      hasher_(options_.hash),
      sessions_(redis, options_.sessions),
      throttle_(redis, options_.throttle),
      mail_limiter_(redis),
      totp_limiter_(redis),
      relay_(relay),
      clients_(std::move(clients)),
      partners_(store_->pool(), options_.loopback_backchannel),
      federation_(std::move(federation)) {
  if (options_.op.enabled()) {
    std::weak_ptr<federation::Federation> upstreams = federation_;
    op_ = std::make_unique<provider::OpenIdProvider>(
        options_.op, options_.default_tenant, store_->pool(), redis, store_, [upstreams](v1::AssuranceLevel level) {
          auto f = upstreams.lock();
          if (f == nullptr) return false;
          return !federation::ProvidersReaching(f->providers(), level).empty();
        });
  }
}

std::string Service::Link(const std::string& page, const std::string& token) const {
  return options_.portal_url + "/" + page + "?token=" + token;
}

void Service::MailsQueued() {
  if (relay_ != nullptr) relay_->Notify();
}

absl::StatusOr<bool> Service::MayMail(const std::string& tenant, const std::string& email) {
  // The address is a hash in the key: Redis holds no addresses.
  auto d = mail_limiter_.Take("identity-mail", tenant + ":" + absl::BytesToHexString(auth::Sha256(email)),
                              options_.mail_per_address);
  if (!d.ok()) return d.status();
  if (!d->allowed) log::Info("mail to an address throttled", {{"retry_after_s", d->retry_after}});
  return d->allowed;
}

absl::StatusOr<v1::LoginResponse> Service::NewSession(const v1::Account& account, v1::AssuranceLevel level,
                                                      const std::string& method, int64_t until) {
  std::vector<std::string> roles(account.roles().begin(), account.roles().end());
  auto login = sessions_.Create(account.id(), account.tenant().key(), roles, level, method, "", until);
  if (!login.ok()) return login;
  // With a confirmed second factor the session has yet to pass it.
  auto enrolled = store_->TotpConfirmed(account.id());
  if (!enrolled.ok()) return enrolled.status();
  if (*enrolled) {
    if (auto s = sessions_.SetSecondFactor(login->session_id(), v1::SECOND_FACTOR_REQUIRED); !s.ok()) return s;
    login->mutable_session()->set_second_factor(v1::SECOND_FACTOR_REQUIRED);
  }
  return login;
}

absl::StatusOr<v1::Session> Service::CurrentSession(const std::string& session_id) {
  return CheckedSession(sessions_.Resolve(session_id));
}

absl::StatusOr<v1::Session> Service::CheckedSession(absl::StatusOr<v1::Session> session) {
  if (!session.ok()) return session;
  auto account = store_->GetAccount(session->tenant().key(), session->account_id());
  if (!account.ok() && account.status().code() != absl::StatusCode::kNotFound) return account.status();
  if (!account.ok() || account->state() == v1::ACCOUNT_STATE_LOCKED) {
    if (auto s = EndAllSessions(session->account_id()); !s.ok()) return s;
    return absl::UnauthenticatedError("session unknown or expired");
  }
  session->mutable_roles()->CopyFrom(account->roles());
  return session;
}

grpc::Status Service::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req, v1::RegisterResponse*) {
  return grpcx::Handle(ctx, "Register", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), options_.default_tenant);
    if (!tenant.ok()) return tenant.status();
    auto email = api::NormalizeEmail(req->email(), "email");
    if (!email.ok()) return email.status();
    if (auto s = api::ValidateText(req->display_name(), "display_name", 100); !s.ok()) return s;
    if (auto s = policy_.Check(req->password(), *email); !s.ok()) return s;
    // Hash before knowing whether the address is taken, so both answers take as long.
    auto hash = hasher_.Hash(req->password(), Deadline(ctx));
    if (!hash.ok()) return hash.status();
    // Beyond the address's mail budget: the same answer, nothing written, no mail.
    auto may_mail = MayMail(*tenant, *email);
    if (!may_mail.ok()) return may_mail.status();
    if (!*may_mail) return absl::OkStatus();
    const std::string language = LanguageCode(req->language());
    const std::string token = auth::RandomToken();
    NewAccount a{*tenant, *email, *email, req->display_name(), language, *hash};
    absl::Status s = store_->CreateAccount(a, auth::Sha256(token), options_.verify_token_ttl, [&](const v1::Account&) {
      return VerificationMail(language, *email, Link("verify-email", token));
    });
    if (s.code() == absl::StatusCode::kAlreadyExists) {
      // Same answer as for a new address; the mail tells the owner instead.
      auto existing = store_->FindByEmail(*tenant, *email);
      const std::string lang = existing.ok() ? LanguageCode(existing->account.language()) : language;
      s = store_->QueueMail(*tenant, AlreadyRegisteredMail(lang, *email, options_.portal_url + "/password-reset"));
    }
    if (s.ok()) MailsQueued();
    return s;
  });
}

grpc::Status Service::VerifyEmail(grpc::ServerContext* ctx, const v1::VerifyEmailRequest* req,
                                  v1::VerifyEmailResponse*) {
  return grpcx::Handle(ctx, "VerifyEmail", [&]() -> absl::Status {
    if (req->token().empty() || req->token().size() > 128) return status::FieldError("token", "invalid_token");
    auto account =
        store_->ConsumeToken(auth::Sha256(req->token()), "verify_email",
                             [&](pqxx::work& tx, const std::string& id) { return store_->MarkVerified(tx, id); });
    return account.status();
  });
}

absl::StatusOr<v1::LoginResponse> Service::PasswordLogin(grpc::ServerContext* ctx, const v1::LoginRequest& req) {
  auto tenant = api::ResolveTenant(req.tenant(), options_.default_tenant);
  if (!tenant.ok()) return tenant.status();
  auto email = api::NormalizeEmail(req.email(), "email");
  if (!email.ok()) return email.status();
  if (req.password().empty() || req.password().size() > 1024) return BadCredentials();
  if (auto s = throttle_.Check(*email, req.client_ip()); !s.ok()) return s;

  auto found = store_->FindByEmail(*tenant, *email);
  if (!found.ok() && found.status().code() != absl::StatusCode::kNotFound) return found.status();
  bool ok = false;
  if (found.ok()) {
    auto verified = hasher_.Verify(found->password_hash, req.password(), Deadline(ctx));
    if (!verified.ok()) return verified.status();
    ok = *verified;
  } else if (auto s = hasher_.VerifyDummy(req.password(), Deadline(ctx)); !s.ok()) {
    return s;
  }
  if (!ok) {
    if (auto s = throttle_.Failed(*email, req.client_ip()); !s.ok()) return s;
    return BadCredentials();
  }
  // The password was right: from here on, answers may say more.
  if (found->account.state() == v1::ACCOUNT_STATE_LOCKED) return absl::PermissionDeniedError("account: locked");
  if (!found->verified) return status::FieldConflict("email", "not_verified");
  if (hasher_.NeedsRehash(found->password_hash)) {
    // Stronger parameters apply from this log-in on; failing to store them is not fatal.
    auto h = hasher_.Hash(req.password(), Deadline(ctx));
    absl::Status stored = h.ok() ? store_->SetPasswordHash(found->account.id(), *h) : h.status();
    if (!stored.ok()) log::Warn("password rehash not stored", {{"error", std::string(stored.message())}});
  }
  if (auto s = throttle_.Succeeded(*email, req.client_ip()); !s.ok()) return s;
  // A local password proves possession of the account only: assurance level low.
  return NewSession(found->account);
}

grpc::Status Service::Login(grpc::ServerContext* ctx, const v1::LoginRequest* req, v1::LoginResponse* resp) {
  return grpcx::Handle(ctx, "Login", [&]() -> absl::Status { return grpcx::Respond(resp, PasswordLogin(ctx, *req)); });
}

absl::Status Service::EndSessionByRef(const std::string& session_ref) {
  auto session = sessions_.ResolveRef(session_ref);
  if (auto d = sessions_.DeleteRef(session_ref); !d.ok()) return d;
  if (op_ == nullptr || !session.ok()) return absl::OkStatus();
  return op_->EndSessionGrants(session->sid());
}

absl::Status Service::EndSessionById(const std::string& session_id) {
  if (session_id.empty() || session_id.size() > 128) return absl::OkStatus();
  return EndSessionByRef(SessionStore::Ref(session_id));
}

absl::Status Service::EndAllSessions(const std::string& account_id) {
  if (auto s = sessions_.DeleteAllOf(account_id); !s.ok()) return s;
  if (op_ == nullptr) return absl::OkStatus();
  return op_->EndAccountGrants(account_id);
}

grpc::Status Service::ResolveSession(grpc::ServerContext* ctx, const v1::ResolveSessionRequest* req,
                                     v1::Session* resp) {
  return grpcx::Handle(ctx, "ResolveSession",
                       [&]() -> absl::Status { return grpcx::Respond(resp, CurrentSession(req->session_id())); });
}

grpc::Status Service::Logout(grpc::ServerContext* ctx, const v1::LogoutRequest* req, v1::LogoutResponse* resp) {
  return grpcx::Handle(ctx, "Logout", [&]() -> absl::Status {
    if (auto s = sessions_.Resolve(req->session_id()); !s.ok()) return s.status();
    // A session from a provider with single log-out ends there too: the browser goes on.
    auto upstream = sessions_.GetUpstream(req->session_id());
    if (!upstream.ok()) return upstream.status();
    if (auto d = EndSessionById(req->session_id()); !d.ok()) return d;
    if (upstream->provider.empty() || federation_ == nullptr) return absl::OkStatus();
    federation::Identity identity;
    identity.provider = upstream->provider;
    identity.subject = upstream->subject;
    identity.logout_hint = upstream->logout_hint;
    auto url = federation_->LogoutUrl(identity);
    if (url.ok()) {
      resp->set_upstream_logout_url(*url);
    } else if (url.status().code() != absl::StatusCode::kNotFound) {
      // Ours has ended; the provider's stays (its own lifetime).
      log::Warn("single log-out unavailable",
                {{"provider", upstream->provider}, {"error", std::string(url.status().message())}});
    }
    return absl::OkStatus();
  });
}

grpc::Status Service::LogoutAll(grpc::ServerContext* ctx, const v1::LogoutRequest* req, v1::LogoutResponse*) {
  return grpcx::Handle(ctx, "LogoutAll", [&]() -> absl::Status {
    auto s = sessions_.Resolve(req->session_id());
    if (!s.ok()) return s.status();
    return EndAllSessions(s->account_id());
  });
}

grpc::Status Service::ChangePassword(grpc::ServerContext* ctx, const v1::ChangePasswordRequest* req,
                                     v1::LoginResponse* resp) {
  return grpcx::Handle(ctx, "ChangePassword", [&]() -> absl::Status {
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    auto found = store_->FindById(session->tenant().key(), session->account_id());
    if (!found.ok()) return found.status();
    auto verified = hasher_.Verify(found->password_hash, req->current_password(), Deadline(ctx));
    if (!verified.ok()) return verified.status();
    if (!*verified) return status::FieldError("current_password", "wrong_password");
    if (auto s = policy_.Check(req->new_password(), found->account.email()); !s.ok()) {
      return NewPassword(s);
    }
    auto hash = hasher_.Hash(req->new_password(), Deadline(ctx));
    if (!hash.ok()) return hash.status();
    // Also ends every outstanding reset link: the new password is the only way in.
    if (auto s = store_->ReplacePassword(found->account.id(), *hash); !s.ok()) return s;
    // A privilege change: every session ends, this one continues under a new id.
    if (auto s = EndAllSessions(found->account.id()); !s.ok()) return s;
    auto fresh = NewSession(found->account);
    if (!fresh.ok()) return fresh.status();
    *resp = *fresh;
    return absl::OkStatus();
  });
}

grpc::Status Service::RequestPasswordReset(grpc::ServerContext* ctx, const v1::RequestPasswordResetRequest* req,
                                           v1::RequestPasswordResetResponse*) {
  return grpcx::Handle(ctx, "RequestPasswordReset", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), options_.default_tenant);
    if (!tenant.ok()) return tenant.status();
    auto email = api::NormalizeEmail(req->email(), "email");
    if (!email.ok()) return email.status();
    // Counted for every address, known or not, and answered alike either way.
    auto may_mail = MayMail(*tenant, *email);
    if (!may_mail.ok()) return may_mail.status();
    if (!*may_mail) return absl::OkStatus();
    auto found = store_->FindByEmail(*tenant, *email);
    if (found.status().code() == absl::StatusCode::kNotFound) return absl::OkStatus();  // Same answer.
    if (!found.ok()) return found.status();
    const std::string token = auth::RandomToken();
    auto s = store_->IssueToken(
        found->account, "reset_password", auth::Sha256(token), options_.reset_token_ttl,
        PasswordResetMail(LanguageCode(found->account.language()), *email, Link("password-reset/confirm", token)));
    if (s.ok()) MailsQueued();
    return s;
  });
}

grpc::Status Service::ConfirmPasswordReset(grpc::ServerContext* ctx, const v1::ConfirmPasswordResetRequest* req,
                                           v1::ConfirmPasswordResetResponse*) {
  return grpcx::Handle(ctx, "ConfirmPasswordReset", [&]() -> absl::Status {
    if (req->token().empty() || req->token().size() > 128) return status::FieldError("token", "invalid_token");
    if (auto s = policy_.Check(req->new_password(), ""); !s.ok()) {
      return NewPassword(s);
    }
    auto hash = hasher_.Hash(req->new_password(), Deadline(ctx));
    if (!hash.ok()) return hash.status();
    auto account =
        store_->ConsumeToken(auth::Sha256(req->token()), "reset_password", [&](pqxx::work& tx, const std::string& id) {
          // Following the mailed link also proves the address.
          if (auto s = store_->MarkVerified(tx, id); !s.ok()) return s;
          // Every other reset link sent before ends with this one.
          store_->RevokeResetTokens(tx, id);
          return store_->SetPasswordHash(tx, id, *hash);
        });
    if (!account.ok()) return account.status();
    return EndAllSessions(*account);
  });
}

grpc::Status Service::SetActingParty(grpc::ServerContext* ctx, const v1::SetActingPartyRequest* req,
                                     v1::LoginResponse* resp) {
  return grpcx::Handle(ctx, "SetActingParty", [&](const auth::Caller& caller) -> absl::Status {
    // Accounts decides whom a person may act for (it checked the membership): only its own
    // platform token is taken, for the session of the account it names.
    if (!auth::IsService(caller, "accounts")) {
      return absl::PermissionDeniedError("the acting party is switched through accounts");
    }
    if (!req->acting_party_id().empty()) {
      if (auto s = api::ValidateUuid(req->acting_party_id(), "acting_party_id"); !s.ok()) return s;
    }
    // The current roles and state, not the copy in the old session.
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    if (session->account_id() != req->account_id() || session->tenant().key() != caller.tenant) {
      return absl::PermissionDeniedError("not your session");
    }
    return grpcx::Respond(resp, sessions_.Rotate(req->session_id(), *session, req->acting_party_id()));
  });
}

grpc::Status Service::GetAccount(grpc::ServerContext* ctx, const v1::GetAccountRequest* req, v1::Account* resp) {
  return grpcx::Handle(ctx, "GetAccount", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = api::ValidateUuid(req->id(), "id"); !s.ok()) return s;
    const std::string tenant = caller.tenant.empty() ? options_.default_tenant : caller.tenant;
    return grpcx::Respond(resp, store_->GetAccount(tenant, req->id()));
  });
}

namespace {

// Administration needs the tenant-admin role, a reason, and the admin's own tenant.
absl::Status RequireAdmin(const auth::Caller& caller, const std::string& reason) {
  if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
  if (!auth::HasRole(caller, "tenant-admin")) {
    return absl::PermissionDeniedError("tenant administrators only");
  }
  return api::ValidateText(reason, "reason", 500);
}

}  // namespace

grpc::Status Service::FindAccounts(grpc::ServerContext* ctx, const v1::FindAccountsRequest* req,
                                   v1::FindAccountsResponse* resp) {
  return grpcx::Handle(ctx, "FindAccounts", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, req->reason()); !s.ok()) return s;
    if (auto s = api::ValidateText(req->query(), "query", 100); !s.ok()) return s;
    if (req->query().size() < 3) return status::FieldError("query", "too_short");
    auto found = store_->FindAccounts(caller.tenant, req->query(), caller.account_id, req->reason());
    if (!found.ok()) return found.status();
    for (auto& a : *found) *resp->add_accounts() = std::move(a);
    return absl::OkStatus();
  });
}

grpc::Status Service::SetAccountLocked(grpc::ServerContext* ctx, const v1::SetAccountLockedRequest* req,
                                       v1::Account* resp) {
  return grpcx::Handle(ctx, "SetAccountLocked", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, req->reason()); !s.ok()) return s;
    if (!api::ValidateUuid(req->account_id(), "account_id").ok()) return absl::NotFoundError("account not found");
    if (req->account_id() == caller.account_id) return status::FieldConflict("account_id", "own_account");
    auto a = store_->SetLocked(
        caller.tenant, req->account_id(), req->locked(), caller.account_id, req->reason(),
        audit::Of(caller, req->locked() ? "account.lock" : "account.unlock", {{"account_id", req->account_id()}}));
    if (!a.ok()) return a.status();
    if (req->locked()) {
      if (auto s = EndAllSessions(req->account_id()); !s.ok()) return s;
    }
    *resp = *a;
    return absl::OkStatus();
  });
}

grpc::Status Service::CreateClient(grpc::ServerContext* ctx, const v1::CreateClientRequest* req,
                                   v1::CreateClientResponse* resp) {
  return grpcx::Handle(ctx, "CreateClient", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "register a back-office client"); !s.ok()) return s;
    if (clients_ == nullptr) return absl::UnimplementedError("back-office clients are not configured");
    return grpcx::Respond(resp, clients_->Create(caller.tenant, *req, caller.account_id,
                                                 audit::Of(caller, "backoffice_client.create", {})));
  });
}

grpc::Status Service::IssueClientToken(grpc::ServerContext* ctx, const v1::IssueClientTokenRequest* req,
                                       v1::ClientToken* resp) {
  return grpcx::Handle(ctx, "IssueClientToken", [&]() -> absl::Status {
    if (clients_ == nullptr) return absl::UnimplementedError("back-office clients are not configured");
    return grpcx::Respond(resp, clients_->Issue(*req));
  });
}

grpc::Status Service::ResolveClientToken(grpc::ServerContext* ctx, const v1::ResolveClientTokenRequest* req,
                                         v1::ClientInfo* resp) {
  return grpcx::Handle(ctx, "ResolveClientToken", [&]() -> absl::Status {
    if (clients_ == nullptr) return absl::UnimplementedError("back-office clients are not configured");
    return grpcx::Respond(resp, clients_->Resolve(req->access_token()));
  });
}

grpc::Status Service::SetClientDisabled(grpc::ServerContext* ctx, const v1::SetClientDisabledRequest* req,
                                        v1::BackofficeClient* resp) {
  return grpcx::Handle(ctx, "SetClientDisabled", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "disable a back-office client"); !s.ok()) return s;
    if (clients_ == nullptr) return absl::UnimplementedError("back-office clients are not configured");
    return grpcx::Respond(
        resp, clients_->SetDisabled(
                  caller.tenant, req->client_id(), req->disabled(),
                  audit::Of(caller, req->disabled() ? "backoffice_client.disable" : "backoffice_client.enable", {})));
  });
}

grpc::Status Service::RotateClientSecret(grpc::ServerContext* ctx, const v1::RotateClientSecretRequest* req,
                                         v1::CreateClientResponse* resp) {
  return grpcx::Handle(ctx, "RotateClientSecret", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "rotate a back-office client's secret"); !s.ok()) return s;
    if (clients_ == nullptr) return absl::UnimplementedError("back-office clients are not configured");
    return grpcx::Respond(resp, clients_->RotateSecret(caller.tenant, req->client_id(),
                                                       audit::Of(caller, "backoffice_client.rotate_secret", {})));
  });
}

grpc::Status Service::CreatePartnerClient(grpc::ServerContext* ctx, const v1::CreatePartnerClientRequest* req,
                                          v1::PartnerClientCredentials* resp) {
  return grpcx::Handle(ctx, "CreatePartnerClient", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "register a partner portal"); !s.ok()) return s;
    return grpcx::Respond(
        resp, partners_.Create(caller.tenant, *req, caller.account_id, audit::Of(caller, "partner_client.create", {})));
  });
}

grpc::Status Service::ListPartnerClients(grpc::ServerContext* ctx, const v1::ListPartnerClientsRequest* req,
                                         v1::ListPartnerClientsResponse* resp) {
  return grpcx::Handle(ctx, "ListPartnerClients", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "list partner portals"); !s.ok()) return s;
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    auto clients = partners_.List(caller.tenant, page->after, page->size + 1);
    if (!clients.ok()) return clients.status();
    const bool more = static_cast<int>(clients->size()) > page->size;
    if (more) clients->pop_back();
    if (more) resp->mutable_page()->set_next_page_token(api::NextPageToken(clients->back().client_id()));
    for (auto& c : *clients) *resp->add_clients() = std::move(c);
    return absl::OkStatus();
  });
}

grpc::Status Service::GetPartnerClient(grpc::ServerContext* ctx, const v1::GetPartnerClientRequest* req,
                                       v1::PartnerClient* resp) {
  return grpcx::Handle(ctx, "GetPartnerClient", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "read a partner portal"); !s.ok()) return s;
    return grpcx::Respond(resp, partners_.Get(caller.tenant, req->client_id()));
  });
}

grpc::Status Service::SetPartnerClientDisabled(grpc::ServerContext* ctx, const v1::SetPartnerClientDisabledRequest* req,
                                               v1::PartnerClient* resp) {
  return grpcx::Handle(ctx, "SetPartnerClientDisabled", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "disable a partner portal"); !s.ok()) return s;
    return grpcx::Respond(
        resp, partners_.SetDisabled(
                  caller.tenant, req->client_id(), req->disabled(),
                  audit::Of(caller, req->disabled() ? "partner_client.disable" : "partner_client.enable", {})));
  });
}

grpc::Status Service::RotatePartnerClientCredentials(grpc::ServerContext* ctx,
                                                     const v1::RotatePartnerClientCredentialsRequest* req,
                                                     v1::PartnerClientCredentials* resp) {
  return grpcx::Handle(ctx, "RotatePartnerClientCredentials", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "rotate a partner portal's credentials"); !s.ok()) return s;
    return grpcx::Respond(resp, partners_.RotateCredentials(
                                    caller.tenant, *req, audit::Of(caller, "partner_client.rotate_credentials", {})));
  });
}

grpc::Status Service::EnrolTotp(grpc::ServerContext* ctx, const v1::EnrolTotpRequest* req,
                                v1::EnrolTotpResponse* resp) {
  return grpcx::Handle(ctx, "EnrolTotp", [&](const auth::Caller& caller) -> absl::Status {
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    if (caller.account_id != session->account_id()) return absl::PermissionDeniedError("not your session");
    if (req->enrolment_code().empty() || req->enrolment_code().size() > 64) {
      return status::FieldError("enrolment_code", "required");
    }
    // Counted like codes (a bucket of its own): enrolment codes cannot be guessed either.
    if (auto s = TakeTotpAttempt("totp-enrolment", session->account_id()); !s.ok()) return s;
    auto found = store_->FindById(session->tenant().key(), session->account_id());
    if (!found.ok()) return found.status();
    const std::string secret = auth::NewTotpSecret();
    if (auto s = store_->StartTotp(session->tenant().key(), session->account_id(), secret,
                                   auth::Sha256(req->enrolment_code()));
        !s.ok()) {
      return s;
    }
    resp->set_secret(auth::Base32(secret));
    resp->set_otpauth_uri(auth::OtpauthUri(options_.portal_name, found->account.email(), secret));
    return absl::OkStatus();
  });
}

absl::Status Service::TakeTotpAttempt(const std::string& bucket, const std::string& account_id) {
  // Every attempt counts, right or wrong: a million codes cannot be tried.
  auto d = totp_limiter_.Take(bucket, account_id, options_.totp_rate);
  if (!d.ok()) return d.status();
  if (!d->allowed) {
    return absl::ResourceExhaustedError(absl::StrCat("too many codes tried; retry after ", d->retry_after, " s"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Session> Service::CheckTotp(const auth::Caller& caller, const v1::TotpCodeRequest& req,
                                               bool confirm) {
  auto session = CurrentSession(req.session_id());
  if (!session.ok()) return session.status();
  if (caller.account_id != session->account_id()) return absl::PermissionDeniedError("not your session");
  // Six digits or nothing to try (not counted against the attempts).
  if (req.code().size() != static_cast<size_t>(auth::kTotpDigits) ||
      !std::all_of(req.code().begin(), req.code().end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return status::FieldError("code", "invalid_code");
  }
  auto factor = store_->GetTotp(session->account_id());
  if (factor.status().code() == absl::StatusCode::kNotFound) return status::FieldConflict("totp", "not_enrolled");
  if (!factor.ok()) return factor.status();
  if (factor->confirmed == confirm) {
    return absl::FailedPreconditionError(confirm ? "totp: already_enrolled" : "totp: not_enrolled");
  }
  if (auto s = TakeTotpAttempt("totp", session->account_id()); !s.ok()) return s;
  const auto step = auth::TotpMatch(factor->secret, req.code(), auth::TotpStep(absl::ToUnixSeconds(absl::Now())));
  if (!step) {
    log::Warn("wrong second-factor code", {{"session_ref", session->session_ref()}});
    return status::FieldError("code", "invalid_code");
  }
  // The step is taken in the database: the same code cannot pass twice, on any replica.
  if (auto s = store_->UseTotpStep(session->account_id(), *step, confirm,
                                   audit::Of(caller, "totp.confirm", {{"account_id", session->account_id()}}));
      !s.ok()) {
    return s;
  }
  if (auto s = sessions_.SetSecondFactor(req.session_id(), v1::SECOND_FACTOR_PASSED); !s.ok()) return s;
  session->set_second_factor(v1::SECOND_FACTOR_PASSED);
  return session;
}

grpc::Status Service::ConfirmTotp(grpc::ServerContext* ctx, const v1::TotpCodeRequest* req, v1::Session* resp) {
  return grpcx::Handle(ctx, "ConfirmTotp", [&](const auth::Caller& caller) -> absl::Status {
    return grpcx::Respond(resp, CheckTotp(caller, *req, true));
  });
}

grpc::Status Service::VerifyTotp(grpc::ServerContext* ctx, const v1::TotpCodeRequest* req, v1::Session* resp) {
  return grpcx::Handle(ctx, "VerifyTotp", [&](const auth::Caller& caller) -> absl::Status {
    return grpcx::Respond(resp, CheckTotp(caller, *req, false));
  });
}

grpc::Status Service::ListAuditLog(grpc::ServerContext* ctx, const v1::ListAuditLogRequest* req,
                                   v1::ListAuditLogResponse* resp) {
  return grpcx::Handle(ctx, "ListAuditLog", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller, "read the audit log"); !s.ok()) return s;
    static const std::regex kActor("^[A-Za-z0-9:._@-]{1,100}$");
    static const std::regex kAction("^[a-z_]+\\.[a-z_]+$");
    if (!req->actor().empty() && !std::regex_match(req->actor(), kActor)) {
      return status::FieldError("actor", "invalid");
    }
    if (!req->action().empty() && (req->action().size() > 100 || !std::regex_match(req->action(), kAction))) {
      return status::FieldError("action", "invalid");
    }
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    int64_t before = 0;
    if (!page->after.empty() && (!absl::SimpleAtoi(page->after, &before) || before <= 0)) {
      return status::MalformedField("page.page_token", "invalid", "not a token this service issued");
    }
    auto entries = store_->ListAudit(caller.tenant, before, page->size + 1, req->actor(), req->action());
    if (!entries.ok()) return entries.status();
    const bool more = static_cast<int>(entries->size()) > page->size;
    if (more) entries->pop_back();
    if (more) resp->mutable_page()->set_next_page_token(api::NextPageToken(std::to_string(entries->back().id())));
    for (auto& e : *entries) *resp->add_entries() = std::move(e);
    return absl::OkStatus();
  });
}

absl::Status Service::ListLinked(const v1::Session& session, v1::ListLinkedProvidersResponse* resp) {
  auto linked = store_->ListLinkedProviders(session.tenant().key(), session.account_id());
  if (!linked.ok()) return linked.status();
  for (auto& p : *linked) *resp->add_providers() = std::move(p);
  return absl::OkStatus();
}

absl::StatusOr<federation::Federation*> Service::Upstreams() {
  if (federation_ == nullptr) return absl::NotFoundError("provider not found");  // None configured.
  return federation_.get();
}

grpc::Status Service::ListProviders(grpc::ServerContext* ctx, const v1::ListProvidersRequest*,
                                    v1::ListProvidersResponse* resp) {
  return grpcx::Handle(ctx, "ListProviders", [&]() -> absl::Status {
    if (federation_ == nullptr) return absl::OkStatus();
    for (const auto& p : federation_->providers()) {
      auto* out = resp->add_providers();
      out->set_id(p.id);
      out->set_kind(p.kind == federation::Provider::Kind::kSaml ? "saml" : "oidc");
      out->set_name_de(p.name_de);
      out->set_name_en(p.name_en);
      out->set_highest_level(p.Highest());
    }
    return absl::OkStatus();
  });
}

grpc::Status Service::GetSamlMetadata(grpc::ServerContext* ctx, const v1::GetSamlMetadataRequest* req,
                                      v1::SamlMetadata* resp) {
  return grpcx::Handle(ctx, "GetSamlMetadata", [&]() -> absl::Status {
    auto upstreams = Upstreams();
    if (!upstreams.ok()) return upstreams.status();
    auto xml = (*upstreams)->Metadata(req->provider());
    if (!xml.ok()) return xml.status();
    resp->set_xml(*xml);
    return absl::OkStatus();
  });
}

grpc::Status Service::StartFederatedLogin(grpc::ServerContext* ctx, const v1::StartFederatedLoginRequest* req,
                                          v1::StartFederatedLoginResponse* resp) {
  return grpcx::Handle(ctx, "StartFederatedLogin", [&]() -> absl::Status {
    auto upstreams = Upstreams();
    if (!upstreams.ok()) return upstreams.status();
    if (!v1::AssuranceLevel_IsValid(req->minimum_level())) return status::FieldError("minimum_level", "invalid");
    federation::FlowContext context;
    context.return_to = req->return_to();
    if (!req->session_id().empty()) {
      // Step-up or linking: the session proves the account (its password or provider).
      auto session = CurrentSession(req->session_id());
      if (!session.ok()) return session.status();
      context.account_id = session->account_id();
      context.session_ref = session->session_ref();
    } else if (!req->replaces_session_id().empty()) {
      // A log-in in a browser that has a session: that session ends when the log-in does.
      if (auto had = sessions_.Resolve(req->replaces_session_id()); had.ok()) context.session_ref = had->session_ref();
    }
    auto started = (*upstreams)->Start(req->provider(), req->minimum_level(), context);
    if (!started.ok()) return started.status();
    resp->set_redirect_url(started->redirect_url);
    resp->set_flow_id(started->flow_id);
    *resp->mutable_expires_at() =
        google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(started->expires_at));
    return absl::OkStatus();
  });
}

grpc::Status Service::FinishFederatedLogin(grpc::ServerContext* ctx, const v1::FinishFederatedLoginRequest* req,
                                           v1::FinishFederatedLoginResponse* resp) {
  return grpcx::Handle(ctx, "FinishFederatedLogin", [&]() -> absl::Status {
    auto upstreams = Upstreams();
    if (!upstreams.ok()) return upstreams.status();
    const federation::Provider* provider = (*upstreams)->Find(req->provider());
    if (provider == nullptr) return absl::NotFoundError("provider not found");
    federation::Upstream::Answer answer{req->saml_response(), req->code(), req->error()};
    auto finished = (*upstreams)->Finish(req->provider(), req->flow_id(), req->relay_state(), answer, absl::Now());
    if (!finished.ok()) {
      // The reason only: never the answer, its tokens or who it named.
      if (const auto reason = federation::RefusalReason(finished.status()); !reason.empty()) {
        log::Info("upstream answer refused", {{"provider", req->provider()}, {"reason", reason}});
      }
      return finished.status();
    }
    const auto& identity = finished->identity;
    const std::string method =
        absl::StrCat(provider->kind == federation::Provider::Kind::kSaml ? "saml:" : "oidc:", provider->id);
    // Step-up and linking finish only in the session that began them, still valid. The
    // browser's flow cookie proves it began the flow: the session is the flow's, as the
    // SAML answer (a cross-site POST) comes without the SameSite=Lax session cookie.
    std::optional<v1::Session> session;
    const std::string& link_to = finished->context.account_id;
    if (!link_to.empty()) {
      auto began = CheckedSession(sessions_.ResolveRef(finished->context.session_ref));
      if (!began.ok() || began->account_id() != link_to) return status::FieldConflict("session", "changed");
      session = *began;
    }
    auto account = store_->RecordFederatedLogin(options_.default_tenant, identity, link_to);
    if (!account.ok()) return account.status();
    // Never longer than the provider allows (SAML SessionNotOnOrAfter).
    const int64_t until =
        identity.session_until == absl::InfiniteFuture() ? 0 : absl::ToUnixSeconds(identity.session_until);
    absl::StatusOr<v1::LoginResponse> login;
    if (!link_to.empty()) {
      // The session goes on under a new id at the higher of the two levels; its drafts
      // and acting party are the account's and stay.
      const auto level = std::max(session->assurance_level(), identity.level);
      login = sessions_.StepUp(*session, level, method, until);
    } else {
      // Another log-in in the same browser ends the session it had: the one it brought
      // (if any), and the one the flow named at its start.
      if (!req->session_id().empty()) {
        if (auto d = EndSessionById(req->session_id()); !d.ok()) return d;
      }
      if (!finished->context.session_ref.empty()) {
        if (auto d = EndSessionByRef(finished->context.session_ref); !d.ok()) return d;
      }
      login = NewSession(account->account, identity.level, method, until);
    }
    if (!login.ok()) return login.status();
    if (auto u =
            sessions_.SetUpstream(login->session_id(), {identity.provider, identity.subject, identity.logout_hint});
        !u.ok()) {
      return u;
    }
    *resp->mutable_login() = *login;
    resp->set_return_to(finished->context.return_to);
    resp->set_outcome(account->outcome);
    return absl::OkStatus();
  });
}

grpc::Status Service::ListLinkedProviders(grpc::ServerContext* ctx, const v1::ListLinkedProvidersRequest* req,
                                          v1::ListLinkedProvidersResponse* resp) {
  return grpcx::Handle(ctx, "ListLinkedProviders", [&]() -> absl::Status {
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    return ListLinked(*session, resp);
  });
}

grpc::Status Service::UnlinkProvider(grpc::ServerContext* ctx, const v1::UnlinkProviderRequest* req,
                                     v1::ListLinkedProvidersResponse* resp) {
  return grpcx::Handle(ctx, "UnlinkProvider", [&]() -> absl::Status {
    auto session = CurrentSession(req->session_id());
    if (!session.ok()) return session.status();
    if (auto s = store_->UnlinkProvider(session->tenant().key(), session->account_id(), req->provider()); !s.ok()) {
      return s;
    }
    // Whoever came in through it is out (this session, which removes it, goes on).
    std::vector<std::string> ended;
    if (auto s = sessions_.DeleteFromUpstream(session->account_id(), req->provider(), req->session_id(), &ended);
        !s.ok()) {
      return s;
    }
    for (const auto& sid : ended) {
      if (op_ == nullptr) break;
      if (auto s = op_->EndSessionGrants(sid); !s.ok()) return s;
    }
    return ListLinked(*session, resp);
  });
}

}  // namespace stadtportal::identity

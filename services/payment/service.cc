#include "services/payment/service.h"

#include <algorithm>
#include <regex>

#include <google/protobuf/util/time_util.h>
#include <prometheus/counter.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/api/api.h"
#include "libs/audit/audit.h"
#include "libs/events/events.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/status/status.h"

namespace stadtportal::payment {
namespace {

prometheus::Family<prometheus::Counter>& PaymentsTotal() {
  static auto& family = prometheus::BuildCounter()
                            .Name("stadtportal_payments_total")
                            .Help("Payments that reached a final state, by state.")
                            .Register(*metrics::Registry());
  return family;
}

prometheus::Family<prometheus::Counter>& WebhooksTotal() {
  static auto& family =
      prometheus::BuildCounter()
          .Name("stadtportal_payment_webhooks_total")
          .Help("Provider notifications, by provider and outcome (applied, ignored, rejected, duplicate).")
          .Register(*metrics::Registry());
  return family;
}

prometheus::Family<prometheus::Counter>& AutomaticRefundsTotal() {
  static auto& family = prometheus::BuildCounter()
                            .Name("stadtportal_payment_automatic_refunds_total")
                            .Help(
                                "Money given back automatically: a second success for one submission, or a payment "
                                "that succeeded after it had ended.")
                            .Register(*metrics::Registry());
  return family;
}

bool Final(const std::string& s) { return s == "success" || s == "failed" || s == "cancelled" || s == "error"; }

bool Allowed(const std::string& from, const std::string& to) {
  if (from == "created") return to == "started" || to == "error" || to == "cancelled" || to == "failed";
  if (from == "started")
    return to == "submitted" || to == "success" || to == "failed" || to == "cancelled" || to == "error";
  if (from == "submitted") return to == "success" || to == "failed" || to == "cancelled" || to == "error";
  return false;
}

bool IsAdmin(const auth::Caller& c) { return auth::HasRole(c, "tenant-admin"); }

absl::Status CheckId(const std::string& id) { return api::CheckId(id, "payment"); }

}  // namespace

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.public_url = env.String("STADTPORTAL_PAYMENT_CALLBACK_URL", env.String("STADTPORTAL_PUBLIC_URL", o.public_url));
  o.expiry = std::chrono::seconds(env.Int("STADTPORTAL_PAYMENT_EXPIRY_S", o.expiry.count(), 60, 7 * 86400));
  o.webhook_window =
      std::chrono::seconds(env.Int("STADTPORTAL_PAYMENT_WEBHOOK_WINDOW_S", o.webhook_window.count(), 10, 3600));
  return o;
}

Service::Service(std::shared_ptr<Store> store, std::vector<std::shared_ptr<Provider>> providers, Options options)
    : store_(std::move(store)), providers_(std::move(providers)), options_(std::move(options)) {
  for (const char* s : {"success", "failed", "cancelled", "error"}) PaymentsTotal().Add({{"state", s}});
  AutomaticRefundsTotal().Add({});
}

Provider* Service::Find(const std::string& name) const {
  for (const auto& p : providers_) {
    if (p->name() == name) return p.get();
  }
  return nullptr;
}

namespace {

// The stored (and shown) reason of a refund the provider did not make: a stable code.
// What the provider said — its answer body, a transport error — goes to the log only.
std::string RefundFailure(const absl::StatusOr<RefundResult>& r, const std::string& payment_id) {
  log::Warn("refund failed at the provider",
            {{"payment", payment_id}, {"error", r.ok() ? r->reason : std::string(r.status().message())}});
  return r.ok() ? "refund_declined" : "provider_error";
}

}  // namespace

absl::Status Service::Transition(pqxx::work& tx, PaymentRow& row, const std::string& to, const std::string& reason,
                                 const std::string& source) {
  if (!Allowed(row.state, to)) {
    return absl::FailedPreconditionError(absl::StrCat("state: ", row.state, " cannot become ", to));
  }
  Store::SetState(tx, row.payment.id(), to, reason);
  Store::AddEvent(tx, row.payment.id(), to, reason, source);
  row.state = to;
  if (Final(to)) PaymentsTotal().Add({{"state", to}}).Increment();
  return absl::OkStatus();
}

void Service::RefundAutomatically(pqxx::work& tx, PaymentRow& row, Provider& provider, const std::string& why) {
  const auto& p = row.payment;
  auto refund = Store::InsertRefund(tx, p.id(), p.amount().amount_minor(), p.amount().currency(), why, "system");
  auto r = provider.Refund(p.provider_reference(), p.amount().amount_minor(), p.amount().currency());
  const bool ok = r.ok() && r->succeeded;
  Store::SettleRefund(tx, refund.id(), ok ? "success" : "error", r.ok() ? r->provider_ref : "",
                      ok ? why : RefundFailure(r, p.id()));
  if (ok) Store::AddRefunded(tx, p.id(), p.amount().amount_minor());
  Store::AddEvent(tx, p.id(), row.state, why, "refund", {{"refund_id", refund.id()}, {"refunded", ok}});
  AutomaticRefundsTotal().Add({}).Increment();
  log::Warn("payment refunded automatically",
            {{"payment", p.id()}, {"submission", p.submission_id()}, {"why", why}, {"refunded", ok}});
}

absl::Status Service::Apply(pqxx::work& tx, PaymentRow& row, const ProviderState& st, const std::string& source,
                            Provider& provider) {
  if (Final(row.state)) {
    // Money that arrives for a payment that has ended (expired, cancelled) goes back.
    if (st.outcome == Outcome::kSucceeded && row.state != "success") {
      RefundAutomatically(tx, row, provider, "late_success_refunded");
    }
    return absl::OkStatus();
  }
  switch (st.outcome) {
    case Outcome::kPending: return absl::OkStatus();
    case Outcome::kApproved: {
      if (row.state != "submitted") {
        if (auto s = Transition(tx, row, "submitted", "", source); !s.ok()) return s;
      }
      auto captured = provider.Capture(row.payment.provider_reference());
      if (!captured.ok()) {
        // Stays submitted: the reconciliation captures it later.
        log::Warn("capture failed",
                  {{"payment", row.payment.id()}, {"error", std::string(captured.status().message())}});
        return absl::OkStatus();
      }
      if (captured->outcome == Outcome::kApproved) return absl::OkStatus();
      return Apply(tx, row, *captured, source, provider);
    }
    case Outcome::kSucceeded: {
      const auto& p = row.payment;
      Store::LockSubmission(tx, p.tenant().key(), p.submission_id());
      if (Store::HasSuccess(tx, p.tenant().key(), p.submission_id())) {
        // Never two successful payments for one submission: this one goes back.
        if (auto s = Transition(tx, row, "success", "duplicate_refunded", source); !s.ok()) return s;
        RefundAutomatically(tx, row, provider, "duplicate_refunded");
        return absl::OkStatus();
      }
      if (auto s = Transition(tx, row, "success", "", source); !s.ok()) return s;
      events::Publish(tx, "payment.succeeded", p.submission_id(),
                      {{"payment_id", p.id()},
                       {"submission_id", p.submission_id()},
                       {"tenant", p.tenant().key()},
                       {"amount_minor", p.amount().amount_minor()},
                       {"currency", p.amount().currency()},
                       {"provider", p.provider()}});
      return absl::OkStatus();
    }
    case Outcome::kDeclined: return Transition(tx, row, "failed", st.reason.empty() ? "declined" : st.reason, source);
    case Outcome::kCancelled:
      return Transition(tx, row, "cancelled", st.reason.empty() ? "cancelled_by_user" : st.reason, source);
    case Outcome::kError: return Transition(tx, row, "error", "provider_error", source);
  }
  return absl::OkStatus();
}

grpc::Status Service::CreatePayment(grpc::ServerContext* ctx, const v1::CreatePaymentRequest* req, v1::Payment* resp) {
  return grpcx::Handle(ctx, "CreatePayment", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    const std::string tenant = caller.tenant.empty() ? options_.default_tenant : caller.tenant;
    if (auto s = api::ValidateUuid(req->submission_id(), "submission_id"); !s.ok()) return s;
    if (auto s = api::ValidateMoney(req->amount(), "amount"); !s.ok()) return s;
    if (req->amount().amount_minor() == 0) return status::FieldError("amount", "invalid", "must be positive");
    if (auto s = api::ValidateText(req->description(), "description", 140); !s.ok()) return s;
    if (!req->reference().empty()) {
      if (auto s = api::ValidateText(req->reference(), "reference", 64); !s.ok()) return s;
    }
    static const std::regex kKey("^[\\x21-\\x7E]{8,255}$");
    if (!std::regex_match(req->idempotency_key(), kKey)) return status::FieldError("idempotency_key", "invalid");
    Provider* provider = req->provider().empty() ? providers_.front().get() : Find(req->provider());
    if (provider == nullptr) return status::FieldError("provider", "invalid_option");
    // Everything but the key: a repeat with the same key must carry exactly this.
    v1::CreatePaymentRequest content = *req;
    content.clear_idempotency_key();
    content.clear_tenant();
    content.clear_party();
    content.set_provider(provider->name());
    std::string fingerprint;
    content.SerializeToString(&fingerprint);
    fingerprint = absl::StrCat(*party, ":", absl::BytesToHexString(fingerprint));
    NewPayment n{tenant,
                 *party,
                 caller.acting_party.empty() ? "person" : "organisation",
                 req->submission_id(),
                 req->amount().amount_minor(),
                 req->amount().currency(),
                 req->description(),
                 req->reference(),
                 provider->name(),
                 req->idempotency_key(),
                 fingerprint};
    v1::Payment out;
    absl::Status s = store_->Transact([&](pqxx::work& tx) -> absl::Status {
      if (Store::HasSuccess(tx, tenant, n.submission_id)) return status::FieldConflict("submission", "already_paid");
      // The row stays locked until commit: concurrent duplicates wait and then return it.
      auto inserted = Store::Insert(tx, n);
      if (!inserted) return absl::AbortedError("concurrent request with the same idempotency key; retry");
      auto& [row, fresh] = *inserted;
      if (!fresh) {
        if (row.fingerprint != fingerprint) return status::FieldError("idempotency_key", "reused");
        out = row.payment;
        return absl::OkStatus();
      }
      Store::AddEvent(tx, row.payment.id(), "created", "", "api");
      const std::string base = absl::StrCat(options_.public_url, "/api/v1/payments/", row.payment.id());
      auto checkout = provider->Start(
          {row.payment.id(), n.amount_minor, n.currency, n.reference, n.description, base + "/return", base + "/return",
           absl::StrCat(options_.public_url, "/api/v1/payment-webhooks/", provider->name())});
      if (!checkout.ok()) {
        log::Warn("provider refused the checkout",
                  {{"provider", provider->name()}, {"error", std::string(checkout.status().message())}});
        if (auto t = Transition(tx, row, "error", "provider_error", "api"); !t.ok()) return t;
      } else {
        Store::SetStarted(tx, row.payment.id(), checkout->provider_ref, checkout->next_url);
        Store::AddEvent(tx, row.payment.id(), "started", "", "api", {{"provider_ref", checkout->provider_ref}});
      }
      auto current = Store::Get(tx, tenant, row.payment.id());
      out = current->payment;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    *resp = std::move(out);
    return absl::OkStatus();
  });
}

grpc::Status Service::GetPayment(grpc::ServerContext* ctx, const v1::GetPaymentRequest* req, v1::Payment* resp) {
  return grpcx::Handle(ctx, "GetPayment", [&](const auth::Caller& caller) -> absl::Status {
    if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
    if (auto s = CheckId(req->id()); !s.ok()) return s;
    auto party = auth::ScopeParty(caller);
    return store_->Transact([&](pqxx::work& tx) -> absl::Status {
      auto row = Store::Get(tx, caller.tenant, req->id());
      if (!row || (row->payment.party().id() != *party && !IsAdmin(caller))) {
        return absl::NotFoundError("payment not found");
      }
      *resp = row->payment;
      return absl::OkStatus();
    });
  });
}

absl::StatusOr<std::string> Service::Sync(const std::string& tenant, const std::string& id, const std::string& source,
                                          bool expire) {
  std::string state;
  absl::Status s = store_->Transact([&](pqxx::work& tx) -> absl::Status {
    auto row = Store::Lock(tx, tenant, id);
    if (!row) return absl::NotFoundError("payment not found");
    state = row->state;
    if (Final(row->state)) return absl::OkStatus();
    Provider* provider = Find(row->payment.provider());
    if (provider == nullptr) return absl::FailedPreconditionError("provider no longer configured");
    if (!row->payment.provider_reference().empty()) {
      auto st = provider->Query(row->payment.provider_reference());
      if (!st.ok()) return st.status();
      if (auto a = Apply(tx, *row, *st, source, *provider); !a.ok()) return a;
    }
    if (expire && !Final(row->state) && Store::AgeSeconds(tx, id) >= options_.expiry.count()) {
      if (auto t = Transition(tx, *row, "cancelled", "expired", "expiry"); !t.ok()) return t;
    }
    state = row->state;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return state;
}

grpc::Status Service::CompleteReturn(grpc::ServerContext* ctx, const v1::CompleteReturnRequest* req,
                                     v1::Payment* resp) {
  return grpcx::Handle(ctx, "CompleteReturn", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = CheckId(req->id()); !s.ok()) return s;
    const std::string tenant = caller.tenant.empty() ? options_.default_tenant : caller.tenant;
    // Any caller: the payer's browser returns without a session. It only asks the
    // provider; the answer carries nothing but the state.
    auto state = Sync(tenant, req->id(), "return", false);
    if (!state.ok()) return state.status();
    resp->set_id(req->id());
    resp->set_state(*state == "success"     ? v1::PAYMENT_STATE_SUCCESS
                    : *state == "failed"    ? v1::PAYMENT_STATE_FAILED
                    : *state == "cancelled" ? v1::PAYMENT_STATE_CANCELLED
                    : *state == "error"     ? v1::PAYMENT_STATE_ERROR
                    : *state == "submitted" ? v1::PAYMENT_STATE_SUBMITTED
                                            : v1::PAYMENT_STATE_STARTED);
    resp->set_finished(Final(*state));
    return absl::OkStatus();
  });
}

grpc::Status Service::HandleWebhook(grpc::ServerContext* ctx, const v1::HandleWebhookRequest* req,
                                    v1::HandleWebhookResponse* resp) {
  return grpcx::Handle(ctx, "HandleWebhook", [&]() -> absl::Status {
    Provider* provider = Find(req->provider());
    if (provider == nullptr) return absl::NotFoundError("no such provider");
    std::map<std::string, std::string> headers(req->headers().begin(), req->headers().end());
    auto reject = [&](absl::Status s) {
      WebhooksTotal().Add({{"provider", provider->name()}, {"outcome", "rejected"}}).Increment();
      log::Warn("webhook rejected", {{"provider", provider->name()}, {"error", std::string(s.message())}});
      return s;
    };
    auto event = provider->VerifyWebhook(headers, req->body());
    if (!event.ok()) return reject(event.status());
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    if (std::llabs(now - event->created_unix) > options_.webhook_window.count()) {
      return reject(absl::UnauthenticatedError("webhook timestamp outside the accepted window"));
    }
    std::string outcome = "applied";
    bool repeated = false;
    absl::Status s = store_->Transact([&](pqxx::work& tx) -> absl::Status {
      if (!Store::RecordWebhook(tx, provider->name(), event->event_id)) {
        repeated = true;
        return absl::AlreadyExistsError("event already processed");
      }
      auto row = Store::LockByProviderRef(tx, provider->name(), event->provider_ref);
      if (!row) return absl::NotFoundError("no payment for this notification");
      const std::string before = row->state;
      if (auto a = Apply(tx, *row, {event->outcome, ""}, "webhook", *provider); !a.ok()) return a;
      if (row->state == before) outcome = "ignored";
      return absl::OkStatus();
    });
    if (repeated) {
      WebhooksTotal().Add({{"provider", provider->name()}, {"outcome", "duplicate"}}).Increment();
      return s;
    }
    // Any other conflict is not this event's repeat: the provider is asked to send it again.
    if (s.code() == absl::StatusCode::kAlreadyExists) return absl::AbortedError("concurrent update, retry");
    if (!s.ok()) return s;
    WebhooksTotal().Add({{"provider", provider->name()}, {"outcome", outcome}}).Increment();
    resp->set_outcome(outcome);
    return absl::OkStatus();
  });
}

v1::ReconcileResponse Service::ReconcileNow(std::chrono::seconds older_than) {
  v1::ReconcileResponse out;
  std::vector<OpenPayment> open;
  absl::Status s = store_->Transact([&](pqxx::work& tx) {
    open = Store::Unfinished(tx, older_than.count(), 500);
    return absl::OkStatus();
  });
  if (!s.ok()) {
    log::Warn("reconciliation could not list payments", {{"error", std::string(s.message())}});
    return out;
  }
  for (const auto& p : open) {
    out.set_checked(out.checked() + 1);
    auto state = Sync(p.tenant, p.id, "reconcile", true);
    if (!state.ok()) {
      log::Warn("reconciliation of a payment failed",
                {{"payment", p.id}, {"error", std::string(state.status().message())}});
      continue;
    }
    if (*state == "cancelled") {
      out.set_expired(out.expired() + 1);  // Also cancellations learned now; both ended here.
    } else if (Final(*state)) {
      out.set_settled(out.settled() + 1);
    }
  }
  if (out.checked() > 0) {
    log::Info("reconciliation", {{"checked", out.checked()}, {"settled", out.settled()}, {"expired", out.expired()}});
  }
  return out;
}

grpc::Status Service::Reconcile(grpc::ServerContext* ctx, const v1::ReconcileRequest* req,
                                v1::ReconcileResponse* resp) {
  return grpcx::Handle(ctx, "Reconcile", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireRole(caller, "tenant-admin"); !s.ok()) return s;
    if (req->older_than_seconds() < 0) return status::FieldError("older_than_seconds", "out_of_range");
    *resp = ReconcileNow(std::chrono::seconds(req->older_than_seconds()));
    return absl::OkStatus();
  });
}

grpc::Status Service::CreateRefund(grpc::ServerContext* ctx, const v1::CreateRefundRequest* req, v1::Refund* resp) {
  return grpcx::Handle(ctx, "CreateRefund", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireRole(caller, "tenant-admin"); !s.ok()) return s;
    if (auto s = CheckId(req->payment_id()); !s.ok()) return s;
    if (req->amount().amount_minor() <= 0) return status::FieldError("amount", "invalid", "must be positive");
    if (!req->reason().empty()) {
      if (auto s = api::ValidateText(req->reason(), "reason", 200); !s.ok()) return s;
    }
    return store_->Transact([&](pqxx::work& tx) -> absl::Status {
      auto row = Store::Lock(tx, caller.tenant, req->payment_id());
      if (!row) return absl::NotFoundError("payment not found");
      const auto& p = row->payment;
      if (!req->amount().currency().empty() && req->amount().currency() != p.amount().currency()) {
        return status::FieldError("amount", "invalid", "currency of the payment required");
      }
      const int64_t available = p.refund_amount_available();
      if (req->refund_amount_available() != available) {
        return absl::AbortedError(absl::StrCat("refund_amount_available: stale; now ", available));
      }
      if (req->amount().amount_minor() > available) {
        return absl::FailedPreconditionError(absl::StrCat("amount: exceeds the available ", available));
      }
      Provider* provider = Find(p.provider());
      if (provider == nullptr) return absl::FailedPreconditionError("provider no longer configured");
      auto refund = Store::InsertRefund(tx, p.id(), req->amount().amount_minor(), p.amount().currency(), req->reason(),
                                        caller.account_id);
      auto r = provider->Refund(p.provider_reference(), req->amount().amount_minor(), p.amount().currency());
      const bool ok = r.ok() && r->succeeded;
      const std::string why = ok ? req->reason() : RefundFailure(r, p.id());
      Store::SettleRefund(tx, refund.id(), ok ? "success" : "error", r.ok() ? r->provider_ref : "", why);
      if (ok) Store::AddRefunded(tx, p.id(), req->amount().amount_minor());
      Store::AddEvent(tx, p.id(), row->state, ok ? "refunded" : "refund_failed", "refund",
                      {{"refund_id", refund.id()}, {"amount_minor", req->amount().amount_minor()}});
      auto entry = audit::Of(
          caller, "refund.create",
          {{"payment_id", p.id()}, {"refund_id", refund.id()}, {"amount_minor", req->amount().amount_minor()}});
      entry.outcome = ok ? "succeeded" : "failed";
      audit::Record(tx, entry);
      refund.set_state(ok ? "success" : "error");
      refund.set_reason(why);
      *resp = refund;
      return absl::OkStatus();
    });
  });
}

grpc::Status Service::GetReport(grpc::ServerContext* ctx, const v1::GetReportRequest* req, v1::Report* resp) {
  return grpcx::Handle(ctx, "GetReport", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireRole(caller, "tenant-admin"); !s.ok()) return s;
    absl::CivilDay day;
    if (!absl::ParseCivilTime(req->day(), &day)) return status::FieldError("day", "invalid_date");
    return store_->Transact([&](pqxx::work& tx) {
      *resp = Store::Report(tx, caller.tenant, absl::FormatCivilTime(day));
      return absl::OkStatus();
    });
  });
}

}  // namespace stadtportal::payment

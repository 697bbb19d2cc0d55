#include "services/payment/service.h"

#include <algorithm>

#include <google/protobuf/util/time_util.h>
#include <prometheus/counter.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "libs/api/api.h"
#include "libs/api/idempotency.h"
#include "libs/audit/audit.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"
#include "services/payment/states.h"

namespace stadtportal::payment {
namespace {

prometheus::Family<prometheus::Counter>& WebhooksTotal() {
  static auto& family = metrics::CounterFamily(
      "stadtportal_payment_webhooks_total",
      "Provider notifications, by provider and outcome (applied, ignored, rejected, duplicate).");
  return family;
}

prometheus::Family<prometheus::Counter>& AutomaticRefundsTotal() {
  static auto& family = metrics::CounterFamily("stadtportal_payment_automatic_refunds_total",
                                               "Money given back automatically: a second success for one submission, "
                                               "or a payment that succeeded after it had ended.");
  return family;
}

bool IsAdmin(const auth::Caller& c) { return auth::HasRole(c, "tenant-admin"); }

absl::Status CheckId(const std::string& id) { return api::CheckId(id, "payment"); }

// How long the submission service may take to answer what a payment is for.
constexpr auto kSubmissionDeadline = std::chrono::seconds(5);

std::string Rfc3339(const google::protobuf::Timestamp& t) { return google::protobuf::util::TimeUtil::ToString(t); }

// "success" for PAYMENT_STATE_SUCCESS: the state as the payment's history names it.
std::string StateName(v1::PaymentState state) {
  std::string name = absl::AsciiStrToLower(v1::PaymentState_Name(state));
  constexpr std::string_view kPrefix = "payment_state_";
  return name.rfind(kPrefix, 0) == 0 ? name.substr(kPrefix.size()) : name;
}

nlohmann::json MoneyJson(const common::v1::Money& m) {
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency()}};
}

// A payment as the export shows it: no provider reference, checkout link or idempotency key.
nlohmann::json PaymentJson(const v1::Payment& p) {
  auto history = nlohmann::json::array();
  for (const auto& e : p.events()) {
    history.push_back({{"state", e.state()}, {"reason", e.reason()}, {"source", e.source()}, {"at", Rfc3339(e.at())}});
  }
  auto refunds = nlohmann::json::array();
  for (const auto& r : p.refunds()) {
    refunds.push_back({{"id", r.id()},
                       {"amount", MoneyJson(r.amount())},
                       {"state", r.state()},
                       {"reason", r.reason()},
                       {"created_at", Rfc3339(r.created_at())}});
  }
  return {{"id", p.id()},
          {"submission_id", p.submission_id()},
          {"reference", p.reference()},
          {"description", p.description()},
          {"amount", MoneyJson(p.amount())},
          {"state", StateName(p.state())},
          {"reason", p.reason()},
          {"provider", p.provider()},
          {"created_at", Rfc3339(p.created_at())},
          {"updated_at", Rfc3339(p.updated_at())},
          {"history", std::move(history)},
          {"refunds", std::move(refunds)}};
}

}  // namespace

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.public_url = env.String("STADTPORTAL_PAYMENT_CALLBACK_URL", env.String("STADTPORTAL_PUBLIC_URL", o.public_url));
  o.return_url = env.String("STADTPORTAL_PAYMENT_RETURN_URL", o.return_url);
  if (!o.return_url.empty() && o.return_url.find("{payment}") == std::string::npos) {
    throw config::Error("STADTPORTAL_PAYMENT_RETURN_URL: must contain {payment}");
  }
  o.expiry = std::chrono::seconds(env.Int("STADTPORTAL_PAYMENT_EXPIRY_S", o.expiry.count(), 60, 7 * 86400));
  o.webhook_window =
      std::chrono::seconds(env.Int("STADTPORTAL_PAYMENT_WEBHOOK_WINDOW_S", o.webhook_window.count(), 10, 3600));
  return o;
}

Service::Service(std::shared_ptr<Store> store, std::vector<std::shared_ptr<Provider>> providers, Options options,
                 std::shared_ptr<grpc::Channel> submission, auth::Signer signer)
    : store_(std::move(store)),
      providers_(std::move(providers)),
      options_(std::move(options)),
      submission_(submission::v1::SubmissionService::NewStub(submission)),
      signer_(std::move(signer)) {
  AutomaticRefundsTotal().Add({});
  for (const auto& p : providers_) {
    for (const char* outcome : {"applied", "ignored", "rejected", "duplicate"}) {
      WebhooksTotal().Add({{"provider", p->name()}, {"outcome", outcome}});
    }
  }
}

Provider* Service::Find(const std::string& name) const {
  for (const auto& p : providers_) {
    if (p->name() == name) return p.get();
  }
  return nullptr;
}

absl::StatusOr<submission::v1::PaymentTerms> Service::Terms(const std::string& tenant, const std::string& submission_id,
                                                            const std::string& party) const {
  submission::v1::GetPaymentTermsRequest req;
  req.mutable_tenant()->set_key(tenant);
  req.set_submission_id(submission_id);
  req.set_party_id(party);
  submission::v1::PaymentTerms terms;
  auto ctx = grpcx::NewClientContext(kSubmissionDeadline, signer_.SignSelf(tenant, "submission"));
  absl::Status s = status::FromGrpc(submission_->GetPaymentTerms(ctx.get(), req, &terms));
  if (s.code() == absl::StatusCode::kNotFound) return absl::NotFoundError("submission not found");
  if (!s.ok()) {
    log::Warn("submission service did not answer",
              {{"submission", submission_id}, {"error", std::string(s.message())}});
    return absl::UnavailableError("submission service unavailable; retry");
  }
  return terms;
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

absl::StatusOr<std::string> Service::Continue(const v1::Payment& payment, Applied applied, const std::string& source,
                                              Provider& provider, bool expire) {
  // At most: capture, then apply what the capture answered (which asks for no second capture).
  while (true) {
    if (applied.next.refund) {
      const v1::Refund refund = *applied.next.refund;
      auto settled = FinishRefund(payment, refund, provider, false, {"refund", true, std::nullopt});
      AutomaticRefundsTotal().Add({}).Increment();
      log::Warn("payment refunded automatically", {{"payment", payment.id()},
                                                   {"submission", payment.submission_id()},
                                                   {"why", refund.reason()},
                                                   {"refunded", settled.ok() && settled->state() == "success"}});
      if (!settled.ok()) return settled.status();
    }
    if (!applied.next.capture) return applied.state;
    auto captured = provider.Capture(payment.provider_reference());
    if (!captured.ok()) {
      // Stays submitted: the reconciliation captures it later.
      log::Warn("capture failed", {{"payment", payment.id()}, {"error", std::string(captured.status().message())}});
      return applied.state;
    }
    if (captured->outcome == Outcome::kApproved) return applied.state;
    auto next = store_->ApplyProviderState(payment.tenant().key(), payment.id(), *captured, source, Expiry(expire));
    if (!next.ok()) return next.status();
    applied = *std::move(next);
  }
}

absl::StatusOr<v1::Refund> Service::FinishRefund(const v1::Payment& payment, const v1::Refund& refund,
                                                 Provider& provider, bool keep_in_doubt, const RefundRecord& how) {
  // The refund id is the provider's idempotency key: asked again, it gives nothing back twice.
  auto r = provider.Refund(payment.provider_reference(), refund.amount().amount_minor(), refund.amount().currency(),
                           refund.id());
  if (!r.ok() && keep_in_doubt) return r.status();
  const bool ok = r.ok() && r->succeeded;
  v1::Refund settled = refund;
  settled.set_state(ok ? "success" : "error");
  settled.set_reason(ok ? refund.reason() : RefundFailure(r, payment.id()));
  return store_->RecordRefund(payment, settled, r.ok() ? r->provider_ref : "", how);
}

grpc::Status Service::CreatePayment(grpc::ServerContext* ctx, const v1::CreatePaymentRequest* req, v1::Payment* resp) {
  return grpcx::Handle(ctx, "CreatePayment", [&](const auth::Caller& caller) -> absl::Status {
    auto party = auth::ScopeParty(caller);
    if (!party.ok()) return party.status();
    const std::string tenant = caller.tenant.empty() ? options_.default_tenant : caller.tenant;
    // What is paid comes from the submission, read for the paying party (so only its owner
    // pays it; anyone else's, like a malformed id, is not found), with no transaction held.
    if (auto s = api::CheckId(req->submission_id(), "submission"); !s.ok()) return s;
    auto terms = Terms(tenant, req->submission_id(), *party);
    if (!terms.ok()) return terms.status();
    if (terms->status() != "awaiting_payment") {
      return status::FieldConflict("status", "invalid",
                                   absl::StrCat("the submission is ", terms->status(), ", not awaiting payment"));
    }
    if (auto s = api::ValidateIdempotencyKey(req->idempotency_key()); !s.ok()) return s;
    Provider* provider = req->provider().empty() ? providers_.front().get() : Find(req->provider());
    if (provider == nullptr) return status::FieldError("provider", "invalid_option");
    if (auto s = api::ValidateMoney(terms->fee(), "amount"); !s.ok()) return s;
    if (terms->fee().amount_minor() == 0) return status::FieldError("amount", "invalid", "must be positive");
    if (auto s = api::ValidateText(terms->service_name().de(), "description", 140); !s.ok()) return s;
    if (!terms->reference().empty()) {
      if (auto s = api::ValidateText(terms->reference(), "reference", 64); !s.ok()) return s;
    }
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
                 terms->fee().amount_minor(),
                 terms->fee().currency(),
                 terms->service_name().de(),
                 terms->reference(),
                 provider->name(),
                 req->idempotency_key(),
                 fingerprint};
    // 1. Claim: the payment is inserted (or the key's payment found) in a short transaction.
    auto claimed = store_->Claim(n);
    if (!claimed.ok()) return claimed.status();
    const v1::Payment& p = claimed->payment;
    // Started or ended already: the key's answer. Still "created": this request inserted it,
    // or a concurrent or interrupted one with the same key did, and the checkout is
    // (re)started — the payment id is the provider's idempotency key, so all of them get the
    // one checkout.
    if (claimed->state != "created") {
      *resp = p;
      return absl::OkStatus();
    }
    // 2. The provider's checkout, with no transaction or pooled connection held.
    const std::string back =
        options_.return_url.empty()
            ? absl::StrCat(options_.public_url, "/api/v1/payments/", p.id(), "/return")
            : absl::StrReplaceAll(options_.return_url, {{"{payment}", p.id()}, {"{submission}", p.submission_id()}});
    auto checkout = provider->Start({p.id(), p.amount().amount_minor(), p.amount().currency(), p.reference(),
                                     p.description(), back, back,
                                     absl::StrCat(options_.public_url, "/api/v1/payment-webhooks/", provider->name())});
    if (!checkout.ok()) {
      log::Warn("provider refused the checkout",
                {{"provider", provider->name()}, {"error", std::string(checkout.status().message())}});
    }
    // 3. The outcome, in another short transaction, unless a concurrent duplicate recorded it.
    return grpcx::Respond(resp, store_->RecordCheckout(tenant, p.id(), checkout));
  });
}

grpc::Status Service::GetPayment(grpc::ServerContext* ctx, const v1::GetPaymentRequest* req, v1::Payment* resp) {
  return grpcx::Handle(ctx, "GetPayment", [&](const auth::Caller& caller) -> absl::Status {
    if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
    if (auto s = CheckId(req->id()); !s.ok()) return s;
    auto party = auth::ScopeParty(caller);
    auto row = store_->Get(caller.tenant, req->id());
    if (!row.ok()) return row.status();
    // Another party's payment is not found, like one that does not exist.
    if (row->payment.party().id() != *party && !IsAdmin(caller)) return absl::NotFoundError("payment not found");
    *resp = row->payment;
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> Service::Sync(const std::string& tenant, const std::string& id, const std::string& source,
                                          bool expire) {
  auto row = store_->Get(tenant, id);
  if (!row.ok()) return row.status();
  if (Final(row->state)) return row->state;
  Provider* provider = Find(row->payment.provider());
  if (provider == nullptr) return absl::FailedPreconditionError("provider no longer configured");
  ProviderState st;  // Without a checkout at the provider only the expiry applies.
  if (!row->payment.provider_reference().empty()) {
    auto queried = provider->Query(row->payment.provider_reference());  // No transaction held.
    if (!queried.ok()) return queried.status();
    st = *queried;
  }
  auto applied = store_->ApplyProviderState(tenant, id, st, source, Expiry(expire));
  if (!applied.ok()) return applied.status();
  return Continue(row->payment, *std::move(applied), source, *provider, expire);
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
    auto seen = store_->ApplyWebhook(provider->name(), *event);
    // A conflict is not this event's repeat: the provider is asked to send it again.
    if (seen.status().code() == absl::StatusCode::kAlreadyExists) return absl::AbortedError("concurrent update, retry");
    if (!seen.ok()) return seen.status();
    if (seen->repeated) {
      WebhooksTotal().Add({{"provider", provider->name()}, {"outcome", "duplicate"}}).Increment();
      return absl::AlreadyExistsError("event already processed");
    }
    // The notification is recorded with the change; a capture or refund that follows and
    // fails is left to the reconciliation.
    auto state = Continue(seen->row.payment, {seen->row.state, seen->next}, "webhook", *provider, false);
    if (!state.ok()) return state.status();
    const std::string outcome = *state == seen->before ? "ignored" : "applied";
    WebhooksTotal().Add({{"provider", provider->name()}, {"outcome", outcome}}).Increment();
    resp->set_outcome(outcome);
    return absl::OkStatus();
  });
}

v1::ReconcileResponse Service::ReconcileNow(std::chrono::seconds older_than) {
  v1::ReconcileResponse out;
  auto open = store_->Unfinished(older_than.count(), 500);
  if (!open.ok()) {
    log::Warn("reconciliation could not list payments", {{"error", std::string(open.status().message())}});
    return out;
  }
  for (const auto& p : *open) {
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
  ResolveRefundsInDoubt(older_than);
  return out;
}

void Service::ResolveRefundsInDoubt(std::chrono::seconds older_than) {
  auto payments = store_->RefundsInDoubt(older_than.count(), 100);
  if (!payments.ok()) {
    log::Warn("reconciliation could not list refunds", {{"error", std::string(payments.status().message())}});
    return;
  }
  for (const auto& d : *payments) {
    Provider* provider = Find(d.row.payment.provider());
    if (provider == nullptr) continue;
    for (const auto& refund : d.refunds) {
      auto settled = FinishRefund(d.row.payment, refund, *provider, true, {"reconcile", false, std::nullopt});
      log::Info("refund in doubt asked again", {{"payment", d.row.payment.id()},
                                                {"refund", refund.id()},
                                                {"state", settled.ok() ? settled->state() : "submitted"}});
    }
  }
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
    // 1. The refund is checked and inserted "submitted" (its amount no longer available).
    auto planned = store_->PlanRefund(caller.tenant, *req, caller.account_id,
                                      [this](const std::string& name) { return Find(name) != nullptr; });
    if (!planned.ok()) return planned.status();
    const auto& [payment, refund] = *planned;
    // 2. The provider, with no transaction held; 3. the outcome, history and audit entry.
    auto entry = audit::Of(
        caller, "refund.create",
        {{"payment_id", payment.id()}, {"refund_id", refund.id()}, {"amount_minor", refund.amount().amount_minor()}});
    auto settled = FinishRefund(payment, refund, *Find(payment.provider()), false, {"refund", false, entry});
    return grpcx::Respond(resp, std::move(settled));
  });
}

grpc::Status Service::GetReport(grpc::ServerContext* ctx, const v1::GetReportRequest* req, v1::Report* resp) {
  return grpcx::Handle(ctx, "GetReport", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = auth::RequireRole(caller, "tenant-admin"); !s.ok()) return s;
    absl::CivilDay day;
    if (!absl::ParseCivilTime(req->day(), &day)) return status::FieldError("day", "invalid_date");
    return grpcx::Respond(resp, store_->Report(caller.tenant, absl::FormatCivilTime(day)));
  });
}

grpc::Status Service::ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                         common::v1::PersonalData* resp) {
  return grpcx::Handle(ctx, "ExportPersonalData", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    auto records = store_->PersonalData(caller.tenant, *party);
    if (!records.ok()) return records.status();
    auto payments = nlohmann::json::array();
    for (const auto& p : records->payments) payments.push_back(PaymentJson(p));
    resp->set_service("payment");
    resp->set_json(nlohmann::json{{"payments", std::move(payments)}}.dump());
    return absl::OkStatus();
  });
}

grpc::Status Service::ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                          common::v1::RetainedRecords* resp) {
  return grpcx::Handle(ctx, "ListRetainedRecords", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    return grpcx::Respond(resp, store_->RetainedRecords(caller.tenant, *party));
  });
}

}  // namespace stadtportal::payment

#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "libs/auth/caller.h"
#include "libs/config/config.h"
#include "services/payment/provider.h"
#include "services/payment/store.h"
#include "stadtportal/payment/v1/payment.grpc.pb.h"

namespace stadtportal::payment {

struct Options {
  std::string default_tenant = config::kDefaultTenant;
  // The gateway's base URL as providers and payers reach it: return and webhook URLs
  // point there (STADTPORTAL_PAYMENT_CALLBACK_URL, else STADTPORTAL_PUBLIC_URL).
  std::string public_url = "http://127.0.0.1:8080";
  // Unpaid payments are cancelled (reason "expired") after this long.
  std::chrono::seconds expiry{90 * 60};
  // Webhooks older or newer than this are refused.
  std::chrono::seconds webhook_window{300};
  // STADTPORTAL_PAYMENT_EXPIRY_S, STADTPORTAL_PAYMENT_WEBHOOK_WINDOW_S.
  static Options FromEnv(const config::Env& env, const std::string& tenant);
};

// gRPC edge and state machine of payments:
//   created → started → submitted → success | failed | cancelled | error
// (created and started may also end directly). Every change is one transaction with
// the payment row locked: state, an append-only event, and — on success — the
// payment.succeeded event for the submission service.
class Service final : public v1::PaymentService::Service {
 public:
  // `providers`: the first is the default.
  Service(std::shared_ptr<Store> store, std::vector<std::shared_ptr<Provider>> providers, Options options);

  grpc::Status CreatePayment(grpc::ServerContext* ctx, const v1::CreatePaymentRequest* req, v1::Payment* resp) override;
  grpc::Status GetPayment(grpc::ServerContext* ctx, const v1::GetPaymentRequest* req, v1::Payment* resp) override;
  grpc::Status CompleteReturn(grpc::ServerContext* ctx, const v1::CompleteReturnRequest* req,
                              v1::Payment* resp) override;
  grpc::Status HandleWebhook(grpc::ServerContext* ctx, const v1::HandleWebhookRequest* req,
                             v1::HandleWebhookResponse* resp) override;
  grpc::Status Reconcile(grpc::ServerContext* ctx, const v1::ReconcileRequest* req,
                         v1::ReconcileResponse* resp) override;
  grpc::Status CreateRefund(grpc::ServerContext* ctx, const v1::CreateRefundRequest* req, v1::Refund* resp) override;
  grpc::Status GetReport(grpc::ServerContext* ctx, const v1::GetReportRequest* req, v1::Report* resp) override;

  // Asks the providers about unfinished payments at least `older_than` old, settles
  // them and expires the unpaid (the periodic job and the Reconcile call).
  v1::ReconcileResponse ReconcileNow(std::chrono::seconds older_than);

 private:
  Provider* Find(const std::string& name) const;
  // Moves the payment along what the provider says.
  absl::Status Apply(pqxx::work& tx, PaymentRow& row, const ProviderState& st, const std::string& source,
                     Provider& provider);
  absl::Status Transition(pqxx::work& tx, PaymentRow& row, const std::string& to, const std::string& reason,
                          const std::string& source);
  // Gives all money of a payment back at once (duplicate or late payments).
  void RefundAutomatically(pqxx::work& tx, PaymentRow& row, Provider& provider, const std::string& why);
  // Asks the provider about one unfinished payment; returns its state afterwards.
  absl::StatusOr<std::string> Sync(const std::string& tenant, const std::string& id, const std::string& source,
                                   bool expire);

  std::shared_ptr<Store> store_;
  std::vector<std::shared_ptr<Provider>> providers_;
  Options options_;
};

}  // namespace stadtportal::payment

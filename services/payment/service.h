#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "libs/auth/caller.h"
#include "libs/config/config.h"
#include "services/payment/provider.h"
#include "services/payment/store.h"
#include "stadtportal/payment/v1/payment.grpc.pb.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

namespace stadtportal::payment {

struct Options {
  std::string default_tenant = config::kDefaultTenant;
  // The gateway's base URL as providers and payers reach it: return and webhook URLs
  // point there (STADTPORTAL_PAYMENT_CALLBACK_URL, else STADTPORTAL_PUBLIC_URL).
  std::string public_url = "http://127.0.0.1:8080";
  // Where the provider sends the payer back (STADTPORTAL_PAYMENT_RETURN_URL): a template
  // with {payment} and {submission}, e.g. the web portal's
  // https://portal.example/submissions/{submission}/paid?payment={payment}, whose page
  // settles the payment through GET /api/v1/payments/{id}/return. Empty: that API route.
  std::string return_url;
  // Unpaid payments are cancelled (reason "expired") after this long.
  std::chrono::seconds expiry{90 * 60};
  // Webhooks older or newer than this are refused.
  std::chrono::seconds webhook_window{300};
  // STADTPORTAL_PAYMENT_EXPIRY_S, STADTPORTAL_PAYMENT_WEBHOOK_WINDOW_S.
  static Options FromEnv(const config::Env& env, const std::string& tenant);
};

// gRPC edge and workflow of payments (states: services/payment/states.h): each step that
// changes a payment is one short store transaction (services/payment/store.h); provider
// calls run between such transactions, never inside one (ADR 0017).
class Service final : public v1::PaymentService::Service {
 public:
  // `providers`: the first is the default. The submission service is asked for the fee
  // and status of what is paid, as the platform service `payment` (its tokens signed
  // by `signer`, the payment service's own key).
  Service(std::shared_ptr<Store> store, std::vector<std::shared_ptr<Provider>> providers, Options options,
          std::shared_ptr<grpc::Channel> submission, auth::Signer signer);

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
  // The person's own payments and refunds (docs/api/export/payment.schema.json), and the
  // ones a rule keeps after an erasure; only the person acting as themself.
  grpc::Status ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                  common::v1::PersonalData* resp) override;
  grpc::Status ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                   common::v1::RetainedRecords* resp) override;

  // Asks the providers about unfinished payments at least `older_than` old, settles
  // them and expires the unpaid (the periodic job and the Reconcile call).
  v1::ReconcileResponse ReconcileNow(std::chrono::seconds older_than);

 private:
  Provider* Find(const std::string& name) const;
  // What paying the submission takes (fee, reference, name, status), if it is `party`'s.
  absl::StatusOr<submission::v1::PaymentTerms> Terms(const std::string& tenant, const std::string& submission_id,
                                                     const std::string& party) const;
  // With `expire`, the expiry an unpaid payment is cancelled after (Store::ApplyProviderState).
  std::optional<std::chrono::seconds> Expiry(bool expire) const {
    return expire ? std::optional<std::chrono::seconds>(options_.expiry) : std::nullopt;
  }
  // Does what a committed change left (capture, automatic refund), each provider call outside
  // any transaction and each outcome recorded in a short one; returns the state afterwards.
  absl::StatusOr<std::string> Continue(const v1::Payment& payment, Applied applied, const std::string& source,
                                       Provider& provider, bool expire);
  // Asks the provider for a "submitted" refund (no transaction or connection held), then records
  // the outcome with the payment locked. With `keep_in_doubt`, a refund the provider could not
  // be asked about stays submitted (the reconciliation asks again with the same refund id).
  absl::StatusOr<v1::Refund> FinishRefund(const v1::Payment& payment, const v1::Refund& refund, Provider& provider,
                                          bool keep_in_doubt, const RefundRecord& how);
  // Asks the provider about one unfinished payment; returns its state afterwards.
  absl::StatusOr<std::string> Sync(const std::string& tenant, const std::string& id, const std::string& source,
                                   bool expire);
  // Asks the providers again about refunds whose outcome was never recorded (see ADR 0017).
  void ResolveRefundsInDoubt(std::chrono::seconds older_than);

  std::shared_ptr<Store> store_;
  std::vector<std::shared_ptr<Provider>> providers_;
  Options options_;
  std::unique_ptr<submission::v1::SubmissionService::Stub> submission_;
  auth::Signer signer_;
};

}  // namespace stadtportal::payment

#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "libs/auth/caller.h"
#include "libs/config/config.h"
#include "services/submission/form.h"
#include "services/submission/kpi.h"
#include "services/submission/store.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"

namespace stadtportal::submission {

struct Options {
  std::string default_tenant = config::kDefaultTenant;
  // Prefix of submission references ("NUE" → NUE-2026-000123).
  std::string reference_prefix = "NUE";
  // Drafts expire this long after their last change.
  std::chrono::hours draft_lifetime{30 * 24};
  // KPI cells standing for fewer citizens are suppressed (small-number protection).
  int kpi_min_citizens = 5;
  // STADTPORTAL_SUBMISSION_REFERENCE_PREFIX, STADTPORTAL_DRAFT_LIFETIME_HOURS,
  // STADTPORTAL_KPI_MIN_CITIZENS (1..100).
  static Options FromEnv(const config::Env& env, const std::string& tenant);
};

// gRPC edge of the submission service: validates requests, applies the form rules,
// calls the store, maps errors.
class Service final : public v1::SubmissionService::Service {
 public:
  Service(std::shared_ptr<Store> store, Options options)
      : store_(std::move(store)), options_(std::move(options)), kpis_(store_->pool()) {}

  grpc::Status ListOnlineServices(grpc::ServerContext* ctx, const v1::ListOnlineServicesRequest* req,
                                  v1::ListOnlineServicesResponse* resp) override;
  grpc::Status RecordViews(grpc::ServerContext* ctx, const v1::RecordViewsRequest* req,
                           v1::RecordViewsResponse* resp) override;
  grpc::Status GetOnlineService(grpc::ServerContext* ctx, const v1::GetOnlineServiceRequest* req,
                                v1::OnlineService* resp) override;
  grpc::Status PublishOnlineService(grpc::ServerContext* ctx, const v1::PublishOnlineServiceRequest* req,
                                    v1::OnlineService* resp) override;
  grpc::Status CreateDraft(grpc::ServerContext* ctx, const v1::CreateDraftRequest* req, v1::Draft* resp) override;
  grpc::Status GetDraft(grpc::ServerContext* ctx, const v1::GetDraftRequest* req, v1::Draft* resp) override;
  grpc::Status UpdateDraft(grpc::ServerContext* ctx, const v1::UpdateDraftRequest* req, v1::Draft* resp) override;
  grpc::Status ListDrafts(grpc::ServerContext* ctx, const v1::ListDraftsRequest* req,
                          v1::ListDraftsResponse* resp) override;
  grpc::Status DeleteDraft(grpc::ServerContext* ctx, const v1::DeleteDraftRequest* req,
                           v1::DeleteDraftResponse* resp) override;
  grpc::Status ValidateDraft(grpc::ServerContext* ctx, const v1::ValidateDraftRequest* req,
                             v1::ValidateDraftResponse* resp) override;
  grpc::Status AddAttachment(grpc::ServerContext* ctx, const v1::AddAttachmentRequest* req,
                             v1::Attachment* resp) override;
  grpc::Status DeleteAttachment(grpc::ServerContext* ctx, const v1::DeleteAttachmentRequest* req,
                                v1::DeleteAttachmentResponse* resp) override;
  grpc::Status GetAttachment(grpc::ServerContext* ctx, const v1::GetAttachmentRequest* req,
                             v1::AttachmentContent* resp) override;
  grpc::Status SubmitDraft(grpc::ServerContext* ctx, const v1::SubmitDraftRequest* req, v1::Submission* resp) override;
  grpc::Status ListSubmissions(grpc::ServerContext* ctx, const v1::ListSubmissionsRequest* req,
                               v1::ListSubmissionsResponse* resp) override;
  grpc::Status GetSubmission(grpc::ServerContext* ctx, const v1::GetSubmissionRequest* req,
                             v1::Submission* resp) override;
  grpc::Status WithdrawSubmission(grpc::ServerContext* ctx, const v1::WithdrawSubmissionRequest* req,
                                  v1::Submission* resp) override;
  grpc::Status GetReceipt(grpc::ServerContext* ctx, const v1::GetReceiptRequest* req, v1::Receipt* resp) override;
  grpc::Status GiveFeedback(grpc::ServerContext* ctx, const v1::GiveFeedbackRequest* req, v1::Feedback* resp) override;
  grpc::Status GetDeliverySnapshot(grpc::ServerContext* ctx, const v1::GetDeliverySnapshotRequest* req,
                                   v1::DeliverySnapshot* resp) override;
  grpc::Status SetStatus(grpc::ServerContext* ctx, const v1::SetStatusRequest* req, v1::Submission* resp) override;
  grpc::Status GetPaymentTerms(grpc::ServerContext* ctx, const v1::GetPaymentTermsRequest* req,
                               v1::PaymentTerms* resp) override;
  // The person's own data (docs/api/export/submission.schema.json): drafts and submissions,
  // the files of both and a receipt per submission; only the person acting as themself.
  grpc::Status ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                  common::v1::PersonalData* resp) override;
  grpc::Status GetPersonalDataFile(grpc::ServerContext* ctx, const common::v1::PersonalDataFileRequest* req,
                                   common::v1::ExportFile* resp) override;
  grpc::Status ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                   common::v1::RetainedRecords* resp) override;
  grpc::Status GetKpis(grpc::ServerContext* ctx, const v1::GetKpisRequest* req, v1::GetKpisResponse* resp) override;
  grpc::Status GetFunnel(grpc::ServerContext* ctx, const v1::GetFunnelRequest* req,
                         v1::GetFunnelResponse* resp) override;

  // Writes the catalogue views counted since the last flush (a periodic job and at stop):
  // one funnel row per tenant and service instead of one write per page view.
  void FlushViews();

 private:
  // A published form version (immutable, so cached for good).
  struct Published {
    nlohmann::json definition;
    Form form;
  };
  absl::StatusOr<std::shared_ptr<const Published>> Load(const std::string& tenant, const std::string& service_id,
                                                        int version);
  // The draft of the caller's scope party with its form.
  absl::StatusOr<std::pair<v1::Draft, std::shared_ptr<const Published>>> LoadDraft(const Owner& owner,
                                                                                   const std::string& id);
  // Fills the fee for the answers so far.
  void SetFee(const Published& p, const nlohmann::json& data, common::v1::Money* fee) const;
  // The receipt of a submission (PDF) in `language`, and its file name.
  absl::StatusOr<std::pair<std::string, std::string>> Receipt(const std::string& tenant, const v1::Submission& s,
                                                              const std::string& language);
  // Full validation of a draft; `step` "" = all.
  std::vector<FieldError> Check(const Published& p, const v1::Draft& d, const std::string& step) const;

  // The KPI query of a kpi-reader of the caller's tenant, for an existing service.
  absl::StatusOr<KpiQuery> KpiRequest(const auth::Caller& caller, const std::string& service_id,
                                      const std::string& from, const std::string& to, const std::string& granularity);

  std::shared_ptr<Store> store_;
  Options options_;
  Kpis kpis_;
  static constexpr size_t kMaxViewKeys = 10000;
  std::mutex views_mu_;
  std::map<std::pair<std::string, std::string>, int> views_;  // (tenant, service) → count
  std::mutex cache_mu_;
  std::map<std::tuple<std::string, std::string, int>, std::shared_ptr<const Published>> cache_;
};

// The caller's data scope; UNAUTHENTICATED for anonymous callers.
absl::StatusOr<Owner> OwnerOf(const auth::Caller& caller);

// INVALID_ARGUMENT carrying every field error ("data.copies: too_small; …").
absl::Status FieldErrors(const std::vector<FieldError>& errors, const std::string& prefix);

}  // namespace stadtportal::submission

#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/api/api.h"
#include "libs/db/pool.h"
#include "services/submission/catalogue.h"
#include "services/submission/status.h"
#include "stadtportal/submission/v1/submission.pb.h"

namespace stadtportal::submission {

struct CatalogueQuery {
  std::string tenant;
  std::string text;      // "" = all
  std::string category;  // "" = all
  std::string leika;     // The federal service key, exactly; "" = all
  api::Page page;
};

// Who a draft or submission belongs to.
struct Owner {
  std::string tenant;
  std::string party_id;
};

// One funnel event (no personal data).
struct FunnelEvent {
  std::string event;  // viewed draft_started step_completed saved validation_failed submitted abandoned
  std::string service_id;
  std::string draft_id;  // "" when none
  std::string step;
  std::string field;
  std::string rule;
  int count = 1;
};

// What submitting a draft writes, decided by the service after full validation.
struct NewSubmission {
  Owner owner;
  std::string account_id;
  std::string draft_id;
  int64_t draft_version = 0;  // The version validated; a change since then aborts.
  std::string idempotency_key;
  std::string reference_prefix;  // "NUE"
  nlohmann::json data;           // Visible answers only.
  int64_t fee_minor = 0;
  std::string fee_currency;
};

// The submission schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // Catalogue files → tables: service rows follow the newest file; a version already
  // published must be byte-identical (FAILED_PRECONDITION otherwise), or be that
  // definition without its service key (published before definitions carried one).
  absl::Status SyncCatalogue(const std::vector<Definition>& definitions);
  // A new version (exactly current + 1, else ABORTED) published by an admin.
  absl::StatusOr<v1::OnlineService> Publish(const Definition& d, const std::string& published_by);

  // One page ordered by id, and the token of the next ("" when there is none).
  absl::StatusOr<v1::ListOnlineServicesResponse> ListOnlineServices(const CatalogueQuery& q);
  // With form_json of the current version.
  absl::StatusOr<v1::OnlineService> GetOnlineService(const std::string& tenant, const std::string& id);
  // The full definition of one published version.
  absl::StatusOr<nlohmann::json> GetDefinition(const std::string& tenant, const std::string& service_id, int version);

  absl::Status RecordFunnel(const std::string& tenant, const std::vector<FunnelEvent>& events);

  absl::StatusOr<v1::Draft> CreateDraft(const Owner& owner, const std::string& account_id,
                                        const std::string& service_id, int form_version, const nlohmann::json& data,
                                        const std::vector<std::string>& read_only, std::chrono::hours lifetime);
  // NOT_FOUND for another party's draft.
  absl::StatusOr<v1::Draft> GetDraft(const Owner& owner, const std::string& id);
  // ABORTED when the draft's version is not `expected_version`; extends the expiry.
  absl::StatusOr<v1::Draft> UpdateDraft(const Owner& owner, const std::string& id, int64_t expected_version,
                                        const nlohmann::json& data, const std::string& completed_step,
                                        std::chrono::hours lifetime);
  absl::StatusOr<v1::ListDraftsResponse> ListDrafts(const Owner& owner, const api::Page& page);
  absl::Status DeleteDraft(const Owner& owner, const std::string& id);
  // Deletes up to `limit` expired drafts (funnel: abandoned); returns how many.
  absl::StatusOr<int> PurgeExpiredDrafts(int limit);

  // Attachments of a draft: at most `max_files` per field (FAILED_PRECONDITION beyond).
  absl::StatusOr<v1::Attachment> AddAttachment(const Owner& owner, const std::string& draft_id,
                                               const v1::Attachment& meta, const std::string& content, int max_files);
  absl::StatusOr<v1::AttachmentContent> GetAttachment(const Owner& owner, const std::string& id);
  absl::Status DeleteAttachment(const Owner& owner, const std::string& id);

  // The submission an idempotency key already produced, with the draft it came from.
  absl::StatusOr<std::optional<std::pair<v1::Submission, std::string>>> FindByIdempotencyKey(const Owner& owner,
                                                                                             const std::string& key);
  absl::StatusOr<v1::Submission> Submit(const NewSubmission& s);
  absl::StatusOr<v1::ListSubmissionsResponse> ListSubmissions(const Owner& owner, const std::string& status,
                                                              const api::Page& page);
  absl::StatusOr<v1::Submission> GetSubmission(const Owner& owner, const std::string& id);
  // FAILED_PRECONDITION "status: decided" once approved, rejected, withdrawn or closed.
  absl::StatusOr<v1::Submission> Withdraw(const Owner& owner, const std::string& id);
  // payment.succeeded: awaiting_payment → paid, then ready for delivery (an event),
  // inside the consumer's transaction (exactly once with its inbox).
  static absl::Status MarkPaid(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                               const std::string& payment_id);
  // The department's side: the snapshot with files, and status changes (status.h).
  absl::StatusOr<v1::DeliverySnapshot> Snapshot(const std::string& tenant, const std::string& id);
  absl::StatusOr<v1::Submission> SetStatus(const std::string& tenant, const std::string& id, const std::string& status,
                                           const std::string& note);
  // FAILED_PRECONDITION "status: illegal_transition" unless `actor` may move the
  // submission to `status` (MayMove); the same status again is no change.
  static absl::Status ChangeStatus(pqxx::work& tx, Actor actor, const std::string& tenant, const std::string& id,
                                   const std::string& status, const std::string& note);
  // What the connector reports, inside the consumer's transaction. Delivered and received
  // by the department end a delay; a later status (the department already answered)
  // stays; a submission of another tenant is not touched.
  static absl::Status MarkDelivered(pqxx::work& tx, const std::string& tenant, const std::string& id);
  static absl::Status MarkReceived(pqxx::work& tx, const std::string& tenant, const std::string& id);
  static absl::Status MarkDelayed(pqxx::work& tx, const std::string& tenant, const std::string& id);
  // ALREADY_EXISTS when feedback was given.
  absl::StatusOr<v1::Feedback> GiveFeedback(const Owner& owner, const std::string& submission_id, int rating,
                                            const std::string& comment);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::submission

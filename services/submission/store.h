#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/api/api.h"
#include "libs/audit/audit.h"
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

// A submission of lasting value whose retention ended, as the archive receives it: the
// snapshot with its answers, status history and files, and the rule that kept it.
struct ArchiveRecord {
  std::string tenant;
  v1::DeliverySnapshot snapshot;
  int retention_years = 0;
  std::string legal_basis;
};

// What the retention job did to one submission.
struct ExpiredSubmission {
  std::string tenant;
  std::string id;
  std::string reference;     // Set when handed over.
  bool handed_over = false;  // Written to the archive before it was anonymised.
};

// The person's own drafts and submissions, as the export reads them (one transaction):
// each with its files' metadata; submissions with their status history and feedback.
struct PersonalRecords {
  std::vector<v1::Draft> drafts;
  std::vector<v1::Submission> submissions;
  std::map<std::string, v1::Feedback> feedback;  // By submission id.
};

// What an erasure removed or anonymised.
struct Erased {
  int64_t drafts = 0;       // Deleted with their files.
  int64_t submissions = 0;  // Anonymised: not kept by a retention rule.
  int64_t authored = 0;     // An organisation's drafts and submissions that no longer name the person's account.
  int64_t events = 0;       // Published outbox rows naming the person.
};

// The submission schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  // Every statement of the schema, the KPIs' (Kpis::Prepare) too.
  static void Prepare(pqxx::connection& conn);
  db::Pool& pool() { return pool_; }

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
  // Deletes up to `limit` drafts expired by `now` (the jobs' clock; funnel: abandoned);
  // returns how many.
  absl::StatusOr<int> PurgeExpiredDrafts(int limit, absl::Time now);

  // Attachments of a draft: at most `max_files` per field (FAILED_PRECONDITION beyond).
  absl::StatusOr<v1::Attachment> AddAttachment(const Owner& owner, const std::string& draft_id,
                                               const v1::Attachment& meta, const std::string& content, int max_files);
  absl::StatusOr<v1::AttachmentContent> GetAttachment(const Owner& owner, const std::string& id);
  absl::Status DeleteAttachment(const Owner& owner, const std::string& id);

  // The submission an idempotency key already produced, with the draft it came from.
  absl::StatusOr<std::optional<std::pair<v1::Submission, std::string>>> FindByIdempotencyKey(const Owner& owner,
                                                                                             const std::string& key);
  absl::StatusOr<v1::Submission> Submit(const NewSubmission& s);
  // `archived`: unset all, false the open ones, true the closed ones (Closed).
  absl::StatusOr<v1::ListSubmissionsResponse> ListSubmissions(const Owner& owner, const std::string& status,
                                                              std::optional<bool> archived, const api::Page& page);
  absl::StatusOr<v1::Submission> GetSubmission(const Owner& owner, const std::string& id);
  // FAILED_PRECONDITION "status: decided" once approved, rejected, withdrawn or closed.
  absl::StatusOr<v1::Submission> Withdraw(const Owner& owner, const std::string& id);
  // payment.succeeded: awaiting_payment → paid, then ready for delivery (an event),
  // inside the consumer's transaction (exactly once with its inbox).
  static absl::Status MarkPaid(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                               const std::string& payment_id);
  // payment.failed: counted for the KPIs under the submission's online service (nothing
  // moves: the applicant may pay again). A submission not found (another tenant's, or
  // erased) is skipped.
  static absl::Status RecordPaymentFailure(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                                           const std::string& provider, const std::string& outcome,
                                           const std::string& occurred_at);
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
  // The retention job's step: claims the oldest submission whose retain_until is at or
  // before `now` (FOR UPDATE SKIP LOCKED: replicas take different ones) and, in one
  // transaction, hands it to `hand_over` if its service has lasting value and it was not
  // handed over yet (an error rolls everything back), then deletes its files and
  // anonymises it: party, answers, status notes and feedback comment go; service, form
  // version, reference, dates, status, fee and rating stay for the statistics. Without
  // `archive`, submissions of lasting value not handed over are left waiting.
  // Nothing to do: nullopt.
  using HandOver = std::function<absl::Status(const ArchiveRecord&)>;
  absl::StatusOr<std::optional<ExpiredSubmission>> EndRetention(absl::Time now, bool archive,
                                                                const HandOver& hand_over);
  // How many submissions of lasting value wait for the archive (no folder configured).
  absl::StatusOr<int64_t> WaitingForArchive(absl::Time now);

  // The party's submissions a retention rule still keeps (every one not anonymised yet):
  // closed ones until their retain_until, open ones with `until` empty (the rule starts
  // when the procedure closes). At most kMaxRetainedRecords, newest first.
  absl::StatusOr<common::v1::RetainedRecords> RetainedRecords(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxRetainedRecords = 5000;

  // The export (ExportPersonalData): the party's drafts and submissions, oldest first, at
  // most kMaxExportRecords of each kind (and of files, status changes).
  absl::StatusOr<PersonalRecords> PersonalData(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxExportRecords = 10000;

  // party.erasure_requested, in the consumer's transaction: the party's drafts are deleted
  // with their files; its submissions not kept by a retention rule (the complement of
  // RetainedRecords' condition) are anonymised as the retention job does; the account is
  // removed from the organisations' drafts and submissions it wrote; the published events
  // naming the party go. Retained submissions stay untouched. Idempotent.
  static absl::StatusOr<Erased> Erase(pqxx::work& tx, const std::string& tenant, const std::string& party_id,
                                      const std::string& account_id);

  // ALREADY_EXISTS when feedback was given.
  absl::StatusOr<v1::Feedback> GiveFeedback(const Owner& owner, const std::string& submission_id, int rating,
                                            const std::string& comment);

  // A partner portal's read, published for the person's access log (the event is the
  // record: the read itself changes nothing here).
  absl::Status RecordAccess(const audit::Access& access) { return audit::RecordAccess(pool_, access); }

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::submission

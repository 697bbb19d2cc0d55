#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/api/api.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "stadtportal/common/v1/common.pb.h"
#include "stadtportal/connector/v1/connector.pb.h"
#include "stadtportal/events/v1/events.pb.h"

namespace stadtportal::connector {

struct DestinationRow {
  std::string tenant;
  std::string id;
  std::string name;
  std::string mode;  // "push" | "pull"
  std::string endpoint_url;
  std::string secret;  // "" keeps the current one.
};

// A due push delivery, claimed by one worker until `lease_token`'s lease ends.
struct Due {
  std::string tenant;
  std::string submission_id;
  std::string destination;
  std::string endpoint_url;
  std::string secret;
  int attempts = 0;
  int64_t age_seconds = 0;
  std::string lease_token;
  // The submission's snapshot (a serialized submission.v1.DeliverySnapshot) once fetched.
  std::optional<std::string> snapshot;
  // The trace of the submit that created the delivery ("" for deliveries from before).
  std::string traceparent;
};

// One attempt at a push delivery; an empty error means delivered.
struct Attempt {
  int http_status = 0;
  std::string error;
  int duration_ms = 0;
  // On failure: when to try again, or give up (a dead letter).
  int64_t retry_in_ms = 0;
  bool dead = false;
};

// Circuit breaker per destination: `threshold` failures in a row open it for `open_for_s`;
// a success closes it.
struct Breaker {
  int threshold = 5;
  int open_for_s = 30;
};

// What an attempt's record changed.
enum class Recorded {
  kApplied,    // The attempt and the delivery's new state; the lease ended.
  kLeaseLost,  // The same, though the lease had ended and another worker claimed the delivery
               // meanwhile: that worker's lease stays.
  kMovedOn,    // No longer pending (withdrawn, acknowledged or delivered meanwhile): the attempt only.
  kDuplicate,  // The claim's attempt is on record already: nothing changed.
};

// What waits: dead letters, and the age of the oldest undelivered submission; and what
// was withdrawn before delivery.
struct Backlog {
  int64_t dead_letters = 0;
  int64_t oldest_undelivered_seconds = 0;
  int64_t withdrawn = 0;
};

// The person's deliveries and the back offices' reads of them, as the export reads them.
struct PersonalDelivery {
  v1::Delivery delivery;
  std::string destination_name;  // The department's system, as registered ("" if no longer).
};
struct PersonalRead {
  int64_t id = 0;
  std::string submission_id;
  std::string reference;
  std::string client_id;   // The back office's client.
  std::string department;  // Its destination's name.
  std::string action;      // fetch, messages
  std::string purpose;
  google::protobuf::Timestamp at;
};
struct PersonalDeliveries {
  std::vector<PersonalDelivery> deliveries;
  std::vector<PersonalRead> reads;
};

// What an erasure changed.
struct ErasedDeliveries {
  int64_t deliveries = 0;  // Received by the department: snapshot and party removed.
  int64_t reads = 0;       // Access log rows that no longer name the party.
  int64_t events = 0;      // Published outbox rows naming the person.
};

// The retention rule of a delivery the department has not received yet.
inline constexpr char kDeliveryRule[] = "kept until the department received the submission";
inline constexpr char kDeliveryLegalBasis[] =
    "the submission's legal basis (Art. 6(1)(e) GDPR with the law of its procedure): handing it to the department "
    "that decides it";

// The refusal of a back office's work on a delivery the applicant withdrew
// (FAILED_PRECONDITION "state: withdrawn by the applicant", code invalid).
absl::Status WithdrawnRefusal();

// The connector schema: all SQL of the service, as named prepared statements. Every method
// is one short transaction; the static ones run in an event consumer's transaction.
// Delivery states: pending → delivered → acknowledged; pending → dead (replayed to
// pending); pending or dead → withdrawn (the applicant withdrew before delivery).
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // `audit`: the administrator's entry, recorded in the same transaction.
  absl::StatusOr<v1::Destination> PutDestination(const DestinationRow& d, const audit::Entry& audit);
  // Ordered by id.
  absl::StatusOr<v1::ListDestinationsResponse> ListDestinations(const std::string& tenant, const api::Page& page);
  absl::StatusOr<std::optional<DestinationRow>> FindDestination(const std::string& tenant, const std::string& id);

  // The delivery worker. Claims up to `limit` due push deliveries of destinations whose
  // circuit is closed, for `lease` (SKIP LOCKED, rows not locked beyond the claim).
  absl::StatusOr<std::vector<Due>> Claim(int limit, std::chrono::milliseconds lease, const std::string& lease_token);
  // Keeps the fetched snapshot with a delivery the caller holds the lease of.
  absl::Status KeepSnapshot(const Due& due, const std::string& snapshot);
  // Records the attempt of a claim (once) and, while the delivery is pending, its new
  // state, breaker and events (delivery.delivered, the first delivery.delayed); ends the
  // lease if it is still the caller's.
  absl::StatusOr<Recorded> Record(const Due& due, const Attempt& attempt, const Breaker& breaker);
  absl::StatusOr<Backlog> ReadBacklog();

  // Event consumers. A pending delivery (once per submission): false when it exists already.
  static bool AddDelivery(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                          const std::string& destination, const std::string& party_id, const std::string& reference,
                          const std::string& service_id);
  static bool HasDestination(pqxx::work& tx, const std::string& tenant, const std::string& id);
  // Gives a pending delivery up at once (a dead letter with `error`).
  static void DeadLetter(pqxx::work& tx, const std::string& submission_id, const std::string& error);
  // Notes the withdrawal (also for a delivery that arrives later) and withdraws the
  // tenant's delivery if it is pending or dead; false when there was none to withdraw.
  static bool Withdraw(pqxx::work& tx, const std::string& tenant, const std::string& submission_id);
  static bool WasWithdrawn(pqxx::work& tx, const std::string& tenant, const std::string& submission_id);

  // Operators and back offices.
  absl::StatusOr<v1::ListDeliveriesResponse> ListDeliveries(const std::string& tenant, const std::string& destination,
                                                            const std::string& state, int limit);
  absl::StatusOr<v1::ListAttemptsResponse> ListAttempts(const std::string& tenant, const std::string& submission_id);
  absl::StatusOr<int> Replay(const std::string& tenant, const std::string& submission_id,
                             const std::string& destination, const audit::Entry& audit);
  // The delivery of a destination; NOT_FOUND for another destination's.
  absl::StatusOr<v1::Delivery> FindDelivery(const std::string& tenant, const std::string& destination,
                                            const std::string& submission_id);
  // Marks it acknowledged (delivery.acknowledged the first time); a dead letter or a
  // withdrawn delivery cannot be.
  absl::StatusOr<v1::Delivery> Acknowledge(const std::string& tenant, const std::string& destination,
                                           const std::string& submission_id);
  // A read of personal data, on the citizen's access log.
  // Publishes document.recorded (accounts records the document) in one transaction.
  absl::Status RecordDocument(const events::v1::DocumentRecorded& e);
  // A back office's read of a submission's data: a row of the access log (client, action,
  // purpose) and `access` published for the party's access log (party id from the
  // delivery), in one transaction. NOT_FOUND when the tenant has no such delivery.
  // A delivery that no longer names its party (erased) is logged without it, and nothing
  // is published (no one to show it to).
  absl::Status LogAccess(audit::Access access, const std::string& submission_id, const std::string& action);

  // The export (ExportPersonalData): the party's deliveries and the reads of them, oldest
  // first, at most kMaxExportRecords of each.
  absl::StatusOr<PersonalDeliveries> PersonalData(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxExportRecords = 10000;
  // The party's deliveries the department has not received yet (pending, delivered by
  // push and not acknowledged, dead letters), newest first: the erasure leaves exactly these.
  absl::StatusOr<common::v1::RetainedRecords> RetainedRecords(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxRetainedRecords = 5000;
  // party.erasure_requested, in the consumer's transaction: the party's other deliveries
  // (acknowledged, withdrawn) lose their snapshot and party; the access log's rows about
  // the party lose the party (client, action, purpose and time stay); the published
  // events naming the party go. Idempotent.
  static absl::StatusOr<ErasedDeliveries> Erase(pqxx::work& tx, const std::string& tenant, const std::string& party_id);
  // The retention job's step: clears the snapshot of up to `limit` deliveries the
  // department acknowledged at least `days` days before `now` (rows claimed FOR UPDATE
  // SKIP LOCKED). Returns how many.
  absl::StatusOr<int> ClearSnapshots(absl::Time now, int days, int limit);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::connector

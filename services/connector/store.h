#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/api/api.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "stadtportal/connector/v1/connector.pb.h"

namespace stadtportal::connector {

struct DestinationRow {
  std::string tenant;
  std::string id;
  std::string name;
  std::string mode;  // "push" | "pull"
  std::string endpoint_url;
  std::string secret;  // "" keeps the current one.
};

// What the delivery worker needs about a due delivery.
struct Due {
  std::string tenant;
  std::string submission_id;
  std::string destination;
  std::string endpoint_url;
  std::string secret;
  int attempts = 0;
  int64_t age_seconds = 0;
  bool delayed_reported = false;
};

// What waits: dead letters, and the age of the oldest undelivered submission.
struct Backlog {
  int64_t dead_letters = 0;
  int64_t oldest_undelivered_seconds = 0;
};

// The connector schema: all SQL of the service, as named prepared statements. Deliveries
// are changed with their row locked; the worker's steps take the caller's transaction.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);
  absl::Status Transact(const std::function<absl::Status(pqxx::work&)>& fn) { return pool_.Transact(fn); }

  // `audit`: the administrator's entry, recorded in the same transaction.
  absl::StatusOr<v1::Destination> PutDestination(const DestinationRow& d, const audit::Entry& audit);
  // Ordered by id.
  absl::StatusOr<v1::ListDestinationsResponse> ListDestinations(const std::string& tenant, const api::Page& page);
  static std::optional<DestinationRow> FindDestination(pqxx::work& tx, const std::string& tenant,
                                                       const std::string& id);

  // From submission.ready_for_delivery: a pending delivery (once per submission).
  static void AddDelivery(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                          const std::string& destination, const std::string& party_id, const std::string& reference,
                          const std::string& service_id);
  // Due push deliveries of destinations whose circuit is closed, locked (SKIP LOCKED)
  // for the caller's transaction.
  static std::vector<Due> ClaimDue(pqxx::work& tx, int limit);
  static void RecordAttempt(pqxx::work& tx, const std::string& submission_id, int http_status, const std::string& error,
                            int duration_ms);
  static void MarkDelivered(pqxx::work& tx, const std::string& submission_id);
  static void Reschedule(pqxx::work& tx, const std::string& submission_id, int64_t delay_ms, const std::string& error,
                         bool dead);
  static void MarkDelayedReported(pqxx::work& tx, const std::string& submission_id);
  // Circuit breaker: failures in a row open it for `open_for_s`; a success closes it.
  static void BreakerResult(pqxx::work& tx, const std::string& tenant, const std::string& destination, bool ok,
                            int threshold, int open_for_s);

  absl::StatusOr<v1::ListDeliveriesResponse> ListDeliveries(const std::string& tenant, const std::string& destination,
                                                            const std::string& state, int limit);
  absl::StatusOr<v1::ListAttemptsResponse> ListAttempts(const std::string& tenant, const std::string& submission_id);
  absl::StatusOr<int> Replay(const std::string& tenant, const std::string& submission_id,
                             const std::string& destination, const audit::Entry& audit);
  // The delivery of a destination (NOT_FOUND for another destination's).
  static std::optional<v1::Delivery> LockDelivery(pqxx::work& tx, const std::string& tenant,
                                                  const std::string& destination, const std::string& submission_id);
  static void MarkAcknowledged(pqxx::work& tx, const std::string& submission_id);
  static void LogAccess(pqxx::work& tx, const std::string& tenant, const std::string& party_id,
                        const std::string& submission_id, const std::string& client_id, const std::string& action);
  static Backlog ReadBacklog(pqxx::work& tx);
  static std::string PartyOf(pqxx::work& tx, const std::string& submission_id);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::connector

#include "services/connector/store.h"

#include "libs/db/row.h"
#include "libs/events/events.h"
#include "libs/log/log.h"
#include "libs/status/status.h"

namespace stadtportal::connector {
namespace {

constexpr char kColumns[] =
    "tenant, id, name, mode, endpoint_url, (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_at,"
    " secret <> '' AS has_secret";

constexpr char kDeliveryColumns[] =
    "submission_id::text AS submission_id, destination, reference, state, attempts, last_error,"
    " (extract(epoch FROM created_at) * 1000000)::bigint AS created_at,"
    " (extract(epoch FROM delivered_at) * 1000000)::bigint AS delivered_at,"
    " (extract(epoch FROM acknowledged_at) * 1000000)::bigint AS acknowledged_at, service_id";

// The same, of deliveries named `d`.
constexpr char kDeliveryColumnsOf[] =
    "d.submission_id::text AS submission_id, d.destination, d.reference, d.state, d.attempts, d.last_error,"
    " (extract(epoch FROM d.created_at) * 1000000)::bigint AS created_at,"
    " (extract(epoch FROM d.delivered_at) * 1000000)::bigint AS delivered_at,"
    " (extract(epoch FROM d.acknowledged_at) * 1000000)::bigint AS acknowledged_at, d.service_id";

v1::Destination ToDestination(const pqxx::row& r) {
  v1::Destination d;
  d.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  d.set_id(r["id"].as<std::string>());
  d.set_name(r["name"].as<std::string>());
  d.set_mode(r["mode"].as<std::string>() == "push" ? v1::DELIVERY_MODE_PUSH : v1::DELIVERY_MODE_PULL);
  d.set_endpoint_url(r["endpoint_url"].as<std::string>());
  *d.mutable_updated_at() = db::Micros(r["updated_at"]);
  d.set_has_secret(r["has_secret"].as<bool>());
  return d;
}

v1::Delivery ToDelivery(const pqxx::row& r) {
  v1::Delivery d;
  d.set_submission_id(r["submission_id"].as<std::string>());
  d.set_destination(r["destination"].as<std::string>());
  d.set_reference(r["reference"].as<std::string>());
  d.set_state(r["state"].as<std::string>());
  d.set_attempts(r["attempts"].as<int>());
  d.set_last_error(r["last_error"].as<std::string>());
  *d.mutable_created_at() = db::Micros(r["created_at"]);
  if (!r["delivered_at"].is_null()) *d.mutable_delivered_at() = db::Micros(r["delivered_at"]);
  if (!r["acknowledged_at"].is_null()) *d.mutable_acknowledged_at() = db::Micros(r["acknowledged_at"]);
  d.set_service_id(r["service_id"].as<std::string>());
  return d;
}

// The delivery events carry the same three fields.
template <class M>
void PublishDelivery(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                     const std::string& destination) {
  M e;
  e.set_tenant(tenant);
  e.set_submission_id(submission_id);
  e.set_destination(destination);
  events::Publish(tx, submission_id, e);
}

// A delivery the department has not received yet: kept (RetainedRecords) when its
// person asks for erasure; every other one of the party is cleared.
constexpr char kRetained[] = "d.state IN ('pending', 'delivered', 'dead')";

}  // namespace

absl::Status WithdrawnRefusal() { return status::FieldConflict("state", "invalid", "withdrawn by the applicant"); }

void Store::Prepare(pqxx::connection& conn) {
  const std::string cols = kColumns;
  const std::string dcols = kDeliveryColumns;
  conn.prepare("connector_put_destination",
               "INSERT INTO destinations (tenant, id, name, mode, endpoint_url, secret) VALUES ($1, $2, $3, $4, $5, $6)"
               " ON CONFLICT (tenant, id) DO UPDATE SET name = $3, mode = $4, endpoint_url = $5,"
               " previous_secret = CASE WHEN $6 = '' THEN destinations.previous_secret ELSE destinations.secret END,"
               " secret = CASE WHEN $6 = '' THEN destinations.secret ELSE $6 END, updated_at = now()"
               " RETURNING " +
                   cols);
  conn.prepare("connector_list_destinations",
               "SELECT " + cols + " FROM destinations WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3");
  conn.prepare("connector_find_destination",
               "SELECT name, mode, endpoint_url, secret FROM destinations WHERE tenant = $1 AND id = $2");
  conn.prepare(
      "connector_add_delivery",
      "INSERT INTO deliveries (submission_id, tenant, destination, party_id, reference, service_id, traceparent)"
      " VALUES ($1::uuid, $2, $3, $4::uuid, $5, $6, NULLIF($7, '')) ON CONFLICT (submission_id) DO NOTHING"
      " RETURNING submission_id");
  // The lease is taken in the claiming statement; the rows are not locked past it.
  conn.prepare("connector_claim",
               "WITH due AS ("
               "  SELECT d.submission_id FROM deliveries d"
               "  JOIN destinations t ON t.tenant = d.tenant AND t.id = d.destination"
               "  LEFT JOIN breakers b ON b.tenant = d.tenant AND b.destination = d.destination"
               "  WHERE d.state = 'pending' AND t.mode = 'push' AND d.next_attempt_at <= now()"
               "  AND (d.lease_until IS NULL OR d.lease_until <= now()) AND coalesce(b.open_until <= now(), true)"
               "  ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED)"
               " UPDATE deliveries d SET lease_until = now() + make_interval(secs => $2::double precision / 1000),"
               " lease_token = $3"
               " FROM due, destinations t"
               " WHERE d.submission_id = due.submission_id AND t.tenant = d.tenant AND t.id = d.destination"
               " RETURNING d.tenant, d.submission_id::text AS submission_id, d.destination, t.endpoint_url, t.secret,"
               " d.attempts, extract(epoch FROM now() - d.created_at)::bigint AS age_seconds, d.snapshot,"
               " coalesce(d.traceparent, '') AS traceparent");
  conn.prepare("connector_keep_snapshot",
               "UPDATE deliveries SET snapshot = $3 WHERE submission_id = $1::uuid AND lease_token = $2");
  conn.prepare("connector_end_lease",
               "UPDATE deliveries SET lease_until = NULL, lease_token = NULL"
               " WHERE submission_id = $1::uuid AND lease_token = $2 RETURNING state");
  conn.prepare("connector_lock_state", "SELECT state FROM deliveries WHERE submission_id = $1::uuid FOR UPDATE");
  conn.prepare("connector_record_attempt",
               "INSERT INTO delivery_attempts (submission_id, lease_token, http_status, error, duration_ms)"
               " VALUES ($1::uuid, $2, $3, $4, $5) ON CONFLICT (submission_id, lease_token) DO NOTHING RETURNING id");
  conn.prepare("connector_mark_delivered",
               "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = now(),"
               " last_error = '' WHERE submission_id = $1::uuid");
  conn.prepare("connector_reschedule",
               "UPDATE deliveries SET attempts = attempts + 1, last_error = $3,"
               " state = CASE WHEN $4 THEN 'dead' ELSE state END,"
               " next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)"
               " WHERE submission_id = $1::uuid");
  conn.prepare("connector_delayed_reported",
               "UPDATE deliveries SET delayed_reported = true WHERE submission_id = $1::uuid AND NOT delayed_reported"
               " RETURNING submission_id");
  conn.prepare("connector_breaker",
               "INSERT INTO breakers (tenant, destination, consecutive_failures, open_until)"
               " VALUES ($1, $2, CASE WHEN $3 THEN 0 ELSE 1 END, NULL)"
               " ON CONFLICT (tenant, destination) DO UPDATE SET"
               " consecutive_failures = CASE WHEN $3 THEN 0 ELSE breakers.consecutive_failures + 1 END,"
               " open_until = CASE WHEN $3 THEN NULL WHEN breakers.consecutive_failures + 1 >= $4"
               "   THEN now() + make_interval(secs => $5) ELSE breakers.open_until END");
  conn.prepare("connector_withdrawal",
               "INSERT INTO withdrawals (submission_id, tenant) VALUES ($1::uuid, $2) ON CONFLICT DO NOTHING");
  conn.prepare("connector_was_withdrawn", "SELECT 1 FROM withdrawals WHERE submission_id = $1::uuid AND tenant = $2");
  conn.prepare("connector_withdraw",
               "UPDATE deliveries SET state = 'withdrawn', last_error = 'withdrawn by the applicant before delivery'"
               " WHERE submission_id = $1::uuid AND tenant = $2 AND state IN ('pending', 'dead')"
               " RETURNING submission_id");
  conn.prepare("connector_list_deliveries",
               "SELECT " + dcols +
                   " FROM deliveries WHERE tenant = $1 AND ($2 = '' OR destination = $2) AND state = $3"
                   " ORDER BY created_at LIMIT $4");
  conn.prepare("connector_attempts",
               "SELECT (extract(epoch FROM a.at) * 1000000)::bigint AS at, a.http_status, a.error, a.duration_ms"
               " FROM delivery_attempts a JOIN deliveries d ON d.submission_id = a.submission_id"
               " WHERE d.tenant = $1 AND a.submission_id = $2::uuid ORDER BY a.id");
  conn.prepare("connector_replay",
               "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now()"
               " WHERE tenant = $1 AND state = 'dead' AND ($2 = '' OR submission_id::text = $2)"
               " AND ($3 = '' OR destination = $3) RETURNING submission_id");
  conn.prepare("connector_breaker_reset",
               "UPDATE breakers SET consecutive_failures = 0, open_until = NULL WHERE tenant = $1"
               " AND ($2 = '' OR destination = $2)");
  conn.prepare(
      "connector_find_delivery",
      "SELECT " + dcols + " FROM deliveries WHERE tenant = $1 AND destination = $2 AND submission_id = $3::uuid");
  conn.prepare("connector_lock_delivery",
               "SELECT " + dcols +
                   " FROM deliveries WHERE tenant = $1 AND destination = $2 AND submission_id = $3::uuid FOR UPDATE");
  conn.prepare("connector_mark_acknowledged",
               "UPDATE deliveries SET state = 'acknowledged', acknowledged_at = coalesce(acknowledged_at, now())"
               " WHERE submission_id = $1::uuid RETURNING " +
                   dcols);
  conn.prepare("connector_log_access",
               "INSERT INTO access_log (tenant, party_id, submission_id, client_id, action, purpose)"
               " SELECT $1, party_id, submission_id, $3, $4, $5 FROM deliveries"
               " WHERE tenant = $1 AND submission_id = $2::uuid RETURNING party_id::text AS party_id");
  // The export: the party's deliveries and the reads of them, oldest first ($3: at most).
  conn.prepare("connector_export_deliveries",
               "SELECT " + std::string(kDeliveryColumnsOf) +
                   ", coalesce(t.name, '') AS destination_name FROM deliveries d"
                   " LEFT JOIN destinations t ON t.tenant = d.tenant AND t.id = d.destination"
                   " WHERE d.tenant = $1 AND d.party_id = $2::uuid ORDER BY d.created_at, d.submission_id LIMIT $3");
  conn.prepare("connector_export_reads",
               "SELECT a.id, a.submission_id::text AS submission_id, coalesce(d.reference, '') AS reference,"
               " a.client_id, coalesce(t.name, d.destination, '') AS department, a.action, a.purpose,"
               " (extract(epoch FROM a.at) * 1000000)::bigint AS at FROM access_log a"
               " LEFT JOIN deliveries d ON d.submission_id = a.submission_id AND d.tenant = a.tenant"
               " LEFT JOIN destinations t ON t.tenant = d.tenant AND t.id = d.destination"
               " WHERE a.tenant = $1 AND a.party_id = $2::uuid ORDER BY a.at, a.id LIMIT $3");
  conn.prepare("connector_retained",
               "SELECT d.submission_id::text AS id, d.reference FROM deliveries d"
               " WHERE d.tenant = $1 AND d.party_id = $2::uuid AND " +
                   std::string(kRetained) + " ORDER BY d.created_at DESC LIMIT $3");
  // The erasure: deliveries the department received lose snapshot and party; the
  // access log keeps who read, when and why, without the party.
  conn.prepare("connector_erase_deliveries",
               "UPDATE deliveries d SET snapshot = NULL, party_id = NULL"
               " WHERE d.tenant = $1 AND d.party_id = $2::uuid AND NOT (" +
                   std::string(kRetained) + ")");
  conn.prepare("connector_erase_reads",
               "UPDATE access_log SET party_id = NULL WHERE tenant = $1 AND party_id = $2::uuid");
  // The retention job: snapshots of deliveries acknowledged $2 days before $1.
  conn.prepare("connector_clear_snapshots",
               "UPDATE deliveries SET snapshot = NULL WHERE submission_id IN ("
               " SELECT submission_id FROM deliveries WHERE snapshot IS NOT NULL AND state = 'acknowledged'"
               " AND acknowledged_at <= $1::timestamptz - make_interval(days => $2) ORDER BY acknowledged_at"
               " LIMIT $3 FOR UPDATE SKIP LOCKED)");
  conn.prepare("connector_backlog",
               "SELECT (SELECT count(*) FROM deliveries WHERE state = 'dead') AS dead_letters,"
               " (SELECT count(*) FROM deliveries WHERE state = 'withdrawn') AS withdrawn,"
               " coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM deliveries"
               " WHERE state = 'pending'), 0)::bigint AS oldest_undelivered_seconds");
}

absl::StatusOr<v1::Destination> Store::PutDestination(const DestinationRow& d, const audit::Entry& audit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Destination> {
    auto out = ToDestination(
        tx.exec_prepared1("connector_put_destination", d.tenant, d.id, d.name, d.mode, d.endpoint_url, d.secret));
    audit::Record(tx, audit);
    return out;
  });
}

absl::StatusOr<v1::ListDestinationsResponse> Store::ListDestinations(const std::string& tenant, const api::Page& page) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListDestinationsResponse> {
    v1::ListDestinationsResponse out;
    for (const auto& row : tx.exec_prepared("connector_list_destinations", tenant, page.after, page.size + 1)) {
      if (out.destinations_size() == page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(out.destinations(page.size - 1).id()));
        break;
      }
      *out.add_destinations() = ToDestination(row);
    }
    return out;
  });
}

absl::StatusOr<std::optional<DestinationRow>> Store::FindDestination(const std::string& tenant, const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::optional<DestinationRow>> {
    auto res = tx.exec_prepared("connector_find_destination", tenant, id);
    if (res.empty()) return std::optional<DestinationRow>();
    const auto& r = res[0];
    return DestinationRow{tenant,
                          id,
                          r["name"].as<std::string>(),
                          r["mode"].as<std::string>(),
                          r["endpoint_url"].as<std::string>(),
                          r["secret"].as<std::string>()};
  });
}

absl::StatusOr<std::vector<Due>> Store::Claim(int limit, std::chrono::milliseconds lease,
                                              const std::string& lease_token) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::vector<Due>> {
    std::vector<Due> out;
    for (const auto& r : tx.exec_prepared("connector_claim", limit, static_cast<double>(lease.count()), lease_token)) {
      Due d;
      d.tenant = r["tenant"].as<std::string>();
      d.submission_id = r["submission_id"].as<std::string>();
      d.destination = r["destination"].as<std::string>();
      d.endpoint_url = r["endpoint_url"].as<std::string>();
      d.secret = r["secret"].as<std::string>();
      d.attempts = r["attempts"].as<int>();
      d.age_seconds = r["age_seconds"].as<int64_t>();
      d.lease_token = lease_token;
      if (!r["snapshot"].is_null()) d.snapshot = pqxx::binarystring(r["snapshot"]).str();
      d.traceparent = log::NormalizeTraceparent(r["traceparent"].as<std::string>());
      out.push_back(std::move(d));
    }
    return out;
  });
}

absl::Status Store::KeepSnapshot(const Due& due, const std::string& snapshot) {
  return pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("connector_keep_snapshot", due.submission_id, due.lease_token, pqxx::binarystring(snapshot));
    return absl::OkStatus();
  });
}

absl::StatusOr<Recorded> Store::Record(const Due& due, const Attempt& attempt, const Breaker& breaker) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<Recorded> {
    // One attempt per claim, counted once: a second record of the same claim changes nothing.
    if (tx.exec_prepared("connector_record_attempt", due.submission_id, due.lease_token, attempt.http_status,
                         attempt.error.substr(0, 500), attempt.duration_ms)
            .empty()) {
      return Recorded::kDuplicate;
    }
    // Also when the lease ended and another worker claimed the delivery meanwhile, the
    // attempt was made: its outcome counts (a delivery whose sends outlast their leases
    // still reaches its last attempt and becomes a dead letter). Only the other worker's
    // lease is left as it is; its own record finds the delivery as this one leaves it.
    auto lease = tx.exec_prepared("connector_end_lease", due.submission_id, due.lease_token);
    const bool ours = !lease.empty();
    const std::string state =
        ours ? lease[0]["state"].as<std::string>()
             : tx.exec_prepared1("connector_lock_state", due.submission_id)["state"].as<std::string>();
    if (state != "pending") return Recorded::kMovedOn;
    const bool ok = attempt.error.empty();
    if (ok) {
      tx.exec_prepared("connector_mark_delivered", due.submission_id);
      PublishDelivery<events::v1::DeliveryDelivered>(tx, due.tenant, due.submission_id, due.destination);
    } else {
      tx.exec_prepared("connector_reschedule", due.submission_id, static_cast<double>(attempt.retry_in_ms),
                       attempt.error.substr(0, 500), attempt.dead);
      // The applicant hears of the delay once.
      if (!tx.exec_prepared("connector_delayed_reported", due.submission_id).empty()) {
        PublishDelivery<events::v1::DeliveryDelayed>(tx, due.tenant, due.submission_id, due.destination);
      }
    }
    tx.exec_prepared("connector_breaker", due.tenant, due.destination, ok, breaker.threshold, breaker.open_for_s);
    return ours ? Recorded::kApplied : Recorded::kLeaseLost;
  });
}

absl::StatusOr<Backlog> Store::ReadBacklog() {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<Backlog> {
    auto r = tx.exec_prepared1("connector_backlog");
    return Backlog{r["dead_letters"].as<int64_t>(), r["oldest_undelivered_seconds"].as<int64_t>(),
                   r["withdrawn"].as<int64_t>()};
  });
}

bool Store::AddDelivery(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                        const std::string& destination, const std::string& party_id, const std::string& reference,
                        const std::string& service_id) {
  // The consumer handles the event in the trace of the submit (libs/events).
  return !tx.exec_prepared("connector_add_delivery", submission_id, tenant, destination, party_id, reference,
                           service_id, log::CurrentTraceparent())
              .empty();
}

bool Store::HasDestination(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  return !tx.exec_prepared("connector_find_destination", tenant, id).empty();
}

void Store::DeadLetter(pqxx::work& tx, const std::string& submission_id, const std::string& error) {
  tx.exec_prepared("connector_reschedule", submission_id, 0.0, error.substr(0, 500), true);
}

bool Store::Withdraw(pqxx::work& tx, const std::string& tenant, const std::string& submission_id) {
  tx.exec_prepared("connector_withdrawal", submission_id, tenant);
  return !tx.exec_prepared("connector_withdraw", submission_id, tenant).empty();
}

bool Store::WasWithdrawn(pqxx::work& tx, const std::string& tenant, const std::string& submission_id) {
  return !tx.exec_prepared("connector_was_withdrawn", submission_id, tenant).empty();
}

absl::StatusOr<v1::ListDeliveriesResponse> Store::ListDeliveries(const std::string& tenant,
                                                                 const std::string& destination,
                                                                 const std::string& state, int limit) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListDeliveriesResponse> {
    v1::ListDeliveriesResponse out;
    for (const auto& r : tx.exec_prepared("connector_list_deliveries", tenant, destination, state, limit)) {
      *out.add_deliveries() = ToDelivery(r);
    }
    return out;
  });
}

absl::StatusOr<v1::ListAttemptsResponse> Store::ListAttempts(const std::string& tenant,
                                                             const std::string& submission_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListAttemptsResponse> {
    v1::ListAttemptsResponse out;
    for (const auto& r : tx.exec_prepared("connector_attempts", tenant, submission_id)) {
      auto* a = out.add_attempts();
      *a->mutable_at() = db::Micros(r["at"]);
      a->set_http_status(r["http_status"].as<int>());
      a->set_error(r["error"].as<std::string>());
      a->set_duration_ms(r["duration_ms"].as<int>());
    }
    return out;
  });
}

absl::StatusOr<int> Store::Replay(const std::string& tenant, const std::string& submission_id,
                                  const std::string& destination, const audit::Entry& audit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    const int n = static_cast<int>(tx.exec_prepared("connector_replay", tenant, submission_id, destination).size());
    tx.exec_prepared("connector_breaker_reset", tenant, destination);
    auto entry = audit;
    entry.targets["replayed"] = n;
    audit::Record(tx, entry);
    return n;
  });
}

absl::StatusOr<v1::Delivery> Store::FindDelivery(const std::string& tenant, const std::string& destination,
                                                 const std::string& submission_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::Delivery> {
    auto res = tx.exec_prepared("connector_find_delivery", tenant, destination, submission_id);
    if (res.empty()) return absl::NotFoundError("submission not found");
    return ToDelivery(res[0]);
  });
}

absl::StatusOr<v1::Delivery> Store::Acknowledge(const std::string& tenant, const std::string& destination,
                                                const std::string& submission_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Delivery> {
    auto res = tx.exec_prepared("connector_lock_delivery", tenant, destination, submission_id);
    if (res.empty()) return absl::NotFoundError("submission not found");
    const std::string state = res[0]["state"].as<std::string>();
    if (state == "dead") return status::FieldConflict("state", "invalid", "dead letter; replay it first");
    if (state == "withdrawn") return WithdrawnRefusal();
    auto out = ToDelivery(tx.exec_prepared1("connector_mark_acknowledged", submission_id));
    if (state != "acknowledged") {
      PublishDelivery<events::v1::DeliveryAcknowledged>(tx, tenant, submission_id, destination);
    }
    return out;
  });
}

absl::Status Store::LogAccess(audit::Access access, const std::string& submission_id, const std::string& action) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    auto res = tx.exec_prepared("connector_log_access", access.tenant, submission_id, access.accessor_id, action,
                                access.purpose);
    if (res.empty()) return absl::NotFoundError("submission not found");
    if (res[0]["party_id"].is_null()) return absl::OkStatus();  // Its person was erased.
    access.party_id = res[0]["party_id"].as<std::string>();
    audit::RecordAccess(tx, access);
    return absl::OkStatus();
  });
}

absl::Status Store::RecordDocument(const events::v1::DocumentRecorded& e) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    events::Publish(tx, e.submission_id(), e);
    return absl::OkStatus();
  });
}

absl::StatusOr<PersonalDeliveries> Store::PersonalData(const std::string& tenant, const std::string& party_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<PersonalDeliveries> {
    PersonalDeliveries out;
    for (const auto& r : tx.exec_prepared("connector_export_deliveries", tenant, party_id, kMaxExportRecords)) {
      out.deliveries.push_back({ToDelivery(r), r["destination_name"].as<std::string>()});
    }
    for (const auto& r : tx.exec_prepared("connector_export_reads", tenant, party_id, kMaxExportRecords)) {
      PersonalRead read;
      read.id = r["id"].as<int64_t>();
      read.submission_id = r["submission_id"].as<std::string>();
      read.reference = r["reference"].as<std::string>();
      read.client_id = r["client_id"].as<std::string>();
      read.department = r["department"].as<std::string>();
      read.action = r["action"].as<std::string>();
      read.purpose = r["purpose"].as<std::string>();
      read.at = db::Micros(r["at"]);
      out.reads.push_back(std::move(read));
    }
    return out;
  });
}

absl::StatusOr<common::v1::RetainedRecords> Store::RetainedRecords(const std::string& tenant,
                                                                   const std::string& party_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<common::v1::RetainedRecords> {
    common::v1::RetainedRecords out;
    for (const auto& row : tx.exec_prepared("connector_retained", tenant, party_id, kMaxRetainedRecords)) {
      auto* r = out.add_records();
      r->set_service("connector");
      r->set_kind("delivery");
      r->set_id(row["id"].as<std::string>());
      r->set_reference(row["reference"].as<std::string>());
      r->set_rule(kDeliveryRule);
      r->set_legal_basis(kDeliveryLegalBasis);
      r->set_until("");  // Not known: when the department receives it.
    }
    return out;
  });
}

absl::StatusOr<ErasedDeliveries> Store::Erase(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  ErasedDeliveries out;
  out.deliveries = tx.exec_prepared("connector_erase_deliveries", tenant, party_id).affected_rows();
  out.reads = tx.exec_prepared("connector_erase_reads", tenant, party_id).affected_rows();
  out.events = events::ErasePublished(tx, {party_id});
  return out;
}

absl::StatusOr<int> Store::ClearSnapshots(absl::Time now, int days, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    const std::string at = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
    return static_cast<int>(tx.exec_prepared("connector_clear_snapshots", at, days, limit).affected_rows());
  });
}

}  // namespace stadtportal::connector

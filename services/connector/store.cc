#include "services/connector/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::connector {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kColumns[] =
    "tenant, id, name, mode, endpoint_url, (extract(epoch FROM updated_at) * 1000000)::bigint, secret <> ''";

constexpr char kDeliveryColumns[] =
    "submission_id::text, destination, reference, state, attempts, last_error,"
    " (extract(epoch FROM created_at) * 1000000)::bigint,"
    " coalesce((extract(epoch FROM delivered_at) * 1000000)::bigint, 0),"
    " coalesce((extract(epoch FROM acknowledged_at) * 1000000)::bigint, 0), service_id";

v1::Destination ToDestination(const pqxx::row& r) {
  v1::Destination d;
  d.mutable_tenant()->set_key(r[0].as<std::string>());
  d.set_id(r[1].as<std::string>());
  d.set_name(r[2].as<std::string>());
  d.set_mode(r[3].as<std::string>() == "push" ? v1::DELIVERY_MODE_PUSH : v1::DELIVERY_MODE_PULL);
  d.set_endpoint_url(r[4].as<std::string>());
  *d.mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  d.set_has_secret(r[6].as<bool>());
  return d;
}

v1::Delivery ToDelivery(const pqxx::row& r) {
  v1::Delivery d;
  d.set_submission_id(r[0].as<std::string>());
  d.set_destination(r[1].as<std::string>());
  d.set_reference(r[2].as<std::string>());
  d.set_state(r[3].as<std::string>());
  d.set_attempts(r[4].as<int>());
  d.set_last_error(r[5].as<std::string>());
  *d.mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(r[6].as<int64_t>());
  if (r[7].as<int64_t>() != 0) *d.mutable_delivered_at() = TimeUtil::MicrosecondsToTimestamp(r[7].as<int64_t>());
  if (r[8].as<int64_t>() != 0) *d.mutable_acknowledged_at() = TimeUtil::MicrosecondsToTimestamp(r[8].as<int64_t>());
  d.set_service_id(r[9].as<std::string>());
  return d;
}

}  // namespace

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
  conn.prepare("connector_add_delivery",
               "INSERT INTO deliveries (submission_id, tenant, destination, party_id, reference, service_id)"
               " VALUES ($1::uuid, $2, $3, $4::uuid, $5, $6) ON CONFLICT (submission_id) DO NOTHING");
  conn.prepare("connector_claim_due",
               "SELECT d.tenant, d.submission_id::text, d.destination, t.endpoint_url, t.secret, d.attempts,"
               " extract(epoch FROM now() - d.created_at)::bigint,"
               " d.delayed_reported"
               " FROM deliveries d JOIN destinations t ON t.tenant = d.tenant AND t.id = d.destination"
               " LEFT JOIN breakers b ON b.tenant = d.tenant AND b.destination = d.destination"
               " WHERE d.state = 'pending' AND t.mode = 'push' AND d.next_attempt_at <= now()"
               " AND coalesce(b.open_until <= now(), true)"
               " ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED");
  conn.prepare("connector_record_attempt",
               "INSERT INTO delivery_attempts (submission_id, http_status, error, duration_ms)"
               " VALUES ($1::uuid, $2, $3, $4)");
  conn.prepare("connector_mark_delivered",
               "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = now(),"
               " last_error = '' WHERE submission_id = $1::uuid");
  conn.prepare("connector_reschedule",
               "UPDATE deliveries SET attempts = attempts + 1, last_error = $3,"
               " state = CASE WHEN $4 THEN 'dead' ELSE state END,"
               " next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)"
               " WHERE submission_id = $1::uuid");
  conn.prepare("connector_delayed_reported",
               "UPDATE deliveries SET delayed_reported = true WHERE submission_id = $1::uuid");
  conn.prepare("connector_breaker",
               "INSERT INTO breakers (tenant, destination, consecutive_failures, open_until)"
               " VALUES ($1, $2, CASE WHEN $3 THEN 0 ELSE 1 END, NULL)"
               " ON CONFLICT (tenant, destination) DO UPDATE SET"
               " consecutive_failures = CASE WHEN $3 THEN 0 ELSE breakers.consecutive_failures + 1 END,"
               " open_until = CASE WHEN $3 THEN NULL WHEN breakers.consecutive_failures + 1 >= $4"
               "   THEN now() + make_interval(secs => $5) ELSE breakers.open_until END");
  conn.prepare("connector_list_deliveries",
               "SELECT " + dcols +
                   " FROM deliveries WHERE tenant = $1 AND ($2 = '' OR destination = $2) AND state = $3"
                   " ORDER BY created_at LIMIT $4");
  conn.prepare("connector_attempts",
               "SELECT (extract(epoch FROM a.at) * 1000000)::bigint, a.http_status, a.error, a.duration_ms"
               " FROM delivery_attempts a JOIN deliveries d ON d.submission_id = a.submission_id"
               " WHERE d.tenant = $1 AND a.submission_id = $2::uuid ORDER BY a.id");
  conn.prepare("connector_replay",
               "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now()"
               " WHERE tenant = $1 AND state = 'dead' AND ($2 = '' OR submission_id::text = $2)"
               " AND ($3 = '' OR destination = $3) RETURNING submission_id");
  conn.prepare("connector_breaker_reset",
               "UPDATE breakers SET consecutive_failures = 0, open_until = NULL WHERE tenant = $1"
               " AND ($2 = '' OR destination = $2)");
  conn.prepare("connector_lock_delivery",
               "SELECT " + dcols +
                   " FROM deliveries WHERE tenant = $1 AND destination = $2 AND submission_id = $3::uuid FOR UPDATE");
  conn.prepare("connector_mark_acknowledged",
               "UPDATE deliveries SET state = 'acknowledged', acknowledged_at = coalesce(acknowledged_at, now())"
               " WHERE submission_id = $1::uuid");
  conn.prepare("connector_log_access",
               "INSERT INTO access_log (tenant, party_id, submission_id, client_id, action)"
               " VALUES ($1, $2::uuid, $3::uuid, $4, $5)");
  conn.prepare("connector_backlog",
               "SELECT (SELECT count(*) FROM deliveries WHERE state = 'dead'),"
               " coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM deliveries"
               " WHERE state = 'pending'), 0)::bigint");
  conn.prepare("connector_party_of", "SELECT party_id::text FROM deliveries WHERE submission_id = $1::uuid");
}

absl::StatusOr<v1::Destination> Store::PutDestination(const DestinationRow& d, const audit::Entry& audit) {
  v1::Destination out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    out = ToDestination(
        tx.exec_prepared1("connector_put_destination", d.tenant, d.id, d.name, d.mode, d.endpoint_url, d.secret));
    audit::Record(tx, audit);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::ListDestinationsResponse> Store::ListDestinations(const std::string& tenant, const api::Page& page) {
  v1::ListDestinationsResponse out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("connector_list_destinations", tenant, page.after, page.size + 1);
    for (const auto& row : res) {
      if (out.destinations_size() == page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(out.destinations(page.size - 1).id()));
        break;
      }
      *out.add_destinations() = ToDestination(row);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

std::optional<DestinationRow> Store::FindDestination(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  auto res = tx.exec_prepared("connector_find_destination", tenant, id);
  if (res.empty()) return std::nullopt;
  return DestinationRow{tenant,
                        id,
                        res[0][0].as<std::string>(),
                        res[0][1].as<std::string>(),
                        res[0][2].as<std::string>(),
                        res[0][3].as<std::string>()};
}

void Store::AddDelivery(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                        const std::string& destination, const std::string& party_id, const std::string& reference,
                        const std::string& service_id) {
  tx.exec_prepared("connector_add_delivery", submission_id, tenant, destination, party_id, reference, service_id);
}

std::vector<Due> Store::ClaimDue(pqxx::work& tx, int limit) {
  std::vector<Due> out;
  for (const auto& r : tx.exec_prepared("connector_claim_due", limit)) {
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>(),
                   r[4].as<std::string>(), r[5].as<int>(), r[6].as<int64_t>(), r[7].as<bool>()});
  }
  return out;
}

void Store::RecordAttempt(pqxx::work& tx, const std::string& submission_id, int http_status, const std::string& error,
                          int duration_ms) {
  tx.exec_prepared("connector_record_attempt", submission_id, http_status, error.substr(0, 500), duration_ms);
}

void Store::MarkDelivered(pqxx::work& tx, const std::string& submission_id) {
  tx.exec_prepared("connector_mark_delivered", submission_id);
}

void Store::Reschedule(pqxx::work& tx, const std::string& submission_id, int64_t delay_ms, const std::string& error,
                       bool dead) {
  tx.exec_prepared("connector_reschedule", submission_id, static_cast<double>(delay_ms), error.substr(0, 500), dead);
}

void Store::MarkDelayedReported(pqxx::work& tx, const std::string& submission_id) {
  tx.exec_prepared("connector_delayed_reported", submission_id);
}

void Store::BreakerResult(pqxx::work& tx, const std::string& tenant, const std::string& destination, bool ok,
                          int threshold, int open_for_s) {
  tx.exec_prepared("connector_breaker", tenant, destination, ok, threshold, open_for_s);
}

absl::StatusOr<v1::ListDeliveriesResponse> Store::ListDeliveries(const std::string& tenant,
                                                                 const std::string& destination,
                                                                 const std::string& state, int limit) {
  v1::ListDeliveriesResponse out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    for (const auto& r : tx.exec_prepared("connector_list_deliveries", tenant, destination, state, limit)) {
      *out.add_deliveries() = ToDelivery(r);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::ListAttemptsResponse> Store::ListAttempts(const std::string& tenant,
                                                             const std::string& submission_id) {
  v1::ListAttemptsResponse out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    for (const auto& r : tx.exec_prepared("connector_attempts", tenant, submission_id)) {
      auto* a = out.add_attempts();
      *a->mutable_at() = TimeUtil::MicrosecondsToTimestamp(r[0].as<int64_t>());
      a->set_http_status(r[1].as<int>());
      a->set_error(r[2].as<std::string>());
      a->set_duration_ms(r[3].as<int>());
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int> Store::Replay(const std::string& tenant, const std::string& submission_id,
                                  const std::string& destination, const audit::Entry& audit) {
  int n = 0;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    n = static_cast<int>(tx.exec_prepared("connector_replay", tenant, submission_id, destination).size());
    tx.exec_prepared("connector_breaker_reset", tenant, destination);
    auto entry = audit;
    entry.targets["replayed"] = n;
    audit::Record(tx, entry);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return n;
}

std::optional<v1::Delivery> Store::LockDelivery(pqxx::work& tx, const std::string& tenant,
                                                const std::string& destination, const std::string& submission_id) {
  auto res = tx.exec_prepared("connector_lock_delivery", tenant, destination, submission_id);
  if (res.empty()) return std::nullopt;
  return ToDelivery(res[0]);
}

void Store::MarkAcknowledged(pqxx::work& tx, const std::string& submission_id) {
  tx.exec_prepared("connector_mark_acknowledged", submission_id);
}

void Store::LogAccess(pqxx::work& tx, const std::string& tenant, const std::string& party_id,
                      const std::string& submission_id, const std::string& client_id, const std::string& action) {
  tx.exec_prepared("connector_log_access", tenant, party_id, submission_id, client_id, action);
}

Backlog Store::ReadBacklog(pqxx::work& tx) {
  auto r = tx.exec_prepared1("connector_backlog");
  return {r[0].as<int64_t>(), r[1].as<int64_t>()};
}

std::string Store::PartyOf(pqxx::work& tx, const std::string& submission_id) {
  auto res = tx.exec_prepared("connector_party_of", submission_id);
  return res.empty() ? "" : res[0][0].as<std::string>();
}

}  // namespace stadtportal::connector

#include "services/payment/store.h"

#include <map>

#include <prometheus/counter.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "libs/db/row.h"
#include "libs/events/events.h"
#include "libs/metrics/metrics.h"
#include "libs/status/status.h"
#include "services/payment/states.h"

namespace stadtportal::payment {
namespace {

constexpr char kColumns[] =
    "id::text AS id, tenant, party_id::text AS party_id, party_kind, submission_id, amount_minor, currency, "
    "description, state, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, request_fingerprint, "
    "reference, provider, provider_ref, next_url, finished, reason, refunded_minor, "
    "(extract(epoch FROM updated_at) * 1000000)::bigint AS updated_us";

// The columns of a refund as ToRefund reads them (`r` refunds, `p` its payment).
constexpr char kRefundColumns[] =
    "r.id::text AS id, r.payment_id::text AS payment_id, r.amount_minor, p.currency, r.state, r.reason, "
    "(extract(epoch FROM r.created_at) * 1000000)::bigint AS created_us";

v1::PaymentState ParseState(const std::string& s) {
  if (s == "started") return v1::PAYMENT_STATE_STARTED;
  if (s == "submitted") return v1::PAYMENT_STATE_SUBMITTED;
  if (s == "success") return v1::PAYMENT_STATE_SUCCESS;
  if (s == "failed") return v1::PAYMENT_STATE_FAILED;
  if (s == "cancelled") return v1::PAYMENT_STATE_CANCELLED;
  if (s == "error") return v1::PAYMENT_STATE_ERROR;
  return v1::PAYMENT_STATE_CREATED;
}

PaymentRow ToRow(const pqxx::row& r) {
  PaymentRow row;
  auto& p = row.payment;
  p.set_id(r["id"].as<std::string>());
  p.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  // Empty once the payment's retention ended and it was anonymised.
  p.mutable_party()->set_id(r["party_id"].is_null() ? "" : r["party_id"].as<std::string>());
  p.mutable_party()->set_kind(r["party_kind"].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON
                                                                            : common::v1::PARTY_KIND_ORGANISATION);
  p.set_submission_id(r["submission_id"].as<std::string>());
  p.mutable_amount()->set_amount_minor(r["amount_minor"].as<int64_t>());
  p.mutable_amount()->set_currency(r["currency"].as<std::string>());
  p.set_description(r["description"].as<std::string>());
  row.state = r["state"].as<std::string>();
  p.set_state(ParseState(row.state));
  *p.mutable_created_at() = db::Micros(r["created_us"]);
  row.fingerprint = r["request_fingerprint"].as<std::string>();
  p.set_reference(r["reference"].as<std::string>());
  p.set_provider(r["provider"].as<std::string>());
  p.set_provider_reference(r["provider_ref"].as<std::string>());
  p.set_next_url(r["next_url"].as<std::string>());
  p.set_finished(r["finished"].as<bool>());
  p.set_reason(r["reason"].as<std::string>());
  const int64_t refunded = r["refunded_minor"].as<int64_t>();
  *p.mutable_updated_at() = db::Micros(r["updated_us"]);
  if (row.state == "success" && p.reason() != "duplicate_refunded") {
    p.set_refund_amount_available(p.amount().amount_minor() - refunded);
  }
  return row;
}

v1::Refund ToRefund(const pqxx::row& r) {
  v1::Refund f;
  f.set_id(r["id"].as<std::string>());
  f.set_payment_id(r["payment_id"].as<std::string>());
  f.mutable_amount()->set_amount_minor(r["amount_minor"].as<int64_t>());
  f.mutable_amount()->set_currency(r["currency"].as<std::string>());
  f.set_state(r["state"].as<std::string>());
  f.set_reason(r["reason"].as<std::string>());
  *f.mutable_created_at() = db::Micros(r["created_us"]);
  return f;
}

int64_t PendingRefunds(pqxx::work& tx, const std::string& payment_id) {
  return tx.exec_prepared("payment_pending_refunds", payment_id)[0]["pending"].as<int64_t>();
}

// Adds history and refunds; the available refund amount also excludes pending refunds.
PaymentRow Complete(pqxx::work& tx, PaymentRow row) {
  auto& p = row.payment;
  for (const auto& e : tx.exec_prepared("payment_events", p.id())) {
    auto* ev = p.add_events();
    ev->set_state(e["state"].as<std::string>());
    ev->set_reason(e["reason"].as<std::string>());
    ev->set_source(e["source"].as<std::string>());
    *ev->mutable_at() = db::Micros(e["at_us"]);
  }
  for (const auto& r : tx.exec_prepared("payment_refunds", p.id())) *p.add_refunds() = ToRefund(r);
  if (p.refund_amount_available() > 0) {
    p.set_refund_amount_available(p.refund_amount_available() - PendingRefunds(tx, p.id()));
  }
  return row;
}

std::optional<std::pair<PaymentRow, bool>> Insert(pqxx::work& tx, const NewPayment& p) {
  auto res = tx.exec_prepared("payment_insert", p.tenant, p.party_id, p.party_kind, p.submission_id, p.amount_minor,
                              p.currency, p.description, p.reference, p.provider, p.idempotency_key, p.fingerprint);
  if (!res.empty()) return std::make_pair(ToRow(res[0]), true);
  // The key exists: ON CONFLICT waited for a concurrent insert of it to commit.
  res = tx.exec_prepared("payment_by_key", p.tenant, p.party_id, p.idempotency_key);
  if (res.empty()) return std::nullopt;
  return std::make_pair(Complete(tx, ToRow(res[0])), false);
}

std::optional<PaymentRow> Lock(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  auto res = tx.exec_prepared("payment_lock", tenant, id);
  if (res.empty()) return std::nullopt;
  return Complete(tx, ToRow(res[0]));
}

std::optional<PaymentRow> LockByProviderRef(pqxx::work& tx, const std::string& provider,
                                            const std::string& provider_ref) {
  auto res = tx.exec_prepared("payment_lock_by_ref", provider, provider_ref);
  if (res.empty()) return std::nullopt;
  return Complete(tx, ToRow(res[0]));
}

std::optional<PaymentRow> Find(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  auto res = tx.exec_prepared("payment_get", tenant, id);
  if (res.empty()) return std::nullopt;
  return Complete(tx, ToRow(res[0]));
}

bool HasSuccess(pqxx::work& tx, const std::string& tenant, const std::string& submission_id) {
  return !tx.exec_prepared("payment_has_success", tenant, submission_id).empty();
}

void LockSubmission(pqxx::work& tx, const std::string& tenant, const std::string& submission_id) {
  tx.exec_prepared("payment_lock_submission", tenant, submission_id);
}

void SetStarted(pqxx::work& tx, const std::string& id, const std::string& provider_ref, const std::string& next_url) {
  tx.exec_prepared("payment_set_started", id, provider_ref, next_url);
}

void SetState(pqxx::work& tx, const std::string& id, const std::string& state, const std::string& reason) {
  tx.exec_prepared("payment_set_state", id, state, reason);
}

void AddEvent(pqxx::work& tx, const std::string& id, const std::string& state, const std::string& reason,
              const std::string& source, const nlohmann::json& detail = nlohmann::json::object()) {
  tx.exec_prepared("payment_add_event", id, state, reason, source, detail.dump());
}

bool RecordWebhook(pqxx::work& tx, const std::string& provider, const std::string& event_id) {
  return !tx.exec_prepared("payment_record_webhook", provider, event_id).empty();
}

std::vector<OpenPayment> UnfinishedOf(pqxx::work& tx, int64_t older_than_seconds, int limit) {
  std::vector<OpenPayment> out;
  for (const auto& r : tx.exec_prepared("payment_unfinished", older_than_seconds, limit)) {
    out.push_back({r["tenant"].as<std::string>(), r["id"].as<std::string>()});
  }
  return out;
}

int64_t AgeSeconds(pqxx::work& tx, const std::string& id) {
  return tx.exec_prepared("payment_age", id)[0]["age_s"].as<int64_t>();
}

v1::Refund InsertRefund(pqxx::work& tx, const std::string& payment_id, int64_t amount_minor,
                        const std::string& currency, const std::string& reason, const std::string& requested_by) {
  return ToRefund(
      tx.exec_prepared("payment_insert_refund", payment_id, amount_minor, reason, requested_by, currency)[0]);
}

bool SettleRefund(pqxx::work& tx, const std::string& refund_id, const std::string& state,
                  const std::string& provider_ref, const std::string& reason) {
  return !tx.exec_prepared("payment_settle_refund", refund_id, state, provider_ref, reason).empty();
}

bool HasAutomaticRefund(pqxx::work& tx, const std::string& payment_id) {
  return !tx.exec_prepared("payment_has_automatic_refund", payment_id).empty();
}

std::vector<std::pair<std::string, std::string>> PaymentsWithRefundsInDoubt(pqxx::work& tx, int64_t older_than_seconds,
                                                                            int limit) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : tx.exec_prepared("payment_refunds_in_doubt", older_than_seconds, limit)) {
    out.push_back({r["tenant"].as<std::string>(), r["id"].as<std::string>()});
  }
  return out;
}

std::vector<v1::Refund> SubmittedRefunds(pqxx::work& tx, const std::string& payment_id, int64_t older_than_seconds) {
  std::vector<v1::Refund> out;
  for (const auto& r : tx.exec_prepared("payment_submitted_refunds", payment_id, older_than_seconds)) {
    out.push_back(ToRefund(r));
  }
  return out;
}

void AddRefunded(pqxx::work& tx, const std::string& payment_id, int64_t amount_minor) {
  tx.exec_prepared("payment_add_refunded", payment_id, amount_minor);
}

v1::Report ReportOf(pqxx::work& tx, const std::string& tenant, const std::string& day) {
  v1::Report out;
  out.set_day(day);
  for (const auto& r : tx.exec_prepared("payment_report", tenant, day)) {
    auto* p = out.add_providers();
    p->set_provider(r["provider"].as<std::string>());
    p->set_successes(r["successes"].as<int>());
    p->set_success_amount_minor(r["success_minor"].as<int64_t>());
    p->set_refunds(r["refunds"].as<int>());
    p->set_refund_amount_minor(r["refund_minor"].as<int64_t>());
    p->set_open(r["open"].as<int>());
    p->set_failed(r["failed"].as<int>());
  }
  return out;
}

prometheus::Family<prometheus::Counter>& PaymentsTotal() {
  static auto& family =
      metrics::CounterFamily("stadtportal_payments_total", "Payments that reached a final state, by state.");
  return family;
}

absl::Status Transition(pqxx::work& tx, PaymentRow& row, const std::string& to, const std::string& reason,
                        const std::string& source) {
  if (!Allowed(row.state, to)) {
    return absl::FailedPreconditionError(absl::StrCat("state: ", row.state, " cannot become ", to));
  }
  SetState(tx, row.payment.id(), to, reason);
  AddEvent(tx, row.payment.id(), to, reason, source);
  row.state = to;
  if (Final(to)) PaymentsTotal().Add({{"state", to}}).Increment();
  return absl::OkStatus();
}

// A payment that ended without money, for the KPIs (payment.failed).
void PublishFailed(pqxx::work& tx, const v1::Payment& p, const std::string& outcome) {
  events::v1::PaymentFailed e;
  e.set_tenant(p.tenant().key());
  e.set_payment_id(p.id());
  e.set_submission_id(p.submission_id());
  e.set_provider(p.provider());
  e.set_outcome(outcome);
  *e.mutable_occurred_at() = events::TransactionTime(tx);
  events::Publish(tx, p.submission_id(), e);
}

// Moves the payment along what the provider says (the row is locked).
absl::StatusOr<Next> Apply(pqxx::work& tx, PaymentRow& row, const ProviderState& st, const std::string& source) {
  Next next;
  const auto& p = row.payment;
  // All money of the payment goes back (a duplicate or late payment): inserted here, made at
  // the provider after commit.
  auto refund_all = [&](const std::string& why) {
    next.refund = InsertRefund(tx, p.id(), p.amount().amount_minor(), p.amount().currency(), why, "system");
  };
  if (Final(row.state)) {
    // Money that arrives for a payment that has ended (expired, cancelled) goes back, once.
    if (st.outcome == Outcome::kSucceeded && row.state != "success" && !HasAutomaticRefund(tx, p.id())) {
      refund_all("late_success_refunded");
    }
    return next;
  }
  absl::Status s = absl::OkStatus();
  switch (st.outcome) {
    case Outcome::kPending: break;
    case Outcome::kApproved:
      if (row.state != "submitted") s = Transition(tx, row, "submitted", "", source);
      next.capture = s.ok();
      break;
    case Outcome::kSucceeded:
      LockSubmission(tx, p.tenant().key(), p.submission_id());
      if (HasSuccess(tx, p.tenant().key(), p.submission_id())) {
        // Never two successful payments for one submission: this one goes back.
        s = Transition(tx, row, "success", "duplicate_refunded", source);
        if (s.ok()) refund_all("duplicate_refunded");
        break;
      }
      s = Transition(tx, row, "success", "", source);
      if (!s.ok()) break;
      {
        events::v1::PaymentSucceeded e;
        e.set_tenant(p.tenant().key());
        e.set_payment_id(p.id());
        e.set_submission_id(p.submission_id());
        *e.mutable_amount() = p.amount();
        e.set_provider(p.provider());
        e.set_party_id(p.party().id());
        *e.mutable_occurred_at() = events::TransactionTime(tx);
        events::Publish(tx, p.submission_id(), e);
      }
      break;
    case Outcome::kDeclined:
      s = Transition(tx, row, "failed", st.reason.empty() ? "declined" : st.reason, source);
      if (s.ok()) PublishFailed(tx, p, "declined");
      break;
    case Outcome::kCancelled:
      s = Transition(tx, row, "cancelled", st.reason.empty() ? "cancelled_by_user" : st.reason, source);
      if (s.ok()) PublishFailed(tx, p, "cancelled");
      break;
    case Outcome::kError:
      s = Transition(tx, row, "error", "provider_error", source);
      if (s.ok()) PublishFailed(tx, p, "provider_error");
      break;
  }
  if (!s.ok()) return s;
  return next;
}

// A payment a rule keeps (RetainedRecords; the erasure deletes every other one of the
// party): a cash record — money moved: a success, or money that came late and went back
// (a refund) — not anonymised yet, or an open payment the provider may still settle.
constexpr char kRetained[] =
    "p.anonymised_at IS NULL AND (p.state = 'success' OR NOT p.finished"
    " OR EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id))";

}  // namespace

Store::Store(db::Pool& pool) : pool_(pool) {
  for (const char* s : {"success", "failed", "cancelled", "error"}) PaymentsTotal().Add({{"state", s}});
}

void Store::Prepare(pqxx::connection& conn) {
  const std::string cols = kColumns;
  const std::string refund_cols = kRefundColumns;
  conn.prepare("payment_insert",
               "INSERT INTO payments (tenant, party_id, party_kind, submission_id, amount_minor, currency, description,"
               " reference, provider, idempotency_key, request_fingerprint)"
               " VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
               " ON CONFLICT (tenant, party_id, idempotency_key) DO NOTHING RETURNING " +
                   cols);
  conn.prepare("payment_by_key",
               "SELECT " + cols + " FROM payments WHERE tenant = $1 AND party_id = $2::uuid AND idempotency_key = $3");
  conn.prepare("payment_lock", "SELECT " + cols + " FROM payments WHERE tenant = $1 AND id = $2::uuid FOR UPDATE");
  conn.prepare("payment_lock_by_ref",
               "SELECT " + cols + " FROM payments WHERE provider = $1 AND provider_ref = $2 FOR UPDATE");
  conn.prepare("payment_get", "SELECT " + cols + " FROM payments WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("payment_events",
               "SELECT state, reason, source, (extract(epoch FROM at) * 1000000)::bigint AS at_us FROM payment_events"
               " WHERE payment_id = $1::uuid ORDER BY seq");
  conn.prepare("payment_refunds", "SELECT " + refund_cols +
                                      " FROM refunds r JOIN payments p ON p.id = r.payment_id"
                                      " WHERE r.payment_id = $1::uuid ORDER BY r.created_at, r.id");
  conn.prepare("payment_has_success",
               "SELECT 1 FROM payments WHERE tenant = $1 AND submission_id = $2 AND state = 'success'"
               " AND reason <> 'duplicate_refunded'");
  conn.prepare("payment_lock_submission",
               "SELECT pg_advisory_xact_lock(hashtext('stadtportal.payment.submission'), hashtext($1 || '/' || $2))");
  conn.prepare("payment_set_started",
               "UPDATE payments SET state = 'started', provider_ref = $2, next_url = $3, updated_at = now()"
               " WHERE id = $1::uuid");
  conn.prepare("payment_set_state",
               "UPDATE payments SET state = $2, reason = $3,"
               " finished = $2 IN ('success', 'failed', 'cancelled', 'error'),"
               " next_url = CASE WHEN $2 IN ('success', 'failed', 'cancelled', 'error') THEN '' ELSE next_url END,"
               " updated_at = now() WHERE id = $1::uuid");
  conn.prepare("payment_add_event",
               "INSERT INTO payment_events (payment_id, state, reason, source, detail)"
               " VALUES ($1::uuid, $2, $3, $4, $5::jsonb)");
  conn.prepare("payment_record_webhook",
               "INSERT INTO webhook_events (provider, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
               " RETURNING event_id");
  conn.prepare("payment_unfinished",
               "SELECT tenant, id::text AS id FROM payments WHERE NOT finished"
               " AND updated_at <= now() - make_interval(secs => $1) ORDER BY updated_at LIMIT $2");
  conn.prepare("payment_age",
               "SELECT extract(epoch FROM now() - created_at)::bigint AS age_s FROM payments WHERE id = $1::uuid");
  conn.prepare("payment_pending_refunds",
               "SELECT coalesce(sum(amount_minor), 0)::bigint AS pending FROM refunds WHERE payment_id = $1::uuid"
               " AND state = 'submitted'");
  conn.prepare("payment_insert_refund",
               "INSERT INTO refunds (payment_id, amount_minor, state, reason, requested_by)"
               " VALUES ($1::uuid, $2, 'submitted', $3, $4)"
               " RETURNING id::text AS id, payment_id::text AS payment_id, amount_minor, $5::text AS currency, state,"
               " reason, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us");
  conn.prepare("payment_settle_refund",
               "UPDATE refunds SET state = $2, provider_ref = $3, reason = $4, updated_at = now()"
               " WHERE id = $1::uuid AND state = 'submitted' RETURNING id");
  conn.prepare("payment_has_automatic_refund",
               "SELECT 1 FROM refunds WHERE payment_id = $1::uuid AND requested_by = 'system'");
  conn.prepare("payment_refunds_in_doubt",
               "SELECT DISTINCT p.tenant, p.id::text AS id FROM refunds r JOIN payments p ON p.id = r.payment_id"
               " WHERE r.state = 'submitted' AND r.created_at <= now() - make_interval(secs => $1) LIMIT $2");
  conn.prepare("payment_submitted_refunds",
               "SELECT " + refund_cols +
                   " FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.payment_id = $1::uuid"
                   " AND r.state = 'submitted' AND r.created_at <= now() - make_interval(secs => $2)"
                   " ORDER BY r.created_at, r.id");
  // The retention job: finished payments kept past their last day ($1: the clock's now,
  // read as a day in Nuremberg).
  conn.prepare("payment_expired",
               "SELECT id::text AS id FROM payments WHERE anonymised_at IS NULL AND finished"
               " AND retain_until < ($1::timestamptz AT TIME ZONE 'Europe/Berlin')::date ORDER BY retain_until"
               " LIMIT $2 FOR UPDATE SKIP LOCKED");
  // The party and the provider's references go; amounts, states and dates stay.
  conn.prepare("payment_anonymise",
               "UPDATE payments SET party_id = NULL, idempotency_key = id::text, request_fingerprint = '',"
               " provider_ref = '', next_url = '', anonymised_at = now() WHERE id = ANY($1::uuid[])");
  conn.prepare("payment_retention_on", "SELECT set_config('stadtportal.retention', 'on', true)");
  conn.prepare("payment_anonymise_refunds",
               "UPDATE refunds SET provider_ref = '' WHERE payment_id = ANY($1::uuid[]) AND provider_ref <> ''");
  conn.prepare("payment_anonymise_events",
               "UPDATE payment_events SET detail = detail - 'provider_ref' WHERE payment_id = ANY($1::uuid[])"
               " AND detail ? 'provider_ref'");
  conn.prepare("payment_retained",
               "SELECT p.id::text AS id, p.reference, p.finished, to_char(p.retain_until, 'YYYY-MM-DD') AS until"
               " FROM payments p WHERE p.tenant = $1 AND p.party_id = $2::uuid AND " +
                   std::string(kRetained) + " ORDER BY p.created_at DESC LIMIT $3");
  // The export: the party's payments, oldest first, with their history and refunds ($3: at most).
  conn.prepare("payment_export", "SELECT " + cols +
                                     " FROM payments WHERE tenant = $1 AND party_id = $2::uuid"
                                     " ORDER BY created_at, id LIMIT $3");
  conn.prepare("payment_export_events",
               "SELECT e.payment_id::text AS payment_id, e.state, e.reason, e.source,"
               " (extract(epoch FROM e.at) * 1000000)::bigint AS at_us FROM payment_events e"
               " JOIN payments p ON p.id = e.payment_id WHERE p.tenant = $1 AND p.party_id = $2::uuid"
               " ORDER BY e.payment_id, e.seq LIMIT $3");
  conn.prepare("payment_export_refunds", "SELECT " + refund_cols +
                                             " FROM refunds r JOIN payments p ON p.id = r.payment_id"
                                             " WHERE p.tenant = $1 AND p.party_id = $2::uuid"
                                             " ORDER BY r.created_at, r.id LIMIT $3");
  // The erasure: the party's payments no rule keeps, with their history (V005 lets the
  // history of a payment that never succeeded go, in an erasure only).
  conn.prepare("payment_erasable",
               "SELECT p.id::text AS id FROM payments p WHERE p.tenant = $1 AND p.party_id = $2::uuid AND NOT (" +
                   std::string(kRetained) + ") ORDER BY p.id FOR UPDATE");
  conn.prepare("payment_erasure_on", "SELECT set_config('stadtportal.erasure', 'on', true)");
  conn.prepare("payment_erase_events", "DELETE FROM payment_events WHERE payment_id = ANY($1::uuid[])");
  conn.prepare("payment_erase", "DELETE FROM payments WHERE id = ANY($1::uuid[])");
  conn.prepare("payment_add_refunded",
               "UPDATE payments SET refunded_minor = refunded_minor + $2, updated_at = now() WHERE id = $1::uuid");
  // A day's figures per provider (UTC day of creation for payments and refunds).
  conn.prepare("payment_report",
               "WITH p AS (SELECT * FROM payments WHERE tenant = $1 AND created_at >= $2::date"
               "   AND created_at < $2::date + 1),"
               " r AS (SELECT p2.provider, r.amount_minor FROM refunds r JOIN payments p2 ON p2.id = r.payment_id"
               "   WHERE p2.tenant = $1 AND r.state = 'success' AND r.created_at >= $2::date"
               "   AND r.created_at < $2::date + 1),"
               " providers AS (SELECT provider FROM p UNION SELECT provider FROM r)"
               " SELECT pr.provider,"
               "  (SELECT count(*) FROM p WHERE p.provider = pr.provider AND state = 'success') AS successes,"
               "  (SELECT coalesce(sum(amount_minor), 0) FROM p WHERE p.provider = pr.provider AND state = 'success')"
               "   AS success_minor,"
               "  (SELECT count(*) FROM r WHERE r.provider = pr.provider) AS refunds,"
               "  (SELECT coalesce(sum(amount_minor), 0) FROM r WHERE r.provider = pr.provider) AS refund_minor,"
               "  (SELECT count(*) FROM p WHERE p.provider = pr.provider AND NOT finished) AS open,"
               "  (SELECT count(*) FROM p WHERE p.provider = pr.provider AND state IN ('failed', 'cancelled', 'error'))"
               "   AS failed"
               " FROM providers pr ORDER BY pr.provider");
}

absl::StatusOr<PaymentRow> Store::Claim(const NewPayment& n) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<PaymentRow> {
    if (HasSuccess(tx, n.tenant, n.submission_id)) return status::FieldConflict("submission", "already_paid");
    // A concurrent insert of the same key is waited for (until its short commit).
    auto inserted = Insert(tx, n);
    if (!inserted) return absl::AbortedError("concurrent request with the same idempotency key; retry");
    auto& [row, fresh] = *inserted;
    if (!fresh && row.fingerprint != n.fingerprint) return status::FieldError("idempotency_key", "reused");
    if (fresh) AddEvent(tx, row.payment.id(), "created", "", "api");
    return std::move(row);
  });
}

absl::StatusOr<v1::Payment> Store::RecordCheckout(const std::string& tenant, const std::string& id,
                                                  const absl::StatusOr<Checkout>& checkout) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Payment> {
    auto row = Lock(tx, tenant, id);
    if (!row) return absl::NotFoundError("payment not found");
    if (row->state != "created") return row->payment;
    if (!checkout.ok()) {
      if (auto t = Transition(tx, *row, "error", "provider_error", "api"); !t.ok()) return t;
    } else {
      SetStarted(tx, id, checkout->provider_ref, checkout->next_url);
      AddEvent(tx, id, "started", "", "api", {{"provider_ref", checkout->provider_ref}});
    }
    return Find(tx, tenant, id)->payment;
  });
}

absl::StatusOr<PaymentRow> Store::Get(const std::string& tenant, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<PaymentRow> {
    auto found = Find(tx, tenant, id);
    if (!found) return absl::NotFoundError("payment not found");
    return *std::move(found);
  });
}

absl::StatusOr<Applied> Store::ApplyProviderState(const std::string& tenant, const std::string& id,
                                                  const ProviderState& st, const std::string& source,
                                                  std::optional<std::chrono::seconds> expiry) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<Applied> {
    auto row = Lock(tx, tenant, id);
    if (!row) return absl::NotFoundError("payment not found");
    auto next = Apply(tx, *row, st, source);
    if (!next.ok()) return next.status();
    // An approved payment is captured first; it does not expire meanwhile.
    if (expiry && !next->capture && !Final(row->state) && AgeSeconds(tx, id) >= expiry->count()) {
      if (auto t = Transition(tx, *row, "cancelled", "expired", "expiry"); !t.ok()) return t;
      PublishFailed(tx, row->payment, "expired");
    }
    return Applied{row->state, *std::move(next)};
  });
}

absl::StatusOr<WebhookApplied> Store::ApplyWebhook(const std::string& provider, const WebhookEvent& event) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<WebhookApplied> {
    WebhookApplied out;
    if (!RecordWebhook(tx, provider, event.event_id)) {
      out.repeated = true;
      return out;
    }
    auto row = LockByProviderRef(tx, provider, event.provider_ref);
    if (!row) return absl::NotFoundError("no payment for this notification");
    out.row = *std::move(row);
    out.before = out.row.state;
    auto next = Apply(tx, out.row, {event.outcome, ""}, "webhook");
    if (!next.ok()) return next.status();
    out.next = *std::move(next);
    return out;
  });
}

absl::StatusOr<v1::Refund> Store::RecordRefund(const v1::Payment& payment, const v1::Refund& settled,
                                               const std::string& provider_ref, const RefundRecord& how) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Refund> {
    auto row = Lock(tx, payment.tenant().key(), payment.id());
    if (!row) return absl::NotFoundError("payment not found");
    if (!SettleRefund(tx, settled.id(), settled.state(), provider_ref, settled.reason())) {
      // Recorded meanwhile (the reconciliation asked too): that record stands.
      for (const auto& f : row->payment.refunds()) {
        if (f.id() == settled.id()) return f;
      }
      return absl::NotFoundError("refund not found");
    }
    const bool ok = settled.state() == "success";
    if (ok) {
      AddRefunded(tx, payment.id(), settled.amount().amount_minor());
      // The money is back with the payer: the citizen file shows it.
      events::v1::PaymentRefunded e;
      e.set_tenant(row->payment.tenant().key());
      e.set_payment_id(payment.id());
      e.set_refund_id(settled.id());
      e.set_submission_id(row->payment.submission_id());
      e.set_party_id(row->payment.party().id());
      *e.mutable_amount() = settled.amount();
      *e.mutable_occurred_at() = events::TransactionTime(tx);
      events::Publish(tx, row->payment.submission_id(), e);
    }
    if (how.automatic) {
      AddEvent(tx, payment.id(), row->state, settled.reason(), how.source,
               {{"refund_id", settled.id()}, {"refunded", ok}});
    } else {
      AddEvent(tx, payment.id(), row->state, ok ? "refunded" : "refund_failed", how.source,
               {{"refund_id", settled.id()}, {"amount_minor", settled.amount().amount_minor()}});
    }
    if (how.audit) {
      audit::Entry entry = *how.audit;
      entry.outcome = ok ? "succeeded" : "failed";
      audit::Record(tx, entry);
    }
    return settled;
  });
}

absl::StatusOr<std::pair<v1::Payment, v1::Refund>> Store::PlanRefund(
    const std::string& tenant, const v1::CreateRefundRequest& req, const std::string& requested_by,
    const std::function<bool(const std::string&)>& provider_known) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::pair<v1::Payment, v1::Refund>> {
    auto row = Lock(tx, tenant, req.payment_id());
    if (!row) return absl::NotFoundError("payment not found");
    const auto& p = row->payment;
    if (!req.amount().currency().empty() && req.amount().currency() != p.amount().currency()) {
      return status::FieldError("amount", "invalid", "currency of the payment required");
    }
    const int64_t available = p.refund_amount_available();
    if (req.refund_amount_available() != available) {
      return absl::AbortedError(absl::StrCat("refund_amount_available: stale; now ", available));
    }
    if (req.amount().amount_minor() > available) {
      return absl::FailedPreconditionError(absl::StrCat("amount: exceeds the available ", available));
    }
    if (!provider_known(p.provider())) return absl::FailedPreconditionError("provider no longer configured");
    return std::make_pair(
        p, InsertRefund(tx, p.id(), req.amount().amount_minor(), p.amount().currency(), req.reason(), requested_by));
  });
}

absl::StatusOr<std::vector<OpenPayment>> Store::Unfinished(int64_t older_than_seconds, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::vector<OpenPayment>> {
    return UnfinishedOf(tx, older_than_seconds, limit);
  });
}

absl::StatusOr<std::vector<InDoubt>> Store::RefundsInDoubt(int64_t older_than_seconds, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::vector<InDoubt>> {
    std::vector<InDoubt> out;
    for (const auto& [tenant, payment_id] : PaymentsWithRefundsInDoubt(tx, older_than_seconds, limit)) {
      auto row = Find(tx, tenant, payment_id);
      if (row) out.push_back({*row, SubmittedRefunds(tx, payment_id, older_than_seconds)});
    }
    return out;
  });
}

absl::StatusOr<v1::Report> Store::Report(const std::string& tenant, const std::string& day) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Report> { return ReportOf(tx, tenant, day); });
}

absl::StatusOr<int> Store::EndRetention(absl::Time now, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    const std::string at = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
    std::vector<std::string> ids;
    for (const auto& row : tx.exec_prepared("payment_expired", at, limit)) ids.push_back(row["id"].as<std::string>());
    if (ids.empty()) return 0;
    const std::string array = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
    // The history's one permitted change (V004): the provider's reference leaves it.
    tx.exec_prepared("payment_retention_on");
    tx.exec_prepared("payment_anonymise_events", array);
    tx.exec_prepared("payment_anonymise_refunds", array);
    tx.exec_prepared("payment_anonymise", array);
    return static_cast<int>(ids.size());
  });
}

absl::StatusOr<common::v1::RetainedRecords> Store::RetainedRecords(const std::string& tenant,
                                                                   const std::string& party_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<common::v1::RetainedRecords> {
    common::v1::RetainedRecords out;
    for (const auto& row : tx.exec_prepared("payment_retained", tenant, party_id, kMaxRetainedRecords)) {
      auto* r = out.add_records();
      r->set_service("payment");
      r->set_kind("payment");
      r->set_id(row["id"].as<std::string>());
      r->set_reference(row["reference"].as<std::string>());
      const bool open = !row["finished"].as<bool>();
      r->set_rule(open ? kOpenPaymentRule : kCashRecordRule);
      r->set_legal_basis(kCashRecordLegalBasis);
      r->set_until(open ? "" : row["until"].as<std::string>());
    }
    return out;
  });
}

absl::StatusOr<PersonalPayments> Store::PersonalData(const std::string& tenant, const std::string& party_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<PersonalPayments> {
    PersonalPayments out;
    std::map<std::string, v1::Payment*> by_id;
    for (const auto& row : tx.exec_prepared("payment_export", tenant, party_id, kMaxExportRecords)) {
      out.payments.push_back(ToRow(row).payment);
    }
    for (auto& p : out.payments) by_id[p.id()] = &p;
    for (const auto& e : tx.exec_prepared("payment_export_events", tenant, party_id, kMaxExportRecords)) {
      auto p = by_id.find(e["payment_id"].as<std::string>());
      if (p == by_id.end()) continue;
      auto* ev = p->second->add_events();
      ev->set_state(e["state"].as<std::string>());
      ev->set_reason(e["reason"].as<std::string>());
      ev->set_source(e["source"].as<std::string>());
      *ev->mutable_at() = db::Micros(e["at_us"]);
    }
    for (const auto& r : tx.exec_prepared("payment_export_refunds", tenant, party_id, kMaxExportRecords)) {
      if (auto p = by_id.find(r["payment_id"].as<std::string>()); p != by_id.end())
        *p->second->add_refunds() = ToRefund(r);
    }
    return out;
  });
}

absl::StatusOr<ErasedPayments> Store::Erase(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  ErasedPayments out;
  std::vector<std::string> ids;
  for (const auto& row : tx.exec_prepared("payment_erasable", tenant, party_id)) {
    ids.push_back(row["id"].as<std::string>());
  }
  if (!ids.empty()) {
    const std::string array = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
    tx.exec_prepared("payment_erasure_on");
    tx.exec_prepared("payment_erase_events", array);
    out.payments = tx.exec_prepared("payment_erase", array).affected_rows();
  }
  out.events = events::ErasePublished(tx, {party_id});
  return out;
}

}  // namespace stadtportal::payment

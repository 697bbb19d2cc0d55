#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "services/payment/provider.h"
#include "stadtportal/payment/v1/payment.pb.h"

namespace stadtportal::payment {

struct NewPayment {
  std::string tenant;
  std::string party_id;
  std::string party_kind;  // "person" | "organisation"
  std::string submission_id;
  int64_t amount_minor;
  std::string currency;
  std::string description;
  std::string reference;
  std::string provider;
  std::string idempotency_key;
  std::string fingerprint;  // Identifies the request's content.
};

// A payment with what only the core needs.
struct PaymentRow {
  v1::Payment payment;
  std::string state;  // created started submitted success failed cancelled error
  std::string fingerprint;
};

// An unfinished payment the reconciliation looks at.
struct OpenPayment {
  std::string tenant;
  std::string id;
};

// What a committed change leaves to do at the provider, with no transaction held.
struct Next {
  bool capture = false;              // The payer approved: take the money (Provider::Capture).
  std::optional<v1::Refund> refund;  // An automatic refund, inserted "submitted": give it back.
};

// A change applied with the row locked: the state afterwards and what follows.
struct Applied {
  std::string state;
  Next next;
};

// A provider notification applied: `repeated` when the provider sent it before (nothing
// changed); else the payment, its state before, and what follows.
struct WebhookApplied {
  bool repeated = false;
  PaymentRow row;
  std::string before;
  Next next;
};

// A payment with refunds whose outcome was never recorded.
struct InDoubt {
  PaymentRow row;
  std::vector<v1::Refund> refunds;
};

// How a refund's outcome enters the payment's history (and the audit log).
struct RefundRecord {
  std::string source;  // "refund", "reconcile"
  // A refund the platform made on its own: the history names its reason; else whether
  // it was "refunded" or "refund_failed" with the amount.
  bool automatic = false;
  std::optional<audit::Entry> audit;  // Recorded with the outcome (succeeded / failed).
};

// The payment schema and its state machine (services/payment/states.h): every method is
// one short transaction with the payment row locked where it changes — state, an
// append-only event, and on success the payment.succeeded event for the submission
// service. Provider calls run between such transactions, never inside one (ADR 0017).
// The cash-record retention rule, as docs/data-protection.md names it.
inline constexpr char kCashRecordRule[] =
    "cash record: kept 10 years after the end of the year of payment, then anonymised";
inline constexpr char kCashRecordLegalBasis[] =
    "Art. 6(1)(c) GDPR with the municipal budget and cash rules (Art. 71 BayHO; KommHV-Kameralistik / "
    "KommHV-Doppik)";

// An open payment (the payer may still pay) the erasure leaves: it becomes a cash record
// if money moves.
inline constexpr char kOpenPaymentRule[] =
    "open payment: kept while the provider may still take the money; then, if money moved, as a cash record";

// The party's payments as the export reads them: each with its history (without the
// provider's details) and refunds.
struct PersonalPayments {
  std::vector<v1::Payment> payments;
};

// What an erasure removed.
struct ErasedPayments {
  int64_t payments = 0;  // Deleted: no money moved, no rule keeps them.
  int64_t events = 0;    // Published outbox rows naming the person.
};

class Store {
 public:
  explicit Store(db::Pool& pool);
  static void Prepare(pqxx::connection& conn);

  // Inserts the payment unless its key exists (then the key's payment, waiting for a
  // concurrent insert of it to commit); refuses a submission paid already and a key
  // reused for other content.
  absl::StatusOr<PaymentRow> Claim(const NewPayment& n);
  // The provider's answer to the checkout of a payment still "created": started, or
  // error. A payment a concurrent request started already stays as it is.
  absl::StatusOr<v1::Payment> RecordCheckout(const std::string& tenant, const std::string& id,
                                             const absl::StatusOr<Checkout>& checkout);
  absl::StatusOr<PaymentRow> Get(const std::string& tenant, const std::string& id);
  // Moves the payment along what the provider says; with `expiry`, an unpaid payment older
  // than that is cancelled ("expired") unless it is about to be captured.
  absl::StatusOr<Applied> ApplyProviderState(const std::string& tenant, const std::string& id, const ProviderState& st,
                                             const std::string& source, std::optional<std::chrono::seconds> expiry);
  // A verified notification of `provider`, once per provider event id.
  absl::StatusOr<WebhookApplied> ApplyWebhook(const std::string& provider, const WebhookEvent& event);
  // Records a "submitted" refund's outcome (`settled`: state success or error, and reason)
  // with the payment locked; when it was settled meanwhile, that record stands.
  absl::StatusOr<v1::Refund> RecordRefund(const v1::Payment& payment, const v1::Refund& settled,
                                          const std::string& provider_ref, const RefundRecord& how);
  // Checks a refund against the payment (currency, the available amount the requester saw,
  // the amount) and inserts it "submitted", so its amount is no longer available.
  // `provider_known`: whether the payment's provider is still configured.
  absl::StatusOr<std::pair<v1::Payment, v1::Refund>> PlanRefund(
      const std::string& tenant, const v1::CreateRefundRequest& req, const std::string& requested_by,
      const std::function<bool(const std::string&)>& provider_known);

  // Unfinished payments not changed for `older_than_seconds`, oldest change first.
  absl::StatusOr<std::vector<OpenPayment>> Unfinished(int64_t older_than_seconds, int limit);
  // Payments with refunds "submitted" for at least `older_than_seconds`.
  absl::StatusOr<std::vector<InDoubt>> RefundsInDoubt(int64_t older_than_seconds, int limit);
  absl::StatusOr<v1::Report> Report(const std::string& tenant, const std::string& day);

  // The retention job's step: anonymises up to `limit` finished payments whose last day
  // (retain_until) lies before `now`'s day in Nuremberg, in one transaction (rows claimed
  // FOR UPDATE SKIP LOCKED): the party, the idempotency key and fingerprint, and the
  // provider's references go; amounts, states, reasons, dates and the refunds' amounts
  // stay. Returns how many.
  absl::StatusOr<int> EndRetention(absl::Time now, int limit);

  // The party's payments a rule still keeps, newest first, at most kMaxRetainedRecords:
  // cash records (money moved: a success, or a refund of money that came late) not
  // anonymised yet, until the last day of the tenth year after the year of the payment's
  // last change; and open payments (until empty: not known while the payer may pay).
  absl::StatusOr<common::v1::RetainedRecords> RetainedRecords(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxRetainedRecords = 5000;

  // The export (ExportPersonalData): the party's payments, oldest first, at most
  // kMaxExportRecords (and as many history entries and refunds).
  absl::StatusOr<PersonalPayments> PersonalData(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxExportRecords = 10000;

  // party.erasure_requested, in the consumer's transaction: the party's payments that are
  // no cash record — no money moved (never succeeded, no refund) and finished — are
  // deleted with their history; the records RetainedRecords lists stay untouched (they
  // hold no payer's name or address; the party is the cash record's payer). The published
  // events naming the party go. Idempotent.
  static absl::StatusOr<ErasedPayments> Erase(pqxx::work& tx, const std::string& tenant, const std::string& party_id);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::payment

#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/db/pool.h"
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

// A refund left "submitted" (its outcome at the provider was never recorded).
struct RefundInDoubt {
  std::string tenant;
  std::string payment_id;
};

// The payment schema: all SQL of the service, as named prepared statements. The state
// machine (service.cc) composes these steps inside one short transaction per change;
// no provider or other network call ever runs inside one (see ADR 0017).
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);
  // db::Pool::Transact: `fn` returns absl::Status or absl::StatusOr<T>, and so does this.
  template <typename Fn>
  auto Transact(Fn&& fn) {
    return pool_.Transact(std::forward<Fn>(fn));
  }

  // Inserts the payment unless its key exists (then waits for a concurrent insert of the
  // same key to commit and returns that one); `second` tells whether it was inserted.
  static std::optional<std::pair<PaymentRow, bool>> Insert(pqxx::work& tx, const NewPayment& p);
  // The payment with its history and refunds, locked for the transaction.
  static std::optional<PaymentRow> Lock(pqxx::work& tx, const std::string& tenant, const std::string& id);
  static std::optional<PaymentRow> LockByProviderRef(pqxx::work& tx, const std::string& provider,
                                                     const std::string& provider_ref);
  static std::optional<PaymentRow> Get(pqxx::work& tx, const std::string& tenant, const std::string& id);
  static bool HasSuccess(pqxx::work& tx, const std::string& tenant, const std::string& submission_id);
  // Serialises the transactions that settle payments of one submission (until commit), so
  // two payments succeeding at once see each other: one stays, the other is refunded.
  // Each transaction holds only its own payment's row lock when it waits here.
  static void LockSubmission(pqxx::work& tx, const std::string& tenant, const std::string& submission_id);

  static void SetStarted(pqxx::work& tx, const std::string& id, const std::string& provider_ref,
                         const std::string& next_url);
  static void SetState(pqxx::work& tx, const std::string& id, const std::string& state, const std::string& reason);
  static void AddEvent(pqxx::work& tx, const std::string& id, const std::string& state, const std::string& reason,
                       const std::string& source, const nlohmann::json& detail = nlohmann::json::object());
  // False when the provider's event was seen before.
  static bool RecordWebhook(pqxx::work& tx, const std::string& provider, const std::string& event_id);
  static std::vector<OpenPayment> Unfinished(pqxx::work& tx, int64_t older_than_seconds, int limit);
  // Seconds since the payment was created.
  static int64_t AgeSeconds(pqxx::work& tx, const std::string& id);

  static int64_t PendingRefunds(pqxx::work& tx, const std::string& payment_id);
  static v1::Refund InsertRefund(pqxx::work& tx, const std::string& payment_id, int64_t amount_minor,
                                 const std::string& currency, const std::string& reason,
                                 const std::string& requested_by);
  // Records a submitted refund's outcome; false when it was no longer submitted (the
  // reconciliation settled it meanwhile), and then changes nothing.
  static bool SettleRefund(pqxx::work& tx, const std::string& refund_id, const std::string& state,
                           const std::string& provider_ref, const std::string& reason);
  // Whether the payment has a refund the platform made on its own (duplicate, late success).
  static bool HasAutomaticRefund(pqxx::work& tx, const std::string& payment_id);
  // Payments with refunds "submitted" for at least `older_than_seconds`.
  static std::vector<RefundInDoubt> RefundsInDoubt(pqxx::work& tx, int64_t older_than_seconds, int limit);
  // The payment's refunds "submitted" for at least `older_than_seconds`, oldest first.
  static std::vector<v1::Refund> SubmittedRefunds(pqxx::work& tx, const std::string& payment_id,
                                                  int64_t older_than_seconds);
  static void AddRefunded(pqxx::work& tx, const std::string& payment_id, int64_t amount_minor);

  static v1::Report Report(pqxx::work& tx, const std::string& tenant, const std::string& day);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::payment

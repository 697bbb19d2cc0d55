#pragma once

#include <string>

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
  std::string idempotency_key;
  std::string fingerprint;  // Identifies the request's content.
};

// The payment schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // Creates the payment, or returns the one created earlier with the same key and the
  // same content (also under concurrent duplicates); FAILED_PRECONDITION if the key
  // was used for different content.
  absl::StatusOr<v1::Payment> CreatePayment(const NewPayment& p);
  absl::StatusOr<v1::Payment> GetPayment(const std::string& tenant, const std::string& id);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::payment

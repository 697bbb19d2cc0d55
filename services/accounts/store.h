#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "libs/db/pool.h"
#include "stadtportal/accounts/v1/accounts.pb.h"

namespace stadtportal::accounts {

struct NewParty {
  std::string tenant;
  std::string kind;  // "person" | "organisation"
  std::string display_name;
  std::string identity_account_id;  // Persons only; "" for organisations.
};

// The accounts schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // ALREADY_EXISTS when the identity account has a person party already.
  absl::StatusOr<v1::Party> CreateParty(const NewParty& p);
  absl::StatusOr<v1::Party> GetParty(const std::string& tenant, const std::string& id);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::accounts

#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "libs/db/pool.h"
#include "stadtportal/identity/v1/identity.pb.h"

namespace stadtportal::identity {

struct NewAccount {
  std::string tenant;
  std::string email;
  std::string email_normalized;
  std::string display_name;
  std::string language;  // "de" | "en"
};

// The identity schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // ALREADY_EXISTS when the tenant has an account with that e-mail.
  absl::StatusOr<v1::Account> CreateAccount(const NewAccount& a);
  absl::StatusOr<v1::Account> GetAccount(const std::string& tenant, const std::string& id);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::identity

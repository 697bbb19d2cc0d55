#include "services/accounts/consumers.h"

#include "services/accounts/store.h"

namespace stadtportal::accounts {

absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e) {
  return Store::SetVerifiedEmail(tx, e.account_id(), e.tenant(), e.email());
}

events::Handlers Consumers() {
  events::Handlers h;
  h.On<events::v1::AccountVerified>(OnAccountVerified);
  return h;
}

}  // namespace stadtportal::accounts

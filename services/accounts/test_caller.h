#pragma once

#include <string>

#include "libs/auth/caller.h"

// What the accounts tests share.
namespace stadtportal::accounts {

// A person acting as themself in the tests' municipality, as the gateway's caller token
// names them; a test sets an organisation, a partner portal or a role on it.
inline auth::Caller PersonCaller(const std::string& account) {
  auth::Caller c;
  c.account_id = account;
  c.tenant = "09564000";
  c.assurance = "low";
  return c;
}

}  // namespace stadtportal::accounts

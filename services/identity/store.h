#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/timestamp.pb.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "libs/mail/mail.h"
#include "services/identity/federation/federation.h"
#include "stadtportal/identity/v1/identity.pb.h"

namespace stadtportal::identity {

struct NewAccount {
  std::string tenant;
  std::string email;
  std::string email_normalized;
  std::string display_name;
  std::string language;  // "de" | "en"
  std::string password_hash;
};

// An account with what log-in needs.
struct Credentials {
  v1::Account account;
  std::string password_hash;
  bool verified = false;
};

// An account's second factor (TOTP secret, raw 20 bytes).
struct TotpFactor {
  std::string secret;
  bool confirmed = false;
};

// The account of a log-in with an upstream provider, and what became of it: "login",
// "step_up" (the session's own account), "linked" (the provider newly linked to the
// session's account) or "created" (a new account).
struct FederatedAccount {
  v1::Account account;
  std::string outcome;
};

// What an erasure removed (for the counters) and when it was asked for.
struct ErasedAccount {
  google::protobuf::Timestamp requested_at;
  int64_t rows = 0;  // Rows deleted or anonymised in the schema, the account's own included.
};

// The identity schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  db::Pool& pool() { return pool_; }
  static void Prepare(pqxx::connection& conn);
  // The statements of the export and the erasure (personal_data.cc).
  static void PreparePersonalData(pqxx::connection& conn);

  // Creates the account with an e-mail token and queues the mail made from the token,
  // in one transaction. ALREADY_EXISTS (nothing written) when the e-mail is taken.
  absl::Status CreateAccount(const NewAccount& a, const std::string& token_hash, std::chrono::seconds token_ttl,
                             const std::function<mail::Mail(const v1::Account&)>& mail);
  absl::StatusOr<v1::Account> GetAccount(const std::string& tenant, const std::string& id);
  absl::StatusOr<Credentials> FindById(const std::string& tenant, const std::string& id);
  // NOT_FOUND when the tenant has no account with this normalised e-mail.
  absl::StatusOr<Credentials> FindByEmail(const std::string& tenant, const std::string& email_normalized);

  // Issues a token of `purpose` for the account and queues the mail made from it.
  absl::Status IssueToken(const v1::Account& account, const std::string& purpose, const std::string& token_hash,
                          std::chrono::seconds ttl, const mail::Mail& mail);
  // Queues a mail without a token.
  absl::Status QueueMail(const std::string& tenant, const mail::Mail& mail);
  // Marks an unused, unexpired token of `purpose` used and returns its account id;
  // INVALID_ARGUMENT "token: invalid_token" otherwise.
  absl::StatusOr<std::string> ConsumeToken(const std::string& token_hash, const std::string& purpose,
                                           const std::function<absl::Status(pqxx::work&, const std::string&)>& then);
  absl::Status SetPasswordHash(const std::string& account_id, const std::string& hash);
  // A new password chosen by the account holder: the hash, and every outstanding reset
  // token of the account used up, in one transaction.
  absl::Status ReplacePassword(const std::string& account_id, const std::string& hash);
  // Marks every unused reset token of the account used.
  static void RevokeResetTokens(pqxx::work& tx, const std::string& account_id);
  absl::Status MarkVerified(pqxx::work& tx, const std::string& account_id);

  // Accounts whose e-mail or display name contains `query` (at most 50), each read
  // recorded in the access log in the same transaction.
  absl::StatusOr<std::vector<v1::Account>> FindAccounts(const std::string& tenant, const std::string& query,
                                                        const std::string& admin_id, const std::string& reason);
  // Locks or unlocks (back to active, or pending if never verified), logged likewise and
  // recorded in the audit log.
  absl::StatusOr<v1::Account> SetLocked(const std::string& tenant, const std::string& account_id, bool locked,
                                        const std::string& admin_id, const std::string& reason,
                                        const audit::Entry& audit);

  // The enrolment code the operator command hands out (its SHA-256), valid for `valid`;
  // replaces an earlier one. Confirming a factor uses it up.
  absl::Status SetEnrolmentCode(const std::string& account_id, const std::string& code_hash,
                                std::chrono::seconds valid);
  // A new unconfirmed TOTP secret for the account (replacing an unconfirmed one), if
  // `code_hash` is that of its valid enrolment code (else PERMISSION_DENIED
  // "enrolment_code: invalid_code"); FAILED_PRECONDITION "totp: already_enrolled" when
  // one is confirmed.
  absl::Status StartTotp(const std::string& tenant, const std::string& account_id, const std::string& secret,
                         const std::string& code_hash);
  // NOT_FOUND when the account has none.
  absl::StatusOr<TotpFactor> GetTotp(const std::string& account_id);
  absl::StatusOr<bool> TotpConfirmed(const std::string& account_id);
  // Marks time step `step` used, if no step at or after it was (a code counts once),
  // and confirms an unconfirmed factor when `confirm`; INVALID_ARGUMENT
  // "code: invalid_code" otherwise. The audit entry is written with it.
  absl::Status UseTotpStep(const std::string& account_id, int64_t step, bool confirm, const audit::Entry& audit);

  // The audit log (identity keeps it for every service): `service` recorded `entry`;
  // `event_id` is the event it came in (exactly once), "" for identity's own.
  static void InsertAudit(pqxx::work& tx, const std::string& service, const audit::Entry& entry);
  // Newest first, `limit` entries with an id below `before` (0: from the newest).
  absl::StatusOr<std::vector<v1::AuditEntry>> ListAudit(const std::string& tenant, int64_t before, int limit,
                                                        const std::string& actor, const std::string& action);

  // The operator command: grants or revokes a role of the account with this e-mail
  // (NOT_FOUND if none), recorded in the audit log; returns the account.
  absl::StatusOr<v1::Account> SetRole(const std::string& tenant, const std::string& email_normalized,
                                      const std::string& role, bool grant, audit::Entry audit);
  // Accounts holding any administrative role (auth::IsAdminRole).
  absl::StatusOr<std::vector<v1::Account>> ListAdmins(const std::string& tenant);
  // Removes the account's second factor (lost device); it must enrol again.
  absl::StatusOr<v1::Account> ResetTotp(const std::string& tenant, const std::string& email_normalized,
                                        audit::Entry audit);
  absl::Status SetPasswordHash(pqxx::work& tx, const std::string& account_id, const std::string& hash);

  // A log-in through an upstream provider: the account linked to the identity's provider
  // and subject; with `link_to` (an account that proved itself with its session) that
  // account, linking the provider to it; else a new account. The level and time are
  // recorded and account.identified published (the profile takes the attributes), in one
  // transaction. FAILED_PRECONDITION "provider: linked_to_another_account" when the
  // person is linked to another account than `link_to`, "provider: another_person_linked"
  // when `link_to` has another person of this provider; PERMISSION_DENIED "account: locked".
  absl::StatusOr<FederatedAccount> RecordFederatedLogin(const std::string& tenant, const federation::Identity& identity,
                                                        const std::string& link_to);
  absl::StatusOr<std::vector<v1::LinkedProvider>> ListLinkedProviders(const std::string& tenant,
                                                                      const std::string& account_id);
  // NOT_FOUND when not linked; FAILED_PRECONDITION "provider: last_login_method" when the
  // account has no password and no other provider.
  absl::Status UnlinkProvider(const std::string& tenant, const std::string& account_id, const std::string& provider);

  // The GDPR export (personal_data.cc): the account's section of the export document
  // without its sessions (Redis), read in one read-only transaction: the account (never
  // a password hash), linked providers, the second factor ("enrolled" only), connected
  // partner portals, its own audit entries and administrators' look-ups of it.
  // NOT_FOUND when the tenant has no such account.
  absl::StatusOr<nlohmann::json> ExportAccount(const std::string& tenant, const std::string& account_id);
  // The erasure of an account, in one transaction: its tokens, second factor, federated
  // links, partner consents, mails to its address, its own audit entries (others' entries
  // keep what they did, without naming it) and the account row go; administrators'
  // look-ups keep administrator, time and reason without it; published events naming it
  // go; party.erasure_requested is published and `notice` (made with the request's time)
  // queued to the address. NOT_FOUND when the account is gone already.
  absl::StatusOr<ErasedAccount> EraseAccount(
      const std::string& tenant, const std::string& account_id,
      const std::function<mail::Mail(const std::string& email, const google::protobuf::Timestamp& at)>& notice);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::identity

#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "libs/mail/mail.h"
#include "services/accounts/document_types.h"
#include "services/accounts/file.h"
#include "stadtportal/accounts/v1/accounts.pb.h"

namespace stadtportal::accounts {

struct NewParty {
  std::string tenant;
  std::string kind;  // "person" | "organisation"
  std::string display_name;
  std::string identity_account_id;  // Persons only; "" for organisations.
};

struct NewOrganisation {
  std::string tenant;
  std::string name;
  std::string legal_form;  // "company" | "association" | "authority"
  std::string register_number;
  v1::Address address;
  std::string owner_id;  // The creating person's party.
};

// An organisation as an identity provider vouched for it (company accounts).
struct VouchedOrganisation {
  std::string id;  // The provider's id of it.
  std::string name;
  v1::Address address;
};

struct NewInvitation {
  std::string tenant;
  std::string organisation_id;
  std::string email;
  std::string role;
  std::string token_hash;
  std::string invited_by;
  std::chrono::seconds ttl;
};

// A document with an expiry, as the person enters it or a department records it.
struct NewDocument {
  std::string tenant;
  std::string party_id;
  std::string type;
  std::string label;
  std::string expires_on;  // YYYY-MM-DD, checked.
  std::string source;      // "person" | "department"
  int remind_days_before = 0;
  // Department documents: the approved submission, its reference, the destination.
  std::string submission_id;
  std::string reference;
  std::string destination;
};

// At most this many documents per party.
inline constexpr int kMaxDocumentsPerParty = 100;

// A page of a party's access log: newest first, after the cursor (0: from the start),
// within [from, to) (0: unbounded); times in microseconds since the epoch.
struct AccessLogQuery {
  std::string tenant;
  std::string party_id;
  int64_t after_micros = 0;
  int64_t after_id = 0;
  int64_t from_micros = 0;
  int64_t to_micros = 0;
  int page_size = 20;
};

// The accounts schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // ALREADY_EXISTS when the identity account has a person party already;
  // FAILED_PRECONDITION when it was erased.
  absl::StatusOr<v1::Party> CreateParty(const NewParty& p);
  absl::StatusOr<v1::Party> GetParty(const std::string& tenant, const std::string& id);
  // The person party of an identity account, created on first use with the account's
  // id as its own (so that every service knows it from the caller token);
  // FAILED_PRECONDITION, nothing made, when that party was erased.
  absl::StatusOr<v1::Party> EnsurePerson(const std::string& tenant, const std::string& identity_account_id);

  absl::StatusOr<v1::Organisation> CreateOrganisation(const NewOrganisation& o);
  // NOT_FOUND unless `person_id` is a member.
  absl::StatusOr<v1::Organisation> GetOrganisation(const std::string& tenant, const std::string& id,
                                                   const std::string& person_id);
  absl::StatusOr<std::vector<v1::Organisation>> ListOrganisationsOf(const std::string& tenant,
                                                                    const std::string& person_id);
  absl::StatusOr<std::vector<v1::Membership>> ListMembers(const std::string& tenant,
                                                          const std::string& organisation_id);
  // The role ("owner" | "admin" | "member") of a person, or nullopt if none.
  absl::StatusOr<std::optional<std::string>> RoleOf(const std::string& tenant, const std::string& organisation_id,
                                                    const std::string& person_id);

  // Stores the invitation and queues its mail in one transaction.
  absl::StatusOr<v1::Invitation> Invite(const NewInvitation& i, const mail::Mail& mail);
  // Answers an open, unexpired invitation once; INVALID_ARGUMENT "token: invalid_token" otherwise.
  // Accepting makes `person_id` a member (an existing membership keeps its role), and
  // only when the verified e-mail address of `person_id`'s identity account is the one
  // the invitation was sent to (compared case-insensitively); else PERMISSION_DENIED and
  // the invitation stays open.
  absl::StatusOr<v1::Membership> AcceptInvitation(const std::string& token_hash, const std::string& person_id);
  absl::Status DeclineInvitation(const std::string& token_hash, const std::string& person_id);
  // Records an identity account's verified address (account.verified events);
  // INVALID_ARGUMENT, nothing written, when the account id, tenant or address is malformed.
  static absl::Status SetVerifiedEmail(pqxx::work& tx, const std::string& account_id, const std::string& tenant,
                                       const std::string& email);

  // Changes or ends a membership; FAILED_PRECONDITION if that would leave no owner.
  absl::StatusOr<v1::Membership> ChangeRole(const std::string& tenant, const std::string& organisation_id,
                                            const std::string& person_id, const std::string& role);
  absl::Status RemoveMember(const std::string& tenant, const std::string& organisation_id,
                            const std::string& person_id);

  absl::StatusOr<v1::Profile> GetProfile(const std::string& tenant, const std::string& party_id);
  // Writes self-asserted values ("" removes) in one transaction; FAILED_PRECONDITION
  // "<name>: verified" (nothing written) if one of them was vouched for by a provider.
  absl::StatusOr<v1::Profile> UpdateProfile(const std::string& tenant, const std::string& party_id,
                                            const std::map<std::string, std::string>& values);
  // account.identified: the attributes an upstream provider vouched for go into the
  // profile of the account's person (made if it has none), replacing earlier values. With
  // `organisation` (a company account's log-in): the organisation the provider knows by
  // its id is made at the first log-in, with the person as owner; a later representative
  // becomes a member (admin) of it.
  static absl::Status RecordIdentified(pqxx::work& tx, const std::string& tenant, const std::string& account_id,
                                       const std::map<std::string, std::string>& values, const std::string& provider,
                                       const std::string& assurance, const VouchedOrganisation* organisation = nullptr);
  // Records attributes vouched for by an identity provider (replacing earlier values).
  absl::Status RecordVerified(const std::string& tenant, const std::string& party_id,
                              const std::map<std::string, std::string>& values, const std::string& provider,
                              const std::string& assurance);

  absl::StatusOr<v1::Preferences> GetPreferences(const std::string& tenant, const std::string& party_id);
  absl::StatusOr<v1::Preferences> SetPreferences(const std::string& tenant, const std::string& party_id,
                                                 const v1::Preferences& p);

  absl::StatusOr<std::vector<v1::Consent>> ListConsents(const std::string& tenant, const std::string& party_id);
  // A consent with purpose "reminders" also schedules the reminders of the party's
  // documents (again, if a withdrawal had cancelled them; a sent one stays sent).
  absl::StatusOr<v1::Consent> GiveConsent(const std::string& tenant, const std::string& party_id,
                                          const std::string& purpose, const std::string& text_version);
  // NOT_FOUND unless the consent is the party's; withdrawing twice keeps the first time.
  // Withdrawing the party's last live consent with purpose "reminders" cancels its
  // scheduled reminders in the same transaction.
  absl::StatusOr<v1::Consent> WithdrawConsent(const std::string& tenant, const std::string& party_id,
                                              const std::string& id);

  // The party's documents, soonest expiry first, with their reminders' due date and state.
  absl::StatusOr<std::vector<v1::Document>> ListDocuments(const std::string& tenant, const std::string& party_id);
  // NOT_FOUND unless the document is the party's.
  absl::StatusOr<v1::Document> GetDocument(const std::string& tenant, const std::string& party_id,
                                           const std::string& id);
  // Stores a person's document and, while the party has a live "reminders" consent,
  // schedules its reminder (expires_on - remind_days_before) in the same transaction.
  // INVALID_ARGUMENT "documents: too_many" beyond kMaxDocumentsPerParty.
  absl::StatusOr<v1::Document> AddDocument(const NewDocument& d);
  // Removes the document with its reminders; NOT_FOUND unless it is the party's.
  absl::Status DeleteDocument(const std::string& tenant, const std::string& party_id, const std::string& id);
  // document.recorded: a department's document, once per submission and type (a repeat
  // changes nothing), scheduled like a person's. A person party named for the first
  // time is made (its id is the identity account's).
  static absl::Status RecordDocument(pqxx::work& tx, const NewDocument& d);

  // One run of the reminder job, in one transaction: claims up to `limit` scheduled
  // reminders due on or before today (the UTC date of `now`, the job's clock; each event's
  // occurred_at is `now`) of documents not expired before it,
  // whose party has a live "reminders" consent, with FOR UPDATE SKIP LOCKED (another
  // replica's run skips them); marks each sent and writes its reminder.due event into the
  // outbox, both committed together or not at all. Returns how many were sent.
  absl::StatusOr<int> SendDueReminders(absl::Time now, int limit, const DocumentTypes& types);

  // The citizen file (file.h). Journals an event once; false when its id was taken before.
  static bool JournalFileEvent(pqxx::work& tx, const FileEntry& e);
  // Writes the entry's item once (its event id is unique); false when it has none or had
  // one. An item naming only its submission takes the service of the submission's
  // statuses in the journal; a status gives its service to the submission's items taken
  // before it (the same items whatever order the events came in).
  static bool WriteFileItem(pqxx::work& tx, const FileEntry& e);
  // Deletes the items of `tenant` ("" for all), for a rebuild in the same transaction.
  static void DeleteFileItems(pqxx::work& tx, const std::string& tenant);
  // Up to `limit` journal entries of `tenant` ("" for all) after the event id `after`, by id.
  static std::vector<events::Event> FileJournal(pqxx::work& tx, const std::string& tenant, const std::string& after,
                                                int limit);
  // A page of the party's items in the timeline's order, with the token of the next.
  absl::StatusOr<v1::ListFileItemsResponse> ListFile(const FileQuery& q);

  // The retention job's step: deletes up to `limit` documents whose expiry date lies more
  // than twelve months before `now`'s day in Nuremberg, with their reminders, in one
  // transaction (rows claimed FOR UPDATE SKIP LOCKED). Returns how many documents.
  absl::StatusOr<int> EndDocumentRetention(absl::Time now, int limit);

  // data.accessed: a read of the party's data by someone else, kept once per event id
  // (checked by the consumer first; the table's checks refuse the rest).
  static absl::Status AddAccessLogEntry(pqxx::work& tx, const std::string& event_id, const events::v1::DataAccessed& e);
  // One page of the party's access log (see AccessLogQuery).
  absl::StatusOr<v1::ListAccessLogResponse> ListAccessLog(const AccessLogQuery& q);

  // The person's section of the export (docs/api/export/accounts.schema.json): party,
  // profile, preferences, consents, memberships, invitations to the verified address,
  // documents and reminders, the verified address, the access log and the citizen file's
  // items; at most kMaxExported of each kind, read in one transaction. Makes no party.
  absl::StatusOr<common::v1::PersonalData> ExportPersonalData(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxExported = 10000;

  // What an erasure removed.
  struct Erased {
    int64_t parties = 0;              // The person's party (with profile, preferences, consents, memberships).
    int64_t documents = 0;            // With their reminders.
    int64_t rows = 0;                 // Every other row: invitations, mails, verified address, access log, file.
    std::vector<std::string> emails;  // The person's addresses accounts knew (for events::ErasePublished).
  };
  // party.erasure_requested, in the consumer's transaction: deletes every row of the
  // person of `tenant` (party, profile, preferences, consents, memberships, documents and
  // reminders, the verified address, invitations and mails to the person's addresses —
  // equal ignoring case, in the tenant — the access log, the file's journal and items),
  // unnames the invitations the person sent, and keeps the party's tombstone. Organisations
  // stay, also one whose last owner the person was. Idempotent.
  static Erased ErasePerson(pqxx::work& tx, const std::string& tenant, const std::string& party_id);
  // Whether the party of `tenant` was erased (its tombstone is kept): the one check by
  // which the consumer skips a late event about it and no call makes it again.
  static bool IsErased(pqxx::work& tx, const std::string& tenant, const std::string& party_id);

  // A partner portal's read, published for the person's access log (the event is the
  // record: the read itself changes nothing here).
  absl::Status RecordAccess(const audit::Access& access) { return audit::RecordAccess(pool_, access); }

 private:
  db::Pool& pool_;
};

std::string RoleName(v1::Role r);  // "owner" | "admin" | "member" | ""
v1::Role ParseRole(const std::string& s);

}  // namespace stadtportal::accounts

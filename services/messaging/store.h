#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/api/api.h"
#include "libs/audit/audit.h"
#include "libs/db/pool.h"
#include "stadtportal/messaging/v1/messaging.pb.h"

namespace stadtportal::messaging {

// A mailbox: the party it belongs to.
struct Owner {
  std::string tenant;
  std::string party_id;
};

struct NewAttachment {
  std::string filename;
  std::string media_type;  // Sniffed.
  std::string sha256;
  std::string content;
};

struct NewMessage {
  std::string tenant;
  std::string party_id;
  std::string party_kind;   // "person" | "organisation"
  std::string sender_kind;  // "citizen" | "department" | "system"
  std::string sender_name;
  std::string subject;  // For a new thread.
  std::string body;
  std::string message_key;
  std::string thread_id;  // "" = a new thread.
  std::string submission_id;
  std::string department;   // Display name.
  std::string destination;  // Department messages: the thread's destination.
  bool notice = false;
  bool reminder = false;  // A reminder before a document expires (reminder.due).
  std::vector<NewAttachment> attachments;
};

// Where a party's notifications go.
struct Contact {
  std::string email;
  std::string language;
  bool notify_messages = true;
  bool notify_reminders = true;
};

// The mailbox's retention rules, as docs/data-protection.md names them.
inline constexpr char kThreadRule[] = "mailbox thread: kept 10 years after its last message, then deleted";
inline constexpr char kNoticeThreadRule[] =
    "mailbox thread with an official notice (proof of delivery): kept 10 years after its last message, then deleted";
inline constexpr char kThreadLegalBasis[] =
    "Art. 6(1)(e) GDPR; the procedure's correspondence per the municipality's filing plan (platform default, "
    "confirmed by the data protection officer)";

// The messaging schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // Stores the message once per key (a repeat returns the stored one, `second` false).
  // `on_new` runs in the same transaction for a new message (the notification mail).
  using OnNew = std::function<void(pqxx::work&, const v1::Message&)>;
  absl::StatusOr<std::pair<v1::Message, bool>> Post(const NewMessage& m, const OnNew& on_new);
  // The same inside the caller's transaction (an event's consumer).
  static absl::StatusOr<std::pair<v1::Message, bool>> PostIn(pqxx::work& tx, const NewMessage& m, const OnNew& on_new);

  // Newest activity first; the token continues after the last thread of a page.
  absl::StatusOr<v1::ListThreadsResponse> ListThreads(const Owner& owner, bool archived, bool unread_only,
                                                      const api::Page& page);
  absl::StatusOr<v1::Thread> GetThread(const Owner& owner, const std::string& id);
  // The thread as a citizen reply must see it (NOT_FOUND for another party's).
  absl::StatusOr<v1::Thread> ThreadHeader(const Owner& owner, const std::string& id);
  absl::StatusOr<v1::Message> MarkRead(const Owner& owner, const std::string& message_id);
  absl::StatusOr<v1::AttachmentContent> GetAttachment(const Owner& owner, const std::string& id);
  // An attachment in a thread of `destination`.
  absl::StatusOr<v1::AttachmentContent> GetDepartmentAttachment(const std::string& tenant,
                                                                const std::string& destination, const std::string& id);
  absl::StatusOr<v1::Thread> SetArchived(const Owner& owner, const std::string& thread_id, bool archived);
  // Citizen replies in threads of `destination`.
  absl::StatusOr<v1::ListRepliesResponse> ListReplies(const std::string& tenant, const std::string& destination,
                                                      int64_t after_sequence, int limit);

  // Oldest first, over the submission's threads of `destination`.
  absl::StatusOr<v1::ListRepliesResponse> SubmissionMessages(const std::string& tenant,
                                                             const std::string& submission_id,
                                                             const std::string& destination);
  static std::optional<Contact> FindContact(pqxx::work& tx, const std::string& party_id);
  static void SetContactEmail(pqxx::work& tx, const std::string& party_id, const std::string& tenant,
                              const std::string& email);
  static void SetContactPreferences(pqxx::work& tx, const std::string& party_id, const std::string& tenant,
                                    const std::string& language, bool notify_messages,
                                    std::optional<bool> notify_reminders = std::nullopt);

  // The retention job's step: deletes up to `limit` threads whose retain_until is at or
  // before `now` (claimed FOR UPDATE SKIP LOCKED), with their messages, notices, read
  // receipts and files, in one transaction. Returns how many threads.
  absl::StatusOr<int> EndRetention(absl::Time now, int limit);

  // The party's mailbox threads a retention rule keeps after an erasure (kRetainedThread):
  // a procedure's correspondence, until its retain_until (ten years after the last
  // message), newest first, at most kMaxRetainedRecords.
  absl::StatusOr<common::v1::RetainedRecords> RetainedRecords(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxRetainedRecords = 5000;

  // The person's section of the export (docs/api/export/messaging.schema.json): threads
  // with messages, notices, read state and attachments (listed as files, without their
  // bytes), the notification contact and the mails to its address the outbox still
  // names; at most kMaxExported of each kind, read in one transaction.
  absl::StatusOr<common::v1::PersonalData> ExportPersonalData(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxExported = 10000;
  // An attachment of the export by its id, only from the party's own mailbox (NOT_FOUND
  // otherwise); the content with the export's path.
  absl::StatusOr<common::v1::ExportFile> PersonalDataFile(const std::string& tenant, const std::string& party_id,
                                                          const std::string& attachment_id);

  // What an erasure removed.
  struct Erased {
    int threads = 0;       // With their messages, notices, read receipts and files.
    int64_t mails = 0;     // Mail outbox rows addressed to the person.
    int64_t contacts = 0;  // The notification contact (address, language, choices).
    std::string email;     // The contact's address, for events::ErasePublished ("" without one).
  };
  // party.erasure_requested, in the consumer's transaction: deletes the party's threads
  // except the retained ones (the condition RetainedRecords lists them by), with their
  // messages and files, its contact, and the mail outbox rows of `tenant` addressed to the
  // contact's address (equal ignoring case, nothing else), and keeps the party's
  // tombstone. Idempotent.
  static Erased ErasePerson(pqxx::work& tx, const std::string& tenant, const std::string& party_id);
  // Whether the party of `tenant` was erased (ErasePerson keeps its tombstone): the
  // consumer's handlers skip a late event about it.
  static bool IsErased(pqxx::work& tx, const std::string& tenant, const std::string& party_id);

  // A partner portal's read, published for the person's access log (the event is the
  // record: the read itself changes nothing here).
  absl::Status RecordAccess(const audit::Access& access) { return audit::RecordAccess(pool_, access); }

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::messaging

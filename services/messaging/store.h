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

  // The party's mailbox threads, kept until their retain_until (ten years after the last
  // message), newest first, at most kMaxRetainedRecords.
  absl::StatusOr<common::v1::RetainedRecords> RetainedRecords(const std::string& tenant, const std::string& party_id);
  static constexpr int kMaxRetainedRecords = 5000;

  // A partner portal's read, published for the person's access log (the event is the
  // record: the read itself changes nothing here).
  absl::Status RecordAccess(const audit::Access& access) { return audit::RecordAccess(pool_, access); }

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::messaging

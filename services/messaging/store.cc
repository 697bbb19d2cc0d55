#include "services/messaging/store.h"

#include <map>

#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "libs/db/row.h"
#include "libs/events/events.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"

namespace stadtportal::messaging {
namespace {

using db::Micros;
using google::protobuf::util::TimeUtil;

constexpr char kMessageColumns[] =
    "m.id::text AS id, m.tenant, m.party_id::text AS party_id, m.party_kind, m.sender_kind, m.subject, m.body,"
    " m.message_key, (extract(epoch FROM m.created_at) * 1000000)::bigint AS created_at,"
    " m.thread_id::text AS thread_id, m.sender_name, m.notice,"
    " coalesce((extract(epoch FROM m.first_read_at) * 1000000)::bigint, 0) AS first_read_at, m.seq";

constexpr char kThreadColumns[] =
    "t.id::text AS id, t.subject, t.submission_id, t.department, t.archived_at IS NOT NULL AS archived,"
    " (SELECT count(*) FROM messages u WHERE u.thread_id = t.id AND u.sender_kind <> 'citizen'"
    "   AND u.first_read_at IS NULL)::int AS unread,"
    " (extract(epoch FROM t.created_at) * 1000000)::bigint AS created_at,"
    " (extract(epoch FROM t.last_message_at) * 1000000)::bigint AS last_message_at,"
    " EXISTS (SELECT 1 FROM messages n WHERE n.thread_id = t.id AND n.notice) AS has_notice";

// The threads (t) a retention rule keeps after the person asked for erasure: a
// procedure's correspondence — a thread about a submission, one a department wrote in, one
// with an official notice — until its retain_until. The one condition RetainedRecords
// lists by and ErasePerson keeps by. The system's own threads (reminders before a
// document expires) are no procedure's correspondence and go with the erasure.
constexpr char kRetainedThread[] =
    "(t.retain_until > now() AND (t.submission_id <> '' OR t.destination <> '' OR t.department <> ''"
    " OR EXISTS (SELECT 1 FROM messages n WHERE n.thread_id = t.id AND n.notice)))";

// Attachment columns (a = message_attachments).
constexpr char kAttachmentColumns[] = "a.id::text AS id, a.filename, a.media_type, a.size, a.sha256";

v1::SenderKind Kind(const std::string& s) {
  if (s == "citizen") return v1::SENDER_KIND_CITIZEN;
  if (s == "department") return v1::SENDER_KIND_DEPARTMENT;
  return v1::SENDER_KIND_SYSTEM;
}

v1::Message ToMessage(const pqxx::row& r) {
  v1::Message m;
  m.set_id(r["id"].as<std::string>());
  m.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  m.mutable_party()->set_id(r["party_id"].as<std::string>());
  m.mutable_party()->set_kind(r["party_kind"].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON
                                                                            : common::v1::PARTY_KIND_ORGANISATION);
  m.set_sender_kind(Kind(r["sender_kind"].as<std::string>()));
  m.set_subject(r["subject"].as<std::string>());
  m.set_body(r["body"].as<std::string>());
  m.set_message_key(r["message_key"].as<std::string>());
  *m.mutable_created_at() = Micros(r["created_at"]);
  m.set_thread_id(r["thread_id"].as<std::string>());
  m.set_sender_name(r["sender_name"].as<std::string>());
  m.set_notice(r["notice"].as<bool>());
  if (r["first_read_at"].as<int64_t>() != 0) *m.mutable_first_read_at() = Micros(r["first_read_at"]);
  m.set_sequence(r["seq"].as<int64_t>());
  return m;
}

// What message.received calls a message.
std::string ReceivedKind(const NewMessage& m) {
  if (m.sender_kind == "citizen") return "reply";
  if (m.notice) return "notice";
  if (m.sender_kind == "department") return "message";
  return m.reminder ? "reminder" : "system";
}

v1::Thread ToThread(const pqxx::row& r) {
  v1::Thread t;
  t.set_id(r["id"].as<std::string>());
  t.set_subject(r["subject"].as<std::string>());
  t.set_submission_id(r["submission_id"].as<std::string>());
  t.set_department(r["department"].as<std::string>());
  t.set_archived(r["archived"].as<bool>());
  t.set_unread(r["unread"].as<int>());
  *t.mutable_created_at() = Micros(r["created_at"]);
  *t.mutable_last_message_at() = Micros(r["last_message_at"]);
  t.set_has_notice(r["has_notice"].as<bool>());
  return t;
}

v1::Attachment ToAttachment(const pqxx::row& r) {
  v1::Attachment a;
  a.set_id(r["id"].as<std::string>());
  a.set_filename(r["filename"].as<std::string>());
  a.set_media_type(r["media_type"].as<std::string>());
  a.set_size(r["size"].as<int64_t>());
  a.set_sha256(r["sha256"].as<std::string>());
  return a;
}

// An attachment with its bytes (the attachment columns and `content`).
v1::AttachmentContent ToContent(const pqxx::row& r) {
  v1::AttachmentContent out;
  *out.mutable_attachment() = ToAttachment(r);
  out.set_content(pqxx::binarystring(r["content"]).str());
  return out;
}

// A time column selected as microseconds, as RFC 3339 UTC; 0 (not set) as null.
nlohmann::json Time(const pqxx::field& f) {
  if (f.as<int64_t>() == 0) return nullptr;
  return TimeUtil::ToString(Micros(f));
}

const char* SenderKindName(v1::SenderKind k) {
  switch (k) {
    case v1::SENDER_KIND_CITIZEN: return "citizen";
    case v1::SENDER_KIND_DEPARTMENT: return "department";
    default: return "system";
  }
}

v1::Message LoadMessage(pqxx::work& tx, const pqxx::row& r) {
  v1::Message m = ToMessage(r);
  for (const auto& a : tx.exec_prepared("messaging_attachments", m.id())) *m.add_attachments() = ToAttachment(a);
  return m;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  const std::string msg = kMessageColumns;
  const std::string thr = kThreadColumns;
  conn.prepare("messaging_by_key", "SELECT " + msg + " FROM messages m WHERE m.tenant = $1 AND m.message_key = $2");
  conn.prepare("messaging_new_thread",
               "INSERT INTO threads (id, tenant, party_id, party_kind, subject, submission_id, department, destination)"
               " VALUES (gen_random_uuid(), $1, $2::uuid, $3, $4, $5, $6, $7) RETURNING id::text AS id");
  conn.prepare("messaging_thread_of_submission",
               "SELECT id::text AS id FROM threads WHERE tenant = $1 AND party_id = $2::uuid AND submission_id = $3"
               " AND ($4 = '' OR destination IN ($4, '')) ORDER BY destination = $4 DESC, created_at LIMIT 1");
  conn.prepare("messaging_thread_of_party",
               "SELECT subject, submission_id FROM threads WHERE tenant = $1 AND party_id = $2::uuid AND id = $3::uuid"
               " AND ($4 = '' OR destination IN ($4, '')) FOR UPDATE");
  // A thread from before destinations passes to the first destination that writes in it.
  conn.prepare("messaging_claim_thread",
               "UPDATE threads SET destination = $2, department = CASE WHEN department = '' THEN $3 ELSE department END"
               " WHERE id = $1::uuid AND destination = '' AND $2 <> ''");
  conn.prepare("messaging_touch_thread",
               "UPDATE threads SET last_message_at = now(), archived_at = NULL,"
               " retain_until = greatest(retain_until, now() + interval '10 years') WHERE id = $1::uuid");
  conn.prepare("messaging_insert",
               "INSERT INTO messages (tenant, party_id, party_kind, sender_kind, subject, body, message_key, thread_id,"
               " sender_name, notice) VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8::uuid, $9, $10)"
               " ON CONFLICT (tenant, message_key) DO NOTHING RETURNING id::text AS id");
  conn.prepare("messaging_get", "SELECT " + msg + " FROM messages m WHERE m.id = $1::uuid");
  conn.prepare("messaging_insert_attachment",
               "INSERT INTO message_attachments (message_id, tenant, party_id, filename, media_type, size, sha256,"
               " content) VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6, $7, $8)");
  conn.prepare("messaging_attachments",
               std::string("SELECT ") + kAttachmentColumns +
                   " FROM message_attachments a WHERE a.message_id = $1::uuid ORDER BY a.created_at, a.id");
  // $3: archived, $4: unread only, $5/$6: keyset (last_message_at micros, id), $7: limit.
  conn.prepare("messaging_list_threads",
               "SELECT " + thr +
                   " FROM threads t WHERE t.tenant = $1 AND t.party_id = $2::uuid"
                   " AND (t.archived_at IS NOT NULL) = $3"
                   " AND (NOT $4 OR EXISTS (SELECT 1 FROM messages u WHERE u.thread_id = t.id"
                   "   AND u.sender_kind <> 'citizen' AND u.first_read_at IS NULL))"
                   " AND (t.last_message_at, t.id) < (to_timestamp($5::double precision / 1000000), $6::uuid)"
                   " ORDER BY t.last_message_at DESC, t.id DESC LIMIT $7");
  conn.prepare("messaging_unread_total",
               "SELECT count(*)::int AS unread FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.tenant = $1"
               " AND m.party_id = $2::uuid AND m.sender_kind <> 'citizen' AND m.first_read_at IS NULL"
               " AND t.archived_at IS NULL");
  conn.prepare("messaging_get_thread",
               "SELECT " + thr + " FROM threads t WHERE t.tenant = $1 AND t.party_id = $2::uuid AND t.id = $3::uuid");
  conn.prepare("messaging_thread_messages",
               "SELECT " + msg + " FROM messages m WHERE m.thread_id = $1::uuid ORDER BY m.seq");
  conn.prepare("messaging_mark_read",
               "UPDATE messages SET first_read_at = now() WHERE tenant = $1 AND party_id = $2::uuid AND id = $3::uuid"
               " AND sender_kind <> 'citizen' AND first_read_at IS NULL");
  conn.prepare("messaging_get_of_party",
               "SELECT " + msg + " FROM messages m WHERE m.tenant = $1 AND m.party_id = $2::uuid AND m.id = $3::uuid");
  conn.prepare("messaging_get_attachment",
               std::string("SELECT ") + kAttachmentColumns +
                   ", a.content FROM message_attachments a WHERE a.tenant = $1 AND a.party_id = $2::uuid"
                   " AND a.id = $3::uuid");
  conn.prepare("messaging_get_department_attachment",
               std::string("SELECT ") + kAttachmentColumns +
                   ", a.content FROM message_attachments a"
                   " JOIN messages m ON m.id = a.message_id JOIN threads t ON t.id = m.thread_id"
                   " WHERE a.tenant = $1 AND t.destination = $2 AND a.id = $3::uuid");
  // The retention job: threads kept past retain_until ($1, the clock's now).
  conn.prepare("messaging_expired_threads",
               "SELECT id::text AS id FROM threads WHERE retain_until <= $1::timestamptz ORDER BY retain_until"
               " LIMIT $2 FOR UPDATE SKIP LOCKED");
  conn.prepare("messaging_retention_on", "SELECT set_config('stadtportal.retention', 'on', true)");
  conn.prepare("messaging_delete_thread_files",
               "DELETE FROM message_attachments WHERE message_id IN"
               " (SELECT id FROM messages WHERE thread_id = ANY($1::uuid[]))");
  conn.prepare("messaging_delete_thread_messages", "DELETE FROM messages WHERE thread_id = ANY($1::uuid[])");
  conn.prepare("messaging_delete_threads", "DELETE FROM threads WHERE id = ANY($1::uuid[])");
  conn.prepare("messaging_retained",
               "SELECT t.id::text AS id, to_char(t.retain_until AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS until,"
               " EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = t.id AND m.notice) AS notice FROM threads t"
               " WHERE t.tenant = $1 AND t.party_id = $2::uuid AND " +
                   std::string(kRetainedThread) + " ORDER BY t.seq DESC LIMIT $3");
  // The erasure: everything of the party but the retained threads.
  conn.prepare("messaging_erasable_threads",
               "SELECT t.id::text AS id FROM threads t WHERE t.tenant = $1 AND t.party_id = $2::uuid AND NOT " +
                   std::string(kRetainedThread) + " FOR UPDATE");
  conn.prepare("messaging_is_erased", "SELECT EXISTS (SELECT 1 FROM erased_parties WHERE tombstone = $1) AS erased");
  conn.prepare("messaging_tombstone", "INSERT INTO erased_parties (tombstone) VALUES ($1) ON CONFLICT DO NOTHING");
  conn.prepare("messaging_erase_contact",
               "DELETE FROM contacts WHERE party_id = $1::uuid AND tenant = $2 RETURNING email");
  // The address compared whole, ignoring case: never a pattern or a part of another.
  conn.prepare("messaging_erase_mails",
               "DELETE FROM mail_outbox WHERE tenant = $1 AND $2 <> '' AND lower(recipient) = lower($2)");
  // The export (one transaction, bounded per kind by $3).
  conn.prepare("messaging_export_threads",
               "SELECT t.id::text AS id, t.subject, t.submission_id, t.department,"
               " coalesce((extract(epoch FROM t.archived_at) * 1000000)::bigint, 0) AS archived_at,"
               " (extract(epoch FROM t.created_at) * 1000000)::bigint AS created_at,"
               " (extract(epoch FROM t.last_message_at) * 1000000)::bigint AS last_message_at"
               " FROM threads t WHERE t.tenant = $1 AND t.party_id = $2::uuid ORDER BY t.seq LIMIT $3");
  conn.prepare("messaging_export_messages",
               "SELECT " + msg +
                   " FROM messages m JOIN threads t ON t.id = m.thread_id WHERE t.tenant = $1"
                   " AND t.party_id = $2::uuid ORDER BY m.seq LIMIT $3");
  conn.prepare("messaging_export_attachments",
               std::string("SELECT ") + kAttachmentColumns +
                   ", a.message_id::text AS message_id FROM message_attachments a"
                   " JOIN messages m ON m.id = a.message_id JOIN threads t ON t.id = m.thread_id"
                   " WHERE t.tenant = $1 AND t.party_id = $2::uuid ORDER BY a.created_at, a.id LIMIT $3");
  conn.prepare("messaging_export_contact",
               "SELECT email, language, notify_messages, notify_reminders,"
               " (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_at FROM contacts"
               " WHERE party_id = $1::uuid AND tenant = $2");
  // A sent mail keeps no address (libs/mail): only what is still to be sent is the person's.
  conn.prepare("messaging_export_mails",
               "SELECT subject, (extract(epoch FROM created_at) * 1000000)::bigint AS created_at FROM mail_outbox"
               " WHERE tenant = $1 AND $2 <> '' AND lower(recipient) = lower($2) ORDER BY id LIMIT $3");
  conn.prepare("messaging_set_archived",
               "UPDATE threads SET archived_at = CASE WHEN $4 THEN coalesce(archived_at, now()) ELSE NULL END"
               " WHERE tenant = $1 AND party_id = $2::uuid AND id = $3::uuid RETURNING id");
  conn.prepare("messaging_replies",
               "SELECT " + msg +
                   " FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.tenant = $1 AND t.destination = $2"
                   " AND m.sender_kind = 'citizen' AND m.seq > $3 ORDER BY m.seq LIMIT $4");
  conn.prepare("messaging_submission_messages",
               "SELECT " + msg +
                   " FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.tenant = $1 AND t.submission_id = $2"
                   " AND t.destination = $3 ORDER BY m.seq");
  conn.prepare("messaging_contact",
               "SELECT email, language, notify_messages, notify_reminders FROM contacts WHERE party_id = $1::uuid");
  conn.prepare("messaging_contact_email",
               "INSERT INTO contacts (party_id, tenant, email) VALUES ($1::uuid, $2, $3)"
               " ON CONFLICT (party_id) DO UPDATE SET email = $3, updated_at = now()");
  conn.prepare("messaging_contact_preferences",
               "INSERT INTO contacts (party_id, tenant, language, notify_messages) VALUES ($1::uuid, $2, $3, $4)"
               " ON CONFLICT (party_id) DO UPDATE SET language = $3, notify_messages = $4, updated_at = now()");
  conn.prepare("messaging_contact_reminders",
               "INSERT INTO contacts (party_id, tenant, notify_reminders) VALUES ($1::uuid, $2, $3)"
               " ON CONFLICT (party_id) DO UPDATE SET notify_reminders = $3, updated_at = now()");
}

absl::StatusOr<std::pair<v1::Message, bool>> Store::Post(const NewMessage& m, const OnNew& on_new) {
  return pool_.Transact(
      [&](pqxx::work& tx) -> absl::StatusOr<std::pair<v1::Message, bool>> { return PostIn(tx, m, on_new); });
}

absl::StatusOr<std::pair<v1::Message, bool>> Store::PostIn(pqxx::work& tx, const NewMessage& m, const OnNew& on_new) {
  {
    auto existing = tx.exec_prepared("messaging_by_key", m.tenant, m.message_key);
    if (!existing.empty()) return std::make_pair(LoadMessage(tx, existing[0]), false);
    // An erased person has no mailbox: nothing written to it may bring one back.
    if (IsErased(tx, m.tenant, m.party_id)) {
      return absl::FailedPreconditionError("the person has erased their account: the mailbox no longer exists");
    }
    std::string thread = m.thread_id;
    std::string subject = m.subject;
    std::string submission_id = m.submission_id;
    if (thread.empty() && !m.submission_id.empty()) {
      // One thread per submission: later messages about it join the first one's thread.
      auto same =
          tx.exec_prepared("messaging_thread_of_submission", m.tenant, m.party_id, m.submission_id, m.destination);
      if (!same.empty()) thread = same[0]["id"].as<std::string>();
    }
    if (thread.empty()) {
      thread = tx.exec_prepared("messaging_new_thread", m.tenant, m.party_id, m.party_kind, m.subject, m.submission_id,
                                m.department, m.destination)[0]["id"]
                   .as<std::string>();
    } else {
      // Another destination's thread is not found, whatever the department is called.
      auto t = tx.exec_prepared("messaging_thread_of_party", m.tenant, m.party_id, thread, m.destination);
      if (t.empty()) return absl::NotFoundError("thread not found");
      subject = t[0]["subject"].as<std::string>();
      submission_id = t[0]["submission_id"].as<std::string>();
      tx.exec_prepared("messaging_claim_thread", thread, m.destination, m.department);
    }
    auto inserted = tx.exec_prepared("messaging_insert", m.tenant, m.party_id, m.party_kind, m.sender_kind, subject,
                                     m.body, m.message_key, thread, m.sender_name, m.notice);
    if (inserted.empty()) return absl::AbortedError("concurrent message with the same key; retry");
    const std::string id = inserted[0]["id"].as<std::string>();
    for (const auto& a : m.attachments) {
      tx.exec_prepared("messaging_insert_attachment", id, m.tenant, m.party_id, a.filename, a.media_type,
                       static_cast<int64_t>(a.content.size()), a.sha256, pqxx::binarystring(a.content));
    }
    tx.exec_prepared("messaging_touch_thread", thread);
    auto posted = std::make_pair(LoadMessage(tx, tx.exec_prepared("messaging_get", id)[0]), true);
    // The citizen file shows every message into the mailbox and the party's own replies.
    events::v1::MessageReceived e;
    e.set_tenant(m.tenant);
    e.set_party_id(m.party_id);
    e.set_thread_id(thread);
    e.set_message_id(id);
    e.set_kind(ReceivedKind(m));
    e.set_subject(subject);
    e.set_submission_id(submission_id);
    *e.mutable_occurred_at() = posted.first.created_at();
    events::Publish(tx, m.party_id, e);
    if (on_new) on_new(tx, posted.first);
    return posted;
  }
}

absl::StatusOr<v1::ListThreadsResponse> Store::ListThreads(const Owner& owner, bool archived, bool unread_only,
                                                           const api::Page& page) {
  int64_t after_micros = INT64_MAX / 2;
  std::string after_id = "ffffffff-ffff-ffff-ffff-ffffffffffff";
  if (!page.after.empty()) {
    std::vector<std::string> parts = absl::StrSplit(page.after, '|');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &after_micros) || !api::ValidateUuid(parts[1], "x").ok()) {
      return status::MalformedField("page_token", "invalid");
    }
    after_id = parts[1];
  }
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::ListThreadsResponse> {
    v1::ListThreadsResponse out;
    auto res = tx.exec_prepared("messaging_list_threads", owner.tenant, owner.party_id, archived, unread_only,
                                static_cast<double>(after_micros), after_id, page.size + 1);
    for (int i = 0; i < static_cast<int>(res.size()); ++i) {
      if (i == page.size) {
        const auto& last = out.threads(page.size - 1);
        out.mutable_page()->set_next_page_token(api::NextPageToken(
            absl::StrCat(TimeUtil::TimestampToMicroseconds(last.last_message_at()), "|", last.id())));
        break;
      }
      *out.add_threads() = ToThread(res[i]);
    }
    out.set_unread_total(
        tx.exec_prepared("messaging_unread_total", owner.tenant, owner.party_id)[0]["unread"].as<int>());
    return out;
  });
}

absl::StatusOr<v1::Thread> Store::ThreadHeader(const Owner& owner, const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::Thread> {
    auto res = tx.exec_prepared("messaging_get_thread", owner.tenant, owner.party_id, id);
    if (res.empty()) return absl::NotFoundError("thread not found");
    return ToThread(res[0]);
  });
}

absl::StatusOr<v1::Thread> Store::GetThread(const Owner& owner, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Thread> {
    auto res = tx.exec_prepared("messaging_get_thread", owner.tenant, owner.party_id, id);
    if (res.empty()) return absl::NotFoundError("thread not found");
    v1::Thread out = ToThread(res[0]);
    for (const auto& r : tx.exec_prepared("messaging_thread_messages", id)) *out.add_messages() = LoadMessage(tx, r);
    return out;
  });
}

absl::StatusOr<v1::Message> Store::MarkRead(const Owner& owner, const std::string& message_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Message> {
    tx.exec_prepared("messaging_mark_read", owner.tenant, owner.party_id, message_id);
    auto res = tx.exec_prepared("messaging_get_of_party", owner.tenant, owner.party_id, message_id);
    if (res.empty()) return absl::NotFoundError("message not found");
    return LoadMessage(tx, res[0]);
  });
}

absl::StatusOr<v1::AttachmentContent> Store::GetAttachment(const Owner& owner, const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::AttachmentContent> {
    auto res = tx.exec_prepared("messaging_get_attachment", owner.tenant, owner.party_id, id);
    if (res.empty()) return absl::NotFoundError("attachment not found");
    return ToContent(res[0]);
  });
}

absl::StatusOr<v1::AttachmentContent> Store::GetDepartmentAttachment(const std::string& tenant,
                                                                     const std::string& destination,
                                                                     const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::AttachmentContent> {
    auto res = tx.exec_prepared("messaging_get_department_attachment", tenant, destination, id);
    if (res.empty()) return absl::NotFoundError("attachment not found");
    return ToContent(res[0]);
  });
}

absl::StatusOr<v1::Thread> Store::SetArchived(const Owner& owner, const std::string& thread_id, bool archived) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Thread> {
    if (tx.exec_prepared("messaging_set_archived", owner.tenant, owner.party_id, thread_id, archived).empty()) {
      return absl::NotFoundError("thread not found");
    }
    return ToThread(tx.exec_prepared1("messaging_get_thread", owner.tenant, owner.party_id, thread_id));
  });
}

absl::StatusOr<v1::ListRepliesResponse> Store::ListReplies(const std::string& tenant, const std::string& destination,
                                                           int64_t after_sequence, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::ListRepliesResponse> {
    v1::ListRepliesResponse out;
    for (const auto& r : tx.exec_prepared("messaging_replies", tenant, destination, after_sequence, limit)) {
      *out.add_messages() = LoadMessage(tx, r);
    }
    return out;
  });
}

absl::StatusOr<v1::ListRepliesResponse> Store::SubmissionMessages(const std::string& tenant,
                                                                  const std::string& submission_id,
                                                                  const std::string& destination) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::ListRepliesResponse> {
    v1::ListRepliesResponse out;
    for (const auto& r : tx.exec_prepared("messaging_submission_messages", tenant, submission_id, destination)) {
      *out.add_messages() = LoadMessage(tx, r);
    }
    return out;
  });
}

std::optional<Contact> Store::FindContact(pqxx::work& tx, const std::string& party_id) {
  auto res = tx.exec_prepared("messaging_contact", party_id);
  if (res.empty()) return std::nullopt;
  return Contact{res[0]["email"].as<std::string>(), res[0]["language"].as<std::string>(),
                 res[0]["notify_messages"].as<bool>(), res[0]["notify_reminders"].as<bool>()};
}

void Store::SetContactEmail(pqxx::work& tx, const std::string& party_id, const std::string& tenant,
                            const std::string& email) {
  tx.exec_prepared("messaging_contact_email", party_id, tenant, email);
}

void Store::SetContactPreferences(pqxx::work& tx, const std::string& party_id, const std::string& tenant,
                                  const std::string& language, bool notify_messages,
                                  std::optional<bool> notify_reminders) {
  tx.exec_prepared("messaging_contact_preferences", party_id, tenant, language, notify_messages);
  if (notify_reminders.has_value())
    tx.exec_prepared("messaging_contact_reminders", party_id, tenant, *notify_reminders);
}

absl::StatusOr<int> Store::EndRetention(absl::Time now, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    const std::string at = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
    std::vector<std::string> ids;
    for (const auto& row : tx.exec_prepared("messaging_expired_threads", at, limit)) {
      ids.push_back(row["id"].as<std::string>());
    }
    if (ids.empty()) return 0;
    const std::string array = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
    tx.exec_prepared("messaging_retention_on");  // Messages may be deleted in this transaction only.
    tx.exec_prepared("messaging_delete_thread_files", array);
    tx.exec_prepared("messaging_delete_thread_messages", array);
    tx.exec_prepared("messaging_delete_threads", array);
    return static_cast<int>(ids.size());
  });
}

absl::StatusOr<common::v1::RetainedRecords> Store::RetainedRecords(const std::string& tenant,
                                                                   const std::string& party_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<common::v1::RetainedRecords> {
    common::v1::RetainedRecords out;
    for (const auto& row : tx.exec_prepared("messaging_retained", tenant, party_id, kMaxRetainedRecords)) {
      auto* r = out.add_records();
      r->set_service("messaging");
      r->set_kind("thread");
      r->set_id(row["id"].as<std::string>());
      r->set_rule(row["notice"].as<bool>() ? kNoticeThreadRule : kThreadRule);
      r->set_legal_basis(kThreadLegalBasis);
      r->set_until(row["until"].as<std::string>());
    }
    return out;
  });
}

absl::StatusOr<common::v1::PersonalData> Store::ExportPersonalData(const std::string& tenant,
                                                                   const std::string& party_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<common::v1::PersonalData> {
    common::v1::PersonalData out;
    out.set_service("messaging");
    // Attachments by message, each listed as a file of the export.
    std::map<std::string, nlohmann::json> attachments;
    for (const auto& r : tx.exec_prepared("messaging_export_attachments", tenant, party_id, kMaxExported)) {
      const v1::Attachment a = ToAttachment(r);
      const std::string path = privacy::ExportPath("messaging", "attachment", a.id(), a.filename());
      auto& list = attachments[r["message_id"].as<std::string>()];
      if (list.is_null()) list = nlohmann::json::array();
      list.push_back({{"id", a.id()},
                      {"filename", a.filename()},
                      {"media_type", a.media_type()},
                      {"size_bytes", a.size()},
                      {"sha256", a.sha256()},
                      {"path", path}});
      auto* file = out.add_files();
      file->set_path(path);
      file->set_content_type(a.media_type());
      file->set_size_bytes(a.size());
    }
    std::map<std::string, nlohmann::json> messages;
    for (const auto& r : tx.exec_prepared("messaging_export_messages", tenant, party_id, kMaxExported)) {
      const v1::Message m = ToMessage(r);
      auto& list = messages[m.thread_id()];
      if (list.is_null()) list = nlohmann::json::array();
      auto files = attachments.find(m.id());
      list.push_back({{"id", m.id()},
                      {"sender_kind", SenderKindName(m.sender_kind())},
                      {"sender_name", m.sender_name()},
                      {"subject", m.subject()},
                      {"body", m.body()},
                      {"notice", m.notice()},
                      {"created_at", Time(r["created_at"])},
                      {"first_read_at", Time(r["first_read_at"])},
                      {"attachments", files == attachments.end() ? nlohmann::json::array() : files->second}});
    }
    nlohmann::json threads = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("messaging_export_threads", tenant, party_id, kMaxExported)) {
      const std::string id = r["id"].as<std::string>();
      auto in = messages.find(id);
      threads.push_back({{"id", id},
                         {"subject", r["subject"].as<std::string>()},
                         {"submission_id", r["submission_id"].as<std::string>()},
                         {"department", r["department"].as<std::string>()},
                         {"archived", r["archived_at"].as<int64_t>() != 0},
                         {"archived_at", Time(r["archived_at"])},
                         {"created_at", Time(r["created_at"])},
                         {"last_message_at", Time(r["last_message_at"])},
                         {"messages", in == messages.end() ? nlohmann::json::array() : in->second}});
    }
    nlohmann::json contact = nullptr;
    std::string email;
    if (auto c = tx.exec_prepared("messaging_export_contact", party_id, tenant); !c.empty()) {
      email = c[0]["email"].as<std::string>();
      contact = {{"email", email},
                 {"language", c[0]["language"].as<std::string>()},
                 {"notify_messages", c[0]["notify_messages"].as<bool>()},
                 {"notify_reminders", c[0]["notify_reminders"].as<bool>()},
                 {"updated_at", Time(c[0]["updated_at"])}};
    }
    nlohmann::json mails = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("messaging_export_mails", tenant, email, kMaxExported)) {
      mails.push_back({{"subject", r["subject"].as<std::string>()}, {"queued_at", Time(r["created_at"])}});
    }
    out.set_json(
        nlohmann::json{{"threads", std::move(threads)}, {"contact", std::move(contact)}, {"mails", std::move(mails)}}
            .dump());
    return out;
  });
}

absl::StatusOr<common::v1::ExportFile> Store::PersonalDataFile(const std::string& tenant, const std::string& party_id,
                                                               const std::string& attachment_id) {
  auto content = GetAttachment({tenant, party_id}, attachment_id);
  if (!content.ok()) return content.status();
  common::v1::ExportFile out;
  out.set_path(
      privacy::ExportPath("messaging", "attachment", content->attachment().id(), content->attachment().filename()));
  out.set_content_type(content->attachment().media_type());
  out.set_size_bytes(content->attachment().size());
  out.set_content(std::move(*content->mutable_content()));
  return out;
}

Store::Erased Store::ErasePerson(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  Erased out;
  std::vector<std::string> ids;
  for (const auto& row : tx.exec_prepared("messaging_erasable_threads", tenant, party_id)) {
    ids.push_back(row["id"].as<std::string>());
  }
  if (!ids.empty()) {
    const std::string array = absl::StrCat("{", absl::StrJoin(ids, ","), "}");
    tx.exec_prepared("messaging_retention_on");  // Messages may be deleted in this transaction only.
    tx.exec_prepared("messaging_delete_thread_files", array);
    tx.exec_prepared("messaging_delete_thread_messages", array);
    tx.exec_prepared("messaging_delete_threads", array);
  }
  out.threads = static_cast<int>(ids.size());
  auto contact = tx.exec_prepared("messaging_erase_contact", party_id, tenant);
  out.contacts = static_cast<int64_t>(contact.size());
  if (!contact.empty()) out.email = contact[0]["email"].as<std::string>();
  if (!out.email.empty()) out.mails = tx.exec_prepared("messaging_erase_mails", tenant, out.email).affected_rows();
  tx.exec_prepared("messaging_tombstone", privacy::Tombstone(tenant, party_id));
  return out;
}

bool Store::IsErased(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  return tx.exec_prepared1("messaging_is_erased", privacy::Tombstone(tenant, party_id))["erased"].as<bool>();
}

}  // namespace stadtportal::messaging

#include "services/messaging/service.h"

#include <catch2/catch.hpp>

#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"

namespace stadtportal::messaging {
namespace {

constexpr char kAnna[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.account_id = id;
  c.tenant = "09564000";
  c.assurance = "low";
  return c;
}

// A back-office client: its token names its destination and, as acting party, its
// department's display name.
auth::Caller Department(const std::string& destination = "standesamt", const std::string& name = "Standesamt") {
  auth::Caller c;
  c.tenant = "09564000";
  c.account_id = "00000000-0000-4000-8000-0000000000d1";
  c.acting_party = name;
  c.roles = {"department", "destination:" + destination};
  return c;
}

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "messaging"};
  db::Pool& pool = schema.pool([](pqxx::connection& c) {
    Store::Prepare(c);
    mail::Outbox::Prepare(c);
  });
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  Service service{store, *Templates::Embedded(), Options{"09564000", "https://portal.example", "Mein Nürnberg"},
                  nullptr};
  grpc::ServerContext ctx;

  v1::PostMessageRequest Request(const std::string& key) {
    v1::PostMessageRequest req;
    req.mutable_party()->set_id(kAnna);
    req.mutable_party()->set_kind(common::v1::PARTY_KIND_PERSON);
    req.set_sender_kind(v1::SENDER_KIND_DEPARTMENT);
    req.set_department("Standesamt");
    req.set_subject("Ihre Bestellung NUE-2026-000123");
    req.set_body("Ihre Geburtsurkunde wurde heute versandt. Geheimer Inhalt 4711.");
    req.set_message_key(key);
    return req;
  }

  grpc::Status Post(const v1::PostMessageRequest& req, v1::Message* out) {
    grpcx::TestCaller department(Department());
    return service.PostMessage(&ctx, &req, out);
  }

  int64_t Count(const std::string& sql) {
    int64_t n = 0;
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  n = tx.exec1(sql)[0].as<int64_t>();
                  return absl::OkStatus();
                })
                .ok());
    return n;
  }

  // The message.received events, oldest first, as "kind:message id"; each checked for its
  // party, thread, subject and time (the message's).
  std::string Received() {
    std::string out;
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  for (const auto& r :
                       tx.exec("SELECT payload->>'kind' AS kind, payload->>'message_id' AS id,"
                               " key = payload->>'party_id' AND payload->>'party_id' = m.party_id::text"
                               " AND payload->>'thread_id' = m.thread_id::text AND payload->>'subject' = m.subject"
                               " AND payload->>'tenant' = m.tenant"
                               " AND (payload->>'occurred_at')::timestamptz = m.created_at AS matches"
                               " FROM outbox o JOIN messages m ON m.id::text = o.payload->>'message_id'"
                               " WHERE o.topic = 'message.received' ORDER BY o.id")) {
                    CHECK(r["matches"].as<bool>());
                    out += (out.empty() ? "" : ",") + r["kind"].as<std::string>() + ":" + r["id"].as<std::string>();
                  }
                  CHECK(tx.exec1("SELECT count(*) FROM outbox WHERE topic = 'message.received'")[0].as<int64_t>() ==
                        tx.exec1("SELECT count(*) FROM messages")[0].as<int64_t>());
                  return absl::OkStatus();
                })
                .ok());
    return out;
  }

  void Contact(const std::string& email, const std::string& language, bool notify) {
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  Store::SetContactEmail(tx, kAnna, "09564000", email);
                  Store::SetContactPreferences(tx, kAnna, "09564000", language, notify);
                  return absl::OkStatus();
                })
                .ok());
  }
};

}  // namespace

TEST_CASE("a department message starts a thread; the key makes it idempotent; a mail says only that it arrived",
          "[integration]") {
  Fixture f;
  f.Contact("anna@example.org", "de", true);
  v1::Message m, again;
  REQUIRE(f.Post(f.Request("standesamt-1"), &m).ok());
  CHECK(m.sender_name() == "Standesamt");
  CHECK_FALSE(m.thread_id().empty());
  REQUIRE(f.Post(f.Request("standesamt-1"), &again).ok());
  CHECK(again.id() == m.id());
  CHECK(f.Count("SELECT count(*) FROM messages") == 1);
  CHECK(f.Count("SELECT count(*) FROM mail_outbox") == 1);  // One mail for one message.
  CHECK(f.Count("SELECT count(*) FROM mail_outbox WHERE recipient = 'anna@example.org'"
                " AND subject = 'Neue Nachricht in Ihrem Postfach' AND body LIKE '%https://portal.example/postfach/%'"
                " AND body NOT LIKE '%4711%'") == 1);

  // Preferences: no mail when the party does not want one.
  f.Contact("anna@example.org", "en", false);
  auto second = f.Request("standesamt-2");
  second.set_thread_id(m.thread_id());
  REQUIRE(f.Post(second, &again).ok());
  CHECK(again.thread_id() == m.thread_id());
  CHECK(f.Count("SELECT count(*) FROM mail_outbox") == 1);
  // Each message into the mailbox is published once (the repeat was not), at its time.
  CHECK(f.Received() == "message:" + m.id() + "," + "message:" + again.id());
}

TEST_CASE("the citizen reads, replies with an attachment; the department fetches the reply", "[integration]") {
  Fixture f;
  v1::Message m;
  REQUIRE(f.Post(f.Request("standesamt-3"), &m).ok());
  {
    grpcx::TestCaller anna(Person(kAnna));
    v1::ListThreadsRequest list;
    v1::ListThreadsResponse threads;
    REQUIRE(f.service.ListThreads(&f.ctx, &list, &threads).ok());
    REQUIRE(threads.threads_size() == 1);
    CHECK(threads.threads(0).unread() == 1);
    CHECK(threads.unread_total() == 1);

    v1::MarkReadRequest read;
    read.set_message_id(m.id());
    v1::Message r1, r2;
    REQUIRE(f.service.MarkRead(&f.ctx, &read, &r1).ok());
    REQUIRE(r1.has_first_read_at());
    REQUIRE(f.service.MarkRead(&f.ctx, &read, &r2).ok());
    CHECK(r2.first_read_at().seconds() == r1.first_read_at().seconds());  // The first read stays.
    CHECK(r2.first_read_at().nanos() == r1.first_read_at().nanos());

    v1::ReplyRequest reply;
    reply.set_thread_id(m.thread_id());
    reply.set_body("Danke! Anbei die Vollmacht.");
    auto* a = reply.add_attachments();
    a->set_filename("Vollmacht.pdf");
    a->set_content(kPdf);
    v1::Message mine;
    REQUIRE(f.service.Reply(&f.ctx, &reply, &mine).ok());
    CHECK(mine.sender_kind() == v1::SENDER_KIND_CITIZEN);
    REQUIRE(mine.attachments_size() == 1);
    CHECK(mine.attachments(0).media_type() == "application/pdf");

    v1::GetThreadRequest get;
    get.set_id(m.thread_id());
    v1::Thread thread;
    REQUIRE(f.service.GetThread(&f.ctx, &get, &thread).ok());
    CHECK(thread.messages_size() == 2);
    CHECK(thread.unread() == 0);
    CHECK(f.Received() == "message:" + m.id() + ",reply:" + mine.id());
  }
  grpcx::TestCaller department(Department());
  v1::ListRepliesRequest replies;
  v1::ListRepliesResponse got;
  REQUIRE(f.service.ListReplies(&f.ctx, &replies, &got).ok());
  REQUIRE(got.messages_size() == 1);
  CHECK(got.messages(0).body() == "Danke! Anbei die Vollmacht.");
  v1::GetAttachmentRequest get_attachment;
  get_attachment.set_id(got.messages(0).attachments(0).id());
  v1::AttachmentContent content;
  REQUIRE(f.service.GetDepartmentAttachment(&f.ctx, &get_attachment, &content).ok());
  CHECK(content.content() == kPdf);
  replies.set_after_sequence(got.messages(0).sequence());
  REQUIRE(f.service.ListReplies(&f.ctx, &replies, &got).ok());
  CHECK(got.messages_size() == 0);
  replies.set_destination("gesundheitsamt");  // Another destination's are not asked for.
  CHECK(f.service.ListReplies(&f.ctx, &replies, &got).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("back offices are scoped by destination, not by the department's name, even when names match or change",
          "[integration]") {
  Fixture f;
  v1::Message m;
  auto first = f.Request("standesamt-case-1");
  first.set_submission_id("3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b");
  REQUIRE(f.Post(first, &m).ok());
  {
    grpcx::TestCaller anna(Person(kAnna));
    v1::ReplyRequest reply;
    reply.set_thread_id(m.thread_id());
    reply.set_body("Meine Antwort nur an das Standesamt.");
    reply.add_attachments()->set_content(kPdf);
    v1::Message mine;
    REQUIRE(f.service.Reply(&f.ctx, &reply, &mine).ok());
  }
  std::string attachment;
  {
    grpcx::TestCaller own(Department());
    v1::ListRepliesRequest replies;
    v1::ListRepliesResponse got;
    REQUIRE(f.service.ListReplies(&f.ctx, &replies, &got).ok());
    REQUIRE(got.messages_size() == 1);
    attachment = got.messages(0).attachments(0).id();
  }
  // Another destination's client whose department is called the same.
  grpcx::TestCaller other(Department("standesamt-fuerth", "Standesamt"));
  v1::ListRepliesRequest replies;
  v1::ListRepliesResponse got;
  REQUIRE(f.service.ListReplies(&f.ctx, &replies, &got).ok());
  CHECK(got.messages_size() == 0);
  v1::GetAttachmentRequest get;
  get.set_id(attachment);
  v1::AttachmentContent content;
  CHECK(f.service.GetDepartmentAttachment(&f.ctx, &get, &content).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::ListSubmissionMessagesRequest case_messages;
  case_messages.set_submission_id(first.submission_id());
  REQUIRE(f.service.ListSubmissionMessages(&f.ctx, &case_messages, &got).ok());
  CHECK(got.messages_size() == 0);
  // It cannot write into the thread either, by its id or by the submission.
  auto into = f.Request("fuerth-1");
  into.set_thread_id(m.thread_id());
  v1::Message r;
  CHECK(f.service.PostMessage(&f.ctx, &into, &r).error_code() == grpc::StatusCode::NOT_FOUND);
  auto same_case = f.Request("fuerth-2");
  same_case.set_submission_id(first.submission_id());
  REQUIRE(f.service.PostMessage(&f.ctx, &same_case, &r).ok());
  CHECK(r.thread_id() != m.thread_id());
  // Nor name a destination, nor write as the system.
  into.set_thread_id("");
  into.set_destination("standesamt");
  CHECK(f.service.PostMessage(&f.ctx, &into, &r).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto system = f.Request("fuerth-3");
  system.set_sender_kind(v1::SENDER_KIND_SYSTEM);
  CHECK(f.service.PostMessage(&f.ctx, &system, &r).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Count("SELECT count(*) FROM messages WHERE thread_id = '" + m.thread_id() + "'") == 2);

  // The department renamed: its destination's threads stay its own.
  grpcx::TestCaller renamed(Department("standesamt", "Standesamt Nürnberg"));
  REQUIRE(f.service.ListReplies(&f.ctx, &replies, &got).ok());
  CHECK(got.messages_size() == 1);
  REQUIRE(f.service.ListSubmissionMessages(&f.ctx, &case_messages, &got).ok());
  CHECK(got.messages_size() == 2);
  CHECK(f.service.GetDepartmentAttachment(&f.ctx, &get, &content).ok());
}

TEST_CASE("notices need their document and stay as they are; threads archive and come back", "[integration]") {
  Fixture f;
  auto notice = f.Request("bescheid-1");
  notice.set_notice(true);
  v1::Message m;
  CHECK(f.Post(notice, &m).error_message() == "attachments: required");
  auto* doc = notice.add_attachments();
  doc->set_filename("Bescheid.pdf");
  doc->set_content(kPdf);
  REQUIRE(f.Post(notice, &m).ok());
  CHECK(m.notice());
  CHECK(f.Received() == "notice:" + m.id());
  // The database refuses changes to a message.
  CHECK_FALSE(f.pool
                  .Transact([&](pqxx::work& tx) {
                    tx.exec("UPDATE messages SET body = 'geändert'");
                    return absl::OkStatus();
                  })
                  .ok());
  CHECK_FALSE(f.pool
                  .Transact([&](pqxx::work& tx) {
                    tx.exec("DELETE FROM messages");
                    return absl::OkStatus();
                  })
                  .ok());

  grpcx::TestCaller anna(Person(kAnna));
  v1::SetArchivedRequest archive;
  archive.set_thread_id(m.thread_id());
  archive.set_archived(true);
  v1::Thread t;
  REQUIRE(f.service.SetArchived(&f.ctx, &archive, &t).ok());
  CHECK(t.archived());
  CHECK(t.has_notice());
  v1::ListThreadsRequest list;
  v1::ListThreadsResponse threads;
  REQUIRE(f.service.ListThreads(&f.ctx, &list, &threads).ok());
  CHECK(threads.threads_size() == 0);
  list.set_archived(true);
  REQUIRE(f.service.ListThreads(&f.ctx, &list, &threads).ok());
  CHECK(threads.threads_size() == 1);
}

TEST_CASE("another party's thread, message and attachment are not found; bad input stores nothing", "[integration]") {
  Fixture f;
  auto req = f.Request("standesamt-4");
  auto* doc = req.add_attachments();
  doc->set_filename("Urkunde.pdf");
  doc->set_content(kPdf);
  v1::Message m;
  REQUIRE(f.Post(req, &m).ok());
  {
    grpcx::TestCaller ben(Person(kBen));
    v1::GetThreadRequest get;
    get.set_id(m.thread_id());
    v1::Thread t;
    CHECK(f.service.GetThread(&f.ctx, &get, &t).error_code() == grpc::StatusCode::NOT_FOUND);
    v1::MarkReadRequest read;
    read.set_message_id(m.id());
    v1::Message r;
    CHECK(f.service.MarkRead(&f.ctx, &read, &r).error_code() == grpc::StatusCode::NOT_FOUND);
    v1::GetAttachmentRequest a;
    a.set_id(m.attachments(0).id());
    v1::AttachmentContent c;
    CHECK(f.service.GetAttachment(&f.ctx, &a, &c).error_code() == grpc::StatusCode::NOT_FOUND);
    v1::ReplyRequest reply;
    reply.set_thread_id(m.thread_id());
    reply.set_body("Ich bin nicht Anna.");
    CHECK(f.service.Reply(&f.ctx, &reply, &r).error_code() == grpc::StatusCode::NOT_FOUND);
    // Citizens cannot post as a department.
    CHECK(f.service.PostMessage(&f.ctx, &req, &r).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  grpcx::TestCaller anna(Person(kAnna));
  v1::ReplyRequest reply;
  reply.set_thread_id(m.thread_id());
  v1::Message r;
  reply.set_body("");
  CHECK(f.service.Reply(&f.ctx, &reply, &r).error_message() == "body: required");
  reply.set_body(std::string(1 << 20, 'x'));
  CHECK(f.service.Reply(&f.ctx, &reply, &r).error_message() == "body: too_long");
  reply.set_body("Anbei");
  auto* exe = reply.add_attachments();
  exe->set_filename("Vollmacht.pdf");
  exe->set_content("MZ\x90\x00 a program");
  CHECK(f.service.Reply(&f.ctx, &reply, &r).error_message() == "attachments: type_not_allowed");
  reply.clear_attachments();
  reply.set_thread_id("3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b");
  CHECK(f.service.Reply(&f.ctx, &reply, &r).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.Count("SELECT count(*) FROM messages") == 1);
}

TEST_CASE("templates: every type in both languages, only known variables, values cannot add headers", "[unit]") {
  auto embedded = Templates::Embedded();
  REQUIRE(embedded.ok());
  auto mail = embedded->Render("notice", "en", "anna@example.org",
                               {{"sender", "Standesamt\r\nBcc: evil@example.org\xe2\x80\xa8\xc2\x85X"},
                                {"mailbox_url", "https://portal.example/postfach/1"},
                                {"portal_name", "Mein Nürnberg"}});
  REQUIRE(mail.ok());
  CHECK(mail->subject == "New official decision in your mailbox");
  CHECK(mail->body.find("Standesamt Bcc: evil@example.org  X") != std::string::npos);
  CHECK(mail->body.find("\r\nBcc") == std::string::npos);
  CHECK(embedded->Render("message", "de", "a@b.de", {{"sender", "x"}}).status().code() ==
        absl::StatusCode::kInvalidArgument);

  auto unknown =
      Templates::Load({{"message.de.txt", "Subject: Hallo {{name}}\nText"}, {"message.en.txt", "Subject: Hello\nText"}},
                      {"message"}, NotificationVariables());
  CHECK(unknown.status().message() == "template message.de.txt: unknown variable {{name}}");
  auto missing = Templates::Load({{"message.de.txt", "Subject: Hallo\nText"}}, {"message"}, NotificationVariables());
  CHECK(missing.status().message() == "template message.en.txt is missing");
  auto no_subject = Templates::Load({{"message.de.txt", "Hallo\nText"}}, {"message"}, NotificationVariables());
  CHECK(no_subject.status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace stadtportal::messaging

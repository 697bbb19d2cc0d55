// The person's own data in the mailbox: the export, the retained threads and the erasure.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "libs/events/events.h"
#include "libs/grpc/handler.h"
#include "libs/mail/mail.h"
#include "libs/privacy/privacy.h"
#include "libs/testing/json_schema.h"
#include "libs/testing/testing.h"
#include "services/messaging/consumers.h"
#include "services/messaging/service.h"

namespace stadtportal::messaging {
namespace {

constexpr char kAnna[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
constexpr char kTenant[] = "09564000";
const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";
const std::string kBenPdf = "%PDF-1.4\n1 0 obj\n<< /Ben true >>\nendobj\n";

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.account_id = id;
  c.tenant = kTenant;
  c.assurance = "low";
  return c;
}

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "messaging"};
  db::Pool& pool = schema.pool([](pqxx::connection& c) {
    Store::Prepare(c);
    mail::Outbox::Prepare(c);
  });
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  Service service{store, *Templates::Embedded(), Options{kTenant, "https://portal.example", "Mein Nürnberg"}, nullptr};
  grpc::ServerContext ctx;

  v1::Message Post(const std::string& party, const std::string& key, const std::string& sender_kind,
                   const std::string& body, bool notice = false, const std::string& thread = "",
                   const std::string& pdf = kPdf) {
    NewMessage m;
    m.tenant = kTenant;
    m.party_id = party;
    m.party_kind = "person";
    m.sender_kind = sender_kind;
    m.sender_name = sender_kind == "department" ? "Standesamt" : "Mein Nürnberg";
    m.subject = sender_kind == "system" ? "Erinnerung: Reisepass läuft ab" : "Ihre Bestellung NUE-2026-000123";
    m.body = body;
    m.message_key = key;
    m.thread_id = thread;
    if (sender_kind == "department") {
      m.department = "Standesamt";
      m.destination = "standesamt";
      // One thread per submission: only the notice's is about one.
      if (notice) m.submission_id = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
    }
    m.reminder = sender_kind == "system";
    m.notice = notice;
    if (notice || sender_kind == "citizen")
      m.attachments.push_back({"Bescheid 2026/../x.pdf", "application/pdf", "00", pdf});
    auto posted = store->Post(m, nullptr);
    INFO(posted.status().message());
    REQUIRE(posted.ok());
    return posted->first;
  }

  std::string Value(const std::string& sql) { return testing::QueryValue(pool, sql); }
  void Exec(const std::string& sql) {
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  tx.exec(sql);
                  return absl::OkStatus();
                })
                .ok());
  }
  void Contact(const std::string& party, const std::string& email) {
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  Store::SetContactEmail(tx, party, kTenant, email);
                  return absl::OkStatus();
                })
                .ok());
  }
  void Mail(const std::string& tenant, const std::string& to, const std::string& subject) {
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  mail::Outbox::Enqueue(tx, tenant, {to, subject, "Body for " + to});
                  return absl::OkStatus();
                })
                .ok());
  }
  absl::Status Erase(const std::string& party, const std::string& tenant = kTenant) {
    events::v1::PartyErasureRequested e;
    e.set_tenant(tenant);
    e.set_account_id(party);
    e.set_party_id(party);
    return pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); });
  }

  grpc::Status Export(const auth::Caller& caller, common::v1::PersonalData* out) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    return service.ExportPersonalData(&ctx, &req, out);
  }
  grpc::Status File(const auth::Caller& caller, const std::string& path, common::v1::ExportFile* out) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataFileRequest req;
    req.set_path(path);
    return service.GetPersonalDataFile(&ctx, &req, out);
  }
  grpc::Status Retained(const auth::Caller& caller, common::v1::RetainedRecords* out) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    return service.ListRetainedRecords(&ctx, &req, out);
  }
};

// Anna's mailbox: a department's thread with a notice and her reply (kept), a read and
// archived one (kept), a reminder thread (no procedure's correspondence) and a department
// thread past its retain_until (both go). Ben has a thread of his own.
struct Mailboxes {
  v1::Message notice, reply, plain, reminder, expired, ben;
};

Mailboxes Fill(Fixture& f) {
  Mailboxes m;
  m.notice = f.Post(kAnna, "notice-1", "department", "Ihr Bescheid liegt bei.", true);
  m.reply = f.Post(kAnna, "reply-1", "citizen", "Danke, Anna Schmidt, geb. 1984-02-29.", false, m.notice.thread_id());
  m.plain = f.Post(kAnna, "plain-1", "department", "Ihre Urkunde wurde versandt.");
  f.Exec("UPDATE messages SET first_read_at = now() WHERE id = '" + m.plain.id() + "'");
  f.Exec("UPDATE threads SET archived_at = now() WHERE id = '" + m.plain.thread_id() + "'");
  m.reminder = f.Post(kAnna, "reminder-1", "system", "Reisepass (M-AB 123) läuft am 01.03.2027 ab.");
  m.expired = f.Post(kAnna, "old-1", "department", "Eine alte Nachricht.", false, "", kPdf);
  f.Exec("UPDATE threads SET retain_until = now() - interval '1 day' WHERE id = '" + m.expired.thread_id() + "'");
  m.ben = f.Post(kBen, "ben-1", "department", "Bens geheime Nachricht.", true, "", kBenPdf);
  f.Contact(kAnna, "Anna.Schmidt@example.de");
  f.Contact(kBen, "ben@example.de");
  return m;
}

}  // namespace

TEST_CASE("export: the person's threads, messages, notices, files, contact and mails, nothing of Ben",
          "[integration][export]") {
  Fixture f;
  const auto m = Fill(f);
  f.Mail(kTenant, "anna.schmidt@EXAMPLE.de", "Neue Nachricht im Postfach");
  f.Mail(kTenant, "ben@example.de", "Bens Betreff");

  common::v1::PersonalData data;
  auto s = f.Export(Person(kAnna), &data);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(data.service() == "messaging");
  const auto doc = nlohmann::json::parse(data.json());
  // As its schema describes it, which finds what it does not describe.
  const std::string schema = std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/export/messaging.schema.json";
  const auto violations = testing::SchemaViolations(schema, doc);
  INFO(absl::StrJoin(violations, "\n"));
  CHECK(violations.empty());
  auto undescribed = doc;
  undescribed["secret"] = true;
  CHECK(testing::SchemaViolations(schema, undescribed) == std::vector<std::string>{": secret not described"});
  REQUIRE(doc["threads"].size() == 4);
  nlohmann::json notice_thread, plain_thread;
  for (const auto& t : doc["threads"]) {
    if (t["id"] == m.notice.thread_id()) notice_thread = t;
    if (t["id"] == m.plain.thread_id()) plain_thread = t;
  }
  REQUIRE(notice_thread["messages"].size() == 2);
  const auto& notice = notice_thread["messages"][0];
  CHECK(notice["sender_kind"] == "department");
  CHECK(notice["notice"] == true);
  CHECK(notice["body"] == "Ihr Bescheid liegt bei.");
  CHECK(notice["first_read_at"].is_null());
  REQUIRE(notice["attachments"].size() == 1);
  const std::string path = notice["attachments"][0]["path"];
  CHECK(path == privacy::ExportPath("messaging", "attachment", m.notice.attachments(0).id(), "Bescheid 2026/../x.pdf"));
  CHECK(path == "messaging/attachment/" + m.notice.attachments(0).id() + "/Bescheid_2026_.._x.pdf");  // One segment.
  CHECK(notice_thread["messages"][1]["sender_kind"] == "citizen");
  CHECK(notice_thread["messages"][1]["body"] == "Danke, Anna Schmidt, geb. 1984-02-29.");
  CHECK(notice_thread["archived"] == false);
  CHECK(plain_thread["archived"] == true);
  CHECK(plain_thread["archived_at"].is_string());
  CHECK(plain_thread["messages"][0]["first_read_at"].is_string());
  CHECK(std::string(plain_thread["created_at"]).back() == 'Z');
  // Files: every attachment, listed without its bytes.
  REQUIRE(data.files_size() == 2);  // The notice's and the reply's.
  for (const auto& file : data.files()) {
    CHECK(file.content().empty());
    CHECK(file.size_bytes() == static_cast<int64_t>(kPdf.size()));
    CHECK(file.content_type() == "application/pdf");
  }
  CHECK(doc["contact"]["email"] == "Anna.Schmidt@example.de");
  REQUIRE(doc["mails"].size() == 1);
  CHECK(doc["mails"][0]["subject"] == "Neue Nachricht im Postfach");
  CHECK(doc["mails"][0]["queued_at"].is_string());
  CHECK(doc["mails"][0].size() == 2);  // Subject and time, never the body.
  // Nothing of Ben's.
  CHECK(data.json().find("Ben") == std::string::npos);
  CHECK(data.json().find("ben@") == std::string::npos);
  CHECK(data.json().find(m.ben.thread_id()) == std::string::npos);

  // His own export is his alone.
  common::v1::PersonalData ben;
  REQUIRE(f.Export(Person(kBen), &ben).ok());
  CHECK(nlohmann::json::parse(ben.json())["threads"].size() == 1);
  CHECK(ben.json().find("Anna") == std::string::npos);
}

TEST_CASE("export: only the person acting as themself; files only their own, by their exact path",
          "[integration][export]") {
  Fixture f;
  const auto m = Fill(f);
  common::v1::PersonalData data;
  auto organisation = Person(kAnna);
  organisation.acting_party = "8e9f0a1b-2c3d-4e4f-9a5b-6c7d8e9f0a1b";
  CHECK(f.Export(organisation, &data).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto partner = Person(kAnna);
  partner.partner_id = "partner-portal";
  partner.partner_name = "Partnerportal";
  partner.partner_scope = "mailbox";
  CHECK(f.Export(partner, &data).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto department = Person(kAnna);
  department.roles = {"department", "destination:standesamt"};
  CHECK(f.Export(department, &data).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Export(auth::Caller{}, &data).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  common::v1::RetainedRecords retained;
  CHECK(f.Retained(partner, &retained).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Retained(organisation, &retained).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(data.json().empty());

  const std::string own =
      privacy::ExportPath("messaging", "attachment", m.notice.attachments(0).id(), "Bescheid 2026/../x.pdf");
  const std::string bens =
      privacy::ExportPath("messaging", "attachment", m.ben.attachments(0).id(), "Bescheid 2026/../x.pdf");
  common::v1::ExportFile file;
  auto s = f.File(Person(kAnna), own, &file);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(file.content() == kPdf);
  CHECK(file.path() == own);
  CHECK(file.content_type() == "application/pdf");

  common::v1::ExportFile none;
  CHECK(f.File(Person(kAnna), bens, &none).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.File(Person(kAnna), "messaging/attachment/../" + m.notice.attachments(0).id(), &none).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(f.File(Person(kAnna), "../messaging/attachment/x/y.pdf", &none).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(f.File(Person(kAnna), "submission/attachment/" + m.notice.attachments(0).id() + "/x.pdf", &none).error_code() ==
        grpc::StatusCode::NOT_FOUND);
  CHECK(f.File(Person(kAnna), "messaging/receipt/" + m.notice.attachments(0).id() + "/x.pdf", &none).error_code() ==
        grpc::StatusCode::NOT_FOUND);
  CHECK(f.File(Person(kAnna), "messaging/attachment/" + m.notice.attachments(0).id() + "/other.pdf", &none)
            .error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(f.File(Person(kAnna), "messaging/attachment/not-a-uuid/x.pdf", &none).error_code() ==
        grpc::StatusCode::NOT_FOUND);
  CHECK(f.File(partner, own, &none).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.File(organisation, own, &none).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(none.content().empty());
  // Ben reaches his own, not Anna's.
  CHECK(f.File(Person(kBen), bens, &none).ok());
  CHECK(f.File(Person(kBen), own, &file).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("erasure: the mailbox goes but for the retained threads; mails by the exact address and tenant",
          "[integration][erasure]") {
  Fixture f;
  const auto m = Fill(f);
  f.Mail(kTenant, "anna.schmidt@EXAMPLE.de", "Neue Nachricht im Postfach");
  f.Mail(kTenant, "Anna.Schmidt@example.de", "Erinnerung");
  f.Mail("09564001", "anna.schmidt@example.de", "Another municipality's");  // Not this tenant's.
  f.Mail(kTenant, "xanna.schmidt@example.de", "Someone else's");            // Only a substring.
  f.Mail(kTenant, "anna.schmidt@example.de.example", "Someone else's");
  f.Mail(kTenant, "ben@example.de", "Bens Betreff");
  // Published events naming Anna go; Ben's stay.
  f.Exec("UPDATE outbox SET published_at = now()");
  const std::string ben_events = f.Value("SELECT count(*) FROM outbox WHERE key = '" + std::string(kBen) + "'");

  common::v1::RetainedRecords before;
  REQUIRE(f.Retained(Person(kAnna), &before).ok());
  REQUIRE(before.records_size() == 2);  // The notice's and the archived department thread.
  CHECK(before.records(0).id() == m.plain.thread_id());
  CHECK(before.records(1).id() == m.notice.thread_id());
  CHECK(before.records(1).rule() == kNoticeThreadRule);

  auto check = [&] {
    const std::string anna = kAnna;
    // Exactly the retained threads stay, with their messages and files.
    CHECK(f.Value("SELECT string_agg(id::text, ',' ORDER BY seq) FROM threads WHERE party_id = '" + anna + "'") ==
          m.notice.thread_id() + "," + m.plain.thread_id());
    CHECK(f.Value("SELECT count(*) FROM messages WHERE party_id = '" + anna + "'") == "3");
    CHECK(f.Value("SELECT count(*) FROM message_attachments WHERE party_id = '" + anna + "'") == "2");
    CHECK(f.Value("SELECT count(*) FROM messages WHERE id IN ('" + m.reminder.id() + "', '" + m.expired.id() + "')") ==
          "0");
    CHECK(f.Value("SELECT count(*) FROM contacts WHERE party_id = '" + anna + "'") == "0");
    CHECK(f.Value("SELECT count(*) FROM mail_outbox WHERE recipient ILIKE '%anna.schmidt@example.de%'") == "3");
    CHECK(f.Value("SELECT count(*) FROM mail_outbox WHERE tenant = '" + std::string(kTenant) +
                  "' AND lower(recipient) = 'anna.schmidt@example.de'") == "0");
    CHECK(f.Value("SELECT count(*) FROM outbox WHERE key = '" + anna + "' OR payload::text LIKE '%" + anna + "%'") ==
          "0");
    // Ben's untouched.
    CHECK(f.Value("SELECT count(*) FROM threads WHERE party_id = '" + std::string(kBen) + "'") == "1");
    CHECK(f.Value("SELECT count(*) FROM message_attachments WHERE party_id = '" + std::string(kBen) + "'") == "1");
    CHECK(f.Value("SELECT email FROM contacts WHERE party_id = '" + std::string(kBen) + "'") == "ben@example.de");
    CHECK(f.Value("SELECT count(*) FROM mail_outbox WHERE recipient = 'ben@example.de'") == "1");
    CHECK(f.Value("SELECT count(*) FROM outbox WHERE key = '" + std::string(kBen) + "'") == ben_events);
    // What was retained is still listed, the same.
    common::v1::RetainedRecords after;
    REQUIRE(f.Retained(Person(kAnna), &after).ok());
    CHECK(after.SerializeAsString() == before.SerializeAsString());
  };
  REQUIRE(f.Erase(kAnna).ok());
  check();
  REQUIRE(f.Erase(kAnna).ok());  // Again, as a redelivery: the same.
  check();

  // A malformed request changes nothing.
  CHECK(f.Erase("not-a-uuid").code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Erase(kBen, "Nürnberg").code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Value("SELECT count(*) FROM threads WHERE party_id = '" + std::string(kBen) + "'") == "1");
}

TEST_CASE("erasure comes through messaging's consumer under its topic", "[integration][erasure]") {
  Fixture f;
  Fill(f);
  events::v1::PartyErasureRequested e;
  e.set_tenant(kTenant);
  e.set_account_id(kAnna);
  e.set_party_id(kAnna);
  const auto handlers = Consumers(std::make_shared<const Templates>(*Templates::Embedded()), Options{});
  REQUIRE(f.pool.Transact([&](pqxx::work& tx) { return handlers(tx, events::EventOf("identity-7", kAnna, e)); }).ok());
  CHECK(f.Value("SELECT count(*) FROM contacts WHERE party_id = '" + std::string(kAnna) + "'") == "0");
}

TEST_CASE("erasure: a late event about the erased person brings no contact, thread or mail back",
          "[integration][erasure]") {
  Fixture f;
  Fill(f);
  REQUIRE(f.Erase(kAnna).ok());
  const std::string threads = f.Value("SELECT count(*) FROM threads");
  const auto handlers = Consumers(std::make_shared<const Templates>(*Templates::Embedded()), Options{});
  auto take = [&](const events::Event& e) { return f.pool.Transact([&](pqxx::work& tx) { return handlers(tx, e); }); };
  events::v1::AccountVerified verified;
  verified.set_tenant(kTenant);
  verified.set_account_id(kAnna);
  verified.set_email("anna.schmidt@example.de");
  REQUIRE(take(events::EventOf("identity-8", kAnna, verified)).ok());
  events::v1::PreferencesChanged preferences;
  preferences.set_tenant(kTenant);
  preferences.set_party_id(kAnna);
  preferences.set_language("en");
  preferences.set_messages(true);
  REQUIRE(take(events::EventOf("accounts-9", kAnna, preferences)).ok());
  events::v1::ReminderDue reminder;
  reminder.set_tenant(kTenant);
  reminder.set_reminder_id("7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d");
  reminder.set_party_id(kAnna);
  reminder.set_party_kind("person");
  reminder.set_document_id("8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e");
  reminder.set_document_type("passport");
  reminder.set_document_name_de("Reisepass");
  reminder.set_document_name_en("Passport");
  reminder.set_expires_on("2027-03-01");
  REQUIRE(take(events::EventOf("accounts-10", kAnna, reminder)).ok());
  CHECK(f.Value("SELECT count(*) FROM contacts WHERE party_id = '" + std::string(kAnna) + "'") == "0");
  CHECK(f.Value("SELECT count(*) FROM threads") == threads);
  CHECK(f.Value("SELECT count(*) FROM mail_outbox WHERE lower(recipient) = 'anna.schmidt@example.de'") == "0");
  // A department writing to her afterwards (a notice of a procedure still open) is refused.
  NewMessage late;
  late.tenant = kTenant;
  late.party_id = kAnna;
  late.party_kind = "person";
  late.sender_kind = "department";
  late.sender_name = "Standesamt";
  late.subject = "Ihr Bescheid";
  late.body = "Ihr Antrag wurde genehmigt.";
  late.message_key = "late-notice-1";
  late.department = "Standesamt";
  late.destination = "standesamt";
  late.notice = true;
  CHECK(f.store->Post(late, nullptr).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(f.Value("SELECT count(*) FROM threads") == threads);
  // Ben's are taken as ever.
  reminder.set_party_id(kBen);
  reminder.set_reminder_id("9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f");
  REQUIRE(take(events::EventOf("accounts-11", kBen, reminder)).ok());
  CHECK(f.Value("SELECT count(*) FROM threads") == std::to_string(std::stoi(threads) + 1));
}

TEST_CASE("a sent mail keeps neither body nor address", "[integration][erasure]") {
  Fixture f;
  f.Mail(kTenant, "anna@example.de", "Neue Nachricht");
  f.Mail(kTenant, "not an address", "Neue Nachricht");
  mail::Outbox outbox(f.pool);
  auto claimed = outbox.Claim(10);
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 2);
  REQUIRE(outbox.MarkSent((*claimed)[0].id).ok());
  REQUIRE(outbox.MarkRejected((*claimed)[1].id, "to: invalid").ok());
  CHECK(f.Value("SELECT count(*) FROM mail_outbox WHERE recipient <> '' OR body IS NOT NULL") == "0");
  CHECK(f.Value("SELECT string_agg(subject, ',') FROM mail_outbox") == "Neue Nachricht,Neue Nachricht");
  // A failed attempt keeps both for the retry.
  f.Mail(kTenant, "ben@example.de", "Neue Nachricht");
  claimed = outbox.Claim(10);
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  REQUIRE(outbox.MarkFailed((*claimed)[0].id, "smtp: timeout", 60).ok());
  CHECK(f.Value("SELECT recipient FROM mail_outbox WHERE body IS NOT NULL") == "ben@example.de");
}

}  // namespace stadtportal::messaging

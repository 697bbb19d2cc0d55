// The secure mailbox over REST and gRPC, with the real SMTP server, against the real binaries.
#include <grpcpp/grpcpp.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "libs/grpc/client.h"
#include "stadtportal/messaging/v1/messaging.grpc.pb.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace mv1 = messaging::v1;

const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n";
constexpr char kSecret[] = "Ihre Geburtsurkunde Nr. 4711/1990 liegt zur Abholung bereit.";

// The Standesamt's back office, calling the messaging service as a department.
class Department {
 public:
  Department(Stack& stack) : stack_(stack) {
    auto& m = stack.instance("messaging");
    stub_ = mv1::MessagingService::NewStub(grpcx::MakeChannel("127.0.0.1:" + std::to_string(m.grpc_port)));
  }

  grpc::Status Post(const std::string& party, common::v1::PartyKind kind, const std::string& key, mv1::Message* out,
                    const std::string& body = kSecret) {
    mv1::PostMessageRequest req;
    req.mutable_party()->set_id(party);
    req.mutable_party()->set_kind(kind);
    req.set_sender_kind(mv1::SENDER_KIND_DEPARTMENT);
    req.set_department("Standesamt");
    req.set_subject("Ihre Urkundenbestellung");
    req.set_body(body);
    req.set_message_key(key);
    auto ctx = Context();
    return stub_->PostMessage(ctx.get(), req, out);
  }

  mv1::ListRepliesResponse Replies() {
    mv1::ListRepliesRequest req;
    mv1::ListRepliesResponse out;
    auto ctx = Context();
    auto s = stub_->ListReplies(ctx.get(), req, &out);
    REQUIRE(s.ok());
    return out;
  }

  mv1::AttachmentContent Attachment(const std::string& id) {
    mv1::GetAttachmentRequest req;
    req.set_id(id);
    mv1::AttachmentContent out;
    auto ctx = Context();
    REQUIRE(stub_->GetDepartmentAttachment(ctx.get(), req, &out).ok());
    return out;
  }

 private:
  std::unique_ptr<grpc::ClientContext> Context() {
    auth::Caller c;
    c.account_id = "00000000-0000-4000-8000-00000000d001";
    c.tenant = "09564000";
    c.acting_party = "Standesamt";
    c.roles = {"department", "destination:standesamt"};
    return grpcx::NewClientContext(5s, stack_.SignCaller(c, "messaging"));
  }
  Stack& stack_;
  std::unique_ptr<mv1::MessagingService::Stub> stub_;
};

// The verified address reaches messaging as an event shortly after verification: posts
// system notes until one of them is announced by mail.
void WaitUntilNotified(Stack& stack, Department& department, const std::string& party, const std::string& email) {
  bool notified = false;
  for (int i = 0; i < 15 && !notified; ++i) {
    mv1::Message m;
    REQUIRE(department
                .Post(party, common::v1::PARTY_KIND_PERSON, "hello-" + std::to_string(i) + "-" + party, &m,
                      "Willkommen in Ihrem Postfach.")
                .ok());
    notified = testing::Eventually([&] { return !stack.MailsTo(email).empty(); }, 2s);
  }
  REQUIRE(notified);
  std::this_thread::sleep_for(1s);  // Let mails of earlier probes settle.
}

std::string AccountId(httplib::Client& c, const json& login) {
  return json::parse(c.Get("/api/v1/me", Bearer(login))->body)["account_id"];
}

}  // namespace

TEST_CASE("a department message reaches the mailbox; the mail says only that; read, reply, department reads it",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string anna_mail = UniqueEmail();
  json anna = Onboard(stack, c, anna_mail);
  const std::string anna_id = AccountId(c, anna);
  Department standesamt(stack);
  WaitUntilNotified(stack, standesamt, anna_id, anna_mail);
  const json probes = json::parse(c.Get("/api/v1/mailbox/threads", Bearer(anna))->body);
  for (const auto& t : probes["items"]) {
    REQUIRE(Status(PostJson(c, "/api/v1/mailbox/threads/" + t["id"].get<std::string>() + "/archive", json::object(),
                            Bearer(anna))) == 200);
  }

  mv1::Message posted;
  REQUIRE(standesamt.Post(anna_id, common::v1::PARTY_KIND_PERSON, "standesamt-" + anna_id, &posted).ok());
  std::string mail;
  REQUIRE(testing::Eventually(
      [&] {
        for (const auto& m : stack.MailsTo(anna_mail)) {
          if (m.find("/postfach/" + posted.thread_id()) != std::string::npos) mail = m;
        }
        return !mail.empty();
      },
      20s));
  CHECK(mail.find("Neue Nachricht in Ihrem Postfach") != std::string::npos);
  CHECK(mail.find("4711") == std::string::npos);  // Never the content.

  auto list = c.Get("/api/v1/mailbox/threads", Bearer(anna));
  REQUIRE(Status(list) == 200);
  json threads = json::parse(list->body);
  INFO(list->body);
  REQUIRE(threads["items"].size() == 1);
  CHECK(threads["unread_total"] == 1);
  const std::string thread = threads["items"][0]["id"];
  CHECK(thread == posted.thread_id());
  auto one = c.Get(("/api/v1/mailbox/threads/" + thread).c_str(), Bearer(anna));
  REQUIRE(Status(one) == 200);
  CHECK(json::parse(one->body)["messages"][0]["body"] == kSecret);

  auto read = PostJson(c, "/api/v1/mailbox/messages/" + posted.id() + "/read", json::object(), Bearer(anna));
  REQUIRE(Status(read) == 200);
  CHECK_FALSE(json::parse(read->body)["first_read_at"].is_null());

  httplib::MultipartFormDataItems items = {{"body", "Danke, anbei meine Vollmacht.", "", ""},
                                           {"files", kPdf, "Vollmacht.pdf", "application/pdf"}};
  auto reply = c.Post(("/api/v1/mailbox/threads/" + thread + "/messages").c_str(), Bearer(anna), items);
  REQUIRE(Status(reply) == 201);
  CHECK(json::parse(reply->body)["attachments"][0]["media_type"] == "application/pdf");

  auto replies = standesamt.Replies();
  REQUIRE(replies.messages_size() >= 1);
  const auto& r = replies.messages(replies.messages_size() - 1);
  CHECK(r.body() == "Danke, anbei meine Vollmacht.");
  REQUIRE(r.attachments_size() == 1);
  CHECK(standesamt.Attachment(r.attachments(0).id()).content() == kPdf);

  // Another party sees none of it.
  json ben = Onboard(stack, c, UniqueEmail());
  CHECK(Status(c.Get(("/api/v1/mailbox/threads/" + thread).c_str(), Bearer(ben))) == 404);
  CHECK(Status(PostJson(c, "/api/v1/mailbox/messages/" + posted.id() + "/read", json::object(), Bearer(ben))) == 404);
  CHECK(Status(c.Get(("/api/v1/mailbox/attachments/" + r.attachments(0).id()).c_str(), Bearer(ben))) == 404);
  CHECK(Status(PostJson(c, "/api/v1/mailbox/threads/" + thread + "/messages", {{"body", "Hallo"}}, Bearer(ben))) ==
        404);
  CHECK(json::parse(c.Get("/api/v1/mailbox/threads", Bearer(ben))->body)["items"].empty());

  // Bad input: 4xx problems, nothing stored.
  CHECK(Status(PostJson(c, "/api/v1/mailbox/threads/" + thread + "/messages", {{"body", ""}}, Bearer(anna))) == 422);
  CHECK(Status(PostJson(c, "/api/v1/mailbox/threads/" + thread + "/messages", {{"body", std::string(1 << 20, 'x')}},
                        Bearer(anna))) == 413);
  httplib::MultipartFormDataItems exe = {{"body", "Anbei", "", ""},
                                         {"files", "MZ\x90 a program", "Vollmacht.pdf", "application/pdf"}};
  CHECK(Status(c.Post(("/api/v1/mailbox/threads/" + thread + "/messages").c_str(), Bearer(anna), exe)) == 422);
  CHECK(Status(PostJson(c, "/api/v1/mailbox/threads/3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b/messages", {{"body", "Hallo"}},
                        Bearer(anna))) == 404);
  CHECK(json::parse(c.Get(("/api/v1/mailbox/threads/" + thread).c_str(), Bearer(anna))->body)["messages"].size() == 2);
  CHECK(stack.AllLogs().find("\"level\":\"error\"") == std::string::npos);
}

TEST_CASE("with the SMTP server down for a while, every pending mail is delivered exactly once", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  const std::string anna_mail = UniqueEmail();
  json anna = Onboard(stack, c, anna_mail);
  const std::string anna_id = AccountId(c, anna);
  Department standesamt(stack);
  WaitUntilNotified(stack, standesamt, anna_id, anna_mail);
  std::this_thread::sleep_for(1s);
  const size_t before = stack.MailsTo(anna_mail).size();
  mv1::Message m;

  stack.StopSmtp();
  for (int i = 0; i < 3; ++i) {
    REQUIRE(
        standesamt.Post(anna_id, common::v1::PARTY_KIND_PERSON, "down-" + std::to_string(i) + "-" + anna_id, &m).ok());
  }
  std::this_thread::sleep_for(4s);  // Attempts fail and are retried with backoff.
  CHECK(stack.MailsTo(anna_mail).size() == before);
  stack.StartSmtp();
  REQUIRE(testing::Eventually([&] { return stack.MailsTo(anna_mail).size() >= before + 3; }, 30s));
  std::this_thread::sleep_for(3s);  // Nothing more arrives: each exactly once.
  CHECK(stack.MailsTo(anna_mail).size() == before + 3);
}

TEST_CASE("an organisation's mailbox is for its members acting for it", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  json ben = Onboard(stack, c, UniqueEmail());
  const std::string org = CreateOrganisation(c, anna);
  Department standesamt(stack);
  mv1::Message m;
  REQUIRE(standesamt.Post(org, common::v1::PARTY_KIND_ORGANISATION, "org-" + org, &m).ok());

  // Anna sees it only when acting for the organisation; Ben, no member, cannot act for it.
  CHECK(json::parse(c.Get("/api/v1/mailbox/threads", Bearer(anna))->body)["items"].empty());
  auto acting = PostJson(c, "/api/v1/me/acting-party", {{"party_id", org}}, Bearer(anna));
  REQUIRE(Status(acting) == 200);
  json anna_org = json::parse(acting->body);
  auto threads = c.Get("/api/v1/mailbox/threads", Bearer(anna_org));
  REQUIRE(Status(threads) == 200);
  CHECK(json::parse(threads->body)["items"].size() == 1);
  CHECK(Status(PostJson(c, "/api/v1/me/acting-party", {{"party_id", org}}, Bearer(ben))) == 404);
  CHECK(Status(c.Get(("/api/v1/mailbox/threads/" + m.thread_id()).c_str(), Bearer(ben))) == 404);
}

}  // namespace stadtportal::e2e

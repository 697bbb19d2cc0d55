#include "services/messaging/service.h"

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::messaging {
namespace {

constexpr char kParty[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "messaging"};
  Service service{std::make_shared<Store>(schema.pool(Store::Prepare)), "09564000"};
  grpc::ServerContext ctx;

  v1::Message Post(const std::string& key, const std::string& subject) {
    v1::PostMessageRequest req;
    req.mutable_party()->set_id(kParty);
    req.mutable_party()->set_kind(common::v1::PARTY_KIND_PERSON);
    req.set_sender_kind(v1::SENDER_KIND_DEPARTMENT);
    req.set_subject(subject);
    req.set_body("Ihre Urkunde ist versandt.");
    req.set_message_key(key);
    v1::Message m;
    REQUIRE(service.PostMessage(&ctx, &req, &m).ok());
    return m;
  }
};

}  // namespace

TEST_CASE("posting twice with one message key stores one message", "[integration]") {
  Fixture f;
  auto a = f.Post("standesamt:4711", "Urkunde versandt");
  auto b = f.Post("standesamt:4711", "Urkunde versandt");
  CHECK(a.id() == b.id());

  v1::ListMessagesRequest req;
  req.mutable_party()->set_id(kParty);
  req.mutable_party()->set_kind(common::v1::PARTY_KIND_PERSON);
  v1::ListMessagesResponse resp;
  REQUIRE(f.service.ListMessages(&f.ctx, &req, &resp).ok());
  CHECK(resp.messages_size() == 1);
  CHECK(resp.messages(0).sender_kind() == v1::SENDER_KIND_DEPARTMENT);
}

TEST_CASE("a mailbox is listed newest first, page by page", "[integration]") {
  Fixture f;
  for (int i = 1; i <= 5; ++i) f.Post("k" + std::to_string(i), "Nachricht " + std::to_string(i));
  v1::ListMessagesRequest req;
  req.mutable_party()->set_id(kParty);
  req.mutable_party()->set_kind(common::v1::PARTY_KIND_PERSON);
  req.mutable_page()->set_page_size(3);
  v1::ListMessagesResponse first, second;
  REQUIRE(f.service.ListMessages(&f.ctx, &req, &first).ok());
  REQUIRE(first.messages_size() == 3);
  CHECK(first.messages(0).subject() == "Nachricht 5");
  req.mutable_page()->set_page_token(first.page().next_page_token());
  REQUIRE(f.service.ListMessages(&f.ctx, &req, &second).ok());
  REQUIRE(second.messages_size() == 2);
  CHECK(second.messages(1).subject() == "Nachricht 1");
  CHECK(second.page().next_page_token().empty());
}

TEST_CASE("invalid messages are refused", "[integration]") {
  Fixture f;
  v1::PostMessageRequest req;
  req.mutable_party()->set_id(kParty);
  req.mutable_party()->set_kind(common::v1::PARTY_KIND_PERSON);
  req.set_subject("Betreff");
  req.set_body("Text");
  req.set_message_key("k");
  v1::Message m;
  CHECK(f.service.PostMessage(&f.ctx, &req, &m).error_code() == grpc::StatusCode::INVALID_ARGUMENT);  // No sender.
  req.set_sender_kind(v1::SENDER_KIND_SYSTEM);
  req.mutable_party()->set_id("x");
  CHECK(f.service.PostMessage(&f.ctx, &req, &m).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace stadtportal::messaging

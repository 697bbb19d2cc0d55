// The party's access log: data.accessed events taken in (checked as from outside, once
// per event), listed to the party only, newest first, page by page; partner reads of the
// profile published.
#include <google/protobuf/util/time_util.h>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "libs/events/testing.h"
#include "libs/grpc/handler.h"
#include "services/accounts/consumers.h"
#include "services/accounts/service.h"
#include "services/accounts/test_caller.h"

namespace stadtportal::accounts {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kAnna[] = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";
constexpr char kBen[] = "4d5e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f7a";

struct Fixture : events::HandlerTest {
  Fixture()
      : HandlerTest("accounts", Store::Prepare,
                    Consumers(std::make_shared<const DocumentTypes>(*DocumentTypes::Embedded()))) {}
  std::shared_ptr<Store> store = std::make_shared<Store>(pool());
  Service service{store, Options{}};
  grpc::ServerContext ctx;
  int next_id = 1;

  // Hands `e` to the consumer as the relay would, under a new event id (or `id`).
  absl::Status Take(const events::v1::DataAccessed& e, std::string id = "") {
    if (id.empty()) id = "connector-" + std::to_string(next_id++);
    return Handle(events::EventOf(id, e.party_id(), e));
  }
  int64_t Entries() { return std::stoll(Query("SELECT count(*) FROM access_log")); }

  grpc::Status List(const auth::Caller& as, const v1::ListAccessLogRequest& req, v1::ListAccessLogResponse* out) {
    grpcx::TestCaller scope(as);
    out->Clear();
    return service.ListAccessLog(&ctx, &req, out);
  }
};

// A department's read of Anna's submission, `minutes_ago` minutes ago.
events::v1::DataAccessed Read(int minutes_ago, const std::string& party = kAnna) {
  events::v1::DataAccessed e;
  e.set_tenant("09564000");
  e.set_party_id(party);
  e.set_accessor_kind("back_office");
  e.set_accessor_id("standesamt-client");
  e.set_accessor_name("Standesamt");
  e.set_resource("submission");
  e.set_resource_id("6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f");
  e.set_reference("NUE-2026-000001");
  e.set_action("read");
  e.set_purpose("procedure: dog-tax");
  *e.mutable_occurred_at() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(absl::Now()) - 60 * minutes_ago);
  return e;
}

}  // namespace

TEST_CASE("data.accessed: kept once per event; malformed events are refused and keep nothing", "[integration]") {
  Fixture f;
  REQUIRE(f.Take(Read(5), "connector-1").ok());
  REQUIRE(f.Take(Read(5), "connector-1").ok());  // The same event again.
  CHECK(f.Entries() == 1);
  CHECK(f.Query("SELECT accessor_name || '|' || purpose || '|' || reference FROM access_log") ==
        "Standesamt|procedure: dog-tax|NUE-2026-000001");

  const std::vector<std::pair<std::string, std::function<void(events::v1::DataAccessed&)>>> broken = {
      {"tenant", [](auto& e) { e.set_tenant("nuernberg"); }},
      {"party", [](auto& e) { e.set_party_id("Standesamt"); }},
      {"no party", [](auto& e) { e.clear_party_id(); }},
      {"kind", [](auto& e) { e.set_accessor_kind("neighbour"); }},
      {"no accessor", [](auto& e) { e.clear_accessor_id(); }},
      {"long accessor", [](auto& e) { e.set_accessor_name(std::string(201, 'x')); }},
      {"control in name", [](auto& e) { e.set_accessor_name("Standesamt\x1b[31m"); }},
      {"resource", [](auto& e) { e.set_resource("diary"); }},
      {"action", [](auto& e) { e.set_action("Read; DROP"); }},
      {"no purpose", [](auto& e) { e.clear_purpose(); }},
      {"blank purpose", [](auto& e) { e.set_purpose("  "); }},
      {"line break in purpose", [](auto& e) { e.set_purpose("procedure\nfake entry"); }},
      {"long purpose", [](auto& e) { e.set_purpose(std::string(501, 'p')); }},
      {"long reference", [](auto& e) { e.set_reference(std::string(101, 'r')); }},
      {"control in resource id", [](auto& e) { e.set_resource_id("a\tb"); }},
      {"no time", [](auto& e) { e.clear_occurred_at(); }},
      {"future", [](auto& e) { *e.mutable_occurred_at() = TimeUtil::SecondsToTimestamp(4102444800); }},
  };
  for (const auto& [name, change] : broken) {
    INFO(name);
    auto e = Read(1);
    change(e);
    CHECK(f.Take(e).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Entries() == 1);
}

TEST_CASE("the access log: the party's own only, newest first, page by page, within from and to", "[integration]") {
  Fixture f;
  for (int minutes : {50, 40, 30, 20, 10}) REQUIRE(f.Take(Read(minutes)).ok());
  auto admin = Read(15);
  admin.set_accessor_kind("administrator");
  admin.set_accessor_id("66666666-6666-4666-8666-666666666666");
  admin.set_accessor_name("administrator");
  admin.set_resource("account");
  admin.clear_resource_id();
  admin.clear_reference();
  admin.set_action("lookup");
  admin.set_purpose("ticket 4711");
  REQUIRE(f.Take(admin).ok());
  REQUIRE(f.Take(Read(1, kBen)).ok());

  v1::ListAccessLogRequest req;
  req.mutable_page()->set_page_size(4);
  v1::ListAccessLogResponse first, second;
  REQUIRE(f.List(PersonCaller(kAnna), req, &first).ok());
  REQUIRE(first.entries_size() == 4);
  for (int i = 1; i < first.entries_size(); ++i) {
    CHECK(TimeUtil::TimestampToSeconds(first.entries(i - 1).occurred_at()) >
          TimeUtil::TimestampToSeconds(first.entries(i).occurred_at()));
  }
  CHECK(first.entries(1).accessor_kind() == "administrator");
  CHECK(first.entries(1).purpose() == "ticket 4711");
  CHECK(first.entries(1).accessor_id().empty());  // Which administrator: not the person's to see.
  CHECK(first.entries(0).accessor_id() == "standesamt-client");
  REQUIRE_FALSE(first.page().next_page_token().empty());
  req.mutable_page()->set_page_token(first.page().next_page_token());
  REQUIRE(f.List(PersonCaller(kAnna), req, &second).ok());
  REQUIRE(second.entries_size() == 2);  // Anna's six, none of Ben's.
  CHECK(second.page().next_page_token().empty());
  CHECK(TimeUtil::TimestampToSeconds(second.entries(0).occurred_at()) <
        TimeUtil::TimestampToSeconds(first.entries(3).occurred_at()));

  // Ben sees his one read only.
  v1::ListAccessLogRequest all;
  v1::ListAccessLogResponse bens;
  REQUIRE(f.List(PersonCaller(kBen), all, &bens).ok());
  REQUIRE(bens.entries_size() == 1);

  // Within [from, to).
  v1::ListAccessLogRequest window;
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  *window.mutable_from() = TimeUtil::SecondsToTimestamp(now - 60 * 35);
  *window.mutable_to() = TimeUtil::SecondsToTimestamp(now - 60 * 12);
  v1::ListAccessLogResponse within;
  REQUIRE(f.List(PersonCaller(kAnna), window, &within).ok());
  CHECK(within.entries_size() == 3);  // 30, 20 and 15 minutes ago.

  // Tampered tokens, bounds the wrong way round or out of range: refused.
  v1::ListAccessLogResponse none;
  for (const std::string& token :
       {std::string("%%%"), absl::WebSafeBase64Escape("1|x"), absl::WebSafeBase64Escape("1|2|3"),
        absl::WebSafeBase64Escape("' OR 1=1 --"), first.page().next_page_token() + "A"}) {
    INFO(token);
    v1::ListAccessLogRequest bad;
    bad.mutable_page()->set_page_token(token);
    CHECK(f.List(PersonCaller(kAnna), bad, &none).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::ListAccessLogRequest reversed;
  *reversed.mutable_from() = window.to();
  *reversed.mutable_to() = window.from();
  CHECK(f.List(PersonCaller(kAnna), reversed, &none).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListAccessLogRequest ancient;
  ancient.mutable_from()->set_seconds(-62135596800);
  CHECK(f.List(PersonCaller(kAnna), ancient, &none).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  // Neither anonymous callers nor a partner portal reading for Anna.
  CHECK(f.List(auth::Caller{}, all, &none).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auto partner = PersonCaller(kAnna);
  partner.partner_id = "client-1";
  partner.partner_scope = "profile";
  CHECK(f.List(partner, all, &none).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("a partner portal's read of the profile is published for the person; the person's own is not",
          "[integration]") {
  Fixture f;
  v1::GetProfileRequest req;
  v1::Profile profile;
  {
    grpcx::TestCaller own(PersonCaller(kAnna));
    REQUIRE(f.service.GetProfile(&f.ctx, &req, &profile).ok());
  }
  CHECK(f.Query("SELECT count(*) FROM outbox WHERE topic = 'data.accessed'") == "0");
  auto partner = PersonCaller(kAnna);
  partner.session_ref = "partner:jti-1";
  partner.partner_id = "33333333-3333-4333-8333-333333333333";
  partner.partner_name = "Bürgerportal Plus";
  partner.partner_scope = "profile address";
  {
    grpcx::TestCaller as_partner(partner);
    REQUIRE(f.service.GetProfile(&f.ctx, &req, &profile).ok());
  }
  CHECK(f.Query("SELECT concat_ws('|', payload->>'party_id', payload->>'accessor_kind', payload->>'accessor_id',"
                " payload->>'accessor_name', payload->>'resource', payload->>'purpose') FROM outbox"
                " WHERE topic = 'data.accessed' AND key = '" +
                std::string(kAnna) + "'") ==
        std::string(kAnna) + "|partner|33333333-3333-4333-8333-333333333333|Bürgerportal Plus|profile|profile address");
}

}  // namespace stadtportal::accounts

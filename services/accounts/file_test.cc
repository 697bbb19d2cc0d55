#include "services/accounts/file.h"

#include <functional>
#include <set>

#include <google/protobuf/util/time_util.h>

#include <catch2/catch.hpp>

#include "libs/api/api.h"
#include "libs/events/testing.h"
#include "libs/grpc/handler.h"
#include "services/accounts/consumers.h"
#include "services/accounts/service.h"
#include "services/accounts/store.h"
#include "services/accounts/test_caller.h"

namespace stadtportal::accounts {
namespace {

using google::protobuf::util::TimeUtil;
namespace ev = events::v1;

constexpr char kAnna[] = "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a";
constexpr char kBen[] = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
constexpr char kSubmission[] = "6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c";
constexpr char kPayment[] = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d";
constexpr char kThread[] = "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e";
constexpr char kMessage[] = "9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f";

google::protobuf::Timestamp At(const std::string& rfc3339) {
  google::protobuf::Timestamp t;
  REQUIRE(TimeUtil::FromString(rfc3339, &t));
  return t;
}

ev::SubmissionStatusChanged Status(const std::string& status, const std::string& previous, const std::string& at,
                                   const std::string& party = kAnna) {
  ev::SubmissionStatusChanged e;
  e.set_tenant("09564000");
  e.set_submission_id(kSubmission);
  e.set_reference("NUE-2026-000042");
  e.set_party_id(party);
  e.set_service_id("dog-tax");
  e.set_status(status);
  e.set_previous_status(previous);
  *e.mutable_occurred_at() = At(at);
  return e;
}

ev::PaymentSucceeded Paid(const std::string& at) {
  ev::PaymentSucceeded e;
  e.set_tenant("09564000");
  e.set_payment_id(kPayment);
  e.set_submission_id(kSubmission);
  e.mutable_amount()->set_amount_minor(12000);
  e.mutable_amount()->set_currency("EUR");
  e.set_provider("testpay");
  e.set_party_id(kAnna);
  *e.mutable_occurred_at() = At(at);
  return e;
}

ev::MessageReceived Message(const std::string& kind, const std::string& at, const std::string& id = kMessage) {
  ev::MessageReceived e;
  e.set_tenant("09564000");
  e.set_party_id(kAnna);
  e.set_thread_id(kThread);
  e.set_message_id(id);
  e.set_kind(kind);
  e.set_subject("Ihre Hundesteuer NUE-2026-000042");
  e.set_submission_id(kSubmission);
  *e.mutable_occurred_at() = At(at);
  return e;
}

ev::ConsentChanged Consent(const std::string& state, const std::string& at) {
  ev::ConsentChanged e;
  e.set_tenant("09564000");
  e.set_party_id(kAnna);
  e.set_consent_id("0d1e2f3a-4b5c-4d6e-9f7a-8b9c0d1e2f3a");
  e.set_purpose("reminders");
  e.set_text_version("2026-01");
  e.set_state(state);
  *e.mutable_occurred_at() = At(at);
  return e;
}

struct Fixture : events::HandlerTest {
  Fixture()
      : HandlerTest("accounts", Store::Prepare,
                    Consumers(std::make_shared<const DocumentTypes>(*DocumentTypes::Embedded()))) {}
  std::shared_ptr<Store> store = std::make_shared<Store>(pool());
  Service service{store, Options{}};

  template <class M>
  absl::Status Take(const std::string& id, const M& m) {
    return Handle(events::EventOf(id, "key", m));
  }

  // A page of the party's file, as "id kind" lines, and the next token.
  grpc::Status List(const std::string& party, v1::ListFileItemsRequest req, v1::ListFileItemsResponse* out) {
    grpcx::TestCaller scope(PersonCaller(party));
    grpc::ServerContext ctx;
    return service.ListFileItems(&ctx, &req, out);
  }
  std::string Timeline(const std::string& party, v1::ListFileItemsRequest req = {}) {
    v1::ListFileItemsResponse out;
    auto s = List(party, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
    std::string lines;
    for (const auto& i : out.items())
      lines += i.id() + " " + i.kind() + (i.service_id().empty() ? "" : " " + i.service_id()) + "\n";
    return lines;
  }
  // Every item of the party as JSON text (all columns the listing shows).
  std::string Everything(const std::string& party) {
    v1::ListFileItemsRequest req;
    req.mutable_page()->set_page_size(100);
    v1::ListFileItemsResponse out;
    REQUIRE(List(party, req, &out).ok());
    return out.DebugString();
  }
};

}  // namespace

TEST_CASE("the file takes each event once, in the order of its time, then its id", "[integration]") {
  Fixture f;
  // Out of order and repeated, as streams deliver them.
  REQUIRE(f.Take("payment-9", Paid("2026-12-01T10:05:00Z")).ok());
  REQUIRE(f.Take("submission-10", Status("submitted", "", "2026-12-01T10:00:00Z")).ok());
  REQUIRE(f.Take("submission-11", Status("awaiting_payment", "submitted", "2026-12-01T10:00:00Z")).ok());
  REQUIRE(f.Take("submission-9", Status("submitted", "", "2026-12-01T10:00:00Z", kBen)).ok());
  REQUIRE(f.Take("submission-12", Status("paid", "awaiting_payment", "2026-12-01T10:05:00Z")).ok());
  REQUIRE(f.Take("messaging-3", Message("notice", "2026-12-02T09:00:00Z")).ok());
  REQUIRE(f.Take("messaging-4", Message("reply", "2026-12-02T09:30:00Z", "1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b")).ok());
  REQUIRE(f.Take("accounts-7", Consent("given", "2026-12-03T08:00:00Z")).ok());
  REQUIRE(f.Take("accounts-8", Consent("withdrawn", "2026-12-03T08:01:00Z")).ok());
  // The same event again (a relay's repeat) changes nothing.
  REQUIRE(f.Take("payment-9", Paid("2026-12-01T10:05:00Z")).ok());
  REQUIRE(f.Take("accounts-8", Consent("withdrawn", "2026-12-03T08:01:00Z")).ok());
  // The payment names only its submission: the service is the submission's, also when it
  // came before the first status. At the same time as "paid", the ids order: "payment-9"
  // before "submission-12".
  CHECK(f.Timeline(kAnna) ==
        "submission-10 submission_status dog-tax\n"
        "submission-11 submission_status dog-tax\n"
        "payment-9 payment dog-tax\n"
        "submission-12 submission_status dog-tax\n"
        "messaging-3 notice dog-tax\n"
        "messaging-4 reply dog-tax\n"
        "accounts-7 consent\n"
        "accounts-8 consent\n");
  CHECK(f.Timeline(kBen) == "submission-9 submission_status dog-tax\n");
  CHECK(f.Query("SELECT count(*) FROM file_events") == "9");
  CHECK(f.Query("SELECT count(*) FROM file_items") == "9");
  // The order the events came in makes no difference: a rebuild gives the same file.
  const std::string live = f.Everything(kAnna);
  REQUIRE(RebuildFile(f.pool(), "").ok());
  CHECK(f.Everything(kAnna) == live);

  // What an item says and where it links to.
  v1::ListFileItemsRequest req;
  req.set_kind("payment");
  v1::ListFileItemsResponse out;
  REQUIRE(f.List(kAnna, req, &out).ok());
  REQUIRE(out.items_size() == 1);
  CHECK(out.items(0).link() == std::string("/api/v1/payments/") + kPayment);
  CHECK(TimeUtil::ToString(out.items(0).occurred_at()) == "2026-12-01T10:05:00Z");
  const auto summary = nlohmann::json::parse(out.items(0).summary_json());
  CHECK(summary["amount"]["amount_minor"] == 12000);
  CHECK(summary["amount"]["currency"] == "EUR");
  CHECK(summary["submission_id"] == kSubmission);
  req.set_kind("notice");
  REQUIRE(f.List(kAnna, req, &out).ok());
  REQUIRE(out.items_size() == 1);
  CHECK(out.items(0).link() == std::string("/api/v1/mailbox/threads/") + kThread);
  CHECK(nlohmann::json::parse(out.items(0).summary_json())["subject"] == "Ihre Hundesteuer NUE-2026-000042");
}

TEST_CASE("the file's items of every topic; a reminder's mailbox message is kept, not shown twice", "[integration]") {
  Fixture f;
  ev::PaymentRefunded refund;
  refund.set_tenant("09564000");
  refund.set_payment_id(kPayment);
  refund.set_refund_id("2f3a4b5c-6d7e-4f8a-9b0c-1d2e3f4a5b6c");
  refund.set_submission_id(kSubmission);
  refund.set_party_id(kAnna);
  refund.mutable_amount()->set_amount_minor(500);
  refund.mutable_amount()->set_currency("EUR");
  *refund.mutable_occurred_at() = At("2026-12-04T10:00:00Z");
  REQUIRE(f.Take("payment-20", refund).ok());
  ev::ReminderDue reminder;
  reminder.set_tenant("09564000");
  reminder.set_reminder_id("3a4b5c6d-7e8f-4a9b-8c0d-1e2f3a4b5c6d");
  reminder.set_party_id(kAnna);
  reminder.set_party_kind("person");
  reminder.set_document_id("4b5c6d7e-8f9a-4b0c-9d1e-2f3a4b5c6d7e");
  reminder.set_document_type("dog_tax_tag");
  reminder.set_document_name_de("Hundesteuermarke");
  reminder.set_document_name_en("Dog tax tag");
  reminder.set_expires_on("2027-01-31");
  *reminder.mutable_occurred_at() = At("2026-12-05T06:00:00Z");
  REQUIRE(f.Take("accounts-30", reminder).ok());
  REQUIRE(f.Take("messaging-31", Message("reminder", "2026-12-05T06:00:01Z")).ok());
  REQUIRE(f.Take("messaging-32", Message("system", "2026-12-05T07:00:00Z")).ok());
  REQUIRE(f.Take("messaging-33", Message("message", "2026-12-05T08:00:00Z")).ok());
  ev::ProviderLinkChanged link;
  link.set_tenant("09564000");
  link.set_account_id(kAnna);
  link.set_provider("bundid");
  link.set_state("linked");
  *link.mutable_occurred_at() = At("2026-12-06T10:00:00Z");
  REQUIRE(f.Take("identity-40", link).ok());
  CHECK(f.Timeline(kAnna) ==
        "payment-20 refund\n"
        "accounts-30 reminder\n"
        "messaging-32 system_message\n"
        "messaging-33 message\n"
        "identity-40 provider_link\n");
  CHECK(f.Query("SELECT count(*) FROM file_events") == "6");  // The reminder's message is journaled.
  CHECK(f.Query("SELECT link FROM file_items WHERE kind = 'reminder'") ==
        "/api/v1/me/documents/4b5c6d7e-8f9a-4b0c-9d1e-2f3a4b5c6d7e");
  CHECK(f.Query("SELECT link FROM file_items WHERE kind = 'provider_link'") == "/api/v1/me/providers");
  CHECK(f.Query("SELECT summary->>'state' FROM file_items WHERE kind = 'provider_link'") == "linked");
}

TEST_CASE("malformed events are refused and leave the file as it was", "[integration]") {
  Fixture f;
  auto bad_party = Status("submitted", "", "2026-12-01T10:00:00Z");
  bad_party.set_party_id("anna'; DROP TABLE file_items; --");
  CHECK(f.Take("submission-1", bad_party).code() == absl::StatusCode::kInvalidArgument);
  auto bad_tenant = Status("submitted", "", "2026-12-01T10:00:00Z");
  bad_tenant.set_tenant("x");
  CHECK(f.Take("submission-2", bad_tenant).code() == absl::StatusCode::kInvalidArgument);
  auto no_time = Status("submitted", "", "2026-12-01T10:00:00Z");
  no_time.clear_occurred_at();
  CHECK(f.Take("submission-3", no_time).code() == absl::StatusCode::kInvalidArgument);
  auto bad_status = Status("hacked", "", "2026-12-01T10:00:00Z");
  CHECK(f.Take("submission-4", bad_status).code() == absl::StatusCode::kInvalidArgument);
  auto control = Message("message", "2026-12-01T10:00:00Z");
  control.set_subject("Betreff\x1b[31m");
  CHECK(f.Take("messaging-5", control).code() == absl::StatusCode::kInvalidArgument);
  auto kind = Message("broadcast", "2026-12-01T10:00:00Z");
  CHECK(f.Take("messaging-6", kind).code() == absl::StatusCode::kInvalidArgument);
  auto negative = Paid("2026-12-01T10:00:00Z");
  negative.mutable_amount()->set_amount_minor(-1);
  CHECK(f.Take("payment-7", negative).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Handle(events::EventOf("not an id", "key", Paid("2026-12-01T10:00:00Z"))).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.Query("SELECT count(*) FROM file_events") == "0");
  CHECK(f.Query("SELECT count(*) FROM file_items") == "0");
}

TEST_CASE("the file is listed in pages by a cursor, filtered by kind, service and dates", "[integration]") {
  Fixture f;
  for (int i = 1; i <= 25; ++i) {
    REQUIRE(f.Take("accounts-" + std::to_string(i),
                   Consent(i % 2 == 0 ? "withdrawn" : "given",
                           "2026-12-" + std::string(i < 10 ? "0" : "") + std::to_string(i) + "T12:00:00Z"))
                .ok());
  }
  REQUIRE(f.Take("submission-100", Status("submitted", "", "2026-12-10T08:00:00Z")).ok());
  // Pages of 10: 26 items in three pages, none twice, none left out.
  v1::ListFileItemsRequest req;
  req.mutable_page()->set_page_size(10);
  std::vector<std::string> seen;
  for (int page = 0; page < 4; ++page) {
    v1::ListFileItemsResponse out;
    REQUIRE(f.List(kAnna, req, &out).ok());
    for (const auto& i : out.items()) seen.push_back(i.id());
    if (out.page().next_page_token().empty()) break;
    req.mutable_page()->set_page_token(out.page().next_page_token());
  }
  REQUIRE(seen.size() == 26);
  CHECK(seen[9] == "submission-100");  // 10 December, 08:00: before that day's consent.
  CHECK(seen[10] == "accounts-10");
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 26);

  v1::ListFileItemsRequest filter;
  filter.set_from("2026-12-10");
  filter.set_to("2026-12-11");
  CHECK(f.Timeline(kAnna, filter) ==
        "submission-100 submission_status dog-tax\naccounts-10 consent\naccounts-11 consent\n");
  filter.set_service_id("dog-tax");
  CHECK(f.Timeline(kAnna, filter) == "submission-100 submission_status dog-tax\n");
  filter.clear_service_id();
  filter.set_kind("consent");
  CHECK(f.Timeline(kAnna, filter) == "accounts-10 consent\naccounts-11 consent\n");
  CHECK(f.Timeline(kBen).empty());  // Another party's file is empty.

  // Bad filters and tampered cursors: INVALID_ARGUMENT naming the parameter.
  auto refused = [&](const std::function<void(v1::ListFileItemsRequest&)>& change) {
    v1::ListFileItemsRequest bad;
    change(bad);
    v1::ListFileItemsResponse out;
    auto s = f.List(kAnna, bad, &out);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    return s.error_message();
  };
  CHECK(refused([](auto& r) { r.set_kind("everything"); }) == "kind: not a kind of the citizen file");
  CHECK(refused([](auto& r) { r.set_service_id("Dog Tax"); }) == "service: not a service id");
  CHECK(refused([](auto& r) { r.set_from("2026-13-01"); }) == "from: YYYY-MM-DD");
  CHECK(refused([](auto& r) { r.set_to("yesterday"); }) == "to: YYYY-MM-DD");
  CHECK(refused([](auto& r) {
          r.set_from("2026-12-11");
          r.set_to("2026-12-10");
        }) == "to: to must not be before from");
  CHECK(refused([](auto& r) { r.mutable_page()->set_page_size(101); }) == "page_size: 1 to 100");
  CHECK(refused([](auto& r) { r.mutable_page()->set_page_token("!!!"); }).rfind("page_token", 0) == 0);
  CHECK(refused([](auto& r) { r.mutable_page()->set_page_token(api::NextPageToken("1|x")); }).rfind("page_token", 0) ==
        0);
  CHECK(refused([](auto& r) {
          r.mutable_page()->set_page_token(api::NextPageToken("1765000000000000|accounts-1' OR 1=1"));
        }).rfind("page_token", 0) == 0);
}

TEST_CASE("a rebuild derives the same file from the journal, in one transaction", "[integration]") {
  Fixture f;
  REQUIRE(f.Take("submission-10", Status("submitted", "", "2026-12-01T10:00:00Z")).ok());
  REQUIRE(f.Take("payment-9", Paid("2026-12-01T10:05:00Z")).ok());
  REQUIRE(f.Take("messaging-3", Message("notice", "2026-12-02T09:00:00Z")).ok());
  REQUIRE(f.Take("messaging-31", Message("reminder", "2026-12-05T06:00:01Z")).ok());
  REQUIRE(f.Take("accounts-7", Consent("given", "2026-12-03T08:00:00Z")).ok());
  const std::string before = f.Everything(kAnna);
  REQUIRE(!before.empty());
  // Items lost or damaged: the rebuild makes them again from the journal alone.
  REQUIRE(f.pool()
              .Transact([](pqxx::work& tx) {
                tx.exec("DELETE FROM file_items WHERE kind = 'payment'");
                tx.exec("UPDATE file_items SET link = '/elsewhere', summary = '{}' WHERE kind = 'notice'");
                return absl::OkStatus();
              })
              .ok());
  CHECK(f.Everything(kAnna) != before);
  auto counts = RebuildFile(f.pool(), "09564000");
  REQUIRE(counts.ok());
  CHECK(counts->events == 5);
  CHECK(counts->items == 4);
  CHECK(counts->refused == 0);
  CHECK(f.Everything(kAnna) == before);
  // Another tenant's rebuild leaves this one's items alone; all tenants: the same again.
  REQUIRE(RebuildFile(f.pool(), "09162000").ok());
  CHECK(f.Everything(kAnna) == before);
  auto all = RebuildFile(f.pool(), "");
  REQUIRE(all.ok());
  CHECK(all->items == 4);
  CHECK(f.Everything(kAnna) == before);
  CHECK(RebuildFile(f.pool(), "x").status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace stadtportal::accounts

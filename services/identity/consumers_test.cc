#include "services/identity/consumers.h"

#include <functional>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "libs/audit/audit.h"
#include "libs/events/testing.h"
#include "services/identity/store.h"

namespace stadtportal::identity {
namespace {

struct Fixture : events::HandlerTest {
  Fixture() : HandlerTest("identity", Store::Prepare, Consumers()) {}
};

events::v1::AuditRecorded Recorded() {
  audit::Entry e;
  e.tenant = "09564000";
  e.actor = "66666666-6666-4666-8666-666666666666";
  e.session_ref = "admin-session-ref";
  e.action = "dead_letter.replay";
  e.targets = {{"destination", "standesamt"}, {"replayed", 3}};
  e.request_id = "req-77";
  return e.ToEvent();
}

}  // namespace

TEST_CASE("audit entries map to their event and back; a malformed one is refused", "[unit]") {
  auto back = audit::Entry::FromEvent(Recorded());
  REQUIRE(back.ok());
  CHECK(back->actor == "66666666-6666-4666-8666-666666666666");
  CHECK(back->targets["destination"] == "standesamt");
  CHECK(back->targets["replayed"] == 3);
  auto refused = [](const std::function<void(events::v1::AuditRecorded&)>& change) {
    auto e = Recorded();
    change(e);
    return audit::Entry::FromEvent(e).status().code() == absl::StatusCode::kInvalidArgument;
  };
  CHECK(refused([](auto& e) { e.set_action("Refund Create"); }));
  CHECK(refused([](auto& e) { e.clear_actor(); }));
  CHECK(refused([](auto& e) { e.set_tenant("nue"); }));
  CHECK(refused([](auto& e) { e.set_outcome("maybe"); }));
  CHECK(refused([](auto& e) { e.set_request_id(std::string(201, 'r')); }));
}

TEST_CASE("audit.recorded: the entry is kept once under the publishing service", "[integration]") {
  Fixture f;
  const auto event = events::EventOf("connector-41", "66666666-6666-4666-8666-666666666666", Recorded());
  REQUIRE(f.Handle(event).ok());
  CHECK(f.Query("SELECT concat_ws('|', service, actor, session_ref, action, targets::text, outcome, request_id)"
                " FROM audit_log") ==
        R"(connector|66666666-6666-4666-8666-666666666666|admin-session-ref|dead_letter.replay|)"
        R"({"replayed": 3, "destination": "standesamt"}|succeeded|req-77)");
  // The handler, as the consumer calls it after its inbox let the event through.
  auto malformed = Recorded();
  malformed.set_action("DROP TABLE");
  CHECK(f.pool().Transact([&](pqxx::work& tx) { return OnAuditRecorded(tx, event, malformed); }).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f.Query("SELECT count(*) FROM audit_log") == "1");
}

TEST_CASE("audit.recorded: a service records only its own actions", "[integration]") {
  Fixture f;
  auto as = [](const std::string& action) {
    auto e = Recorded();
    e.set_action(action);
    return e;
  };
  const std::string actor = "66666666-6666-4666-8666-666666666666";
  for (const auto& [id, action] : std::vector<std::pair<std::string, std::string>>{
           {"payment-1", "refund.create"}, {"connector-2", "destination.put"}, {"connector-3", "dead_letter.replay"}}) {
    INFO(id << " " << action);
    CHECK(f.Handle(events::EventOf(id, actor, as(action))).ok());
  }
  CHECK(f.Query("SELECT string_agg(service || ' ' || action, ',' ORDER BY id) FROM audit_log") ==
        "payment refund.create,connector destination.put,connector dead_letter.replay");
  // Another service's actions, identity's own (never events), and services that record none.
  for (const auto& [id, action] :
       std::vector<std::pair<std::string, std::string>>{{"payment-4", "destination.put"},
                                                        {"payment-5", "role.grant"},
                                                        {"connector-6", "refund.create"},
                                                        {"connector-7", "totp.reset"},
                                                        {"identity-8", "role.grant"},
                                                        {"submission-9", "refund.create"},
                                                        {"accounts-10", "account.lock"},
                                                        {"messaging-11", "dead_letter.replay"}}) {
    INFO(id << " " << action);
    CHECK(f.Handle(events::EventOf(id, actor, as(action))).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f.Query("SELECT count(*) FROM audit_log") == "3");
}

TEST_CASE("identity's consumer refuses a payload that is not its topic's message", "[integration]") {
  Fixture f;
  auto event = events::EventOf("payment-7", "66666666-6666-4666-8666-666666666666", Recorded());
  event.payload["targets"] = "not an object";
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  event.payload = nlohmann::json::array({"audit"});
  CHECK(f.Handle(event).code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.Query("SELECT count(*) FROM audit_log") == "0");
}

}  // namespace stadtportal::identity

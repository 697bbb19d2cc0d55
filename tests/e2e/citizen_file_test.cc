// The citizen file (GET /api/v1/me/file) against the real binaries: what a person did and
// what the departments sent, each once and in order, identical after a rebuild.
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The whole file of `login` (pages of `page_size`), as the API returns its items.
json File(httplib::Client& c, const json& login, int page_size = 100) {
  json items = json::array();
  std::string token;
  for (int page = 0; page < 50; ++page) {
    std::string path = "/api/v1/me/file?page_size=" + std::to_string(page_size);
    if (!token.empty()) path += "&page_token=" + token;
    auto r = c.Get(path.c_str(), Bearer(login));
    REQUIRE(Status(r) == 200);
    const json body = json::parse(r->body);
    for (const auto& i : body["items"]) items.push_back(i);
    if (!body.contains("next_page_token")) return items;
    token = body["next_page_token"];
  }
  FAIL("the file's pages do not end");
  return items;
}

absl::Time TimeOf(const json& item) {
  absl::Time t;
  std::string err;
  REQUIRE(absl::ParseTime(absl::RFC3339_full, item["occurred_at"].get<std::string>(), &t, &err));
  return t;
}

std::vector<std::string> Of(const json& items, const std::string& kind, const std::string& field) {
  std::vector<std::string> out;
  for (const auto& i : items) {
    if (i["kind"] == kind) out.push_back(i["summary"][field]);
  }
  return out;
}

}  // namespace

TEST_CASE("the citizen file shows each thing once, in order, and is the same after a rebuild", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  json anna = Onboard(stack, c, UniqueEmail());
  json ben = Onboard(stack, c, UniqueEmail(), "Ben Beispiel");
  const std::string token = BackofficeToken(c, admin, "standesamt", "Standesamt");

  // A consent given and withdrawn.
  auto given = PostJson(c, "/api/v1/me/consents", {{"purpose", "satisfaction-survey"}, {"text_version", "2026-01"}},
                        Bearer(anna));
  REQUIRE(Status(given) == 201);
  const std::string consent = json::parse(given->body)["id"];
  REQUIRE(Status(PostJson(c, "/api/v1/me/consents/" + consent + "/withdraw", json::object(), Bearer(anna))) == 200);

  // A fee-bearing order, paid at testpay.
  json s = SubmitCertificate(c, anna);
  const std::string id = s["id"];
  json p = StartPayment(c, anna, id, "pay-" + id);
  {
    const std::string back = PayAtProvider(stack, p, "success");
    REQUIRE(Status(c.Get(back.substr(back.find("/api/v1/")).c_str())) == 200);
  }
  auto submission = [&] { return json::parse(c.Get(("/api/v1/submissions/" + id).c_str(), Bearer(anna))->body); };
  REQUIRE(testing::Eventually([&] { return submission()["status"] == "paid"; }, 15s));

  // The registry office takes it, writes and sends its notice.
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(token));
        return r && r->status == 200 && r->body.find(id) != std::string::npos;
      },
      15s));
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/acknowledge", json::object(),
                          BearerToken(token))) == 200);
  REQUIRE(testing::Eventually([&] { return submission()["status"] == "received_by_department"; }, 15s));
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/messages",
                          {{"body", "Bitte nennen Sie uns den Geburtsort."}, {"message_key", "frage-1"}},
                          BearerToken(token))) == 201);
  const std::string pdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";
  REQUIRE(
      Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/messages",
                      {{"body", "Ihre Urkunden sind unterwegs."},
                       {"message_key", "bescheid-1"},
                       {"notice", true},
                       {"attachments", {{{"filename", "Bescheid.pdf"}, {"content_base64", absl::Base64Escape(pdf)}}}}},
                      BearerToken(token))) == 201);

  // Everything arrives through the events; then nothing more comes (each item once).
  std::vector<std::string> history;
  const json submitted = submission();  // Kept: a range over a temporary's member would dangle.
  for (const auto& h : submitted["history"]) history.push_back(h["status"]);
  const size_t expected = 2 + history.size() + 1 + 2;  // Consents, statuses, payment, message and notice.
  const bool settled = testing::Eventually([&] { return File(c, anna).size() == expected; }, 20s);
  INFO("expected " << expected << " items, the file holds: " << File(c, anna).dump());
  REQUIRE(settled);
  std::this_thread::sleep_for(1s);
  const json file = File(c, anna);
  REQUIRE(file.size() == expected);

  // Each status of the history, in its order, linked to the submission.
  CHECK(Of(file, "submission_status", "status") == history);
  CHECK(history.front() == "submitted");
  CHECK(history[1] == "awaiting_payment");
  for (const auto& i : file) {
    if (i["kind"] != "submission_status") continue;
    CHECK(i["link"] == "/api/v1/submissions/" + id);
    CHECK(i["service_id"] == "civil-registry-certificate");
    CHECK(i["summary"]["reference"] == s["reference"]);
  }
  CHECK(Of(file, "consent", "state") == std::vector<std::string>{"given", "withdrawn"});
  REQUIRE(Of(file, "payment", "payment_id") == std::vector<std::string>{p["id"].get<std::string>()});
  CHECK(Of(file, "message", "subject").size() == 1);
  CHECK(Of(file, "notice", "subject").size() == 1);
  // In order of time (then the event's id), each item once, each with its own link that
  // answers for Anna.
  std::set<std::string> ids;
  for (size_t i = 0; i < file.size(); ++i) {
    CHECK(ids.insert(file[i]["id"].get<std::string>()).second);
    if (i > 0) CHECK(TimeOf(file[i - 1]) <= TimeOf(file[i]));
    const std::string link = file[i]["link"];
    CHECK(Status(c.Get(link.c_str(), Bearer(anna))) == 200);
  }
  // The payment's item follows the statuses before it and names the service.
  for (const auto& i : file) {
    if (i["kind"] == "payment") CHECK(i["service_id"] == "civil-registry-certificate");
  }
  // Pages of three are the same timeline.
  CHECK(File(c, anna, 3) == file);
  // Filters.
  auto only = [&](const std::string& query) {
    auto r = c.Get(("/api/v1/me/file?" + query).c_str(), Bearer(anna));
    REQUIRE(Status(r) == 200);
    return json::parse(r->body)["items"];
  };
  CHECK(only("kind=notice").size() == 1);
  CHECK(only("service=civil-registry-certificate").size() == history.size() + 3);  // + payment, message, notice.
  CHECK(only("from=2000-01-01&to=2000-12-31").empty());

  // Another person's file does not show Anna's.
  CHECK(File(c, ben).empty());

  // Bad filters and tampered cursors: 400 naming the parameter, for every one.
  const std::vector<std::string> bad = {
      "kind=everything", "service=Not%20A%20Service",     "from=2026-13-01",
      "to=yesterday",    "from=2026-12-11&to=2026-12-10", "page_size=0",
      "page_size=101",   "page_token=%21%21%21",          "page_token=" + absl::WebSafeBase64Escape("1|x' OR 1=1")};
  for (const std::string& query : bad) {
    auto r = c.Get(("/api/v1/me/file?" + query).c_str(), Bearer(anna));
    INFO(query);
    CHECK(Status(r) == 400);
    CHECK(r->get_header_value("Content-Type").rfind("application/problem+json", 0) == 0);
  }
  CHECK(Status(c.Get("/api/v1/me/file")) == 401);

  // The operator's rebuild from the journal: the same timeline, byte for byte.
  std::string out;
  REQUIRE(RunServiceCommand(stack, "accounts", {"rebuild-file", "--tenant", "09564000"}, &out) == 0);
  INFO(out);
  CHECK(out.find("rebuilt the citizen file of 09564000") != std::string::npos);
  CHECK(out.find("0 refused") != std::string::npos);
  CHECK(File(c, anna).dump() == file.dump());
  CHECK(RunServiceCommand(stack, "accounts", {"rebuild-file", "--tenant", "Nürnberg"}) == 64);
  CHECK(RunServiceCommand(stack, "accounts", {"rebuild-file", "--everything"}) == 64);
}

}  // namespace stadtportal::e2e

// The GDPR export (GET /api/v1/me/export) and erasure (DELETE /api/v1/me) against the real
// binaries: the export holds the person's data of every service that has any, the ZIP
// their files; after the erasure — with messaging stopped during the request and started
// later — no schema holds the person's e-mail address, name, birth date or account id,
// except the retained records the answer listed.
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libs/auth/tokens.h"
#include "tests/e2e/operators.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< /Vollmacht true >>\nendobj\n";

// Letters only, so a name made of them is found as it was typed in every column.
std::string Letters(size_t n) {
  std::string out;
  for (char c : auth::RandomToken(n)) out += static_cast<char>('a' + static_cast<unsigned char>(c) % 26);
  return out.substr(0, n);
}

// A row of a service's schema that holds one of the person's values.
struct Hit {
  std::string schema;
  std::string table;
  std::string row;  // The row as PostgreSQL's text of it.
};

// Every row of every table of the six services' schemas that holds one of `values`.
std::vector<Hit> Scan(const std::vector<std::string>& values) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::read_transaction tx(conn);
  std::vector<Hit> hits;
  for (const auto& schema : kServices) {
    for (const auto& t : tx.exec_params("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
                                        schema)) {
      const std::string table = t[0].as<std::string>();
      const std::string qualified = tx.quote_name(schema) + "." + tx.quote_name(table);
      for (const auto& value : values) {
        for (const auto& row : tx.exec_params(
                 "SELECT t::text FROM " + qualified + " t WHERE strpos(lower(t::text), lower($1)) > 0 LIMIT 50",
                 value)) {
          hits.push_back({schema, table, row[0].as<std::string>()});
        }
      }
    }
  }
  return hits;
}

std::string Describe(const std::vector<Hit>& hits) {
  std::string out;
  for (const auto& h : hits) absl::StrAppend(&out, h.schema, ".", h.table, ": ", h.row.substr(0, 300), "\n");
  return out;
}

// Whether a hit is a record the erasure's answer listed as retained: the row names one
// of their ids (the record itself, its history, its messages), or it is identity's
// event of the erasure request.
bool Retained(const Hit& h, const json& retained) {
  for (const auto& r : retained) {
    if (r["kind"] == "erasure_request") {
      if (h.schema == "identity" && h.table == "outbox" && absl::StrContains(h.row, "party.erasure_requested")) {
        return true;
      }
      continue;
    }
    if (absl::StrContains(h.row, r["id"].get<std::string>())) return true;
  }
  return false;
}

// Pays a payment at the testpay simulator and follows the return to the gateway.
void PayAtTestpay(Stack& stack, httplib::Client& c, const json& payment) {
  const std::string back = PayAtProvider(stack, payment, "success");
  REQUIRE(Status(c.Get(back.substr(back.find("/api/v1/")).c_str())) == 200);
}

}  // namespace

TEST_CASE("the export holds the person's data of every service; the erasure leaves only the retained records",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  const std::string token = BackofficeToken(c, admin, "standesamt", "Standesamt");

  const std::string email = UniqueEmail();
  const std::string given = "Gisela" + Letters(8);
  const std::string family = "Loeschner" + Letters(8);
  const std::string display_name = given + " " + family;
  // A birth date no other test gives (their people are born after 1950).
  const std::string digits = Letters(3);
  const std::string birth_date = absl::StrFormat("%d-%02d-%02d", 1931 + (digits[0] - 'a') % 19,
                                                 1 + (digits[1] - 'a') % 12, 10 + (digits[2] - 'a') % 18);
  json anna = Onboard(stack, c, email, display_name);
  auto account_of = [&](const json& login) {
    return json::parse(c.Get("/api/v1/me", Bearer(login))->body)["account_id"].get<std::string>();
  };
  const std::string account = account_of(anna);
  json ben = Onboard(stack, c, UniqueEmail(), "Ben Beispiel");
  const std::string ben_account = account_of(ben);

  // Anna's data in every service: a profile, a consent and a document (accounts), an
  // order with its fee paid (submission, payment), taken by the registry office
  // (connector) which answers with a notice and a file (messaging), her reply, and a
  // draft with an attachment.
  REQUIRE(Status(c.Patch("/api/v1/me/profile", Bearer(anna),
                         json({{"given_name", given},
                               {"family_name", family},
                               {"birth_date", birth_date},
                               {"address", {{"postcode", "90403"}, {"city", "Nürnberg"}, {"country", "DE"}}}})
                             .dump(),
                         "application/json")) == 200);
  auto consent =
      PostJson(c, "/api/v1/me/consents", {{"purpose", "reminders"}, {"text_version", "2026-01"}}, Bearer(anna));
  REQUIRE(Status(consent) == 201);
  auto document =
      PostJson(c, "/api/v1/me/documents", {{"type", "passport"}, {"expires_on", "2031-05-01"}}, Bearer(anna));
  REQUIRE(Status(document) == 201);

  json order = SubmitCertificate(c, anna);
  const std::string submission = order["id"];
  json payment = StartPayment(c, anna, submission, "pay-" + submission);
  PayAtTestpay(stack, c, payment);
  auto status = [&] {
    return json::parse(c.Get(("/api/v1/submissions/" + submission).c_str(), Bearer(anna))->body)["status"];
  };
  REQUIRE(testing::Eventually([&] { return status() == "paid"; }, 15s));
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(token));
        return r && r->status == 200 && r->body.find(submission) != std::string::npos;
      },
      15s));
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + submission + "/acknowledge", json::object(),
                          BearerToken(token))) == 200);
  REQUIRE(testing::Eventually([&] { return status() == "received_by_department"; }, 15s));
  REQUIRE(
      Status(PostJson(c, "/api/v1/backoffice/submissions/" + submission + "/messages",
                      {{"body", "Ihre Urkunden sind unterwegs."},
                       {"message_key", "bescheid-1"},
                       {"notice", true},
                       {"attachments", {{{"filename", "Bescheid.pdf"}, {"content_base64", absl::Base64Escape(kPdf)}}}}},
                      BearerToken(token))) == 201);
  json thread;
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/mailbox/threads", Bearer(anna));
        if (Status(r) != 200) return false;
        const json threads = json::parse(r->body)["items"];
        if (threads.empty()) return false;
        thread = threads[0];
        return true;
      },
      15s));
  httplib::MultipartFormDataItems reply = {{"body", "Danke, " + display_name, "", ""}};
  REQUIRE(Status(c.Post(("/api/v1/mailbox/threads/" + thread["id"].get<std::string>() + "/messages").c_str(),
                        Bearer(anna), reply)) == 201);

  auto draft = PostJson(c, "/api/v1/services/civil-registry-certificate/drafts", json::object(), Bearer(anna));
  REQUIRE(Status(draft) == 201);
  const std::string draft_id = json::parse(draft->body)["id"];
  httplib::MultipartFormDataItems items = {{"file", kPdf, "Vollmacht " + family + ".pdf", "application/pdf"}};
  REQUIRE(Status(c.Post(("/api/v1/drafts/" + draft_id + "/attachments?field=attachments").c_str(), Bearer(anna),
                        items)) == 201);

  // Ben's data, which nothing of Anna's touches.
  json bens_order = SubmitCertificate(c, ben);

  // Wait for the events (file, access log) to settle before looking at the tables.
  std::this_thread::sleep_for(2s);
  const std::vector<std::string> person = {email, given, family, birth_date, account};
  const std::vector<Hit> before = Scan(person);

  SECTION("export") {
    auto exported = c.Get("/api/v1/me/export", Bearer(anna));
    REQUIRE(Status(exported) == 200);
    CHECK(exported->get_header_value("Cache-Control").find("no-store") != std::string::npos);
    const json doc = json::parse(exported->body);
    CHECK(doc["format"] == "stadtportal-export/1");
    CHECK(doc["account_id"] == account);
    const std::string text = doc.dump();
    CHECK_FALSE(absl::StrContains(text, bens_order["id"].get<std::string>()));
    CHECK_FALSE(absl::StrContains(text, ben_account));

    // Every schema holding any of Anna's data (outside the event tables) has its section
    // in the export, with something in it.
    std::set<std::string> holding;
    for (const auto& h : before) {
      if (h.table != "outbox" && h.table != "inbox") holding.insert(h.schema);
    }
    INFO(Describe(before));
    CHECK(holding == std::set<std::string>(kServices.begin(), kServices.end()));
    for (const auto& schema : holding) {
      INFO(schema);
      REQUIRE(doc["services"].contains(schema));
      const json& section = doc["services"][schema];
      REQUIRE(section.is_object());
      bool any = false;
      for (const auto& [kind, records] : section.items()) any = any || !records.empty();
      CHECK(any);
    }
    // The rows of the records a person knows are each in it, by their id.
    // (schema, table, the row's id column)
    const std::vector<std::tuple<std::string, std::string, std::string>> by_id = {
        {"submission", "drafts", "id"},
        {"submission", "submissions", "id"},
        {"submission", "attachments", "id"},
        {"payment", "payments", "id"},
        {"messaging", "threads", "id"},
        {"messaging", "messages", "id"},
        {"accounts", "consents", "id"},
        {"accounts", "documents", "id"},
        {"connector", "deliveries", "submission_id"}};
    pqxx::connection conn(testing::DatabaseUrl());
    pqxx::read_transaction tx(conn);
    int checked = 0;
    for (const auto& [schema, table, column] : by_id) {
      for (const auto& h : before) {
        if (h.schema != schema || h.table != table) continue;
        const std::string id =
            tx.exec1("SELECT (t)." + tx.quote_name(column) + "::text FROM (SELECT " + tx.quote(h.row) +
                     "::" + tx.quote_name(schema) + "." + tx.quote_name(table) + " AS t) x")[0]
                .as<std::string>();
        INFO(schema << "." << table << " " << id);
        CHECK(absl::StrContains(doc["services"][schema].dump(), id));
        ++checked;
      }
    }
    CHECK(checked >= 8);
    // Names, address and birth date as she gave them.
    CHECK(absl::StrContains(doc["services"]["accounts"].dump(), birth_date));
    CHECK(absl::StrContains(doc["services"]["identity"].dump(), email));

    // The files: the draft's attachment and the notice's, by safe paths.
    std::set<std::string> paths;
    for (const auto& f : doc["files"]) paths.insert(f["path"]);
    INFO(doc["files"].dump());
    CHECK(std::any_of(paths.begin(), paths.end(), [](const std::string& p) {
      return absl::StartsWith(p, "submission/") && absl::EndsWith(p, ".pdf");
    }));
    CHECK(std::any_of(paths.begin(), paths.end(), [](const std::string& p) {
      return absl::StartsWith(p, "messaging/") && absl::EndsWith(p, "Bescheid.pdf");
    }));

    // The ZIP: export.json and every file, readable by another implementation.
    auto zip = c.Get("/api/v1/me/export?format=zip", Bearer(anna));
    REQUIRE(Status(zip) == 200);
    CHECK(zip->get_header_value("Content-Type") == "application/zip");
    const std::string file = std::string(std::getenv("STADTPORTAL_TEST_TMP")) + "/export-" + account + ".zip";
    std::ofstream(file, std::ios::binary) << zip->body;
    std::string listing;
    REQUIRE(testing::RunCommand("/usr/bin/python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); "
                                "assert z.testzip() is None; print(\"\\n\".join(z.namelist()))' " +
                                    file,
                                &listing) == 0);
    INFO(listing);
    CHECK(absl::StrContains(listing, "export.json"));
    for (const auto& p : paths) CHECK(absl::StrContains(listing, p));
    std::string inside;
    REQUIRE(testing::RunCommand("/usr/bin/python3 -c 'import sys, zipfile; "
                                "sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(\"export.json\").decode())' " +
                                    file,
                                &inside) == 0);
    CHECK(json::parse(inside)["services"].size() == doc["services"].size());
    std::remove(file.c_str());

    // Nobody else's export: no session, Ben's (none of Anna's), a bogus format.
    CHECK(Status(c.Get("/api/v1/me/export")) == 401);
    auto bens = c.Get("/api/v1/me/export", Bearer(ben));
    REQUIRE(Status(bens) == 200);
    CHECK_FALSE(absl::StrContains(bens->body, account));
    CHECK(Status(c.Get("/api/v1/me/export?format=tar", Bearer(anna))) == 400);
  }

  SECTION("erasure, with messaging stopped during the request") {
    // Bad confirmations change nothing.
    auto erase = [&](const json& body) {
      auto h = Bearer(anna);
      return c.Delete("/api/v1/me", h, body.dump(), "application/json");
    };
    CHECK(Status(erase({{"confirm", "someone@example.org"}})) == 400);
    CHECK(Status(erase(json::object())) == 422);
    CHECK(Status(c.Delete("/api/v1/me", Bearer(anna), "not json", "application/json")) == 400);
    CHECK(Status(c.Get("/api/v1/me", Bearer(anna))) == 200);
    CHECK(Scan(person).size() == before.size());

    auto& messaging = stack.instance("messaging");
    messaging.process->Signal(SIGTERM);
    REQUIRE(messaging.process->Wait(10s) == 0);
    // No export while a service cannot answer: never a partial document.
    CHECK(Status(c.Get("/api/v1/me/export", Bearer(anna))) == 503);

    const size_t mails = stack.MailsTo(email).size();
    auto erased = erase({{"confirm", email}});
    INFO((erased ? erased->body : "no answer"));
    REQUIRE(Status(erased) == 202);
    const json answer = json::parse(erased->body);
    CHECK(answer["account_id"] == account);
    CHECK(answer["pending"] == json::array({"messaging"}));
    std::set<std::string> kinds;
    for (const auto& r : answer["retained"]) {
      kinds.insert(r["kind"]);
      CHECK_FALSE(r["rule"].get<std::string>().empty());
      CHECK_FALSE(r["legal_basis"].get<std::string>().empty());
    }
    CHECK(kinds.count("submission") == 1);
    CHECK(kinds.count("payment") == 1);
    CHECK(kinds.count("erasure_request") == 1);

    // The account ended at once: its session, its log-in.
    CHECK(Status(c.Get("/api/v1/me", Bearer(anna))) == 401);
    CHECK(Status(PostJson(c, "/api/v1/auth/login", {{"email", email}, {"password", kPassword}})) == 401);
    CHECK(testing::Eventually([&] { return stack.MailsTo(email).size() == mails + 1; }, 15s));

    // Messaging catches up when it runs again; then only the retained records remain.
    stack.Start(messaging);
    json retained = answer["retained"];
    // Messaging's retained threads, as it lists them itself once back (the thread of the
    // retained order): its records are kept like the others.
    retained.push_back({{"kind", "thread"}, {"id", thread["id"]}});
    // What belongs to a retained record is kept with it: the thread's messages (their files
    // name the message).
    {
      pqxx::connection conn(testing::DatabaseUrl());
      pqxx::read_transaction tx(conn);
      for (const auto& m : tx.exec_params("SELECT id::text FROM messaging.messages WHERE thread_id = $1::uuid",
                                          thread["id"].get<std::string>())) {
        retained.push_back({{"kind", "message"}, {"id", m[0].as<std::string>()}});
      }
    }
    std::vector<Hit> left;
    const bool clean = testing::Eventually(
        [&] {
          left.clear();
          for (auto& h : Scan(person)) {
            if (!Retained(h, retained)) left.push_back(h);
          }
          return left.empty();
        },
        30s);
    INFO(Describe(left));
    CHECK(clean);
    // The retained order is still there for the registry office; the draft is gone.
    CHECK(Status(c.Get(("/api/v1/backoffice/submissions/" + submission).c_str(), BearerToken(token))) == 200);
    bool draft_left = false;
    for (const auto& h : Scan({draft_id})) draft_left = draft_left || h.table == "drafts";
    CHECK_FALSE(draft_left);

    // The operator publishes the erasure again (a service restored from a backup): applied
    // again, nothing more is erased, the retained records stay; refused for a living account.
    std::string out;
    REQUIRE(RunServiceCommand(stack, "identity", {"publish-erasure", "--tenant", "09564000", "--account", account},
                              &out) == 0);
    INFO(out);
    std::this_thread::sleep_for(2s);
    left.clear();
    size_t kept = 0;
    for (auto& h : Scan(person)) {
      if (Retained(h, retained)) {
        ++kept;
      } else {
        left.push_back(h);
      }
    }
    CHECK(left.empty());
    CHECK(kept > 0);
    CHECK(Status(c.Get(("/api/v1/backoffice/submissions/" + submission).c_str(), BearerToken(token))) == 200);
    CHECK(RunServiceCommand(stack, "identity", {"publish-erasure", "--tenant", "09564000", "--account", ben_account}) ==
          65);
    CHECK(RunServiceCommand(stack, "identity", {"publish-erasure", "--tenant", "09564000", "--account", "x' OR 1=1"}) ==
          64);
    CHECK(RunServiceCommand(stack, "identity", {"publish-erasure", "--account", account}) == 64);

    // Ben is untouched.
    CHECK(Status(c.Get("/api/v1/me", Bearer(ben))) == 200);
    CHECK(Status(c.Get(("/api/v1/submissions/" + bens_order["id"].get<std::string>()).c_str(), Bearer(ben))) == 200);
  }
}

}  // namespace stadtportal::e2e

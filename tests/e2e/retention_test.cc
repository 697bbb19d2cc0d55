// Archive and retention across the real binaries: the jobs' clock set through
// STADTPORTAL_CLOCK_FILE (no waiting for years), the archive hand-off folder checked on
// disk, the records checked in the services' own schemas.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <pqxx/pqxx>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

const std::string kPdf =
    "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\n"
    "endobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

// Sets every job's time: `days` from now (written whole: a rename).
void SetClock(const std::string& path, int days) {
  std::ofstream out(path + ".tmp");
  out << absl::FormatTime(absl::RFC3339_full, absl::Now() + absl::Hours(24 * days), absl::UTCTimeZone()) << "\n";
  out.close();
  std::rename((path + ".tmp").c_str(), path.c_str());
}

std::string InDays(int days) {
  return absl::FormatTime("%Y-%m-%d", absl::Now() + absl::Hours(24 * days), absl::UTCTimeZone());
}

std::string Query(const std::string& sql) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::read_transaction tx(conn);
  return tx.exec1(sql)[0].as<std::string>();
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The dog tax definition, as version `version`, of lasting value and kept one year.
json DogTaxDefinition(int version) {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) +
                   "/services/submission/catalogue/09564000/dog-tax-registration.v1.json");
  std::stringstream text;
  text << in.rdbuf();
  json d = json::parse(text.str());
  d["version"] = version;
  d["retention_years"] = 1;
  d["lasting_value"] = true;
  return d;
}

// Submits a dog tax registration for `login`, with a proof of exemption (a file).
json SubmitDogTax(httplib::Client& c, const json& login, const std::string& key) {
  auto created = PostJson(c, "/api/v1/services/dog-tax-registration/drafts", json::object(), Bearer(login));
  REQUIRE(Status(created) == 201);
  const json draft = json::parse(created->body);
  const std::string path = "/api/v1/drafts/" + draft["id"].get<std::string>();
  json data = kDogTax;
  data["exemption"] = {"shelter"};
  auto headers = Bearer(login);
  headers.emplace("If-Match", "\"1\"");
  REQUIRE(Status(c.Patch(path.c_str(), headers, json{{"data", data}}.dump(), "application/json")) == 200);
  httplib::MultipartFormDataItems items = {{"file", kPdf, "Tierheim Nachweis.pdf", "application/pdf"}};
  REQUIRE(Status(c.Post((path + "/attachments?field=exemption_proof").c_str(), Bearer(login), items)) == 201);
  auto submit_headers = Bearer(login);
  submit_headers.emplace("Idempotency-Key", key);
  auto submitted = c.Post((path + "/submit").c_str(), submit_headers, "", "application/json");
  INFO((submitted ? submitted->body : "no answer"));
  REQUIRE(Status(submitted) == 201);
  return json::parse(submitted->body);
}

std::vector<std::string> Listed(httplib::Client& c, const json& login, const std::string& query) {
  auto r = c.Get(("/api/v1/submissions" + query).c_str(), Bearer(login));
  REQUIRE(Status(r) == 200);
  const json body = json::parse(r->body);
  std::vector<std::string> ids;
  for (const auto& s : body["items"]) ids.push_back(s["id"]);
  return ids;
}

}  // namespace

TEST_CASE(
    "retention: closed submissions go to the archive view, are handed to the archive and anonymised when due; "
    "documents and events go; the rest stays",
    "[e2e]") {
  Stack stack;
  const std::string clock = testing::TempDir() + "/retention-clock-" + std::to_string(stack.gateway_port());
  const std::string archive = testing::TempDir() + "/archive-" + std::to_string(stack.gateway_port());
  fs::create_directories(archive);
  SetClock(clock, 0);
  for (const std::string service : {"submission", "payment", "messaging", "accounts", "connector", "identity"}) {
    stack.SetEnv(service, "STADTPORTAL_CLOCK_FILE", clock);
    stack.SetEnv(service, "STADTPORTAL_RETENTION_INTERVAL_MS", "1000");
  }
  stack.SetEnv("submission", "STADTPORTAL_ARCHIVE_DIR", archive);
  for (const std::string service : {"submission", "payment", "messaging", "accounts", "connector", "identity"}) {
    REQUIRE(stack.Restart(stack.instance(service)));
  }
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();

  // The dog tax becomes a record of lasting value, kept one year (a new version).
  const json admin = Admin(stack, c);
  auto current = c.Get("/api/v1/services/dog-tax-registration");
  REQUIRE(Status(current) == 200);
  const int version = json::parse(current->body)["form_version"];
  auto published = PostJson(c, "/api/v1/admin/services/dog-tax-registration/versions",
                            {{"definition", DogTaxDefinition(version + 1)}}, Bearer(admin));
  INFO((published ? published->body : "no answer"));
  REQUIRE(Status(published) == 201);
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/services/dog-tax-registration");
        return Status(r) == 200 && json::parse(r->body)["lasting_value"] == true &&
               json::parse(r->body)["retention_years"] == 1;
      },
      10s));
  CHECK_FALSE(json::parse(c.Get("/api/v1/services/dog-tax-registration")->body)["retention_legal_basis"]
                  .get<std::string>()
                  .empty());

  const json anna = Onboard(stack, c, UniqueEmail(), "Anna Muster");
  const std::string anna_id = json::parse(c.Get("/api/v1/me", Bearer(anna))->body)["account_id"];
  const json withdrawn = SubmitDogTax(c, anna, "retention-dog-0001");
  const json open = SubmitDogTax(c, anna, "retention-dog-0002");
  REQUIRE(Status(c.Post(("/api/v1/submissions/" + withdrawn["id"].get<std::string>() + "/withdraw").c_str(),
                        Bearer(anna), "", "application/json")) == 200);
  // The archive view: closed ones with their dates; open ones apart; both without it.
  CHECK(Listed(c, anna, "?archived=true") == std::vector<std::string>{withdrawn["id"].get<std::string>()});
  CHECK(Listed(c, anna, "?archived=false") == std::vector<std::string>{open["id"].get<std::string>()});
  CHECK(Listed(c, anna, "").size() == 2);
  CHECK(Status(c.Get("/api/v1/submissions?archived=yes", Bearer(anna))) == 400);
  auto archived = json::parse(c.Get("/api/v1/submissions?archived=true", Bearer(anna))->body)["items"][0];
  CHECK(archived["closed_at"].is_string());
  CHECK(archived["retain_until"].is_string());
  CHECK(archived["status"] == "withdrawn");

  // Documents: one 12 months past its expiry when the clock moves, one not.
  auto expiring = PostJson(c, "/api/v1/me/documents", {{"type", "passport"}, {"expires_on", InDays(10)}}, Bearer(anna));
  REQUIRE(Status(expiring) == 201);
  auto lasting = PostJson(c, "/api/v1/me/documents", {{"type", "passport"}, {"expires_on", InDays(100)}}, Bearer(anna));
  REQUIRE(Status(lasting) == 201);

  // Nothing is due yet: everything stays.
  std::this_thread::sleep_for(2500ms);
  CHECK(Listed(c, anna, "").size() == 2);
  CHECK(fs::is_empty(archive));
  CHECK(Query("SELECT count(*) FROM submission.attachments a JOIN submission.submissions s ON s.id = a.submission_id"
              " WHERE s.party_id = '" +
              anna_id + "'") == "2");

  // 400 days on: the withdrawn one is due (one year after it closed), the open one is not.
  SetClock(clock, 400);
  const std::string reference = withdrawn["reference"];
  const fs::path folder = fs::path(archive) / "09564000" / reference;
  REQUIRE(testing::Eventually([&] { return Listed(c, anna, "").size() == 1; }, 20s));
  CHECK(Listed(c, anna, "") == std::vector<std::string>{open["id"].get<std::string>()});
  CHECK(Status(c.Get(("/api/v1/submissions/" + withdrawn["id"].get<std::string>()).c_str(), Bearer(anna))) == 404);

  // Handed to the archive first: the record and its file, complete.
  REQUIRE(fs::exists(folder / "submission.json"));
  const json record = json::parse(Read(folder / "submission.json"));
  CHECK(record["reference"] == reference);
  CHECK(record["status"] == "withdrawn");
  CHECK(record["answers"]["dog_name"] == "Rex");
  CHECK(record["answers"]["family_name"] == "Muster");
  REQUIRE(record["attachments"].size() == 1);
  CHECK(record["attachments"][0]["filename"] == "Tierheim Nachweis.pdf");
  CHECK(Read(folder / record["attachments"][0]["file"].get<std::string>()) == kPdf);
  CHECK(record["history"].back()["status"] == "withdrawn");
  // Nothing half-written left beside it (other tests' closed dog tax registrations in
  // the shared database may be due as well).
  for (const auto& e : fs::directory_iterator(fs::path(archive) / "09564000")) {
    CHECK(e.path().filename().string()[0] != '.');
    CHECK(fs::exists(e.path() / "submission.json"));
  }

  // Then anonymised: statistics stay, the person and the files go; the open one untouched.
  const std::string id = withdrawn["id"];
  CHECK(Query("SELECT (party_id IS NULL AND data = '{}' AND anonymised_at IS NOT NULL AND handed_over_at IS NOT NULL"
              " AND status = 'withdrawn' AND service_id = 'dog-tax-registration')::text"
              " FROM submission.submissions WHERE id = '" +
              id + "'") == "true");
  CHECK(Query("SELECT count(*) FROM submission.attachments WHERE submission_id = '" + id + "'") == "0");
  CHECK(Query("SELECT count(*) FROM submission.attachments WHERE submission_id = '" + open["id"].get<std::string>() +
              "'") == "1");
  CHECK(Query("SELECT (party_id::text = '" + anna_id +
              "' AND anonymised_at IS NULL)::text"
              " FROM submission.submissions WHERE id = '" +
              open["id"].get<std::string>() + "'") == "true");

  // The expired document is gone with its reminders, the other stays.
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/me/documents", Bearer(anna));
        return Status(r) == 200 && json::parse(r->body)["items"].size() == 1;
      },
      20s));
  CHECK(json::parse(c.Get("/api/v1/me/documents", Bearer(anna))->body)["items"][0]["id"] ==
        json::parse(lasting->body)["id"]);

  // Published events older than 30 days are pruned from the outboxes.
  CHECK(testing::Eventually(
      [&] {
        return Query("SELECT count(*) FROM submission.outbox WHERE published_at IS NOT NULL") == "0" &&
               Query("SELECT count(*) FROM identity.outbox WHERE published_at IS NOT NULL") == "0";
      },
      20s));
  CHECK(stack.AllLogs().find("\"level\":\"error\"") == std::string::npos);
}

TEST_CASE("the submission service does not start with an archive folder that does not exist", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto env = stack.ServiceEnv("submission");
  env["STADTPORTAL_ARCHIVE_DIR"] = testing::TempDir() + "/no-such-archive-folder";
  env["STADTPORTAL_GRPC_PORT"] = std::to_string(testing::FreePort());
  env["STADTPORTAL_ADMIN_PORT"] = std::to_string(testing::FreePort());
  testing::Process refused(BinaryPath("submission"), {}, env, testing::TempDir() + "/submission-no-archive.log");
  const int code = refused.Wait(30s);
  INFO(refused.Output());
  CHECK(code == 2);
  CHECK(refused.Output().find("STADTPORTAL_ARCHIVE_DIR") != std::string::npos);
}

}  // namespace stadtportal::e2e

#include "services/submission/retention.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/auth/tokens.h"
#include "libs/testing/testing.h"

namespace stadtportal::submission {
namespace {

namespace fs = std::filesystem;

constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "submission"};
  db::Pool& pool = schema.pool(Store::Prepare);
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  const std::string archive = testing::TempDir() + "/archive-" + auth::RandomToken(6);

  Fixture() {
    REQUIRE(store->SyncCatalogue(*LoadCatalogue()).ok());
    fs::create_directories(archive);
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(archive, ec);
  }

  std::string Value(const std::string& sql) { return testing::QueryValue(pool, sql); }

  // A submission of Anna's in `status`, kept until `until` (an SQL expression; "NULL":
  // still open), with one file, a department's note and feedback.
  std::string Add(const std::string& service, const std::string& reference, const std::string& status,
                  const std::string& until) {
    const bool closed = until != "NULL";
    const std::string id = Value(
        "INSERT INTO submissions (id, tenant, party_id, account_id, service_id, form_version, reference, status,"
        " data, fee_minor, fee_currency, draft_id, idempotency_key, closed_at, retain_until) VALUES"
        " (gen_random_uuid(), '09564000', '" +
        std::string(kAnna) + "', '" + kAnna + "', '" + service + "', 1, '" + reference + "', '" + status +
        "', '{\"family_name\": \"Muster\", \"street\": \"Hauptmarkt 18\"}', 0, 'EUR', gen_random_uuid(), '" +
        reference + "', " + (closed ? "now() - interval '5 years'" : "NULL") + ", " + until + ") RETURNING id::text");
    Value("INSERT INTO submission_history (submission_id, status, note) VALUES ('" + id +
          "', 'submitted', '') RETURNING 1");
    Value("INSERT INTO submission_history (submission_id, status, note) VALUES ('" + id + "', '" + status +
          "', 'Frau Muster hat angerufen') RETURNING 1");
    Value(
        "INSERT INTO attachments (id, tenant, party_id, submission_id, field, filename, media_type, size, sha256,"
        " content) VALUES (gen_random_uuid(), '09564000', '" +
        std::string(kAnna) + "', '" + id + "', 'proof', '../Mietvertrag Muster.pdf', 'application/pdf', " +
        std::to_string(kPdf.size()) + ", 'abc', convert_to('" + kPdf + "', 'UTF8')) RETURNING 1");
    Value("INSERT INTO feedback (submission_id, rating, comment) VALUES ('" + id + "', 4, 'Danke, Anna') RETURNING 1");
    return id;
  }

  bool Anonymised(const std::string& id) {
    return Value(
               "SELECT (party_id IS NULL AND account_id IS NULL AND data = '{}' AND anonymised_at IS NOT NULL"
               " AND NOT EXISTS (SELECT 1 FROM attachments WHERE submission_id = s.id)"
               " AND NOT EXISTS (SELECT 1 FROM submission_history WHERE submission_id = s.id AND note <> '')"
               " AND NOT EXISTS (SELECT 1 FROM feedback WHERE submission_id = s.id AND comment <> ''))::text"
               " FROM submissions s WHERE id = '" +
               id + "'") == "true";
  }
  bool Untouched(const std::string& id) {
    return Value(
               "SELECT (party_id IS NOT NULL AND data <> '{}' AND anonymised_at IS NULL AND handed_over_at IS NULL"
               " AND EXISTS (SELECT 1 FROM attachments WHERE submission_id = s.id))::text"
               " FROM submissions s WHERE id = '" +
               id + "'") == "true";
  }
};

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("expired submissions: lasting value handed to the archive first, then all anonymised",
          "[integration][retention]") {
  Fixture f;
  // change-of-address has lasting value, dog-tax-registration has not.
  const auto lasting = f.Add("change-of-address", "NUE-2020-000001", "approved", "now() - interval '1 day'");
  const auto plain = f.Add("dog-tax-registration", "NUE-2020-000002", "rejected", "now() - interval '1 day'");
  const auto kept = f.Add("change-of-address", "NUE-2020-000003", "closed", "now() + interval '1 day'");
  const auto open = f.Add("change-of-address", "NUE-2020-000004", "in_progress", "NULL");

  // The clock decides: a day ago, nothing was due yet.
  RetentionJob early(f.store, app::FixedClock(absl::Now() - absl::Hours(48)), f.archive);
  REQUIRE(*early.RunOnce() == 0);
  for (const auto& id : {lasting, plain, kept, open}) CHECK(f.Untouched(id));

  RetentionJob job(f.store, app::FixedClock(absl::Now()), f.archive);
  auto ended = job.RunOnce();
  INFO(ended.status().message());
  REQUIRE(ended.ok());
  CHECK(*ended == 2);
  CHECK(f.Anonymised(lasting));
  CHECK(f.Anonymised(plain));
  CHECK(f.Untouched(kept));
  CHECK(f.Untouched(open));
  // What stays for the statistics.
  CHECK(f.Value("SELECT service_id || ' ' || status || ' ' || reference || ' ' || fee_minor FROM submissions"
                " WHERE id = '" +
                lasting + "'") == "change-of-address approved NUE-2020-000001 0");
  CHECK(f.Value("SELECT rating FROM feedback WHERE submission_id = '" + lasting + "'") == "4");
  CHECK(f.Value("SELECT (handed_over_at IS NOT NULL)::text FROM submissions WHERE id = '" + lasting + "'") == "true");
  CHECK(f.Value("SELECT (handed_over_at IS NULL)::text FROM submissions WHERE id = '" + plain + "'") == "true");

  // Only the record of lasting value is in the archive's folder, complete, nothing else.
  const fs::path folder = fs::path(f.archive) / "09564000" / "NUE-2020-000001";
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(fs::path(f.archive) / "09564000")) {
    entries.push_back(e.path().filename().string());
  }
  CHECK(entries == std::vector<std::string>{"NUE-2020-000001"});
  const auto record = nlohmann::json::parse(Read(folder / "submission.json"));
  CHECK(record["id"] == lasting);
  CHECK(record["reference"] == "NUE-2020-000001");
  CHECK(record["tenant"] == "09564000");
  CHECK(record["service"]["id"] == "change-of-address");
  CHECK(record["status"] == "approved");
  CHECK(record["answers"]["family_name"] == "Muster");
  CHECK(record["retention"]["years"] == 5);
  REQUIRE(record["history"].size() == 2);
  CHECK(record["history"][1]["note"] == "Frau Muster hat angerufen");
  REQUIRE(record["attachments"].size() == 1);
  CHECK(record["attachments"][0]["filename"] == "../Mietvertrag Muster.pdf");
  CHECK(record["attachments"][0]["file"] == "files/01-_._Mietvertrag_Muster.pdf");
  CHECK(Read(folder / "files" / "01-_._Mietvertrag_Muster.pdf") == kPdf);

  // A second run finds nothing.
  CHECK(*job.RunOnce() == 0);
}

TEST_CASE("a hand-off that cannot be written anonymises nothing; without a folder, lasting records wait",
          "[integration][retention]") {
  Fixture f;
  const auto lasting = f.Add("change-of-address", "NUE-2020-000011", "approved", "now() - interval '1 day'");
  // The archive's folder cannot be written to (the tenant's folder is a file).
  std::ofstream(fs::path(f.archive) / "09564000") << "in the way";
  {
    RetentionJob job(f.store, app::FixedClock(absl::Now()), f.archive);
    CHECK_FALSE(job.RunOnce().ok());
    CHECK(f.Untouched(lasting));
  }
  fs::remove(fs::path(f.archive) / "09564000");

  // No archive configured: the record of lasting value waits, the others go on.
  const auto plain = f.Add("dog-tax-registration", "NUE-2020-000012", "withdrawn", "now() - interval '2 days'");
  RetentionJob without(f.store, app::FixedClock(absl::Now()), "");
  REQUIRE(*without.RunOnce() == 1);
  CHECK(f.Anonymised(plain));
  CHECK(f.Untouched(lasting));
  CHECK(*f.store->WaitingForArchive(absl::Now()) == 1);

  // A hand-off an earlier attempt left (its transaction did not commit) is replaced.
  fs::create_directories(fs::path(f.archive) / "09564000" / "NUE-2020-000011" / "files");
  std::ofstream(fs::path(f.archive) / "09564000" / "NUE-2020-000011" / "files" / "stale.pdf") << "old";
  RetentionJob job(f.store, app::FixedClock(absl::Now()), f.archive);
  REQUIRE(*job.RunOnce() == 1);
  CHECK(f.Anonymised(lasting));
  CHECK_FALSE(fs::exists(fs::path(f.archive) / "09564000" / "NUE-2020-000011" / "files" / "stale.pdf"));
  CHECK(fs::exists(fs::path(f.archive) / "09564000" / "NUE-2020-000011" / "submission.json"));
  for (const auto& e : fs::directory_iterator(fs::path(f.archive) / "09564000")) {
    CHECK(e.path().filename().string()[0] != '.');  // No temporary folder left.
  }
}

TEST_CASE("replicas running the job at once end every record once", "[integration][retention]") {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    ids.push_back(f.Add(i % 2 == 0 ? "change-of-address" : "dog-tax-registration",
                        absl::StrCat("NUE-2020-0001", i < 10 ? "0" : "", i), "closed", "now() - interval '1 hour'"));
  }
  std::atomic<int> total{0};
  std::vector<std::thread> replicas;
  for (int r = 0; r < 3; ++r) {
    replicas.emplace_back([&] {
      RetentionJob job(f.store, app::FixedClock(absl::Now()), f.archive);
      auto n = job.RunOnce();
      if (n.ok()) total += *n;
    });
  }
  for (auto& t : replicas) t.join();
  CHECK(total == 12);
  for (const auto& id : ids) CHECK(f.Anonymised(id));
  int folders = 0;
  for (const auto& e : fs::directory_iterator(fs::path(f.archive) / "09564000")) {
    CHECK(fs::exists(e.path() / "submission.json"));
    ++folders;
  }
  CHECK(folders == 6);
}

TEST_CASE("file names in the archive are safe whatever the applicant called the file", "[unit]") {
  CHECK(SafeFileName("Mietvertrag.pdf") == "Mietvertrag.pdf");
  CHECK(SafeFileName("../../etc/passwd") == "_._.._etc_passwd");
  CHECK(SafeFileName(".hidden") == "_hidden");
  CHECK(SafeFileName("Ausweis Müller.pdf") == "Ausweis_M__ller.pdf");
  CHECK(SafeFileName("") == "file");
  CHECK(SafeFileName(std::string(300, 'a') + ".pdf").size() == 100);
  CHECK(SafeFileName(std::string(300, 'a') + ".pdf").substr(96) == ".pdf");
  CHECK(SafeFileName(std::string("a\0b/c\\d", 7)) == "a_b_c_d");
}

}  // namespace stadtportal::submission

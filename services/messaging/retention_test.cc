#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "libs/app/retention.h"
#include "libs/testing/testing.h"
#include "services/messaging/store.h"

namespace stadtportal::messaging {
namespace {

constexpr char kAnna[] = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
constexpr char kTenant[] = "09564000";
const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "messaging"};
  db::Pool& pool = schema.pool(Store::Prepare);
  Store store{pool};

  // A department's message to `party` (a new thread unless `thread` names one).
  v1::Message Post(const std::string& party, const std::string& key, bool notice = false,
                   const std::string& thread = "") {
    NewMessage m;
    m.tenant = kTenant;
    m.party_id = party;
    m.party_kind = "person";
    m.sender_kind = "department";
    m.sender_name = "Standesamt";
    m.subject = "Ihre Bestellung";
    m.body = "Ihre Urkunde wurde versandt.";
    m.message_key = key;
    m.thread_id = thread;
    m.department = "Standesamt";
    m.destination = "standesamt";
    m.notice = notice;
    if (notice) m.attachments.push_back({"bescheid.pdf", "application/pdf", "00", kPdf});
    auto posted = store.Post(m, nullptr);
    INFO(posted.status().message());
    REQUIRE(posted.ok());
    return posted->first;
  }

  std::string Value(const std::string& sql) { return testing::QueryValue(pool, sql); }
};

}  // namespace

TEST_CASE("mailbox threads are kept ten years after their last message", "[integration][retention]") {
  Fixture f;
  const auto plain = f.Post(kAnna, "m-1");
  const auto notice = f.Post(kAnna, "m-2", true);
  f.Post(kBen, "m-3");
  // An old thread gets a new message: kept ten years from now on.
  f.Value("UPDATE threads SET retain_until = now() - interval '1 day' WHERE id = '" + plain.thread_id() +
          "' RETURNING id");
  f.Post(kAnna, "m-4", false, plain.thread_id());
  CHECK(f.Value("SELECT (retain_until > now() + interval '9 years')::text FROM threads WHERE id = '" +
                plain.thread_id() + "'") == "true");

  auto retained = f.store.RetainedRecords(kTenant, kAnna);
  REQUIRE(retained.ok());
  REQUIRE(retained->records_size() == 2);
  const auto& first = retained->records(0);  // Newest first.
  CHECK(first.service() == "messaging");
  CHECK(first.kind() == "thread");
  CHECK(first.id() == notice.thread_id());
  CHECK(first.rule() == kNoticeThreadRule);
  CHECK(first.legal_basis() == kThreadLegalBasis);
  CHECK(first.until() == f.Value("SELECT to_char(retain_until AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM threads"
                                 " WHERE id = '" +
                                 notice.thread_id() + "'"));
  CHECK(retained->records(1).id() == plain.thread_id());
  CHECK(retained->records(1).rule() == kThreadRule);
  CHECK(f.store.RetainedRecords("09564001", kAnna)->records_size() == 0);
}

}  // namespace stadtportal::messaging

namespace stadtportal::messaging {

TEST_CASE("the retention job deletes threads past retain_until with messages and files", "[integration][retention]") {
  Fixture f;
  const auto expired = f.Post(kAnna, "m-old", true);
  f.Post(kAnna, "m-old-2", false, expired.thread_id());
  const auto kept = f.Post(kAnna, "m-new");
  f.Value("UPDATE threads SET retain_until = now() - interval '1 hour' WHERE id = '" + expired.thread_id() +
          "' RETURNING id");
  auto run = [&](absl::Time now) {
    auto ended = app::RunRetention(app::FixedClock(now), "thread", "deleted",
                                   [&](absl::Time at, int limit) { return f.store.EndRetention(at, limit); });
    INFO(ended.status().message());
    REQUIRE(ended.ok());
    return *ended;
  };
  CHECK(run(absl::Now() - absl::Hours(2)) == 0);
  CHECK(run(absl::Now()) == 1);
  CHECK(f.Value("SELECT count(*) FROM threads WHERE id = '" + expired.thread_id() + "'") == "0");
  CHECK(f.Value("SELECT count(*) FROM messages WHERE thread_id = '" + expired.thread_id() + "'") == "0");
  CHECK(f.Value("SELECT count(*) FROM message_attachments") == "0");
  CHECK(f.Value("SELECT count(*) FROM messages WHERE thread_id = '" + kept.thread_id() + "'") == "1");
  // Ten years on, the other goes too.
  CHECK(run(absl::Now() + absl::Hours(24 * 3660)) == 1);
  CHECK(f.Value("SELECT count(*) FROM threads") == "0");
  // Outside the job, messages are still never deleted.
  const auto later = f.Post(kBen, "m-ben");
  CHECK_THROWS(f.Value("DELETE FROM messages WHERE id = '" + later.id() + "' RETURNING 1"));
}

}  // namespace stadtportal::messaging

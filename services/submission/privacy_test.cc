// The person's own data: export, retained records and erasure (docs/data-protection.md).
#include <map>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/str_join.h"
#include "libs/grpc/handler.h"
#include "libs/privacy/privacy.h"
#include "libs/testing/json_schema.h"
#include "libs/testing/testing.h"
#include "services/submission/catalogue.h"
#include "services/submission/consumers.h"
#include "services/submission/service.h"

namespace stadtportal::submission {
namespace {

constexpr char kTenant[] = "09564000";
constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";
constexpr char kOrganisation[] = "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f";
const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "submission"};
  db::Pool& pool = schema.pool(Store::Prepare);
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  Service service{store, Options{}};
  grpc::ServerContext ctx;
  Fixture() { REQUIRE(store->SyncCatalogue(*LoadCatalogue()).ok()); }

  std::string Query(const std::string& sql) { return testing::QueryValue(pool, sql); }

  v1::Draft Draft(const std::string& service_id, const nlohmann::json& data) {
    v1::CreateDraftRequest create;
    create.set_service_id(service_id);
    v1::Draft d;
    REQUIRE(service.CreateDraft(&ctx, &create, &d).ok());
    v1::UpdateDraftRequest update;
    update.set_id(d.id());
    update.set_expected_version(d.version());
    update.set_data_json(data.dump());
    auto s = service.UpdateDraft(&ctx, &update, &d);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return d;
  }
  v1::Attachment Attach(const v1::Draft& d, const std::string& filename, const std::string& field) {
    v1::AddAttachmentRequest upload;
    upload.set_draft_id(d.id());
    upload.set_field(field);
    upload.set_filename(filename);
    upload.set_content(kPdf);
    v1::Attachment a;
    auto s = service.AddAttachment(&ctx, &upload, &a);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return a;
  }
  v1::Submission Submit(const v1::Draft& d, const std::string& key) {
    v1::SubmitDraftRequest submit;
    submit.set_draft_id(d.id());
    submit.set_idempotency_key(key);
    v1::Submission s;
    auto st = service.SubmitDraft(&ctx, &submit, &s);
    INFO(st.error_message());
    REQUIRE(st.ok());
    return s;
  }

  // How many rows of each table of the schema hold `value` anywhere.
  std::map<std::string, int64_t> RowsNaming(const std::string& value) { return testing::RowsNaming(pool, value); }
};

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.account_id = id;
  c.tenant = kTenant;
  c.assurance = "substantial";
  return c;
}

const nlohmann::json kAnnaCertificate = {
    {"certificate_type", "birth"},
    {"copies", 1},
    {"event_date", "1990-02-28"},
    {"person_name", "Anna Muster"},
    {"purpose", "pension"},
    {"given_name", "Anna"},
    {"family_name", "Muster"},
    {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
    {"email", "anna@example.org"}};

const nlohmann::json kBenReport = {{"contact_name", "Carla"},         {"contact_phone", "+49 911 123456"},
                                   {"contact_date", "2026-01-10"},    {"infection", "measles"},
                                   {"reporter_name", "Ben Beispiel"}, {"reporter_phone", "0911 654321"}};

// Anna: a draft with a file, a submitted certificate order with a file and feedback, and
// a draft she writes for an organisation; Ben: a draft with a file and a free submission.
struct People {
  v1::Draft anna_draft;
  v1::Attachment anna_draft_file;
  v1::Submission anna_submission;
  v1::Attachment anna_submission_file;
  v1::Draft organisation_draft;
  v1::Attachment ben_file;
  v1::Submission ben_submission;
};

People Populate(Fixture& f) {
  People p;
  {
    grpcx::TestCaller anna(Person(kAnna));
    p.anna_draft =
        f.Draft("civil-registry-certificate", {{"certificate_type", "death"}, {"person_name", "Oma Muster"}});
    p.anna_draft_file = f.Attach(p.anna_draft, "Sterbeurkunde Oma.pdf", "attachments");
    auto order = f.Draft("civil-registry-certificate", kAnnaCertificate);
    p.anna_submission_file = f.Attach(order, "Vollmacht.pdf", "attachments");
    p.anna_submission = f.Submit(order, "anna-order-0001");
    v1::GiveFeedbackRequest feedback;
    feedback.set_submission_id(p.anna_submission.id());
    feedback.set_rating(4);
    feedback.set_comment("Gut, Anna");
    v1::Feedback given;
    REQUIRE(f.service.GiveFeedback(&f.ctx, &feedback, &given).ok());
  }
  {
    auto as_member = Person(kAnna);
    as_member.acting_party = kOrganisation;
    grpcx::TestCaller anna(as_member);
    p.organisation_draft = f.Draft("dog-tax-registration", nlohmann::json::object());
  }
  {
    grpcx::TestCaller ben(Person(kBen));
    auto d = f.Draft("civil-registry-certificate", {{"person_name", "Ben Beispiel"}});
    p.ben_file = f.Attach(d, "Ben.pdf", "attachments");
    p.ben_submission = f.Submit(f.Draft("contact-person-report", kBenReport), "ben-report-0001");
  }
  return p;
}

nlohmann::json Export(Fixture& f, const auth::Caller& caller, common::v1::PersonalData* out) {
  grpcx::TestCaller as(caller);
  common::v1::PersonalDataRequest req;
  auto s = f.service.ExportPersonalData(&f.ctx, &req, out);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return nlohmann::json::parse(out->json());
}

grpc::Status FetchFile(Fixture& f, const auth::Caller& caller, const std::string& path, common::v1::ExportFile* out) {
  grpcx::TestCaller as(caller);
  common::v1::PersonalDataFileRequest req;
  req.set_path(path);
  return f.service.GetPersonalDataFile(&f.ctx, &req, out);
}

absl::Status Erase(Fixture& f, const std::string& party) {
  events::v1::PartyErasureRequested e;
  e.set_tenant(kTenant);
  e.set_account_id(party);
  e.set_party_id(party);
  return f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, e); });
}

}  // namespace

TEST_CASE("the export holds the person's drafts, submissions and files, nothing of others", "[export]") {
  Fixture f;
  const People p = Populate(f);
  common::v1::PersonalData data;
  const auto j = Export(f, Person(kAnna), &data);
  CHECK(data.service() == "submission");
  // As its schema describes it, which finds what it does not describe.
  const auto violations =
      testing::SchemaViolations(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/export/submission.schema.json", j);
  INFO(absl::StrJoin(violations, "\n"));
  CHECK(violations.empty());

  REQUIRE(j["drafts"].size() == 1);
  const auto& draft = j["drafts"][0];
  CHECK(draft["id"] == p.anna_draft.id());
  CHECK(draft["online_service"] == "civil-registry-certificate");
  CHECK(draft["answers"]["person_name"] == "Oma Muster");
  REQUIRE(draft["attachments"].size() == 1);
  CHECK(draft["attachments"][0]["filename"] == p.anna_draft_file.filename());
  CHECK(draft["attachments"][0]["file"] ==
        privacy::ExportPath("submission", "attachment", p.anna_draft_file.id(), p.anna_draft_file.filename()));
  CHECK(draft["created_at"].get<std::string>().back() == 'Z');

  REQUIRE(j["submissions"].size() == 1);
  const auto& s = j["submissions"][0];
  CHECK(s["reference"] == p.anna_submission.reference());
  CHECK(s["status"] == "awaiting_payment");
  CHECK(s["answers"]["email"] == "anna@example.org");
  CHECK(s["fee"]["amount_minor"] == 1200);
  REQUIRE(s["status_history"].size() == 2);
  CHECK(s["status_history"][0]["status"] == "submitted");
  CHECK(s["feedback"]["rating"] == 4);
  CHECK(s["feedback"]["comment"] == "Gut, Anna");
  CHECK(s["closed_at"].is_null());
  REQUIRE(s["attachments"].size() == 1);
  CHECK(s["attachments"][0]["id"] == p.anna_submission_file.id());

  // Files: two attachments and the receipt, listed without content; each can be fetched.
  REQUIRE(data.files_size() == 3);
  std::set<std::string> paths;
  for (const auto& file : data.files()) {
    CHECK(file.content().empty());
    paths.insert(file.path());
    common::v1::ExportFile fetched;
    auto st = FetchFile(f, Person(kAnna), file.path(), &fetched);
    INFO(file.path() << ": " << st.error_message());
    REQUIRE(st.ok());
    CHECK(fetched.path() == file.path());
    CHECK(fetched.content_type() == file.content_type());
    CHECK(static_cast<int64_t>(fetched.content().size()) == file.size_bytes());
    CHECK(fetched.content().rfind("%PDF-", 0) == 0);
  }
  CHECK(paths.count(s["receipt"].get<std::string>()) == 1);
  CHECK(s["receipt"] ==
        privacy::ExportPath("submission", "receipt", p.anna_submission.id(), p.anna_submission.reference() + ".pdf"));

  // Nothing of Ben, nor the organisation's draft Anna wrote for it.
  CHECK(data.json().find("Ben Beispiel") == std::string::npos);
  CHECK(data.json().find(kBen) == std::string::npos);
  CHECK(data.json().find(p.ben_submission.id()) == std::string::npos);
  CHECK(data.json().find(p.organisation_draft.id()) == std::string::npos);
  for (const auto& file : data.files()) CHECK(file.path().find(p.ben_file.id()) == std::string::npos);

  // Ben's export is his.
  common::v1::PersonalData bens;
  const auto b = Export(f, Person(kBen), &bens);
  CHECK(b["drafts"].size() == 1);
  CHECK(b["submissions"].size() == 1);
  CHECK(bens.json().find("Muster") == std::string::npos);
}

TEST_CASE("export files: another person's, a forged or another service's path is refused", "[export]") {
  Fixture f;
  const People p = Populate(f);
  common::v1::ExportFile out;
  const auto bens = privacy::ExportPath("submission", "attachment", p.ben_file.id(), p.ben_file.filename());
  REQUIRE(FetchFile(f, Person(kBen), bens, &out).ok());
  CHECK(FetchFile(f, Person(kAnna), bens, &out).error_code() == grpc::StatusCode::NOT_FOUND);
  const auto ben_receipt =
      privacy::ExportPath("submission", "receipt", p.ben_submission.id(), p.ben_submission.reference() + ".pdf");
  REQUIRE(FetchFile(f, Person(kBen), ben_receipt, &out).ok());
  CHECK(FetchFile(f, Person(kAnna), ben_receipt, &out).error_code() == grpc::StatusCode::NOT_FOUND);
  // Forged paths: traversal, too many segments, a name the export did not give the file.
  CHECK(FetchFile(f, Person(kAnna), "submission/attachment/../../etc/passwd", &out).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(
      FetchFile(f, Person(kAnna), "../submission/attachment/" + p.anna_draft_file.id() + "/x.pdf", &out).error_code() ==
      grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(FetchFile(f, Person(kAnna),
                  privacy::ExportPath("submission", "attachment", p.anna_draft_file.id(), "other.pdf"), &out)
            .error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(FetchFile(f, Person(kAnna), privacy::ExportPath("submission", "attachment", "not-a-uuid", "x.pdf"), &out)
            .error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(FetchFile(f, Person(kAnna), privacy::ExportPath("submission", "draft", p.anna_draft_file.id(), "x.pdf"), &out)
            .error_code() == grpc::StatusCode::NOT_FOUND);
  // Another service's path, even naming Anna's own file's id.
  CHECK(FetchFile(f, Person(kAnna),
                  privacy::ExportPath("messaging", "attachment", p.anna_draft_file.id(), p.anna_draft_file.filename()),
                  &out)
            .error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(FetchFile(f, Person(kAnna),
                  privacy::ExportPath("submission", "attachment", p.anna_draft_file.id(), p.anna_draft_file.filename()),
                  &out)
            .ok());
}

TEST_CASE("only the person acting as themself exports, fetches files and lists retained records", "[export][erasure]") {
  Fixture f;
  const People p = Populate(f);
  auto organisation = Person(kAnna);
  organisation.acting_party = kOrganisation;
  auto partner = Person(kAnna);
  partner.partner_id = "partner-portal";
  partner.partner_name = "Partner";
  partner.partner_scope = "submissions:read";
  auto back_office = Person(kAnna);
  back_office.roles = {"department"};
  const auto path =
      privacy::ExportPath("submission", "attachment", p.anna_draft_file.id(), p.anna_draft_file.filename());
  for (const auto& caller : {organisation, partner, back_office}) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    common::v1::PersonalData data;
    CHECK(f.service.ExportPersonalData(&f.ctx, &req, &data).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    common::v1::RetainedRecords retained;
    CHECK(f.service.ListRetainedRecords(&f.ctx, &req, &retained).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    common::v1::PersonalDataFileRequest file_req;
    file_req.set_path(path);
    common::v1::ExportFile file;
    CHECK(f.service.GetPersonalDataFile(&f.ctx, &file_req, &file).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  grpcx::TestCaller nobody(auth::Caller{});
  common::v1::PersonalDataRequest req;
  common::v1::PersonalData data;
  CHECK(f.service.ExportPersonalData(&f.ctx, &req, &data).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("erasure: drafts and their files go, retained submissions stay, Ben is untouched, twice as once",
          "[erasure]") {
  Fixture f;
  const People p = Populate(f);
  f.Query("WITH u AS (UPDATE outbox SET published_at = now() RETURNING 1) SELECT count(*) FROM u");
  {
    grpcx::TestCaller anna(Person(kAnna));
    common::v1::PersonalDataRequest req;
    common::v1::RetainedRecords retained;
    REQUIRE(f.service.ListRetainedRecords(&f.ctx, &req, &retained).ok());
    REQUIRE(retained.records_size() == 1);
    CHECK(retained.records(0).id() == p.anna_submission.id());
    CHECK(retained.records(0).until().empty());  // Open: the rule starts when it closes.
  }
  const auto ben_before = f.RowsNaming(kBen);
  REQUIRE(Erase(f, kAnna).ok());
  const auto after_once = f.RowsNaming(kAnna);
  REQUIRE(Erase(f, kAnna).ok());
  CHECK(f.RowsNaming(kAnna) == after_once);

  // What still names Anna is the retained submission and its file, nothing else.
  CHECK(after_once == std::map<std::string, int64_t>{{"submissions", 1}, {"attachments", 1}});
  CHECK(f.Query("SELECT count(*) FROM submissions WHERE id = '" + p.anna_submission.id() + "' AND party_id = '" +
                kAnna + "' AND data->>'email' = 'anna@example.org'") == "1");
  CHECK(f.Query("SELECT count(*) FROM attachments WHERE submission_id = '" + p.anna_submission.id() + "'") == "1");
  CHECK(f.Query("SELECT comment FROM feedback WHERE submission_id = '" + p.anna_submission.id() + "'") == "Gut, Anna");
  // Her drafts and their files are gone; the organisation's draft stays without her account.
  CHECK(f.Query("SELECT count(*) FROM drafts WHERE id = '" + p.anna_draft.id() + "'") == "0");
  CHECK(f.Query("SELECT count(*) FROM attachments WHERE id = '" + p.anna_draft_file.id() + "'") == "0");
  CHECK(f.Query("SELECT count(*) FROM drafts WHERE id = '" + p.organisation_draft.id() +
                "' AND account_id IS NULL AND party_id = '" + kOrganisation + "'") == "1");
  CHECK(f.RowsNaming("Oma Muster").empty());
  CHECK(f.RowsNaming("anna@example.org") == std::map<std::string, int64_t>{{"submissions", 1}});
  // The funnel counts the draft as abandoned and names nobody.
  CHECK(f.Query("SELECT count(*) FROM funnel_events WHERE event = 'abandoned' AND rule = 'erased'") == "1");
  // Ben is untouched.
  CHECK(f.RowsNaming(kBen) == ben_before);
  CHECK(f.RowsNaming("Ben Beispiel") == std::map<std::string, int64_t>{{"drafts", 1}, {"submissions", 1}});
  // Her retained records are listed as before; her export holds the retained submission only.
  grpcx::TestCaller anna(Person(kAnna));
  common::v1::PersonalDataRequest req;
  common::v1::RetainedRecords retained;
  REQUIRE(f.service.ListRetainedRecords(&f.ctx, &req, &retained).ok());
  CHECK(retained.records_size() == 1);
  common::v1::PersonalData data;
  const auto j = Export(f, Person(kAnna), &data);
  CHECK(j["drafts"].empty());
  CHECK(j["submissions"].size() == 1);
}

TEST_CASE("erasure: a submission no rule keeps any more is anonymised; a malformed event is refused", "[erasure]") {
  Fixture f;
  const People p = Populate(f);
  f.Query("WITH u AS (UPDATE outbox SET published_at = now() RETURNING 1) SELECT count(*) FROM u");
  // Anna's submission closed and its retention ended: the job anonymised it already.
  f.Query(
      "UPDATE submissions SET status = 'approved', closed_at = now() - interval '6 years',"
      " retain_until = now() - interval '1 year' WHERE id = '" +
      p.anna_submission.id() + "' RETURNING 1");
  auto ended = f.store->EndRetention(absl::Now(), false, [](const ArchiveRecord&) { return absl::OkStatus(); });
  REQUIRE(ended.ok());
  REQUIRE(ended->has_value());
  REQUIRE(Erase(f, kAnna).ok());
  CHECK(f.RowsNaming(kAnna).empty());
  CHECK(f.Query("SELECT count(*) FROM submissions WHERE id = '" + p.anna_submission.id() +
                "' AND anonymised_at IS NOT NULL") == "1");

  events::v1::PartyErasureRequested bad;
  bad.set_tenant(kTenant);
  bad.set_party_id("not-a-uuid");
  auto s = f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, bad); });
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  bad.set_party_id(kBen);
  bad.set_tenant("../x");
  s = f.pool.Transact([&](pqxx::work& tx) { return OnPartyErasureRequested(tx, bad); });
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(f.RowsNaming("Ben Beispiel").size() == 2);
}

}  // namespace stadtportal::submission

#include "services/submission/service.h"

#include <algorithm>
#include <optional>
#include <set>

#include <google/protobuf/util/time_util.h>
#include <catch2/catch.hpp>

#include "absl/time/time.h"
#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"
#include "services/submission/catalogue.h"

namespace stadtportal::submission {
namespace {

constexpr char kAnna[] = "0b6f5e2a-3c1d-4e8f-9a7b-1c2d3e4f5a6b";
constexpr char kBen[] = "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "submission"};
  db::Pool& pool = schema.pool(Store::Prepare);
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
  Service service{store, Options{}};
  grpc::ServerContext ctx;
  Fixture() {
    auto s = store->SyncCatalogue(*LoadCatalogue());
    INFO(s.message());
    REQUIRE(s.ok());
  }
};

auth::Caller Person(const std::string& id, const std::string& assurance = "low") {
  auth::Caller c;
  c.account_id = id;
  c.tenant = "09564000";
  c.assurance = assurance;
  return c;
}

v1::Draft NewDraft(Fixture& f, const std::string& service_id) {
  v1::CreateDraftRequest req;
  req.set_service_id(service_id);
  v1::Draft d;
  auto s = f.service.CreateDraft(&f.ctx, &req, &d);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return d;
}

grpc::Status Patch(Fixture& f, v1::Draft& d, const nlohmann::json& data, const std::string& step = "") {
  v1::UpdateDraftRequest req;
  req.set_id(d.id());
  req.set_expected_version(d.version());
  req.set_data_json(data.dump());
  req.set_completed_step(step);
  return f.service.UpdateDraft(&f.ctx, &req, &d);
}

const nlohmann::json kCertificate = {
    {"certificate_type", "birth"},
    {"copies", 2},
    {"event_date", "1990-02-28"},
    {"person_name", "Anna Muster"},
    {"purpose", "pension"},
    {"given_name", "Anna"},
    {"family_name", "Muster"},
    {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
    {"email", "anna@example.org"}};

const std::string kPdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";

int64_t Count(Fixture& f, const std::string& sql) {
  int64_t n = 0;
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                n = tx.exec1(sql)[0].as<int64_t>();
                return absl::OkStatus();
              })
              .ok());
  return n;
}

}  // namespace

TEST_CASE("the catalogue files are published and listed page by page", "[integration]") {
  Fixture f;
  v1::ListOnlineServicesRequest req;
  req.mutable_page()->set_page_size(4);
  v1::ListOnlineServicesResponse first, second;
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &first).ok());
  REQUIRE(first.services_size() == 4);
  req.mutable_page()->set_page_token(first.page().next_page_token());
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &second).ok());
  CHECK(second.services_size() == 2);
  CHECK(second.page().next_page_token().empty());
  std::set<std::string> ids;
  for (const auto& s : first.services()) ids.insert(s.id());
  for (const auto& s : second.services()) ids.insert(s.id());
  CHECK(ids == std::set<std::string>{"change-of-address", "civil-registry-certificate", "contact-person-report",
                                     "dog-tax-registration", "library-fee-payment", "residential-parking-permit"});
  // Syncing again (every replica at start) changes nothing.
  REQUIRE(f.store->SyncCatalogue(*LoadCatalogue()).ok());
  CHECK(Count(f, "SELECT count(*) FROM form_versions") == 6);
}

TEST_CASE("the catalogue is searched by text and category; a service carries its form", "[integration]") {
  Fixture f;
  v1::ListOnlineServicesRequest req;
  v1::ListOnlineServicesResponse resp;
  req.set_query("URKUNDE");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).fee().amount_minor() == 1200);
  CHECK(resp.services(0).fee_per_unit());
  CHECK(resp.services(0).form_version() == 1);
  req.clear_query();
  req.set_category("traffic");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).id() == "residential-parking-permit");

  v1::GetOnlineServiceRequest get;
  v1::OnlineService s;
  get.set_id("dog-tax-registration");
  REQUIRE(f.service.GetOnlineService(&f.ctx, &get, &s).ok());
  REQUIRE(f.service.GetOnlineService(&f.ctx, &get, &s).ok());
  CHECK(nlohmann::json::parse(s.form_json())["form"]["steps"][0]["id"] == "dog");
  CHECK(s.destination() == "stadtkaemmerei");
  // Views are counted in memory and written as one row per flush.
  CHECK(Count(f, "SELECT count(*) FROM funnel_events WHERE event = 'viewed'") == 0);
  f.service.FlushViews();
  CHECK(
      Count(f, "SELECT sum(count) FROM funnel_events WHERE event = 'viewed' AND service_id = 'dog-tax-registration'") ==
      2);
  f.service.FlushViews();
  CHECK(Count(f, "SELECT count(*) FROM funnel_events WHERE event = 'viewed'") == 1);

  // Views the gateway answered from its cache are added to the same count.
  v1::RecordViewsRequest views;
  v1::RecordViewsResponse recorded;
  auto* v = views.add_views();
  v->set_service_id("dog-tax-registration");
  v->set_count(40);
  {
    auth::Caller anonymous;
    anonymous.tenant = "09564000";
    grpcx::TestCaller gateway(anonymous);
    REQUIRE(f.service.RecordViews(&f.ctx, &views, &recorded).ok());
    f.service.FlushViews();
    CHECK(Count(f,
                "SELECT sum(count) FROM funnel_events WHERE event = 'viewed' AND service_id = "
                "'dog-tax-registration'") == 42);
    // Nobody but the gateway's anonymous token reports views.
    {
      grpcx::TestCaller anna(Person(kAnna));
      CHECK(f.service.RecordViews(&f.ctx, &views, &recorded).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    }
    for (auto [id, count] : {std::pair<std::string, int64_t>{"Not A Slug", 1},
                             {"dog-tax-registration", 0},
                             {"dog-tax-registration", -5},
                             {"dog-tax-registration", 2000000000}}) {
      v->set_service_id(id);
      v->set_count(count);
      CHECK(f.service.RecordViews(&f.ctx, &views, &recorded).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    }
    f.service.FlushViews();
    CHECK(Count(f, "SELECT sum(count) FROM funnel_events WHERE event = 'viewed'") == 42);
  }
  get.set_id("Not A Slug");
  CHECK(f.service.GetOnlineService(&f.ctx, &get, &s).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  get.set_id("no-such-service");
  CHECK(f.service.GetOnlineService(&f.ctx, &get, &s).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("a service is found by its federal service key, with the other filters", "[integration]") {
  Fixture f;
  v1::ListOnlineServicesRequest req;
  v1::ListOnlineServicesResponse resp;
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  std::set<std::string> keys;
  for (const auto& s : resp.services()) {
    CHECK(s.leika().size() == 14);
    keys.insert(s.leika());
  }
  CHECK(keys.size() == 6);  // Every seeded service its own key.

  req.set_leika("99102013104000");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).id() == "dog-tax-registration");
  CHECK(resp.services(0).leika() == "99102013104000");
  req.set_category("taxes");
  req.set_query("hund");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  CHECK(resp.services_size() == 1);
  req.set_category("traffic");  // Every filter applies.
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  CHECK(resp.services_size() == 0);
  req.clear_category();
  req.clear_query();
  req.set_leika("99108001001000");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).id() == "residential-parking-permit");
  req.set_leika("99999999999999");  // Well-formed, nobody's.
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  CHECK(resp.services_size() == 0);
  CHECK(resp.page().next_page_token().empty());
  for (const std::string bad :
       {"9910201310400", "991020131040000", "9910201310400x", " 9910201310400", "%", "99102013104000' OR '1'='1",
        "\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6\xd9\xa7"}) {
    req.set_leika(bad);
    auto status = f.service.ListOnlineServices(&f.ctx, &req, &resp);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().rfind("leika: ", 0) == 0);
  }

  v1::GetOnlineServiceRequest get;
  v1::OnlineService s;
  get.set_id("civil-registry-certificate");
  REQUIRE(f.service.GetOnlineService(&f.ctx, &get, &s).ok());
  CHECK(s.leika() == "99027002012000");
  CHECK(nlohmann::json::parse(s.form_json())["leika"] == "99027002012000");
}

TEST_CASE("a definition without a service key is refused; a new version may change the key", "[integration]") {
  Fixture f;
  nlohmann::json d;
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == "09564000/contact-person-report.v1.json") d = nlohmann::json::parse(text);
  }
  auto admin = Person(kBen);
  admin.roles = {"tenant-admin"};
  grpcx::TestCaller as_admin(admin);
  v1::PublishOnlineServiceRequest publish;
  publish.set_service_id("contact-person-report");
  v1::OnlineService published;
  d["version"] = 2;
  for (const nlohmann::json& bad : {nlohmann::json(), nlohmann::json("1234567890123"), nlohmann::json(99027002012000),
                                    nlohmann::json("9902700201200a")}) {
    if (bad.is_null()) {
      d.erase("leika");
    } else {
      d["leika"] = bad;
    }
    publish.set_definition_json(d.dump());
    auto status = f.service.PublishOnlineService(&f.ctx, &publish, &published);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().find("leika") != std::string::npos);
  }
  d["leika"] = "99000000000123";
  publish.set_definition_json(d.dump());
  REQUIRE(f.service.PublishOnlineService(&f.ctx, &publish, &published).ok());
  CHECK(published.leika() == "99000000000123");
  v1::ListOnlineServicesRequest req;
  v1::ListOnlineServicesResponse resp;
  req.set_leika("99000000000123");
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.services_size() == 1);
  CHECK(resp.services(0).form_version() == 2);
  req.set_leika("00000000000003");  // The old key no longer finds it.
  REQUIRE(f.service.ListOnlineServices(&f.ctx, &req, &resp).ok());
  CHECK(resp.services_size() == 0);
}

TEST_CASE("a version published before definitions carried their key is recognised without it", "[integration]") {
  Fixture f;
  // As the previous release published it: the same definition without the key, and the
  // service row with the default the migration gives rows it does not know.
  auto catalogue = *LoadCatalogue();
  const auto& dog = *std::find_if(catalogue.begin(), catalogue.end(),
                                  [](const Definition& d) { return d.id == "dog-tax-registration"; });
  auto old = dog.json;
  old.erase("leika");
  auto publish_old = [&](const nlohmann::json& definition) {
    REQUIRE(f.pool
                .Transact([&](pqxx::work& tx) {
                  tx.exec_params(
                      "UPDATE form_versions SET definition = $1::jsonb, sha256 = $2"
                      " WHERE service_id = 'dog-tax-registration' AND version = 1",
                      definition.dump(), DefinitionSha256(definition));
                  tx.exec("UPDATE online_services SET leika = DEFAULT WHERE id = 'dog-tax-registration'");
                  return absl::OkStatus();
                })
                .ok());
  };
  publish_old(old);
  CHECK(Count(f, "SELECT leika::bigint FROM online_services WHERE id = 'dog-tax-registration'") == 0);
  auto s = f.store->SyncCatalogue(catalogue);
  INFO(s.message());
  REQUIRE(s.ok());
  // The service takes the file's key; the published copy stays as it was.
  CHECK(Count(f, "SELECT leika::bigint FROM online_services WHERE id = 'dog-tax-registration'") == 99102013104000);
  CHECK(Count(f,
              "SELECT count(*) FROM form_versions WHERE service_id = 'dog-tax-registration' AND version = 1"
              " AND NOT definition ? 'leika' AND sha256 = '" +
                  DefinitionSha256(old) + "'") == 1);
  REQUIRE(f.store->SyncCatalogue(catalogue).ok());

  // A key published with its definition differing from the file's is a change like any other.
  auto changed = catalogue;
  for (auto& d : changed) {
    if (d.id != "residential-parking-permit") continue;
    d.json["leika"] = "99108001001001";
    d.sha256 = DefinitionSha256(d.json);
  }
  s = f.store->SyncCatalogue(changed);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(s.message()).find("publish a new version") != std::string::npos);
  // So is a published definition without a key that differs in anything else.
  old["department"] = "Anderes Amt";
  publish_old(old);
  CHECK(f.store->SyncCatalogue(catalogue).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a certificate order goes from draft to submission", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));

  v1::CreateDraftRequest create;
  create.set_service_id("civil-registry-certificate");
  (*create.mutable_profile())["family_name"].set_value("Muster");
  (*create.mutable_profile())["family_name"].set_verified(true);
  (*create.mutable_profile())["given_name"].set_value("Anna");
  v1::Draft d;
  REQUIRE(f.service.CreateDraft(&f.ctx, &create, &d).ok());
  CHECK(d.version() == 1);
  CHECK(nlohmann::json::parse(d.data_json())["family_name"] == "Muster");
  CHECK(std::vector<std::string>(d.read_only_fields().begin(), d.read_only_fields().end()) ==
        std::vector<std::string>{"family_name"});

  // Two saves; the second with the version of before the first is refused.
  const int64_t stale = d.version();
  REQUIRE(Patch(f, d, {{"certificate_type", "birth"}, {"copies", 2}}, "certificate").ok());
  CHECK(d.version() == 2);
  CHECK(d.fee().amount_minor() == 2400);
  CHECK(d.last_completed_step() == "certificate");
  v1::UpdateDraftRequest stale_update;
  stale_update.set_id(d.id());
  stale_update.set_expected_version(stale);
  stale_update.set_data_json(R"({"copies": 3})");
  v1::Draft ignored;
  CHECK(f.service.UpdateDraft(&f.ctx, &stale_update, &ignored).error_code() == grpc::StatusCode::ABORTED);
  // Verified attributes stay as they were vouched for.
  auto refused = Patch(f, d, {{"family_name", "Fälschung"}});
  CHECK(refused.error_message() == "family_name: read_only");

  // Validation lists every error at once.
  v1::ValidateDraftRequest validate;
  validate.set_id(d.id());
  v1::ValidateDraftResponse result;
  REQUIRE(f.service.ValidateDraft(&f.ctx, &validate, &result).ok());
  CHECK_FALSE(result.valid());
  CHECK(result.errors_size() == 5);  // event_date, person_name, purpose, address, email
  CHECK(Count(f, "SELECT count(*) FROM funnel_events WHERE event = 'validation_failed'") == result.errors_size());

  REQUIRE(Patch(f, d, kCertificate).ok());
  REQUIRE(f.service.ValidateDraft(&f.ctx, &validate, &result).ok());
  CHECK(result.valid());

  v1::AddAttachmentRequest upload;
  upload.set_draft_id(d.id());
  upload.set_field("attachments");
  upload.set_filename("Vollmacht.pdf");
  upload.set_content(kPdf);
  v1::Attachment attachment;
  REQUIRE(f.service.AddAttachment(&f.ctx, &upload, &attachment).ok());
  CHECK(attachment.media_type() == "application/pdf");
  CHECK(attachment.sha256().size() == 64);

  v1::SubmitDraftRequest submit;
  submit.set_draft_id(d.id());
  submit.set_idempotency_key("submit-key-0001");
  v1::Submission s;
  REQUIRE(f.service.SubmitDraft(&f.ctx, &submit, &s).ok());
  CHECK(s.status() == "awaiting_payment");
  CHECK(s.reference().rfind("NUE-", 0) == 0);
  CHECK(s.reference().size() == std::string("NUE-2026-000001").size());
  CHECK(s.fee().amount_minor() == 2400);
  REQUIRE(s.history_size() == 2);
  CHECK(s.history(0).status() == "submitted");
  CHECK(s.history(1).status() == "awaiting_payment");
  REQUIRE(s.attachments_size() == 1);
  CHECK(s.attachments(0).sha256() == attachment.sha256());
  // With a fee due, nothing goes to the department before the payment (MarkPaid publishes).
  CHECK(Count(f, "SELECT count(*) FROM outbox WHERE topic = 'submission.ready_for_delivery'") == 0);

  // The same key again: the same submission. With another draft: refused.
  v1::Submission again;
  REQUIRE(f.service.SubmitDraft(&f.ctx, &submit, &again).ok());
  CHECK(again.id() == s.id());
  CHECK(again.reference() == s.reference());
  v1::Draft other = NewDraft(f, "dog-tax-registration");
  submit.set_draft_id(other.id());
  CHECK(f.service.SubmitDraft(&f.ctx, &submit, &again).error_message() == "idempotency_key: reused");
  CHECK(Count(f, "SELECT count(*) FROM submissions") == 1);

  // The draft is gone; the attachment now belongs to the submission and only to its owner.
  v1::GetDraftRequest get_draft;
  get_draft.set_id(d.id());
  CHECK(f.service.GetDraft(&f.ctx, &get_draft, &ignored).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::GetAttachmentRequest get_attachment;
  get_attachment.set_id(attachment.id());
  v1::AttachmentContent content;
  REQUIRE(f.service.GetAttachment(&f.ctx, &get_attachment, &content).ok());
  CHECK(content.content() == kPdf);

  v1::ListSubmissionsRequest list;
  v1::ListSubmissionsResponse mine;
  REQUIRE(f.service.ListSubmissions(&f.ctx, &list, &mine).ok());
  REQUIRE(mine.submissions_size() == 1);
  list.set_status("approved");
  REQUIRE(f.service.ListSubmissions(&f.ctx, &list, &mine).ok());
  CHECK(mine.submissions_size() == 0);
  list.set_status("lost");
  CHECK(f.service.ListSubmissions(&f.ctx, &list, &mine).error_message() == "status: invalid_option");

  v1::GetReceiptRequest receipt_req;
  receipt_req.set_id(s.id());
  v1::Receipt receipt;
  REQUIRE(f.service.GetReceipt(&f.ctx, &receipt_req, &receipt).ok());
  CHECK(receipt.pdf().rfind("%PDF-", 0) == 0);
  CHECK(receipt.pdf().find(s.reference()) != std::string::npos);

  v1::GiveFeedbackRequest feedback;
  feedback.set_submission_id(s.id());
  feedback.set_rating(6);
  v1::Feedback given;
  CHECK(f.service.GiveFeedback(&f.ctx, &feedback, &given).error_message() == "rating: out_of_range");
  feedback.set_rating(5);
  feedback.set_comment("Schnell erledigt.");
  REQUIRE(f.service.GiveFeedback(&f.ctx, &feedback, &given).ok());
  CHECK(f.service.GiveFeedback(&f.ctx, &feedback, &given).error_code() == grpc::StatusCode::ALREADY_EXISTS);

  v1::WithdrawSubmissionRequest withdraw;
  withdraw.set_id(s.id());
  v1::Submission withdrawn;
  REQUIRE(f.service.WithdrawSubmission(&f.ctx, &withdraw, &withdrawn).ok());
  CHECK(withdrawn.status() == "withdrawn");
  CHECK(withdrawn.history(withdrawn.history_size() - 1).status() == "withdrawn");
  CHECK(f.service.WithdrawSubmission(&f.ctx, &withdraw, &withdrawn).error_message() == "status: decided");
}

TEST_CASE("a free service goes straight to delivery through the outbox", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  v1::Draft d = NewDraft(f, "contact-person-report");
  REQUIRE(Patch(f, d,
                {{"contact_name", "Ben"},
                 {"contact_phone", "+49 911 123456"},
                 {"contact_date", "2026-01-10"},
                 {"infection", "measles"},
                 {"reporter_name", "Anna"},
                 {"reporter_phone", "0911 654321"}})
              .ok());
  v1::SubmitDraftRequest submit;
  submit.set_draft_id(d.id());
  submit.set_idempotency_key("free-service-key");
  v1::Submission s;
  REQUIRE(f.service.SubmitDraft(&f.ctx, &submit, &s).ok());
  CHECK(s.status() == "submitted");
  CHECK(s.fee().amount_minor() == 0);
  CHECK(Count(f, "SELECT count(*) FROM outbox WHERE topic = 'submission.ready_for_delivery'") == 1);
  CHECK(Count(f, "SELECT count(*) FROM funnel_events WHERE event IN ('draft_started', 'saved', 'submitted')") == 3);
}

TEST_CASE("an incomplete draft cannot be submitted; nothing is stored", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  v1::Draft d = NewDraft(f, "civil-registry-certificate");
  auto data = kCertificate;
  data["certificate_type"] = "marriage";  // Makes spouse_name required.
  data["email"] = "not-an-email";
  REQUIRE(Patch(f, d, data).ok());
  v1::SubmitDraftRequest submit;
  submit.set_draft_id(d.id());
  submit.set_idempotency_key("incomplete-key");
  v1::Submission s;
  auto status = f.service.SubmitDraft(&f.ctx, &submit, &s);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message() == "spouse_name: required; email: invalid_email");
  CHECK(Count(f, "SELECT count(*) FROM submissions") == 0);
  submit.set_idempotency_key("short");
  CHECK(f.service.SubmitDraft(&f.ctx, &submit, &s).error_message() == "idempotency_key: invalid");
}

TEST_CASE("attachments are limited per field by size, count and sniffed type", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  v1::Draft d = NewDraft(f, "civil-registry-certificate");
  v1::AddAttachmentRequest upload;
  upload.set_draft_id(d.id());
  upload.set_field("legitimation");
  upload.set_filename("scan.pdf");
  v1::Attachment a;
  upload.set_content("MZ\x90 this is a program renamed to .pdf");
  CHECK(f.service.AddAttachment(&f.ctx, &upload, &a).error_message() == "file: type_not_allowed");
  upload.set_content(kPdf + std::string(5 * 1024 * 1024, 'x'));
  CHECK(f.service.AddAttachment(&f.ctx, &upload, &a).error_message() == "file: too_large");
  upload.set_content(kPdf);
  for (int i = 0; i < 3; ++i) REQUIRE(f.service.AddAttachment(&f.ctx, &upload, &a).ok());
  CHECK(f.service.AddAttachment(&f.ctx, &upload, &a).error_message() == "file: too_many_files");
  upload.set_field("copies");
  CHECK(f.service.AddAttachment(&f.ctx, &upload, &a).error_message() == "field: not_a_file_field");
  upload.set_field("nothing");
  CHECK(f.service.AddAttachment(&f.ctx, &upload, &a).error_message() == "field: unknown_field");
  CHECK(Count(f, "SELECT count(*) FROM attachments") == 3);
  v1::DeleteAttachmentRequest del;
  del.set_id(a.id());
  v1::DeleteAttachmentResponse deleted;
  REQUIRE(f.service.DeleteAttachment(&f.ctx, &del, &deleted).ok());
  CHECK(Count(f, "SELECT count(*) FROM attachments") == 2);
}

TEST_CASE("another party's draft, submission and attachment are not found", "[integration]") {
  Fixture f;
  std::string draft_id, attachment_id;
  {
    grpcx::TestCaller anna(Person(kAnna));
    v1::Draft d = NewDraft(f, "civil-registry-certificate");
    draft_id = d.id();
    v1::AddAttachmentRequest upload;
    upload.set_draft_id(d.id());
    upload.set_field("attachments");
    upload.set_content(kPdf);
    v1::Attachment a;
    REQUIRE(f.service.AddAttachment(&f.ctx, &upload, &a).ok());
    attachment_id = a.id();
  }
  grpcx::TestCaller ben(Person(kBen));
  v1::GetDraftRequest get;
  get.set_id(draft_id);
  v1::Draft d;
  CHECK(f.service.GetDraft(&f.ctx, &get, &d).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::DeleteDraftRequest del;
  del.set_id(draft_id);
  v1::DeleteDraftResponse deleted;
  CHECK(f.service.DeleteDraft(&f.ctx, &del, &deleted).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::GetAttachmentRequest get_attachment;
  get_attachment.set_id(attachment_id);
  v1::AttachmentContent content;
  CHECK(f.service.GetAttachment(&f.ctx, &get_attachment, &content).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::ListDraftsRequest list;
  v1::ListDraftsResponse mine;
  REQUIRE(f.service.ListDrafts(&f.ctx, &list, &mine).ok());
  CHECK(mine.drafts_size() == 0);
  get.set_id("not-a-uuid");
  CHECK(f.service.GetDraft(&f.ctx, &get, &d).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("a service needing a higher assurance level refuses the session, naming the level", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna, "low"));
  v1::CreateDraftRequest req;
  req.set_service_id("change-of-address");
  v1::Draft d;
  auto s = f.service.CreateDraft(&f.ctx, &req, &d);
  CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(s.error_message() == "assurance_level: substantial");
  grpcx::TestCaller verified(Person(kAnna, "substantial"));
  CHECK(f.service.CreateDraft(&f.ctx, &req, &d).ok());
}

TEST_CASE("a new form version is published by an admin; earlier drafts keep theirs", "[integration]") {
  Fixture f;
  v1::Draft before;
  {
    grpcx::TestCaller anna(Person(kAnna));
    before = NewDraft(f, "library-fee-payment");
  }
  nlohmann::json d;
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == "09564000/library-fee-payment.v1.json") d = nlohmann::json::parse(text);
  }
  d["version"] = 2;
  d["fee"]["amount_minor"] = 1800;
  d["form"]["steps"][0]["fields"].push_back(
      {{"id", "note"}, {"type", "text"}, {"label", {{"de", "Hinweis"}, {"en", "Note"}}}});
  v1::PublishOnlineServiceRequest publish;
  publish.set_definition_json(d.dump());
  v1::OnlineService published;
  {
    grpcx::TestCaller anna(Person(kAnna));
    CHECK(f.service.PublishOnlineService(&f.ctx, &publish, &published).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
    // The role comes first: a citizen learns nothing from the definition's checks.
    v1::PublishOnlineServiceRequest other_path = publish;
    other_path.set_service_id("dog-tax-registration");
    CHECK(f.service.PublishOnlineService(&f.ctx, &other_path, &published).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  auto admin = Person(kBen);
  admin.roles = {"tenant-admin"};
  grpcx::TestCaller as_admin(admin);
  {
    v1::PublishOnlineServiceRequest other_path = publish;
    other_path.set_service_id("dog-tax-registration");
    CHECK(f.service.PublishOnlineService(&f.ctx, &other_path, &published).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
  }
  publish.set_service_id("library-fee-payment");
  REQUIRE(f.service.PublishOnlineService(&f.ctx, &publish, &published).ok());
  CHECK(published.form_version() == 2);
  CHECK(published.fee().amount_minor() == 1800);
  // Caches of the catalogue learn of the new version (the start's sync published none:
  // its versions were current already or the first).
  CHECK(Count(f,
              "SELECT count(*) FROM outbox WHERE topic = 'catalogue.changed' AND key = 'library-fee-payment'"
              " AND (payload->>'form_version')::int = 2") == 1);
  // Publishing version 2 again is a conflict; a broken definition is refused with its problems.
  CHECK(f.service.PublishOnlineService(&f.ctx, &publish, &published).error_code() == grpc::StatusCode::ABORTED);
  d["version"] = 3;
  d["form"]["steps"][0]["fields"][0]["type"] = "slider";
  publish.set_definition_json(d.dump());
  CHECK(f.service.PublishOnlineService(&f.ctx, &publish, &published).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  // A repository file that differs from a published version of the same number stops the start.
  // (Version 2 lives only in the database; the file's version 1 is unchanged, so sync passes.)
  REQUIRE(f.store->SyncCatalogue(*LoadCatalogue()).ok());
  CHECK(Count(f, "SELECT form_version FROM online_services WHERE id = 'library-fee-payment'") == 2);

  grpcx::TestCaller anna(Person(kAnna));
  v1::GetDraftRequest get;
  get.set_id(before.id());
  v1::Draft kept;
  REQUIRE(f.service.GetDraft(&f.ctx, &get, &kept).ok());
  CHECK(kept.form_version() == 1);
  CHECK(kept.fee().amount_minor() == 1500);
  CHECK(NewDraft(f, "library-fee-payment").form_version() == 2);
}

TEST_CASE("a changed catalogue file with a published version number is refused", "[integration]") {
  Fixture f;
  auto catalogue = *LoadCatalogue();
  catalogue[0].json["department"] = "Anderes Amt";
  catalogue[0].sha256 = "changed";
  auto s = f.store->SyncCatalogue(catalogue);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(s.message()).find("publish a new version") != std::string::npos);
}

TEST_CASE("expired drafts are purged and counted as abandoned", "[integration]") {
  Fixture f;
  auto expired = f.store->CreateDraft({"09564000", kAnna}, kAnna, "dog-tax-registration", 1, nlohmann::json::object(),
                                      {}, std::chrono::hours(-1));
  REQUIRE(expired.ok());
  auto fresh = f.store->CreateDraft({"09564000", kAnna}, kAnna, "dog-tax-registration", 1, nlohmann::json::object(), {},
                                    std::chrono::hours(24));
  REQUIRE(fresh.ok());
  auto purged = f.store->PurgeExpiredDrafts(100, absl::Now());
  REQUIRE(purged.ok());
  CHECK(*purged == 1);
  CHECK(Count(f, "SELECT count(*) FROM drafts") == 1);
  CHECK(Count(f, "SELECT count(*) FROM funnel_events WHERE event = 'abandoned' AND rule = 'expired'") == 1);
}

TEST_CASE("my submissions are read through an index, newest first, without sorting", "[integration]") {
  Fixture f;
  // 20,000 submissions over 1,000 parties, as in production proportions.
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                tx.exec(
                    "INSERT INTO submissions (id, tenant, party_id, account_id, service_id, form_version, reference,"
                    " status, data, fee_minor, fee_currency, draft_id, idempotency_key)"
                    " SELECT gen_random_uuid(), '09564000', ('00000000-0000-4000-8000-' || lpad((i % 1000)::text, 12,"
                    " '0'))::uuid, gen_random_uuid(), 'dog-tax-registration', 1, 'NUE-2026-' || i,"
                    " CASE WHEN i % 3 = 0 THEN 'approved' ELSE 'submitted' END, '{}', 0, 'EUR', gen_random_uuid(),"
                    " 'k' || i FROM generate_series(1, 20000) i");
                tx.exec("ANALYZE submissions");
                return absl::OkStatus();
              })
              .ok());
  for (const auto& [statement, extra] : std::vector<std::pair<std::string, std::string>>{
           {"submission_list_submissions", ", ''"}, {"submission_list_submissions_by_status", ", '', 'approved'"}}) {
    std::string plan;
    absl::Status explained = f.pool.Transact([&](pqxx::work& tx) {
      // The statement as the service runs it (libpqxx prepares on first use), with a
      // generic plan, as the server uses after a few executions.
      tx.exec("SET LOCAL plan_cache_mode = force_generic_plan");
      if (extra == ", ''") {
        tx.exec_prepared(statement, "09564000", "00000000-0000-4000-8000-000000000007", INT64_MAX, 21, "");
      } else {
        tx.exec_prepared(statement, "09564000", "00000000-0000-4000-8000-000000000007", INT64_MAX, 21, "", "approved");
      }
      for (const auto& row : tx.exec("EXPLAIN EXECUTE " + statement +
                                     "('09564000', '00000000-0000-4000-8000-000000000007',"
                                     " 9223372036854775807, 21" +
                                     extra + ")")) {
        plan += row[0].as<std::string>() + "\n";
      }
      return absl::OkStatus();
    });
    INFO(explained.message());
    REQUIRE(explained.ok());
    INFO(plan);
    CHECK(plan.find("Index Scan using submissions_mine") != std::string::npos);
    CHECK(plan.find("Seq Scan on submissions") == std::string::npos);
    CHECK(plan.find("Sort") == std::string::npos);
  }
}

}  // namespace stadtportal::submission

namespace stadtportal::submission {

// A certificate order (with its fee) submitted by the caller with `key`.
v1::Submission SubmitCertificate(Fixture& f, const std::string& key) {
  v1::Draft d = NewDraft(f, "civil-registry-certificate");
  REQUIRE(Patch(f, d, kCertificate).ok());
  v1::SubmitDraftRequest submit;
  submit.set_draft_id(d.id());
  submit.set_idempotency_key(key);
  v1::Submission s;
  REQUIRE(f.service.SubmitDraft(&f.ctx, &submit, &s).ok());
  REQUIRE(s.status() == "awaiting_payment");
  return s;
}

TEST_CASE("a successful payment moves the submission to paid and on to delivery, once", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  v1::Submission s = SubmitCertificate(f, "pay-then-deliver");
  for (int i = 0; i < 2; ++i) {  // The second time (a duplicate event) changes nothing.
    REQUIRE(f.pool.Transact([&](pqxx::work& tx) { return Store::MarkPaid(tx, "09564000", s.id(), "pay-1"); }).ok());
  }
  v1::GetSubmissionRequest get;
  get.set_id(s.id());
  REQUIRE(f.service.GetSubmission(&f.ctx, &get, &s).ok());
  CHECK(s.status() == "paid");
  REQUIRE(s.history_size() == 3);
  CHECK(s.history(2).status() == "paid");
  CHECK(Count(f, "SELECT count(*) FROM outbox WHERE topic = 'submission.ready_for_delivery'") == 1);
}

}  // namespace stadtportal::submission

namespace stadtportal::submission {

TEST_CASE("every service states its retention rule; a definition without one is refused", "[integration][retention]") {
  Fixture f;
  v1::GetOnlineServiceRequest get;
  get.set_id("change-of-address");
  v1::OnlineService s;
  REQUIRE(f.service.GetOnlineService(&f.ctx, &get, &s).ok());
  CHECK(s.retention_years() == 5);
  CHECK(s.lasting_value());
  CHECK(s.retention_legal_basis().find("GDPR") != std::string::npos);
  get.set_id("dog-tax-registration");
  REQUIRE(f.service.GetOnlineService(&f.ctx, &get, &s).ok());
  CHECK(s.retention_years() == 10);
  CHECK_FALSE(s.lasting_value());

  nlohmann::json d;
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == "09564000/dog-tax-registration.v1.json") d = nlohmann::json::parse(text);
  }
  d["version"] = 2;
  for (const auto& [member, bad] :
       std::vector<std::pair<std::string, nlohmann::json>>{{"retention_years", nullptr},
                                                           {"retention_years", 0},
                                                           {"retention_years", 101},
                                                           {"retention_years", "10"},
                                                           {"retention_legal_basis", nullptr},
                                                           {"retention_legal_basis", ""},
                                                           {"retention_legal_basis", std::string(501, 'x')},
                                                           {"retention_legal_basis", "Art. 6\nGDPR"},
                                                           {"lasting_value", nullptr},
                                                           {"lasting_value", "yes"}}) {
    auto changed = d;
    if (bad.is_null()) {
      changed.erase(member);
    } else {
      changed[member] = bad;
    }
    auto checked = CheckDefinition(changed.dump());
    INFO(member << " = " << bad.dump());
    CHECK(checked.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(checked.status().message()).find(member) != std::string::npos);
  }
  // retention_days is no longer required.
  d.erase("retention_days");
  CHECK(CheckDefinition(d.dump()).ok());
}

TEST_CASE("a version published before definitions carried a retention rule is recognised without it",
          "[integration][retention]") {
  Fixture f;
  auto catalogue = *LoadCatalogue();
  const auto& coa = *std::find_if(catalogue.begin(), catalogue.end(),
                                  [](const Definition& d) { return d.id == "change-of-address"; });
  for (bool with_key : {true, false}) {
    auto old = coa.json;
    for (const char* m : {"retention_years", "retention_legal_basis", "lasting_value"}) old.erase(m);
    if (!with_key) old.erase("leika");
    REQUIRE(f.pool
                .Transact([&](pqxx::work& tx) {
                  tx.exec_params(
                      "UPDATE form_versions SET definition = $1::jsonb, sha256 = $2"
                      " WHERE service_id = 'change-of-address' AND version = 1",
                      old.dump(), DefinitionSha256(old));
                  tx.exec(
                      "UPDATE online_services SET retention_years = DEFAULT, lasting_value = DEFAULT"
                      " WHERE id = 'change-of-address'");
                  return absl::OkStatus();
                })
                .ok());
    auto s = f.store->SyncCatalogue(catalogue);
    INFO(s.message());
    REQUIRE(s.ok());
    // The service row takes the file's rule.
    CHECK(Count(f, "SELECT retention_years FROM online_services WHERE id = 'change-of-address'") == 5);
    CHECK(Count(f, "SELECT lasting_value::int FROM online_services WHERE id = 'change-of-address'") == 1);
    // Anything else changed is still refused.
    old["department"] = "Anderes Amt";
    REQUIRE(f.pool
                .Transact([&](pqxx::work& tx) {
                  tx.exec_params("UPDATE form_versions SET sha256 = $1 WHERE service_id = 'change-of-address'",
                                 DefinitionSha256(old));
                  return absl::OkStatus();
                })
                .ok());
    CHECK(f.store->SyncCatalogue(catalogue).code() == absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("a closed submission moves to the archive view and names its retention", "[integration][retention]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  std::vector<v1::Submission> mine;
  for (const char* key : {"open-one", "withdrawn-one"}) {
    v1::Draft d = NewDraft(f, "civil-registry-certificate");
    REQUIRE(Patch(f, d, kCertificate).ok());
    v1::SubmitDraftRequest submit;
    submit.set_draft_id(d.id());
    submit.set_idempotency_key(key);
    v1::Submission s;
    REQUIRE(f.service.SubmitDraft(&f.ctx, &submit, &s).ok());
    CHECK_FALSE(s.has_closed_at());
    mine.push_back(s);
  }
  v1::WithdrawSubmissionRequest withdraw;
  withdraw.set_id(mine[1].id());
  v1::Submission withdrawn;
  REQUIRE(f.service.WithdrawSubmission(&f.ctx, &withdraw, &withdrawn).ok());
  REQUIRE(withdrawn.has_closed_at());
  // Five years (the certificate's rule) after it closed.
  const int64_t closed = google::protobuf::util::TimeUtil::TimestampToSeconds(withdrawn.closed_at());
  const int64_t until = google::protobuf::util::TimeUtil::TimestampToSeconds(withdrawn.retain_until());
  CHECK(until - closed >= int64_t{5} * 365 * 86400);
  CHECK(until - closed <= int64_t{5} * 366 * 86400);

  auto list = [&](std::optional<bool> archived) {
    v1::ListSubmissionsRequest req;
    if (archived.has_value()) req.set_archived(*archived);
    v1::ListSubmissionsResponse resp;
    REQUIRE(f.service.ListSubmissions(&f.ctx, &req, &resp).ok());
    std::vector<std::string> ids;
    for (const auto& s : resp.submissions()) ids.push_back(s.id());
    return ids;
  };
  CHECK(list(std::nullopt) == std::vector<std::string>{mine[1].id(), mine[0].id()});
  CHECK(list(false) == std::vector<std::string>{mine[0].id()});
  CHECK(list(true) == std::vector<std::string>{mine[1].id()});
  v1::ListSubmissionsRequest by_status;
  by_status.set_status("withdrawn");
  by_status.set_archived(false);
  v1::ListSubmissionsResponse none;
  REQUIRE(f.service.ListSubmissions(&f.ctx, &by_status, &none).ok());
  CHECK(none.submissions_size() == 0);

  auto retained = f.store->RetainedRecords("09564000", kAnna);
  REQUIRE(retained.ok());
  REQUIRE(retained->records_size() == 2);
  const auto& closed_one = retained->records(0);
  CHECK(closed_one.service() == "submission");
  CHECK(closed_one.kind() == "submission");
  CHECK(closed_one.id() == mine[1].id());
  CHECK(closed_one.reference() == mine[1].reference());
  CHECK(closed_one.until() == absl::FormatTime("%Y-%m-%d", absl::FromUnixSeconds(until), absl::UTCTimeZone()));
  CHECK(closed_one.rule() == "closed submission: kept 5 years after closing, then anonymised");
  CHECK(closed_one.legal_basis().find("Civil Status Act") != std::string::npos);
  CHECK(retained->records(1).until().empty());
  CHECK(retained->records(1).rule().rfind("open procedure", 0) == 0);
  CHECK(f.store->RetainedRecords("09564000", kBen)->records_size() == 0);
  CHECK(f.store->RetainedRecords("09564001", kAnna)->records_size() == 0);
}

// The submission.status_changed events of the outbox, oldest first, as
// "previous>status@micros" (micros: occurred_at as the history's time).
std::vector<std::string> StatusEvents(Fixture& f) {
  std::vector<std::string> out;
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                for (const auto& r :
                     tx.exec("SELECT payload->>'previous_status' AS previous, payload->>'status' AS status,"
                             " payload->>'party_id' AS party, payload->>'service_id' AS service,"
                             " payload->>'reference' <> '' AS referenced, key = payload->>'submission_id' AS keyed,"
                             " (payload->>'occurred_at')::timestamptz = (SELECT h.at FROM submission_history h"
                             "   WHERE h.submission_id = (o.payload->>'submission_id')::uuid"
                             "   AND h.status = o.payload->>'status') AS at_history"
                             " FROM outbox o WHERE topic = 'submission.status_changed' ORDER BY id")) {
                  out.push_back(r["previous"].as<std::string>() + ">" + r["status"].as<std::string>());
                  CHECK(r["party"].as<std::string>() == kAnna);
                  CHECK(r["service"].as<std::string>() == "civil-registry-certificate");
                  CHECK(r["referenced"].as<bool>());
                  CHECK(r["keyed"].as<bool>());
                  CHECK(r["at_history"].as<bool>());
                }
                return absl::OkStatus();
              })
              .ok());
  return out;
}

TEST_CASE("every status a submission takes is published once, at the history's time", "[integration]") {
  Fixture f;
  grpcx::TestCaller anna(Person(kAnna));
  v1::Submission s = SubmitCertificate(f, "status-events");
  CHECK(StatusEvents(f) == std::vector<std::string>{">submitted", "submitted>awaiting_payment"});
  auto in_tx = [&](auto step) { REQUIRE(f.pool.Transact(step).ok()); };
  for (int i = 0; i < 2; ++i) {  // A repeated event moves nothing and publishes nothing.
    in_tx([&](pqxx::work& tx) { return Store::MarkPaid(tx, "09564000", s.id(), "pay-1"); });
    in_tx([&](pqxx::work& tx) { return Store::MarkDelivered(tx, "09564000", s.id()); });
    in_tx([&](pqxx::work& tx) { return Store::MarkReceived(tx, "09564000", s.id()); });
  }
  REQUIRE(f.store->SetStatus("09564000", s.id(), "in_progress", "").ok());
  REQUIRE(f.store->SetStatus("09564000", s.id(), "in_progress", "").ok());  // Said twice.
  // A transition the status machine refuses publishes nothing.
  CHECK(!f.store->SetStatus("09564000", s.id(), "submitted", "").ok());
  REQUIRE(f.store->SetStatus("09564000", s.id(), "approved", "").ok());
  REQUIRE(f.store->SetStatus("09564000", s.id(), "closed", "").ok());
  v1::WithdrawSubmissionRequest withdraw;
  withdraw.set_id(s.id());
  v1::Submission withdrawn;
  CHECK(!f.service.WithdrawSubmission(&f.ctx, &withdraw, &withdrawn).ok());  // Decided: nothing published.
  // Another one, withdrawn while awaiting payment.
  withdraw.set_id(SubmitCertificate(f, "status-events-withdrawn").id());
  REQUIRE(f.service.WithdrawSubmission(&f.ctx, &withdraw, &withdrawn).ok());
  CHECK(StatusEvents(f) == std::vector<std::string>{">submitted", "submitted>awaiting_payment", "awaiting_payment>paid",
                                                    "paid>delivered", "delivered>received_by_department",
                                                    "received_by_department>in_progress", "in_progress>approved",
                                                    "approved>closed", ">submitted", "submitted>awaiting_payment",
                                                    "awaiting_payment>withdrawn"});
}

}  // namespace stadtportal::submission

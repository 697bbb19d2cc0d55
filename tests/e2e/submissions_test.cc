// Applying for an online service over REST, against the real binaries.
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

httplib::Result Patch(httplib::Client& c, const std::string& path, const json& body, const json& login,
                      const std::string& if_match) {
  auto headers = Bearer(login);
  if (!if_match.empty()) headers.emplace("If-Match", if_match);
  return c.Patch(path.c_str(), headers, body.dump(), "application/json");
}

httplib::Result Upload(httplib::Client& c, const std::string& draft, const std::string& field,
                       const std::string& filename, const std::string& content, const json& login) {
  httplib::MultipartFormDataItems items = {{"file", content, filename, "application/pdf"}};
  return c.Post(("/api/v1/drafts/" + draft + "/attachments?field=" + field).c_str(), Bearer(login), items);
}

httplib::Result Submit(httplib::Client& c, const std::string& draft, const std::string& key, const json& login) {
  auto headers = Bearer(login);
  headers.emplace("Idempotency-Key", key);
  return c.Post(("/api/v1/drafts/" + draft + "/submit").c_str(), headers, "", "application/json");
}

// The field errors of a problem as "field:code".
std::set<std::string> Errors(const httplib::Result& r) {
  std::set<std::string> out;
  if (!r) return out;
  auto body = json::parse(r->body, nullptr, false);
  if (body.is_discarded() || !body.contains("errors")) return out;
  for (const auto& e : body["errors"]) out.insert(e["field"].get<std::string>() + ":" + e["code"].get<std::string>());
  return out;
}

// A small, valid PDF.
const std::string kPdf =
    "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\n"
    "endobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

const json kCertificate = {
    {"certificate_type", "birth"},
    {"copies", 2},
    {"event_date", "1990-02-28"},
    {"person_name", "Anna Muster"},
    {"purpose", "pension"},
    {"family_name", "Muster"},
    {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
    {"email", "anna@example.org"}};

}  // namespace

TEST_CASE("a certificate order over REST: prefill, saves, validation, attachment, submit, receipt", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  auto profile = Patch(c, "/api/v1/me/profile", {{"given_name", "Anna"}}, anna, "");
  REQUIRE(Status(profile) == 200);

  auto created = PostJson(c, "/api/v1/services/civil-registry-certificate/drafts", json::object(), Bearer(anna));
  REQUIRE(Status(created) == 201);
  json draft = json::parse(created->body);
  CHECK(draft["data"]["given_name"] == "Anna");  // Prefilled from the profile.
  CHECK(created->get_header_value("ETag") == "\"1\"");
  const std::string path = "/api/v1/drafts/" + draft["id"].get<std::string>();

  // Two saves; the second with the first's stale version → 412, nothing changed.
  auto first = Patch(c, path, {{"data", {{"certificate_type", "birth"}, {"copies", 2}}}}, anna, "\"1\"");
  REQUIRE(Status(first) == 200);
  CHECK(first->get_header_value("ETag") == "\"2\"");
  CHECK(json::parse(first->body)["fee"]["amount_minor"] == 2400);
  auto stale = Patch(c, path, {{"data", {{"copies", 5}}}}, anna, "\"1\"");
  CHECK(Status(stale) == 412);
  CHECK(Status(Patch(c, path, {{"data", {{"copies", 5}}}}, anna, "")) == 428);
  CHECK(json::parse(c.Get(path.c_str(), Bearer(anna))->body)["data"]["copies"] == 2);

  // All validation errors at once, with messages in the request's language.
  auto headers = Bearer(anna);
  headers.emplace("Accept-Language", "en");
  auto validated = c.Post((path + "/validate").c_str(), headers, "", "application/json");
  REQUIRE(Status(validated) == 200);
  json result = json::parse(validated->body);
  CHECK(result["valid"] == false);
  CHECK(result["errors"].size() == 6);
  CHECK(result["errors"][0]["message"] == "This field is required.");

  REQUIRE(Status(Patch(c, path, {{"data", kCertificate}, {"completed_step", "applicant"}}, anna, "\"2\"")) == 200);
  REQUIRE(json::parse(c.Post((path + "/validate").c_str(), Bearer(anna), "", "application/json")->body)["valid"] ==
          true);

  auto uploaded = Upload(c, draft["id"], "attachments", "Vollmacht.pdf", kPdf, anna);
  REQUIRE(Status(uploaded) == 201);
  json attachment = json::parse(uploaded->body);
  CHECK(attachment["media_type"] == "application/pdf");
  CHECK(attachment["sha256"].get<std::string>().size() == 64);

  auto submitted = Submit(c, draft["id"], "certificate-order-0001", anna);
  REQUIRE(Status(submitted) == 201);
  json submission = json::parse(submitted->body);
  const std::string reference = submission["reference"];
  CHECK(reference.rfind("NUE-2026-", 0) == 0);
  CHECK(submission["status"] == "awaiting_payment");
  CHECK(submission["history"][0]["status"] == "submitted");
  CHECK(submission["fee"]["amount_minor"] == 2400);
  // The same key again: the same submission.
  auto again = Submit(c, draft["id"], "certificate-order-0001", anna);
  REQUIRE(Status(again) == 201);
  CHECK(json::parse(again->body)["id"] == submission["id"]);

  auto list = c.Get("/api/v1/submissions", Bearer(anna));
  REQUIRE(Status(list) == 200);
  REQUIRE(json::parse(list->body)["items"].size() == 1);
  CHECK(json::parse(list->body)["items"][0]["reference"] == reference);
  const std::string submission_path = "/api/v1/submissions/" + submission["id"].get<std::string>();
  auto one = c.Get(submission_path.c_str(), Bearer(anna));
  REQUIRE(Status(one) == 200);
  CHECK(json::parse(one->body)["history"][0]["status"] == "submitted");
  CHECK(Status(c.Get(path.c_str(), Bearer(anna))) == 404);  // The draft became the submission.

  auto receipt = c.Get((submission_path + "/receipt").c_str(), Bearer(anna));
  REQUIRE(Status(receipt) == 200);
  CHECK(receipt->get_header_value("Content-Type") == "application/pdf");
  const std::string pdf_path = testing::TempDir() + "/receipt-" + reference + ".pdf";
  std::ofstream(pdf_path, std::ios::binary) << receipt->body;
  std::string text;
  REQUIRE(testing::RunCommand("pdftotext " + pdf_path + " -", &text) == 0);
  CHECK(text.find(reference) != std::string::npos);
  CHECK(text.find("Geburtsurkunde") != std::string::npos);
  CHECK(text.find("24,00") != std::string::npos);

  auto feedback =
      PostJson(c, submission_path + "/feedback", {{"rating", 5}, {"comment", "Ging schnell."}}, Bearer(anna));
  CHECK(Status(feedback) == 201);
  CHECK(Status(PostJson(c, submission_path + "/feedback", {{"rating", 4}}, Bearer(anna))) == 409);

  // Another party sees none of it.
  json ben = Onboard(stack, c, UniqueEmail());
  CHECK(Status(c.Get(submission_path.c_str(), Bearer(ben))) == 404);
  CHECK(Status(c.Get((submission_path + "/receipt").c_str(), Bearer(ben))) == 404);
  CHECK(Status(c.Get(("/api/v1/attachments/" + attachment["id"].get<std::string>()).c_str(), Bearer(ben))) == 404);
  CHECK(json::parse(c.Get("/api/v1/submissions", Bearer(ben))->body)["items"].empty());
  auto owner_download = c.Get(("/api/v1/attachments/" + attachment["id"].get<std::string>()).c_str(), Bearer(anna));
  REQUIRE(Status(owner_download) == 200);
  CHECK(owner_download->body == kPdf);
}

TEST_CASE("bad input is refused with 422 field errors, never 5xx, and changes nothing", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  auto created = PostJson(c, "/api/v1/services/dog-tax-registration/drafts", json::object(), Bearer(anna));
  REQUIRE(Status(created) == 201);
  const std::string id = json::parse(created->body)["id"];
  const std::string path = "/api/v1/drafts/" + id;

  auto unknown = Patch(c, path, {{"data", {{"nickname", "Rex"}}}}, anna, "\"1\"");
  CHECK(Status(unknown) == 422);
  CHECK(Errors(unknown) == std::set<std::string>{"nickname:unknown_field"});
  auto wrong =
      Patch(c, path, {{"data", {{"dog_name", 7}, {"listed_breed", "yes"}, {"exemption", "rescue"}}}}, anna, "\"1\"");
  CHECK(Status(wrong) == 422);
  CHECK(Errors(wrong) ==
        std::set<std::string>{"dog_name:wrong_type", "listed_breed:wrong_type", "exemption:wrong_type"});
  auto overlong = Patch(c, path, {{"data", {{"breed", std::string(5000, 'x')}}}}, anna, "\"1\"");
  CHECK(Status(overlong) == 422);
  CHECK(Errors(overlong) == std::set<std::string>{"breed:too_long"});
  CHECK(Status(Patch(c, path, {{"info", 1}}, anna, "\"1\"")) ==
        422);  // Not a draft update: an unknown field, data missing.

  // Invalid dates and IBAN, and a missing conditionally required file: found at submit.
  REQUIRE(
      Status(Patch(c, path,
                   {{"data",
                     {{"dog_name", "Rex"},
                      {"breed", "Dackel"},
                      {"birth_date", "2025-02-30"},
                      {"kept_since", "2031-01-01"},
                      {"chip_number", "276098106543210"},
                      {"exemption", {"shelter"}},
                      {"given_name", "Anna"},
                      {"family_name", "Muster"},
                      {"address",
                       {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
                      {"iban", "DE89 3704 0044 0532 0130 01"}}}},
                   anna, "\"1\"")) == 200);
  auto refused = Submit(c, id, "dog-tax-bad-0001", anna);
  CHECK(Status(refused) == 422);
  CHECK(Errors(refused) == std::set<std::string>{"birth_date:invalid_date", "kept_since:too_late",
                                                 "exemption_proof:required", "iban:invalid_iban"});
  CHECK(json::parse(c.Get("/api/v1/submissions", Bearer(anna))->body)["items"].empty());
  CHECK(Status(Submit(c, id, "", anna)) == 400);       // No idempotency key.
  CHECK(Status(Submit(c, id, "short", anna)) == 422);  // Too short to be unique.

  // Files: a program renamed to .pdf, and 20 MB.
  auto renamed = Upload(c, id, "exemption_proof", "Bescheinigung.pdf", "MZ\x90\x00 not a PDF at all", anna);
  CHECK(Status(renamed) == 422);
  CHECK(Errors(renamed) == std::set<std::string>{"file:type_not_allowed"});
  auto huge = Upload(c, id, "exemption_proof", "scan.pdf", kPdf + std::string(20 << 20, ' '), anna);
  CHECK(Status(huge) == 422);
  CHECK(Errors(huge) == std::set<std::string>{"file:too_large"});
  CHECK(Status(Upload(c, id, "breed", "x.pdf", kPdf, anna)) == 422);
  CHECK(json::parse(c.Get(path.c_str(), Bearer(anna))->body)["attachments"].empty());

  // A service needing a higher assurance level: 403 naming it.
  auto step_up = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), Bearer(anna));
  CHECK(Status(step_up) == 403);
  CHECK(json::parse(step_up->body)["required_assurance_level"] == "substantial");

  // Another party's draft: 404 for every operation.
  json ben = Onboard(stack, c, UniqueEmail());
  CHECK(Status(c.Get(path.c_str(), Bearer(ben))) == 404);
  CHECK(Status(Patch(c, path, {{"data", {{"dog_name", "Bello"}}}}, ben, "\"2\"")) == 404);
  CHECK(Status(Upload(c, id, "exemption_proof", "x.pdf", kPdf, ben)) == 404);
  CHECK(Status(Submit(c, id, "ben-takes-over-0001", ben)) == 404);
  CHECK(Status(c.Delete(path.c_str(), Bearer(ben))) == 404);
  CHECK(Status(c.Get("/api/v1/drafts/not-a-draft", Bearer(anna))) == 404);
  CHECK(Status(c.Delete(path.c_str(), Bearer(anna))) == 204);

  // Nothing above was a server error.
  CHECK(stack.AllLogs().find("\"level\":\"error\"") == std::string::npos);
}

}  // namespace stadtportal::e2e

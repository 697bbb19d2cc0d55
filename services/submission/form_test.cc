#include "services/submission/form.h"

#include <catch2/catch.hpp>

#include "libs/api/files.h"
#include "services/submission/catalogue.h"
#include "services/submission/json_schema.h"
#include "services/submission/receipt.h"
#include "services/submission/store.h"

namespace stadtportal::submission {
namespace {

const absl::CivilDay kToday(2026, 11, 28);

Form CertificateForm() {
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == "09564000/civil-registry-certificate.v1.json") return FormOf(*CheckDefinition(text));
  }
  FAIL("certificate form not compiled in");
  return *Form::Parse(nlohmann::json::parse(R"({"steps": []})"));
}

bool Has(const std::vector<FieldError>& errors, const std::string& field, const std::string& code) {
  return std::find(errors.begin(), errors.end(), FieldError{field, code}) != errors.end();
}

nlohmann::json ValidCertificate() {
  return {{"certificate_type", "birth"},
          {"copies", 2},
          {"event_date", "1990-02-28"},
          {"person_name", "Anna Muster"},
          {"purpose", "pension"},
          {"given_name", "Anna"},
          {"family_name", "Muster"},
          {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
          {"email", "anna@example.org"}};
}

}  // namespace

TEST_CASE("every compiled-in catalogue file passes the schema and the form rules", "[unit]") {
  auto catalogue = LoadCatalogue();
  REQUIRE(catalogue.ok());
  CHECK(catalogue->size() == 6);
}

TEST_CASE("the JSON Schema validator reports violations with their location", "[unit]") {
  JsonSchema schema(nlohmann::json::parse(R"({
    "type": "object", "additionalProperties": false, "required": ["a"],
    "properties": {"a": {"$ref": "#/$defs/small"}, "b": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2},
                   "c": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}},
    "$defs": {"small": {"type": "integer", "minimum": 1, "maximum": 3}}})"));
  CHECK(schema.Validate(nlohmann::json::parse(R"({"a": 2, "b": ["x"], "c": "ab"})")).empty());
  const auto errors = schema.Validate(nlohmann::json::parse(R"({"a": 7, "b": ["x", "z", "y"], "c": "ABCD", "d": 1})"));
  const std::vector<std::string> expected = {"/a: must be <= 3",
                                             "/b: must have at most 2 items",
                                             "/b/1: must be one of [\"x\",\"y\"]",
                                             "/c: must have at most 3 characters",
                                             "/c: must match ^[a-z]+$",
                                             "/d: unknown property"};
  CHECK(errors == expected);
  CHECK(schema.Validate(nlohmann::json::parse(R"({})")) == std::vector<std::string>{"/: required property a missing"});
  CHECK_THROWS_AS(JsonSchema(nlohmann::json::parse(R"({"format": "email"})")), std::invalid_argument);
  CHECK_THROWS_AS(JsonSchema(nlohmann::json::parse(R"({"$ref": "#/$defs/nowhere"})")), std::invalid_argument);
  // Whole numbers written as floats are integers; beyond int64 or not finite they are not
  // (found by the form_definition fuzz target: converting 5e128 was undefined behaviour).
  JsonSchema integer(nlohmann::json::parse(R"({"type": "integer"})"));
  CHECK(integer.Validate(nlohmann::json::parse("2.0")).empty());
  CHECK_FALSE(integer.Validate(nlohmann::json::parse("2.5")).empty());
  CHECK_FALSE(integer.Validate(nlohmann::json::parse("5.24289e+128")).empty());
  CHECK_FALSE(integer.Validate(nlohmann::json::parse("-1e300")).empty());
}

TEST_CASE("a definition that breaks the schema or the form rules is refused", "[unit]") {
  nlohmann::json d;
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == "09564000/dog-tax-registration.v1.json") d = nlohmann::json::parse(text);
  }
  REQUIRE(CheckDefinition(d.dump()).ok());
  auto broken = d;
  broken["form"]["steps"][0]["fields"][0]["type"] = "slider";
  CHECK(CheckDefinition(broken.dump()).status().message().find("/form/steps/0/fields/0/type: must be one of") == 0);
  broken = d;
  broken["form"]["steps"][1]["fields"][0]["id"] = "dog_name";
  CHECK(CheckDefinition(broken.dump()).status().message() == "form: duplicate field dog_name");
  broken = d;
  broken["form"]["steps"][0]["fields"][0]["visible_when"] = {{"field", "iban"}, {"equals", "x"}};
  CHECK(CheckDefinition(broken.dump()).status().message() == "form: dog_name depends on a later or unknown field");
  broken = d;
  broken["fee"]["per_unit_field"] = "breed";
  CHECK(CheckDefinition(broken.dump()).status().message() ==
        "fee: per_unit_field must name a required integer number field");
  CHECK(CheckDefinition("{").status().message() == "definition: not valid JSON");
  broken = d;
  broken["name"]["en"] = "Dog tax\r\nBcc: evil@example.org";
  CHECK(CheckDefinition(broken.dump()).status().message() == "definition/name/en: control_characters");
  broken = d;
  broken["description"]["en"] = "Two lines:\nboth fine.";
  CHECK(CheckDefinition(broken.dump()).ok());
  broken = d;
  broken["form"]["steps"][0]["fields"][0]["label"]["de"] = "Name\xe2\x80\xae";  // U+202E
  CHECK(CheckDefinition(broken.dump()).status().message() ==
        "definition/form/steps/0/fields/0/label/de: control_characters");
  // Patterns the regex compiler cannot take safely (a count that overflows it, found by
  // the fuzzer) are refused; counts up to 1000 are fine.
  for (const std::string pattern : {"^[0-9]{1111111111111111111111}$", "^a{2,99999}$", "^a{1001}$"}) {
    broken = d;
    broken["form"]["steps"][0]["fields"][0]["pattern"] = pattern;
    CHECK(CheckDefinition(broken.dump()).status().message().find("too long or with a repetition over 1000") !=
          std::string::npos);
  }
  broken = d;
  broken["form"]["steps"][0]["fields"][0]["pattern"] = "^[A-Za-z ]{1,1000}$";
  CHECK(CheckDefinition(broken.dump()).ok());
}

TEST_CASE("a complete certificate order is valid; its fee follows the copies", "[unit]") {
  const Form form = CertificateForm();
  CHECK(form.Validate(ValidCertificate(), {}, "", kToday).empty());
  CHECK(form.Validate(ValidCertificate(), {}, "certificate", kToday).empty());
}

TEST_CASE("every rule reports its own error, all at once", "[unit]") {
  const Form form = CertificateForm();
  auto data = ValidCertificate();
  data["copies"] = 11;
  data["event_date"] = "2026-02-30";
  data["person_name"] = "A";
  data["purpose"] = "fun";
  data["email"] = "anna@";
  data["phone"] = "call me";
  data["address"]["postcode"] = "9040";
  data.erase("family_name");
  const auto errors = form.Validate(data, {}, "", kToday);
  CHECK(errors.size() == 8);
  CHECK(Has(errors, "copies", "too_large"));
  CHECK(Has(errors, "event_date", "invalid_date"));
  CHECK(Has(errors, "person_name", "too_short"));
  CHECK(Has(errors, "purpose", "invalid_option"));
  CHECK(Has(errors, "email", "invalid_email"));
  CHECK(Has(errors, "phone", "invalid_phone"));
  CHECK(Has(errors, "address.postcode", "invalid_postcode"));
  CHECK(Has(errors, "family_name", "required"));

  data = ValidCertificate();
  data["event_date"] = "2027-01-01";
  CHECK(form.Validate(data, {}, "", kToday) == std::vector<FieldError>{{"event_date", "too_late"}});
  data["event_date"] = "1800-01-01";
  CHECK(form.Validate(data, {}, "", kToday) == std::vector<FieldError>{{"event_date", "too_early"}});
  data = ValidCertificate();
  data["copies"] = 1.5;
  CHECK(form.Validate(data, {}, "", kToday) == std::vector<FieldError>{{"copies", "wrong_type"}});
  // Step validation only looks at that step.
  data = ValidCertificate();
  data.erase("email");
  CHECK(form.Validate(data, {}, "certificate", kToday).empty());
  CHECK(form.Validate(data, {}, "applicant", kToday) == std::vector<FieldError>{{"email", "required"}});
}

TEST_CASE("conditional fields are shown and required only when their condition holds", "[unit]") {
  const Form form = CertificateForm();
  auto data = ValidCertificate();
  data["certificate_type"] = "marriage";
  CHECK(form.Validate(data, {}, "", kToday) == std::vector<FieldError>{{"spouse_name", "required"}});
  data["spouse_name"] = "Ben Muster";
  CHECK(form.Validate(data, {}, "", kToday).empty());
  // A hidden field's answer is not kept.
  data["certificate_type"] = "birth";
  CHECK_FALSE(form.VisibleData(data).contains("spouse_name"));
  // A required file of a condition ("in" list).
  data["certificate_type"] = "death";
  CHECK(form.Validate(data, {}, "", kToday) == std::vector<FieldError>{{"legitimation", "required"}});
  CHECK(form.Validate(data, {{"legitimation", 1}}, "", kToday).empty());
  CHECK(form.Validate(data, {{"legitimation", 4}}, "", kToday) ==
        std::vector<FieldError>{{"legitimation", "too_many_files"}});
}

TEST_CASE("a partial update is checked for shape: unknown, wrong type, too long, read-only", "[unit]") {
  const Form form = CertificateForm();
  const auto errors = form.CheckPatch(nlohmann::json{{"nickname", "x"},
                                                     {"copies", "two"},
                                                     {"person_name", std::string(201, 'a')},
                                                     {"family_name", "Other"},
                                                     {"legitimation", "file.pdf"},
                                                     {"address", {{"street", 5}, {"planet", "Earth"}}},
                                                     {"phone", nullptr}},
                                      {"family_name"});
  CHECK(errors.size() == 7);
  CHECK(Has(errors, "nickname", "unknown_field"));
  CHECK(Has(errors, "copies", "wrong_type"));
  CHECK(Has(errors, "person_name", "too_long"));
  CHECK(Has(errors, "family_name", "read_only"));
  CHECK(Has(errors, "legitimation", "read_only"));
  CHECK(Has(errors, "address.street", "wrong_type"));
  CHECK(Has(errors, "address.planet", "unknown_field"));
}

TEST_CASE("answers are one line, except text areas, which allow line breaks and TAB only", "[unit]") {
  const Form form = CertificateForm();
  const auto errors = form.CheckPatch(nlohmann::json{{"person_name", "Anna\r\nX-Injected: yes"},
                                                     {"given_name", "Anna\xe2\x80\xa8"},  // U+2028
                                                     {"family_name", "Muster\t"},
                                                     {"address", {{"street", "Hauptmarkt\n18"}}}},
                                      {});
  CHECK(errors.size() == 4);
  CHECK(Has(errors, "person_name", "control_characters"));
  CHECK(Has(errors, "given_name", "control_characters"));
  CHECK(Has(errors, "family_name", "control_characters"));
  CHECK(Has(errors, "address.street", "control_characters"));
  CHECK(form.CheckPatch(nlohmann::json{{"person_name", "Anna Muster"}}, {}).empty());
}

TEST_CASE("prefill takes profile attributes; verified ones become read-only", "[unit]") {
  const Form form = CertificateForm();
  std::vector<std::string> read_only;
  const auto data = form.Prefill({{"given_name", {"Anna", false}},
                                  {"family_name", {"Muster", true}},
                                  {"address.street", {"Hauptmarkt", true}},
                                  {"address.house_number", {"18", true}},
                                  {"address.postcode", {"90403", true}},
                                  {"address.city", {"Nürnberg", true}}},
                                 &read_only);
  CHECK(data["given_name"] == "Anna");
  CHECK(data["family_name"] == "Muster");
  CHECK(data["address"]["city"] == "Nürnberg");
  CHECK_FALSE(data.contains("email"));
  CHECK(read_only == std::vector<std::string>{"family_name", "address"});
}

TEST_CASE("IBANs are checked by their mod-97 checksum", "[unit]") {
  CHECK(ValidIban("DE89 3704 0044 0532 0130 00"));
  CHECK(ValidIban("de89370400440532013000"));
  CHECK(ValidIban("GB82WEST12345698765432"));
  CHECK_FALSE(ValidIban("DE89 3704 0044 0532 0130 01"));  // Checksum.
  CHECK_FALSE(ValidIban("DE89 3704 0044 0532 0130"));     // Length for DE.
  CHECK_FALSE(ValidIban("not an iban"));
}

TEST_CASE("attachments are typed by content, not by name", "[unit]") {
  CHECK(api::SniffMediaType("%PDF-1.7\n...") == "application/pdf");
  CHECK(api::SniffMediaType(std::string("\x89PNG\r\n\x1a\n\0\0", 10)) == "image/png");
  CHECK(api::SniffMediaType("\xFF\xD8\xFF\xE0") == "image/jpeg");
  CHECK(api::SniffMediaType("MZ\x90\x00 an executable renamed to .pdf") == "");
  CHECK(api::SafeFilename("../../etc/passwd") == "passwd");
  CHECK(api::SafeFilename("C:\\Users\\a\\Bescheid \"neu\".pdf") == "Bescheid _neu_.pdf");
  CHECK(api::SafeFilename("") == "attachment");
}

TEST_CASE("a safe file name is valid UTF-8 without control characters, whatever was sent", "[unit]") {
  // Broken UTF-8 and C1 controls went through unchanged; now each of their bytes is "_".
  CHECK(api::SafeFilename("Antrag\xff.pdf") == "Antrag_.pdf");
  CHECK(api::SafeFilename("a\xc2\x85"
                          "b.pdf") == "a__b.pdf");
  CHECK(api::SafeFilename("Gr\xc3\xbc\xc3\x9f"
                          "e \xe2\x82\xac.pdf") ==
        "Gr\xc3\xbc\xc3\x9f"
        "e \xe2\x82\xac.pdf");
  CHECK(api::SafeFilename("x\xe2\x82") == "x__");
  CHECK(api::SafeFilename("\xf0\x9f\x98") == "___");
  CHECK(api::SafeFilename("a\x7f\x1b[31mb") == "a__[31mb");
  CHECK(api::Utf8Length(api::SafeFilename(std::string(500, 'a') + "\xc3\xbc")) == 120);
  for (const std::string& hostile :
       std::vector<std::string>{"\xc0\xaf", "\xed\xa0\x80", std::string("a\0b", 3), "\xe2\x80\xa8", "\x80\x80"}) {
    CHECK(api::IsPlainText(api::SafeFilename(hostile)));
  }
}

TEST_CASE("the receipt PDF is well-formed and carries the answers", "[unit]") {
  v1::Submission s;
  s.set_reference("NUE-2026-000123");
  s.mutable_service_name()->set_de("Personenstandsurkunde bestellen");
  s.set_data_json(ValidCertificate().dump());
  s.mutable_fee()->set_amount_minor(2400);
  s.mutable_fee()->set_currency("EUR");
  nlohmann::json definition;
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == "09564000/civil-registry-certificate.v1.json") definition = nlohmann::json::parse(text);
  }
  const auto lines = ReceiptLines(s, definition, "de");
  CHECK(lines[0] == "Aktenzeichen: NUE-2026-000123");
  CHECK(std::find(lines.begin(), lines.end(), "  Art der Urkunde: Geburtsurkunde") != lines.end());
  CHECK(lines.back() == "Gebühr: 24,00 €");
  const std::string pdf = RenderPdf("Eingangsbestätigung", lines);
  CHECK(pdf.rfind("%PDF-1.4", 0) == 0);
  CHECK(pdf.find("(Aktenzeichen: NUE-2026-000123) Tj") != std::string::npos);
  // The cross-reference table points at the objects.
  const size_t startxref = std::stoul(pdf.substr(pdf.rfind("startxref") + 10));
  CHECK(pdf.compare(startxref, 4, "xref") == 0);
}

}  // namespace stadtportal::submission

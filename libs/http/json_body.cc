#include "libs/http/json_body.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace stadtportal::http {
namespace {

constexpr int kMaxDepth = 16;

const char* TypeCode(FieldType t) {
  switch (t) {
    case FieldType::kString: return "wrong_type_string";
    case FieldType::kInteger: return "wrong_type_integer";
    case FieldType::kBoolean: return "wrong_type_boolean";
    case FieldType::kObject: return "wrong_type_object";
    case FieldType::kArray: return "wrong_type_array";
  }
  return "wrong_type";
}

bool HasType(const nlohmann::json& v, FieldType t) {
  switch (t) {
    case FieldType::kString: return v.is_string();
    case FieldType::kInteger: return v.is_number_integer();
    case FieldType::kBoolean: return v.is_boolean();
    case FieldType::kObject: return v.is_object();
    case FieldType::kArray: return v.is_array();
  }
  return false;
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonBody(const httplib::Request& req,
                                             const std::map<std::string, FieldSpec>& fields) {
  const std::string type = absl::AsciiStrToLower(req.get_header_value("Content-Type"));
  if (!absl::StartsWith(type, "application/json")) {
    return status::MalformedField("", "unsupported_media_type", "the body must be application/json");
  }
  bool too_deep = false;
  // The callback sees every value with its depth, so a deep document is rejected
  // while parsing instead of being built first.
  nlohmann::json::parser_callback_t guard = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxDepth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(req.body, guard, true, false);
  } catch (const nlohmann::json::out_of_range&) {
    // A number beyond what a double holds (1e999999).
    return status::MalformedField("", "number_out_of_range", "the body holds a number out of range");
  } catch (const nlohmann::json::exception&) {
    // parse_error, and whatever else the parser may throw on bytes from outside.
    return status::MalformedField("", "malformed_json", "the body is not valid JSON (or not valid UTF-8)");
  }
  if (too_deep) {
    return status::MalformedField("", "too_deep", "the body is nested too deeply");
  }
  if (!body.is_object()) {
    return status::MalformedField("", "not_an_object", "the body must be a JSON object");
  }
  std::vector<FieldError> errors;
  for (auto it = body.begin(); it != body.end(); ++it) {
    auto spec = fields.find(it.key());
    if (spec == fields.end()) {
      errors.push_back({it.key(), "unknown_field"});
    } else if (!HasType(it.value(), spec->second.type)) {
      errors.push_back({it.key(), TypeCode(spec->second.type)});
    }
  }
  for (const auto& [name, spec] : fields) {
    if (spec.required && !body.contains(name)) errors.push_back({name, "required"});
  }
  if (!errors.empty()) return status::InvalidFields(std::move(errors), "the request has invalid fields");
  return body;
}

std::string Language(const httplib::Request& req) {
  // Deliberately simple: the first listed language that we speak wins.
  for (absl::string_view part : absl::StrSplit(req.get_header_value("Accept-Language"), ',')) {
    std::string tag = absl::AsciiStrToLower(absl::StripAsciiWhitespace(part.substr(0, part.find(';'))));
    if (absl::StartsWith(tag, "en")) return "en";
    if (absl::StartsWith(tag, "de")) return "de";
  }
  return "de";
}

std::string Message(const std::string& code, const std::string& language) {
  static const std::map<std::string, std::pair<std::string, std::string>> kMessages = {
      {"required", {"Dieses Feld ist erforderlich.", "This field is required."}},
      {"unknown_field", {"Dieses Feld ist unbekannt.", "This field is not known."}},
      {"wrong_type_string", {"Hier wird ein Text erwartet.", "A text is expected here."}},
      {"wrong_type_integer", {"Hier wird eine ganze Zahl erwartet.", "A whole number is expected here."}},
      {"wrong_type_boolean", {"Hier wird wahr oder falsch erwartet.", "True or false is expected here."}},
      {"wrong_type_object", {"Hier wird ein Objekt erwartet.", "An object is expected here."}},
      {"wrong_type_array", {"Hier wird eine Liste erwartet.", "A list is expected here."}},
      {"invalid_postcode", {"Die Postleitzahl ist ungültig.", "The postcode is not valid."}},
      {"wrong_type", {"Der Wert hat nicht die erwartete Art.", "The value is not of the expected kind."}},
      {"too_small", {"Der Wert ist zu klein.", "The value is too small."}},
      {"too_large", {"Der Wert ist zu groß.", "The value is too large."}},
      {"too_early", {"Das Datum liegt zu weit zurück.", "The date is too early."}},
      {"too_late", {"Das Datum liegt zu spät.", "The date is too late."}},
      {"pattern_mismatch",
       {"Die Eingabe hat nicht das erwartete Format.", "The input does not have the expected format."}},
      {"invalid_option", {"Bitte wählen Sie einen der angebotenen Werte.", "Please choose one of the offered values."}},
      {"invalid_iban", {"Die IBAN ist ungültig.", "The IBAN is not valid."}},
      {"too_many_files", {"Es sind zu viele Dateien.", "There are too many files."}},
      {"read_only", {"Dieser Wert kann hier nicht geändert werden.", "This value cannot be changed here."}},
      {"type_not_allowed", {"Diese Dateiart ist hier nicht erlaubt.", "This type of file is not allowed here."}},
      {"not_a_file_field", {"Dieses Feld nimmt keine Dateien auf.", "This field does not take files."}},
      {"reused",
       {"Dieser Schlüssel wurde schon für eine andere Anfrage verwendet.",
        "This key was already used for another request."}},
      {"out_of_range", {"Der Wert liegt außerhalb des erlaubten Bereichs.", "The value is out of range."}},
      {"stale",
       {"Die Daten wurden inzwischen geändert; bitte neu laden.", "The data changed in the meantime; please reload."}},
      {"invalid_country",
       {"Das Land ist ungültig (zwei Buchstaben, z. B. DE).", "The country is not valid (two letters, e.g. DE)."}},
      {"invalid_date", {"Das Datum ist ungültig (JJJJ-MM-TT).", "The date is not valid (YYYY-MM-DD)."}},
      {"date_in_future", {"Das Datum darf nicht in der Zukunft liegen.", "The date must not be in the future."}},
      {"invalid_phone", {"Die Telefonnummer ist ungültig.", "The phone number is not valid."}},
      {"verified",
       {"Diese Angabe ist bestätigt und kann nicht geändert werden.",
        "This detail is verified and cannot be changed."}},
      {"invalid_role",
       {"Die Rolle ist unbekannt (owner, admin, member).", "The role is not known (owner, admin, member)."}},
      {"last_owner",
       {"Die Organisation braucht mindestens eine Inhaberin oder einen Inhaber.",
        "The organisation needs at least one owner."}},
      {"malformed_json", {"Die Anfrage ist kein gültiges JSON.", "The request is not valid JSON."}},
      {"number_out_of_range",
       {"Die Anfrage enthält eine zu große Zahl.", "The request contains a number that is too large."}},
      {"too_deep", {"Die Anfrage ist zu tief verschachtelt.", "The request is nested too deeply."}},
      {"not_an_object", {"Die Anfrage muss ein JSON-Objekt sein.", "The request must be a JSON object."}},
      {"unsupported_media_type",
       {"Die Anfrage muss als application/json gesendet werden.", "The request must be sent as application/json."}},
      {"invalid_email", {"Das ist keine gültige E-Mail-Adresse.", "This is not a valid e-mail address."}},
      {"control_characters",
       {"Der Text enthält Steuerzeichen oder Zeilenumbrüche, die hier nicht erlaubt sind.",
        "The text contains control characters or line breaks that are not allowed here."}},
      {"too_short", {"Das Passwort muss mindestens 10 Zeichen haben.", "The password needs at least 10 characters."}},
      {"too_long", {"Das Passwort darf höchstens 128 Zeichen haben.", "The password may have at most 128 characters."}},
      {"common_password",
       {"Dieses Passwort ist zu verbreitet; bitte wählen Sie ein anderes.",
        "This password is too common; please choose another."}},
      {"invalid_token", {"Der Link ist ungültig oder abgelaufen.", "The link is invalid or has expired."}},
      {"wrong_password", {"Das Passwort ist nicht richtig.", "The password is not correct."}},
      {"invalid", {"Der Wert ist ungültig.", "The value is not valid."}},
  };
  auto it = kMessages.find(code);
  if (it == kMessages.end()) it = kMessages.find("invalid");
  return language == "en" ? it->second.second : it->second.first;
}

}  // namespace stadtportal::http

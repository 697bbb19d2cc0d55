#include "services/submission/catalogue.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/api/text.h"
#include "libs/auth/tokens.h"
#include "libs/status/status.h"
#include "services/submission/json_schema.h"

namespace stadtportal::submission {
namespace {

constexpr char kSchemaFile[] = "catalogue.schema.json";

const JsonSchema& Schema() {
  static const JsonSchema* schema = [] {
    for (const auto& [path, text] : CatalogueFiles()) {
      if (path == kSchemaFile) return new JsonSchema(nlohmann::json::parse(text));
    }
    throw std::logic_error("catalogue.schema.json is not compiled in");
  }();
  return *schema;
}

// Titles, labels, option values and ids are shown as one line (and become mail and
// thread subjects); longer texts may have line breaks. No other control characters
// anywhere. Returns the JSON pointer of the first offending string, "" if none.
std::string ControlCharactersAt(const nlohmann::json& j, const std::string& path, bool line) {
  if (j.is_string()) {
    return api::HasControlCharacters(j.get_ref<const std::string&>(),
                                     line ? api::TextKind::kLine : api::TextKind::kMultiline)
               ? (path.empty() ? "/" : path)
               : "";
  }
  if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      if (auto at = ControlCharactersAt(j[i], absl::StrCat(path, "/", i), line); !at.empty()) return at;
    }
  } else if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      // Longer texts (in either language) may have line breaks; everything else is a line.
      const bool text = key == "description" || key == "help" || key == "hint" || key == "text";
      const bool child_line = key == "de" || key == "en" ? line : !text;
      if (auto at = ControlCharactersAt(value, absl::StrCat(path, "/", key), child_line); !at.empty()) return at;
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<Definition> CheckDefinition(const std::string& text) {
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) return status::FieldError("definition", "invalid", "not valid JSON");
  if (auto at = ControlCharactersAt(json, "", true); !at.empty()) {
    return status::FieldError(absl::StrCat("definition", at), "control_characters");
  }
  if (auto errors = Schema().Validate(json); !errors.empty()) {
    // Each "/json/pointer: message" names the place in the definition.
    std::vector<status::FieldViolation> violations;
    for (const auto& e : errors) violations.push_back({e.substr(0, e.find(": ")), "invalid"});
    return status::InvalidFields(std::move(violations), absl::StrJoin(errors, "; "));
  }
  auto form = Form::Parse(json["form"]);
  if (!form.ok()) return form.status();
  const std::string unit = json["fee"].value("per_unit_field", "");
  if (!unit.empty()) {
    const FieldDef* f = form->Find(unit);
    if (f == nullptr || f->type != "number" || !f->integer || !f->required) {
      return status::FieldError("fee", "invalid", "per_unit_field must name a required integer number field");
    }
  }
  Definition d;
  d.json = json;
  d.tenant = json["tenant"];
  d.id = json["id"];
  d.version = json["version"];
  d.sha256 = DefinitionSha256(json);
  return d;
}

absl::StatusOr<std::vector<Definition>> LoadCatalogue() {
  std::vector<Definition> out;
  for (const auto& [path, text] : CatalogueFiles()) {
    if (path == kSchemaFile) continue;
    auto d = CheckDefinition(text);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("catalogue/", path, ": ", d.status().message()));
    const std::string expected = absl::StrCat(d->tenant, "/", d->id, ".v", d->version, ".json");
    if (path != expected) {
      return absl::InvalidArgumentError(absl::StrCat("catalogue/", path, ": must be named ", expected));
    }
    out.push_back(*std::move(d));
  }
  std::sort(out.begin(), out.end(), [](const Definition& a, const Definition& b) {
    return std::tie(a.tenant, a.id, a.version) < std::tie(b.tenant, b.id, b.version);
  });
  return out;
}

std::string DefinitionSha256(const nlohmann::json& definition) {
  return absl::BytesToHexString(auth::Sha256(definition.dump()));
}

Form FormOf(const Definition& d) { return *Form::Parse(d.json["form"]); }

}  // namespace stadtportal::submission

#pragma once

#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"

namespace stadtportal::submission {

// One error in the answers: the field ("address.postcode" for a part) and a stable code.
struct FieldError {
  std::string field;
  std::string code;
  bool operator==(const FieldError& o) const { return field == o.field && code == o.code; }
};

// "B is shown (and, when required, required) when A equals x / is one of [x, y]".
struct Condition {
  std::string field;
  nlohmann::json equals;  // null when `in` is used.
  std::vector<std::string> in;
};

struct FieldDef {
  std::string id;
  std::string type;  // text number date select multiselect checkbox file address iban email phone
  std::string step;
  bool required = false;
  bool integer = false;
  nlohmann::json min, max;  // Numbers, or dates "YYYY-MM-DD" / "today".
  std::optional<size_t> min_length;
  size_t max_length = 1000;
  std::optional<std::regex> pattern;
  std::vector<std::string> options;
  std::string prefill;  // Profile attribute, "" = none.
  std::vector<std::string> accept;
  int64_t max_size_bytes = 10 << 20;
  int max_files = 1;
  std::optional<Condition> visible_when;
};

// A prefill candidate from the applicant's profile.
struct ProfileValue {
  std::string value;
  bool verified = false;
};

// A form definition ("form" of a catalogue entry) and the rules it imposes on answers.
// Answers are a JSON object by field id; files are attachments, counted per field.
class Form {
 public:
  // Parses a definition that passed catalogue.schema.json and checks what a schema
  // cannot: unique ids, conditions on earlier fields, options where needed, valid
  // patterns and bounds. INVALID_ARGUMENT naming the problem otherwise.
  static absl::StatusOr<Form> Parse(const nlohmann::json& form);

  const FieldDef* Find(const std::string& id) const;
  bool HasStep(const std::string& step) const;
  const std::vector<std::string>& steps() const { return steps_; }
  const std::vector<FieldDef>& fields() const { return fields_; }

  // The shape of a partial update (autosave): unknown fields, wrong types, overlong
  // text, read-only or file fields. Rules such as "required" wait for Validate.
  std::vector<FieldError> CheckPatch(const nlohmann::json& patch, const std::set<std::string>& read_only) const;

  // Every rule of the visible fields of `step` ("" = all steps), at once.
  std::vector<FieldError> Validate(const nlohmann::json& data, const std::map<std::string, int>& files,
                                   const std::string& step, absl::CivilDay today) const;

  bool Visible(const FieldDef& field, const nlohmann::json& data) const;
  // The answers of visible fields only (what a submission keeps).
  nlohmann::json VisibleData(const nlohmann::json& data) const;

  // Answers prefilled from the profile; fields from verified attributes go to `read_only`.
  nlohmann::json Prefill(const std::map<std::string, ProfileValue>& profile, std::vector<std::string>* read_only) const;

 private:
  std::vector<std::string> steps_;
  std::vector<FieldDef> fields_;
};

// IBAN checksum (ISO 13616, mod 97) and country length for DE; spaces are ignored.
bool ValidIban(const std::string& iban);

}  // namespace stadtportal::submission

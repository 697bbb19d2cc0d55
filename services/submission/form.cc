#include "services/submission/form.h"
#include "services/submission/json_schema.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"
#include "libs/status/status.h"

namespace stadtportal::submission {
namespace {

const std::vector<std::string> kAddressParts = {"street", "house_number", "postcode", "city"};

// A pattern the regex compiler can take: at most 512 bytes, and every counted repetition
// ({n}, {n,}, {n,m}) at most 1000 (libstdc++ overflows on larger counts).
bool IsBoundedPattern(const std::string& pattern) {
  if (pattern.size() > 512) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '{' && pattern[i] != ',') continue;
    size_t digits = 0, value = 0;
    for (size_t k = i + 1; k < pattern.size() && pattern[k] >= '0' && pattern[k] <= '9'; ++k, ++digits) {
      if (digits == 4) return false;
      value = value * 10 + static_cast<size_t>(pattern[k] - '0');
    }
    if (value > 1000) return false;
  }
  return true;
}

bool IsStringType(const std::string& t) {
  return t == "text" || t == "date" || t == "select" || t == "iban" || t == "email" || t == "phone";
}

// The longest string a field of this type may hold.
size_t MaxLength(const FieldDef& f) {
  if (f.type == "email") return 254;
  if (f.type == "phone") return 30;
  if (f.type == "iban") return 42;  // With spaces.
  if (f.type == "date") return 10;
  if (f.type == "select") return 64;
  return f.max_length;
}

// Text fields longer than a line (max_length over 200, e.g. notes) are text areas: line
// breaks and TAB allowed. Every other string answer is one line.
api::TextKind TextKindOf(const FieldDef& f) {
  return f.type == "text" && f.max_length > 200 ? api::TextKind::kMultiline : api::TextKind::kLine;
}

std::optional<absl::CivilDay> ParseDate(const std::string& s) {
  static const std::regex kDate("^([0-9]{4})-([0-9]{2})-([0-9]{2})$");
  std::smatch m;
  if (!std::regex_match(s, m, kDate)) return std::nullopt;
  const int y = std::stoi(m[1]), mo = std::stoi(m[2]), d = std::stoi(m[3]);
  absl::CivilDay day(y, mo, d);
  // CivilDay normalises 02-30 to 03-02: a date is valid only if it survives unchanged.
  if (day.year() != y || day.month() != mo || day.day() != d) return std::nullopt;
  return day;
}

std::optional<absl::CivilDay> Bound(const nlohmann::json& b, absl::CivilDay today) {
  if (!b.is_string()) return std::nullopt;
  if (b.get<std::string>() == "today") return today;
  return ParseDate(b.get<std::string>());
}

bool Empty(const nlohmann::json& v) {
  return v.is_null() || (v.is_string() && v.get<std::string>().empty()) || (v.is_array() && v.empty()) ||
         (v.is_boolean() && !v.get<bool>()) || (v.is_object() && v.empty());
}

// The structural error of a value for a field ("" when the shape is right).
void CheckShape(const FieldDef& f, const nlohmann::json& v, std::vector<FieldError>& errors) {
  if (v.is_null()) return;  // Removes the answer.
  if (f.type == "file") {
    errors.push_back({f.id, "read_only"});  // Files are attachments, not answers.
  } else if (IsStringType(f.type)) {
    if (!v.is_string()) {
      errors.push_back({f.id, "wrong_type"});
    } else if (static_cast<size_t>(api::Utf8Length(v.get<std::string>())) > MaxLength(f)) {
      errors.push_back({f.id, "too_long"});
    } else if (api::HasControlCharacters(v.get<std::string>(), TextKindOf(f))) {
      errors.push_back({f.id, "control_characters"});
    }
  } else if (f.type == "number") {
    if (!v.is_number()) errors.push_back({f.id, "wrong_type"});
  } else if (f.type == "checkbox") {
    if (!v.is_boolean()) errors.push_back({f.id, "wrong_type"});
  } else if (f.type == "multiselect") {
    if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const auto& e) { return e.is_string(); })) {
      errors.push_back({f.id, "wrong_type"});
    } else if (v.size() > f.options.size()) {
      errors.push_back({f.id, "too_long"});
    }
  } else if (f.type == "address") {
    if (!v.is_object()) {
      errors.push_back({f.id, "wrong_type"});
      return;
    }
    for (const auto& [part, value] : v.items()) {
      const std::string name = absl::StrCat(f.id, ".", part);
      if (std::find(kAddressParts.begin(), kAddressParts.end(), part) == kAddressParts.end()) {
        errors.push_back({name, "unknown_field"});
      } else if (!value.is_string()) {
        errors.push_back({name, "wrong_type"});
      } else if (api::Utf8Length(value.get<std::string>()) > 200) {
        errors.push_back({name, "too_long"});
      } else if (api::HasControlCharacters(value.get<std::string>(), api::TextKind::kLine)) {
        errors.push_back({name, "control_characters"});
      }
    }
  }
}

}  // namespace

bool ValidIban(const std::string& raw) {
  std::string iban;
  for (char c : raw) {
    if (c != ' ') iban += absl::ascii_toupper(static_cast<unsigned char>(c));
  }
  static const std::regex kShape("^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$");
  if (!std::regex_match(iban, kShape)) return false;
  if (iban.rfind("DE", 0) == 0 && iban.size() != 22) return false;
  const std::string rearranged = iban.substr(4) + iban.substr(0, 4);
  int remainder = 0;
  for (char c : rearranged) {
    const int v = absl::ascii_isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'A' + 10;
    remainder = (v >= 10 ? remainder * 100 + v : remainder * 10 + v) % 97;
  }
  return remainder == 1;
}

absl::StatusOr<Form> Form::Parse(const nlohmann::json& form) {
  Form out;
  std::set<std::string> ids;
  for (const auto& step : form.at("steps")) {
    const std::string step_id = step.at("id");
    if (out.HasStep(step_id)) return status::FieldError("form", "invalid", "duplicate step " + step_id);
    out.steps_.push_back(step_id);
    for (const auto& j : step.at("fields")) {
      FieldDef f;
      f.id = j.at("id");
      f.type = j.at("type");
      f.step = step_id;
      if (!ids.insert(f.id).second) return status::FieldError("form", "invalid", "duplicate field " + f.id);
      f.required = j.value("required", false);
      f.integer = j.value("integer", false);
      f.min = j.value("min", nlohmann::json());
      f.max = j.value("max", nlohmann::json());
      if (j.contains("min_length")) f.min_length = j["min_length"].get<size_t>();
      f.max_length = j.value("max_length", f.max_length);
      if (j.contains("pattern")) {
        const std::string pattern = j["pattern"].get<std::string>();
        if (!IsBoundedPattern(pattern)) {
          return status::FieldError("form", "invalid",
                                    "pattern of " + f.id + " too long or with a repetition over 1000");
        }
        try {
          f.pattern = std::regex(pattern, std::regex::ECMAScript);
        } catch (const std::regex_error&) {
          return status::FieldError("form", "invalid", "invalid pattern of " + f.id);
        }
      }
      for (const auto& o : j.value("options", nlohmann::json::array())) f.options.push_back(o.at("value"));
      f.prefill = j.value("prefill", "");
      for (const auto& a : j.value("accept", nlohmann::json::array())) f.accept.push_back(a);
      f.max_size_bytes = j.value("max_size_bytes", f.max_size_bytes);
      f.max_files = j.value("max_files", f.max_files);
      const bool choice = f.type == "select" || f.type == "multiselect";
      if (choice != !f.options.empty()) {
        return status::FieldError("form", "invalid", "options belong to select and multiselect fields: " + f.id);
      }
      if ((f.type == "file") == f.accept.empty()) {
        return status::FieldError("form", "invalid", "accept belongs to file fields: " + f.id);
      }
      for (const auto* bound : {&f.min, &f.max}) {
        if (bound->is_null()) continue;
        const bool ok = f.type == "number" ? bound->is_number()
                        : f.type == "date" ? Bound(*bound, absl::CivilDay(2000, 1, 1)).has_value()
                                           : false;
        if (!ok) return status::FieldError("form", "invalid", "min/max do not fit the type of " + f.id);
      }
      if (j.contains("visible_when")) {
        const auto& c = j["visible_when"];
        Condition cond{c.at("field"), c.value("equals", nlohmann::json()), {}};
        for (const auto& v : c.value("in", nlohmann::json::array())) cond.in.push_back(v);
        const FieldDef* on = out.Find(cond.field);
        if (on == nullptr) return status::FieldError("form", "invalid", f.id + " depends on a later or unknown field");
        if (on->type == "file") return status::FieldError("form", "invalid", f.id + " depends on a file field");
        if (cond.equals.is_null() == cond.in.empty()) {
          return status::FieldError("form", "invalid", "the condition of " + f.id + " needs equals or in");
        }
        f.visible_when = std::move(cond);
      }
      out.fields_.push_back(std::move(f));
    }
  }
  return out;
}

const FieldDef* Form::Find(const std::string& id) const {
  for (const auto& f : fields_) {
    if (f.id == id) return &f;
  }
  return nullptr;
}

bool Form::HasStep(const std::string& step) const {
  return std::find(steps_.begin(), steps_.end(), step) != steps_.end();
}

bool Form::Visible(const FieldDef& field, const nlohmann::json& data) const {
  if (!field.visible_when) return true;
  const auto& c = *field.visible_when;
  const FieldDef* on = Find(c.field);
  if (on == nullptr || !Visible(*on, data) || !data.contains(c.field)) return false;
  const auto& v = data[c.field];
  if (!c.equals.is_null()) return v == c.equals;
  auto listed = [&](const nlohmann::json& e) {
    return e.is_string() && std::find(c.in.begin(), c.in.end(), e.get<std::string>()) != c.in.end();
  };
  if (v.is_array()) return std::any_of(v.begin(), v.end(), listed);
  return listed(v);
}

std::vector<FieldError> Form::CheckPatch(const nlohmann::json& patch, const std::set<std::string>& read_only) const {
  std::vector<FieldError> errors;
  for (const auto& [id, value] : patch.items()) {
    const FieldDef* f = Find(id);
    if (f == nullptr) {
      errors.push_back({id, "unknown_field"});
    } else if (read_only.count(id)) {
      errors.push_back({id, "read_only"});
    } else {
      CheckShape(*f, value, errors);
    }
  }
  return errors;
}

std::vector<FieldError> Form::Validate(const nlohmann::json& data, const std::map<std::string, int>& files,
                                       const std::string& step, absl::CivilDay today) const {
  std::vector<FieldError> errors;
  for (const auto& [id, value] : data.items()) {
    const FieldDef* f = Find(id);
    if (f == nullptr) {
      errors.push_back({id, "unknown_field"});
    } else if (step.empty() || f->step == step) {
      CheckShape(*f, value, errors);
    }
  }
  if (!errors.empty()) return errors;

  for (const auto& f : fields_) {
    if (!step.empty() && f.step != step) continue;
    if (!Visible(f, data)) continue;
    if (f.type == "file") {
      auto it = files.find(f.id);
      const int n = it == files.end() ? 0 : it->second;
      if (f.required && n == 0) errors.push_back({f.id, "required"});
      if (n > f.max_files) errors.push_back({f.id, "too_many_files"});
      continue;
    }
    const nlohmann::json v = data.contains(f.id) ? data[f.id] : nlohmann::json();
    if (Empty(v)) {
      if (f.required) errors.push_back({f.id, "required"});
      if (f.type != "address" || v.is_null()) continue;
    }
    if (f.type == "text") {
      const auto& s = v.get_ref<const std::string&>();
      if (f.min_length && static_cast<size_t>(api::Utf8Length(s)) < *f.min_length)
        errors.push_back({f.id, "too_short"});
      if (f.pattern && !std::regex_match(s, *f.pattern)) errors.push_back({f.id, "pattern_mismatch"});
    } else if (f.type == "number") {
      const double d = v.get<double>();
      if (f.integer && !IsWholeInt64(d)) {
        errors.push_back({f.id, "wrong_type"});
      } else if (f.min.is_number() && d < f.min.get<double>()) {
        errors.push_back({f.id, "too_small"});
      } else if (f.max.is_number() && d > f.max.get<double>()) {
        errors.push_back({f.id, "too_large"});
      }
    } else if (f.type == "date") {
      auto day = ParseDate(v.get<std::string>());
      if (!day) {
        errors.push_back({f.id, "invalid_date"});
      } else if (auto lo = Bound(f.min, today); lo && *day < *lo) {
        errors.push_back({f.id, "too_early"});
      } else if (auto hi = Bound(f.max, today); hi && *day > *hi) {
        errors.push_back({f.id, "too_late"});
      }
    } else if (f.type == "select") {
      if (std::find(f.options.begin(), f.options.end(), v.get<std::string>()) == f.options.end()) {
        errors.push_back({f.id, "invalid_option"});
      }
    } else if (f.type == "multiselect") {
      std::set<std::string> seen;
      for (const auto& e : v) {
        const std::string s = e;
        if (std::find(f.options.begin(), f.options.end(), s) == f.options.end() || !seen.insert(s).second) {
          errors.push_back({f.id, "invalid_option"});
          break;
        }
      }
    } else if (f.type == "iban") {
      if (!ValidIban(v.get<std::string>())) errors.push_back({f.id, "invalid_iban"});
    } else if (f.type == "email") {
      static const std::regex kEmail(R"(^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$)");
      if (!std::regex_match(v.get<std::string>(), kEmail)) errors.push_back({f.id, "invalid_email"});
    } else if (f.type == "phone") {
      static const std::regex kPhone(R"(^\+?[0-9][0-9 ()/-]{4,28}[0-9]$)");
      if (!std::regex_match(v.get<std::string>(), kPhone)) errors.push_back({f.id, "invalid_phone"});
    } else if (f.type == "address") {
      for (const auto& part : kAddressParts) {
        const std::string s = v.is_object() && v.contains(part) ? v[part].get<std::string>() : "";
        if (s.empty()) {
          if (f.required || !Empty(v)) errors.push_back({absl::StrCat(f.id, ".", part), "required"});
        } else if (part == "postcode" && !std::regex_match(s, std::regex("^[0-9]{5}$"))) {
          errors.push_back({absl::StrCat(f.id, ".", part), "invalid_postcode"});
        }
      }
    }
  }
  return errors;
}

nlohmann::json Form::VisibleData(const nlohmann::json& data) const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : fields_) {
    if (data.contains(f.id) && !data[f.id].is_null() && Visible(f, data)) out[f.id] = data[f.id];
  }
  return out;
}

nlohmann::json Form::Prefill(const std::map<std::string, ProfileValue>& profile,
                             std::vector<std::string>* read_only) const {
  nlohmann::json data = nlohmann::json::object();
  for (const auto& f : fields_) {
    if (f.prefill.empty()) continue;
    if (f.prefill == "address") {
      nlohmann::json address = nlohmann::json::object();
      bool verified = true;
      for (const auto& part : kAddressParts) {
        auto it = profile.find("address." + part);
        if (it == profile.end()) continue;
        address[part] = it->second.value;
        verified = verified && it->second.verified;
      }
      if (address.empty()) continue;
      data[f.id] = address;
      if (verified && address.size() == kAddressParts.size()) read_only->push_back(f.id);
      continue;
    }
    auto it = profile.find(f.prefill);
    if (it == profile.end() || static_cast<size_t>(api::Utf8Length(it->second.value)) > MaxLength(f)) continue;
    data[f.id] = it->second.value;
    if (it->second.verified) read_only->push_back(f.id);
  }
  return data;
}

}  // namespace stadtportal::submission

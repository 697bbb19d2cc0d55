#include "services/submission/json_schema.h"

#include <cmath>

#include <regex>
#include <set>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "libs/api/api.h"

namespace stadtportal::submission {
namespace {

const std::set<std::string>& Supported() {
  static const std::set<std::string> kKeywords = {
      "$schema",   "$id",      "$defs",    "$ref",       "title",    "description",
      "type",      "enum",     "const",    "properties", "required", "additionalProperties",
      "items",     "minItems", "maxItems", "minimum",    "maximum",  "minLength",
      "maxLength", "pattern",  "allOf",    "anyOf",      "oneOf"};
  return kKeywords;
}

bool HasType(const nlohmann::json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "number") return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    if (!v.is_number_float()) return false;
    return IsWholeInt64(v.get<double>());
  }
  return false;
}

std::string Pointer(const std::string& at, const std::string& token) { return absl::StrCat(at, "/", token); }

}  // namespace

bool IsWholeInt64(double d) { return std::isfinite(d) && std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18; }

JsonSchema::JsonSchema(nlohmann::json schema) : root_(std::move(schema)) { Check(root_, ""); }

void JsonSchema::Check(const nlohmann::json& schema, const std::string& at) const {
  if (schema.is_boolean()) return;
  if (!schema.is_object()) throw std::invalid_argument(absl::StrCat("schema", at, ": not an object"));
  for (const auto& [key, value] : schema.items()) {
    if (!Supported().count(key)) throw std::invalid_argument(absl::StrCat("schema", at, ": unsupported keyword ", key));
    if (key == "$ref") Resolve(value.get<std::string>());
    if (key == "pattern") std::regex(value.get<std::string>(), std::regex::ECMAScript);  // Throws when invalid.
  }
  for (const char* map : {"properties", "$defs"}) {
    if (schema.contains(map)) {
      for (const auto& [name, sub] : schema[map].items()) Check(sub, absl::StrCat(at, "/", map, "/", name));
    }
  }
  for (const char* one : {"items", "additionalProperties"}) {
    if (schema.contains(one)) Check(schema[one], absl::StrCat(at, "/", one));
  }
  for (const char* list : {"allOf", "anyOf", "oneOf"}) {
    if (schema.contains(list)) {
      for (const auto& sub : schema[list]) Check(sub, absl::StrCat(at, "/", list));
    }
  }
}

const nlohmann::json& JsonSchema::Resolve(const std::string& ref) const {
  constexpr std::string_view kPrefix = "#/$defs/";
  if (ref.rfind(kPrefix, 0) != 0) throw std::invalid_argument("schema: only #/$defs/ references are supported: " + ref);
  const std::string name = ref.substr(kPrefix.size());
  if (!root_.contains("$defs") || !root_["$defs"].contains(name)) {
    throw std::invalid_argument("schema: unresolved reference " + ref);
  }
  return root_["$defs"][name];
}

std::vector<std::string> JsonSchema::Validate(const nlohmann::json& instance) const {
  std::vector<std::string> errors;
  Validate(root_, instance, "", errors);
  return errors;
}

void JsonSchema::Validate(const nlohmann::json& s, const nlohmann::json& v, const std::string& at,
                          std::vector<std::string>& errors) const {
  auto fail = [&](const std::string& message) { errors.push_back(absl::StrCat(at.empty() ? "/" : at, ": ", message)); };
  if (s.is_boolean()) {
    if (!s.get<bool>()) fail("not allowed");
    return;
  }
  if (s.contains("$ref")) Validate(Resolve(s["$ref"]), v, at, errors);
  if (s.contains("type")) {
    bool ok = false;
    if (s["type"].is_string()) {
      ok = HasType(v, s["type"]);
    } else {
      for (const auto& t : s["type"]) ok = ok || HasType(v, t);
    }
    if (!ok) {
      fail(absl::StrCat("must be of type ", s["type"].is_string() ? s["type"].get<std::string>() : s["type"].dump()));
      return;
    }
  }
  if (s.contains("enum")) {
    bool found = false;
    for (const auto& e : s["enum"]) found = found || e == v;
    if (!found) fail(absl::StrCat("must be one of ", s["enum"].dump()));
  }
  if (s.contains("const") && s["const"] != v) fail(absl::StrCat("must be ", s["const"].dump()));
  if (v.is_object()) {
    if (s.contains("required")) {
      for (const auto& r : s["required"]) {
        if (!v.contains(r.get<std::string>()))
          fail(absl::StrCat("required property ", r.get<std::string>(), " missing"));
      }
    }
    for (const auto& [key, value] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(key)) {
        Validate(s["properties"][key], value, Pointer(at, key), errors);
      } else if (s.contains("additionalProperties")) {
        if (s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>()) {
          errors.push_back(absl::StrCat(Pointer(at, key), ": unknown property"));
        } else {
          Validate(s["additionalProperties"], value, Pointer(at, key), errors);
        }
      }
    }
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) {
      fail(absl::StrCat("must have at least ", s["minItems"].get<size_t>(), " items"));
    }
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) {
      fail(absl::StrCat("must have at most ", s["maxItems"].get<size_t>(), " items"));
    }
    if (s.contains("items")) {
      for (size_t i = 0; i < v.size(); ++i) Validate(s["items"], v[i], Pointer(at, std::to_string(i)), errors);
    }
  }
  if (v.is_number()) {
    if (s.contains("minimum") && v.get<double>() < s["minimum"].get<double>())
      fail(absl::StrCat("must be >= ", s["minimum"].dump()));
    if (s.contains("maximum") && v.get<double>() > s["maximum"].get<double>())
      fail(absl::StrCat("must be <= ", s["maximum"].dump()));
  }
  if (v.is_string()) {
    const auto& str = v.get_ref<const std::string&>();
    if (s.contains("minLength") && static_cast<size_t>(api::Utf8Length(str)) < s["minLength"].get<size_t>()) {
      fail(absl::StrCat("must have at least ", s["minLength"].get<size_t>(), " characters"));
    }
    if (s.contains("maxLength") && static_cast<size_t>(api::Utf8Length(str)) > s["maxLength"].get<size_t>()) {
      fail(absl::StrCat("must have at most ", s["maxLength"].get<size_t>(), " characters"));
    }
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) {
      fail(absl::StrCat("must match ", s["pattern"].get<std::string>()));
    }
  }
  auto count_valid = [&](const nlohmann::json& list) {
    int n = 0;
    for (const auto& sub : list) {
      std::vector<std::string> sub_errors;
      Validate(sub, v, at, sub_errors);
      n += sub_errors.empty();
    }
    return n;
  };
  if (s.contains("allOf")) {
    for (const auto& sub : s["allOf"]) Validate(sub, v, at, errors);
  }
  if (s.contains("anyOf") && count_valid(s["anyOf"]) == 0) fail("must match at least one schema of anyOf");
  if (s.contains("oneOf") && count_valid(s["oneOf"]) != 1) fail("must match exactly one schema of oneOf");
}

}  // namespace stadtportal::submission

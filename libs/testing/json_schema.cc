#include "libs/testing/json_schema.h"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <stdexcept>

namespace stadtportal::testing {
namespace {

bool HasType(const nlohmann::json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  throw std::runtime_error("schema: unknown type " + type);
}

bool HasFormat(const std::string& s, const std::string& format) {
  static const std::regex kDateTime(R"(^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$)");
  static const std::regex kDate(R"(^[0-9]{4}-[0-9]{2}-[0-9]{2}$)");
  static const std::regex kUuid(R"(^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)");
  if (format == "date-time") return std::regex_match(s, kDateTime);
  if (format == "date") return std::regex_match(s, kDate);
  if (format == "uuid") return std::regex_match(s, kUuid);
  throw std::runtime_error("schema: unknown format " + format);
}

void Check(const nlohmann::json& root, const nlohmann::json& schema, const nlohmann::json& v, const std::string& at,
           std::vector<std::string>& out) {
  static const std::set<std::string> kKnown = {
      "$schema", "$id",     "title", "description", "$defs",  "type", "properties", "required", "additionalProperties",
      "items",   "minimum", "enum",  "const",       "format", "$ref"};
  for (const auto& [key, _] : schema.items()) {
    if (kKnown.count(key) == 0) throw std::runtime_error("schema: unknown keyword " + key);
  }
  if (schema.contains("$ref")) {
    const std::string ref = schema["$ref"];
    const std::string prefix = "#/$defs/";
    if (ref.rfind(prefix, 0) != 0 || !root["$defs"].contains(ref.substr(prefix.size()))) {
      throw std::runtime_error("schema: unknown $ref " + ref);
    }
    Check(root, root["$defs"][ref.substr(prefix.size())], v, at, out);
  }
  if (schema.contains("type")) {
    bool ok = false;
    if (schema["type"].is_array()) {
      for (const auto& t : schema["type"]) ok = ok || HasType(v, t);
    } else {
      ok = HasType(v, schema["type"]);
    }
    if (!ok) {
      out.push_back(at + ": not of type " + schema["type"].dump());
      return;
    }
  }
  if (schema.contains("enum") && std::find(schema["enum"].begin(), schema["enum"].end(), v) == schema["enum"].end()) {
    out.push_back(at + ": " + v.dump() + " not one of " + schema["enum"].dump());
  }
  if (schema.contains("const") && schema["const"] != v) out.push_back(at + ": not " + schema["const"].dump());
  if (schema.contains("minimum") && v.is_number() && v.get<double>() < schema["minimum"].get<double>()) {
    out.push_back(at + ": below " + schema["minimum"].dump());
  }
  if (schema.contains("format") && v.is_string() && !HasFormat(v, schema["format"])) {
    out.push_back(at + ": " + v.dump() + " is no " + std::string(schema["format"]));
  }
  if (v.is_object()) {
    for (const auto& name : schema.value("required", nlohmann::json::array())) {
      if (!v.contains(name)) out.push_back(at + ": " + std::string(name) + " missing");
    }
    const auto properties = schema.value("properties", nlohmann::json::object());
    for (const auto& [name, member] : v.items()) {
      if (properties.contains(name)) {
        Check(root, properties[name], member, at + "/" + name, out);
      } else if (schema.contains("additionalProperties") && schema["additionalProperties"] == false) {
        out.push_back(at + ": " + name + " not described");
      }
    }
  }
  if (v.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < v.size(); ++i) Check(root, schema["items"], v[i], at + "/" + std::to_string(i), out);
  }
}

}  // namespace

std::vector<std::string> SchemaViolations(const std::string& schema_path, const nlohmann::json& value) {
  std::ifstream in(schema_path);
  if (!in) throw std::runtime_error("cannot read " + schema_path);
  const auto schema = nlohmann::json::parse(in);
  std::vector<std::string> out;
  Check(schema, schema, value, "", out);
  return out;
}

}  // namespace stadtportal::testing

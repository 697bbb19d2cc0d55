#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace stadtportal::submission {

// A JSON Schema (draft 2020-12) validator for the keywords the catalogue schema uses:
// type, enum, const, properties, required, additionalProperties, items, minItems,
// maxItems, minimum, maximum, minLength, maxLength (in code points), pattern (ECMAScript),
// $ref to "#/$defs/…", allOf, anyOf, oneOf. Any other keyword is refused when the
// schema is loaded, so a schema never silently means less than it says.
// Whether `d` is a whole number within int64 (converting one outside would be undefined).
bool IsWholeInt64(double d);

class JsonSchema {
 public:
  // Throws std::invalid_argument for an unsupported keyword or a bad $ref.
  explicit JsonSchema(nlohmann::json schema);

  // Every violation as "/json/pointer: message"; empty when valid.
  std::vector<std::string> Validate(const nlohmann::json& instance) const;

 private:
  void Check(const nlohmann::json& schema, const std::string& at) const;
  void Validate(const nlohmann::json& schema, const nlohmann::json& value, const std::string& at,
                std::vector<std::string>& errors) const;
  const nlohmann::json& Resolve(const std::string& ref) const;

  nlohmann::json root_;
};

}  // namespace stadtportal::submission

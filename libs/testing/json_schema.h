#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace stadtportal::testing {

// Where `value` departs from the JSON Schema in the file `schema_path` (the export's
// sections, docs/api/export/*.schema.json), one "<JSON pointer>: <what>" per departure;
// empty when it conforms. Knows the keywords those schemas use: type, properties,
// required, additionalProperties (false), items, minimum, enum, const, $ref to "#/$defs/…", and
// the formats date-time (RFC 3339 UTC), date and uuid. Throws when the file cannot be
// read or uses another keyword.
std::vector<std::string> SchemaViolations(const std::string& schema_path, const nlohmann::json& value);

}  // namespace stadtportal::testing

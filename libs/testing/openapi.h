#pragma once

#include <string>
#include <vector>

namespace stadtportal::testing {

// "METHOD /path/{param}" of every operation in an OpenAPI file (docs/api/openapi.yaml),
// read line by line in the file's own layout; throws when the file cannot be read.
std::vector<std::string> OpenApiOperations(const std::string& path);

}  // namespace stadtportal::testing

#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "services/submission/form.h"

namespace stadtportal::submission {

// A service definition that passed the catalogue schema and the form rules.
struct Definition {
  nlohmann::json json;
  std::string tenant;
  std::string id;
  int version = 0;
  std::string sha256;
};

// (path under catalogue/, text) of the compiled-in catalogue files, the schema included.
const std::vector<std::pair<std::string, std::string>>& CatalogueFiles();

// Parses and checks one service definition: catalogue.schema.json, then the form rules,
// then that the fee's unit field is an integer number field. INVALID_ARGUMENT with
// every problem ("/form/steps/0/fields/1/type: must be one of …; …") otherwise.
absl::StatusOr<Definition> CheckDefinition(const std::string& text);

// Every compiled-in definition, checked. INVALID_ARGUMENT naming the file otherwise.
absl::StatusOr<std::vector<Definition>> LoadCatalogue();

// The SHA-256 (hex) by which a published version is recognised: of the normalised JSON,
// so formatting is not a change.
std::string DefinitionSha256(const nlohmann::json& definition);

// The form of a checked definition.
Form FormOf(const Definition& d);

}  // namespace stadtportal::submission

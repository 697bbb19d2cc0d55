#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "stadtportal/identity/v1/identity.pb.h"

// The upstream identity providers a deployment offers besides local accounts: the state
// ID accounts over SAML 2.0 (BundID, BayernID), further providers over OpenID Connect.
// Each is one JSON document (templates in services/identity/federation/providers/),
// validated here before anything is asked of the provider. The level a provider asserts
// is mapped by the provider's own table, exactly: a value the table does not name is no
// level at all (docs/adr/0023-saml-library.md).
namespace stadtportal::identity::federation {

using Level = v1::AssuranceLevel;

struct SamlSettings {
  std::string idp_metadata;       // Path of the IdP's metadata file.
  std::string requested_context;  // AuthnContextClassRef asked for, Comparison="minimum".
  // urn:oid attribute name → profile field (given_name, family_name, …).
  std::map<std::string, std::string> attributes;
};

struct OidcSettings {
  std::string issuer;  // https://… (http only on loopback), compared exactly.
  std::string client_id;
  std::string client_secret_env;    // The variable holding the secret, never the secret.
  std::vector<std::string> scopes;  // Always with "openid".
  std::string requested_acr;        // acr_values asked for ("" for none).
  // Claim name → profile field; the members of the address claim as
  // "address.street_address", "address.postal_code", "address.locality", "address.country".
  std::map<std::string, std::string> claims;
};

struct Provider {
  std::string id;  // Slug: bundid, bayernid, elster-company, generic-oidc.
  enum class Kind { kSaml, kOidc } kind = Kind::kSaml;
  std::string name_de, name_en;
  // What the provider asserts (STORK-QAA-Level-3, http://eidas.europa.eu/LoA/high, …) →
  // our level. Only the values named here count.
  std::map<std::string, Level> levels;
  // A company account provider (ELSTER): only its answers may carry organisation
  // attributes (organisation_id, organisation_name), which make or join a company.
  bool organisation_accounts = false;
  SamlSettings saml;
  OidcSettings oidc;

  // The highest level the provider can assert.
  Level Highest() const;
};

// The profile fields verified attributes may fill.
const std::vector<std::string>& ProfileFields();

// One provider document; INVALID_ARGUMENT naming the first problem.
absl::StatusOr<Provider> ParseProvider(const nlohmann::json& document);
// A list of provider documents (the deployment's file): each valid, ids unique.
absl::StatusOr<std::vector<Provider>> ParseProviders(const nlohmann::json& documents);

// The level `asserted` means at `provider`; PERMISSION_DENIED "level_unknown" when its
// table does not name it (a response with it is refused, never taken as low).
absl::StatusOr<Level> AssertedLevel(const Provider& provider, const std::string& asserted);
// "low", "substantial", "high" ("" for unspecified), and back (UNSPECIFIED for others).
const char* LevelName(Level level);
Level LevelOf(const std::string& name);
// Whether `level` is at least `required`.
bool Reaches(Level level, Level required);
// The ids of the providers that can assert `required` or more, in the list's order: the
// step-up choices for a refused request.
std::vector<std::string> ProvidersReaching(const std::vector<Provider>& providers, Level required);

}  // namespace stadtportal::identity::federation

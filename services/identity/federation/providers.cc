#include "services/identity/federation/providers.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/api/api.h"

namespace stadtportal::identity::federation {
namespace {

absl::Status Invalid(const std::string& id, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("provider ", id.empty() ? "?" : id, ": ", what));
}

// A non-empty string member, or "".
std::string Text(const nlohmann::json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

absl::StatusOr<Level> ParseLevel(const std::string& name) {
  if (name == "low") return v1::ASSURANCE_LEVEL_LOW;
  if (name == "substantial") return v1::ASSURANCE_LEVEL_SUBSTANTIAL;
  if (name == "high") return v1::ASSURANCE_LEVEL_HIGH;
  return absl::InvalidArgumentError("a level is low, substantial or high");
}

// name → profile field, each field known, each name accepted by `name_ok`.
absl::StatusOr<std::map<std::string, std::string>> FieldMap(const std::string& id, const nlohmann::json& object,
                                                            const char* member, bool (*name_ok)(const std::string&)) {
  const auto it = object.find(member);
  if (it == object.end() || !it->is_object() || it->empty()) return Invalid(id, absl::StrCat(member, " missing"));
  std::map<std::string, std::string> out;
  for (const auto& [name, field] : it->items()) {
    if (!name_ok(name)) return Invalid(id, absl::StrCat(member, ": '", name, "' is not a valid name"));
    const auto& known = ProfileFields();
    if (!field.is_string() || std::find(known.begin(), known.end(), field.get<std::string>()) == known.end()) {
      return Invalid(id, absl::StrCat(member, ": '", name, "' maps to no profile field"));
    }
    out[name] = field.get<std::string>();
  }
  return out;
}

bool IsOid(const std::string& name) {
  return absl::StartsWith(name, "urn:oid:") && name.size() > 8 &&
         std::all_of(name.begin() + 8, name.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

bool IsClaim(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

// A claim name, or a member of the standard address claim ("address.street_address").
bool IsClaimOrAddressMember(const std::string& name) {
  for (const char* member : {"address.street_address", "address.postal_code", "address.locality", "address.country"}) {
    if (name == member) return true;
  }
  return IsClaim(name);
}

// https, or http on loopback (local runs and tests); no user info, query or fragment.
bool IsIssuer(const std::string& url) {
  std::string rest;
  if (absl::StartsWith(url, "https://")) {
    rest = url.substr(8);
  } else {
    for (const char* local : {"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/",
                              "http://[::1]:", "http://[::1]/"}) {
      if (absl::StartsWith(url, local)) rest = url.substr(7);
    }
  }
  return !rest.empty() && rest.front() != '/' && rest.find_first_of("@?# \t") == std::string::npos && url.size() <= 512;
}

}  // namespace

Level Provider::Highest() const {
  Level highest = v1::ASSURANCE_LEVEL_UNSPECIFIED;
  for (const auto& [asserted, level] : levels) highest = std::max(highest, level);
  return highest;
}

const char* LevelName(Level level) {
  switch (level) {
    case v1::ASSURANCE_LEVEL_LOW: return "low";
    case v1::ASSURANCE_LEVEL_SUBSTANTIAL: return "substantial";
    case v1::ASSURANCE_LEVEL_HIGH: return "high";
    default: return "";
  }
}

Level LevelOf(const std::string& name) {
  auto level = ParseLevel(name);
  return level.ok() ? *level : v1::ASSURANCE_LEVEL_UNSPECIFIED;
}

const std::vector<std::string>& ProfileFields() {
  static const std::vector<std::string> kFields = {"given_name",    "family_name",       "birth_date",     "email",
                                                   "street",        "postal_code",       "locality",       "country",
                                                   "persistent_id", "organisation_name", "organisation_id"};
  return kFields;
}

// Organisation attributes make or join a company (accounts): only from a provider whose
// document says it speaks for companies.
absl::Status OrganisationFieldsAllowed(const Provider& p, const std::map<std::string, std::string>& fields) {
  for (const auto& [name, field] : fields) {
    if ((field == "organisation_id" || field == "organisation_name") && !p.organisation_accounts) {
      return Invalid(p.id, absl::StrCat("'", name, "' maps to ", field, ", which needs organisation_accounts: true"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Provider> ParseProvider(const nlohmann::json& d) {
  if (!d.is_object()) return Invalid("", "a provider is a JSON object");
  Provider p;
  p.id = Text(d, "id");
  if (auto s = api::ValidateSlug(p.id, "id"); !s.ok()) return Invalid(p.id, "id must be a slug");
  const std::string kind = Text(d, "kind");
  if (kind != "saml" && kind != "oidc") return Invalid(p.id, "kind is saml or oidc");
  p.kind = kind == "saml" ? Provider::Kind::kSaml : Provider::Kind::kOidc;
  const auto name = d.find("name");
  if (name != d.end() && name->is_object()) {
    p.name_de = Text(*name, "de");
    p.name_en = Text(*name, "en");
  }
  if (p.name_de.empty() || p.name_en.empty()) return Invalid(p.id, "name needs de and en");
  const auto levels = d.find("levels");
  if (levels == d.end() || !levels->is_object() || levels->empty()) return Invalid(p.id, "levels missing");
  for (const auto& [asserted, level] : levels->items()) {
    auto parsed = level.is_string() ? ParseLevel(level.get<std::string>()) : absl::InvalidArgumentError("");
    if (asserted.empty() || !parsed.ok()) {
      return Invalid(p.id, absl::StrCat("levels: '", asserted, "' must map to low, substantial or high"));
    }
    p.levels[asserted] = *parsed;
  }
  const auto company = d.find("organisation_accounts");
  if (company != d.end() && !company->is_boolean()) return Invalid(p.id, "organisation_accounts is true or false");
  p.organisation_accounts = company != d.end() && company->get<bool>();
  const auto settings = d.find(kind);
  if (settings == d.end() || !settings->is_object()) return Invalid(p.id, absl::StrCat(kind, " settings missing"));
  if (p.kind == Provider::Kind::kSaml) {
    p.saml.idp_metadata = Text(*settings, "idp_metadata");
    if (p.saml.idp_metadata.empty()) return Invalid(p.id, "saml.idp_metadata missing");
    p.saml.requested_context = Text(*settings, "requested_context");
    if (p.levels.count(p.saml.requested_context) == 0) {
      return Invalid(p.id, "saml.requested_context must be one of the provider's levels");
    }
    auto attributes = FieldMap(p.id, *settings, "attributes", IsOid);
    if (!attributes.ok()) return attributes.status();
    p.saml.attributes = *std::move(attributes);
    if (auto s = OrganisationFieldsAllowed(p, p.saml.attributes); !s.ok()) return s;
    return p;
  }
  p.oidc.issuer = Text(*settings, "issuer");
  if (!IsIssuer(p.oidc.issuer)) return Invalid(p.id, "oidc.issuer must be an https URL (http only on loopback)");
  p.oidc.client_id = Text(*settings, "client_id");
  if (p.oidc.client_id.empty()) return Invalid(p.id, "oidc.client_id missing");
  p.oidc.client_secret_env = Text(*settings, "client_secret_env");
  if (!p.oidc.client_secret_env.empty() && !absl::StartsWith(p.oidc.client_secret_env, "STADTPORTAL_")) {
    return Invalid(p.id, "oidc.client_secret_env must name a STADTPORTAL_ variable");
  }
  const auto scopes = settings->find("scopes");
  if (scopes != settings->end() && scopes->is_array()) {
    for (const auto& scope : *scopes) {
      if (!scope.is_string() || !IsClaim(scope.get<std::string>())) return Invalid(p.id, "oidc.scopes: invalid scope");
      p.oidc.scopes.push_back(scope.get<std::string>());
    }
  }
  if (std::find(p.oidc.scopes.begin(), p.oidc.scopes.end(), "openid") == p.oidc.scopes.end()) {
    return Invalid(p.id, "oidc.scopes must contain openid");
  }
  p.oidc.requested_acr = Text(*settings, "requested_acr");
  if (!p.oidc.requested_acr.empty() && p.levels.count(p.oidc.requested_acr) == 0) {
    return Invalid(p.id, "oidc.requested_acr must be one of the provider's levels");
  }
  auto claims = FieldMap(p.id, *settings, "claims", IsClaimOrAddressMember);
  if (!claims.ok()) return claims.status();
  p.oidc.claims = *std::move(claims);
  if (auto s = OrganisationFieldsAllowed(p, p.oidc.claims); !s.ok()) return s;
  return p;
}

absl::StatusOr<std::vector<Provider>> ParseProviders(const nlohmann::json& documents) {
  if (!documents.is_array()) return absl::InvalidArgumentError("providers: a JSON array of provider documents");
  std::vector<Provider> out;
  std::set<std::string> ids;
  for (const auto& d : documents) {
    auto p = ParseProvider(d);
    if (!p.ok()) return p.status();
    if (!ids.insert(p->id).second) return Invalid(p->id, "id used twice");
    out.push_back(*std::move(p));
  }
  return out;
}

absl::StatusOr<Level> AssertedLevel(const Provider& provider, const std::string& asserted) {
  const auto it = provider.levels.find(asserted);
  if (it == provider.levels.end()) return absl::PermissionDeniedError("level_unknown");
  return it->second;
}

bool Reaches(Level level, Level required) {
  return level != v1::ASSURANCE_LEVEL_UNSPECIFIED && static_cast<int>(level) >= static_cast<int>(required);
}

std::vector<std::string> ProvidersReaching(const std::vector<Provider>& providers, Level required) {
  std::vector<std::string> out;
  for (const auto& p : providers) {
    if (Reaches(p.Highest(), required)) out.push_back(p.id);
  }
  return out;
}

}  // namespace stadtportal::identity::federation

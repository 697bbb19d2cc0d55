#include "services/identity/federation/providers.h"
#include "services/identity/federation/flows.h"

#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

namespace stadtportal::identity::federation {
namespace {

nlohmann::json Template(const std::string& name) {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) + "/services/identity/federation/providers/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

std::string Refusal(const nlohmann::json& d) {
  auto p = ParseProvider(d);
  return p.ok() ? "" : std::string(p.status().message());
}

}  // namespace

TEST_CASE("the shipped provider templates are valid and map the levels they assert", "[unit]") {
  auto providers = ParseProviders(
      nlohmann::json::array({Template("bundid.json"), Template("bayernid.json"), Template("generic-oidc.json")}));
  REQUIRE(providers.ok());
  REQUIRE(providers->size() == 3);
  const Provider& bundid = (*providers)[0];
  CHECK(bundid.kind == Provider::Kind::kSaml);
  CHECK(bundid.saml.attributes.at("urn:oid:2.5.4.42") == "given_name");
  CHECK(bundid.saml.requested_context == "STORK-QAA-Level-3");
  CHECK(*AssertedLevel(bundid, "STORK-QAA-Level-3") == v1::ASSURANCE_LEVEL_SUBSTANTIAL);
  CHECK(*AssertedLevel(bundid, "STORK-QAA-Level-4") == v1::ASSURANCE_LEVEL_HIGH);
  CHECK(*AssertedLevel(bundid, "STORK-QAA-Level-2") == v1::ASSURANCE_LEVEL_LOW);
  CHECK(*AssertedLevel(bundid, "http://eidas.europa.eu/LoA/high") == v1::ASSURANCE_LEVEL_HIGH);
  // Exactly the table's values: nothing near them, nothing by default.
  for (const std::string asserted : {"", "stork-qaa-level-4", "STORK-QAA-Level-4 ", "STORK-QAA-Level-5",
                                     "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}) {
    auto level = AssertedLevel(bundid, asserted);
    CHECK(level.status().code() == absl::StatusCode::kPermissionDenied);
  }
  const Provider& oidc = (*providers)[2];
  CHECK(oidc.kind == Provider::Kind::kOidc);
  CHECK(oidc.oidc.client_secret_env == "STADTPORTAL_OIDC_GENERIC_CLIENT_SECRET");
  CHECK(oidc.Highest() == v1::ASSURANCE_LEVEL_HIGH);
  // Members of the address claim map to the address fields.
  CHECK(oidc.oidc.claims.at("address.street_address") == "street");
  CHECK(oidc.oidc.claims.at("address.locality") == "locality");
}

TEST_CASE("levels: a lower level never reaches a higher one; step-up names who can give it", "[unit]") {
  CHECK(Reaches(v1::ASSURANCE_LEVEL_HIGH, v1::ASSURANCE_LEVEL_SUBSTANTIAL));
  CHECK(Reaches(v1::ASSURANCE_LEVEL_SUBSTANTIAL, v1::ASSURANCE_LEVEL_SUBSTANTIAL));
  CHECK_FALSE(Reaches(v1::ASSURANCE_LEVEL_LOW, v1::ASSURANCE_LEVEL_SUBSTANTIAL));
  CHECK_FALSE(Reaches(v1::ASSURANCE_LEVEL_UNSPECIFIED, v1::ASSURANCE_LEVEL_LOW));
  nlohmann::json low_only = Template("generic-oidc.json");
  low_only["id"] = "savings-bank";
  low_only["levels"] = {{"http://eidas.europa.eu/LoA/low", "low"}};
  low_only["oidc"].erase("requested_acr");
  auto providers = ParseProviders(nlohmann::json::array({low_only, Template("bundid.json")}));
  REQUIRE(providers.ok());
  CHECK(ProvidersReaching(*providers, v1::ASSURANCE_LEVEL_SUBSTANTIAL) == std::vector<std::string>{"bundid"});
  CHECK(ProvidersReaching(*providers, v1::ASSURANCE_LEVEL_LOW) == std::vector<std::string>{"savings-bank", "bundid"});
}

TEST_CASE("a provider document with a fault is refused, naming it", "[unit]") {
  const nlohmann::json saml = Template("bundid.json");
  const nlohmann::json oidc = Template("generic-oidc.json");
  const auto with = [](nlohmann::json d, const nlohmann::json::json_pointer& at, const nlohmann::json& value) {
    d[at] = value;
    return d;
  };
  using P = nlohmann::json::json_pointer;
  CHECK(Refusal(saml).empty());
  CHECK(Refusal(oidc).empty());
  CHECK(Refusal(nlohmann::json::array()) != "");
  CHECK(Refusal(with(saml, P("/id"), "BundID!")).find("slug") != std::string::npos);
  CHECK(Refusal(with(saml, P("/kind"), "ldap")).find("kind") != std::string::npos);
  CHECK(Refusal(with(saml, P("/name/en"), "")).find("name") != std::string::npos);
  CHECK(Refusal(with(saml, P("/levels"), nlohmann::json::object())).find("levels") != std::string::npos);
  CHECK(Refusal(with(saml, P("/levels/STORK-QAA-Level-4"), "very high")).find("levels") != std::string::npos);
  CHECK(Refusal(with(saml, P("/saml/idp_metadata"), "")).find("idp_metadata") != std::string::npos);
  CHECK(Refusal(with(saml, P("/saml/requested_context"), "STORK-QAA-Level-9")).find("requested_context") !=
        std::string::npos);
  CHECK(Refusal(with(saml, P("/saml/attributes/givenName"), "given_name")).find("attributes") != std::string::npos);
  CHECK(Refusal(with(saml, P("/saml/attributes/urn:oid:2.5.4.42"), "password")).find("profile field") !=
        std::string::npos);
  for (const std::string issuer : {"http://id.example.de", "https://", "https://user@id.example.de",
                                   "https://id.example.de/?x=1", "ftp://id.example.de", "http://127.0.0.1.evil.de"}) {
    INFO(issuer);
    CHECK(Refusal(with(oidc, P("/oidc/issuer"), issuer)).find("issuer") != std::string::npos);
  }
  CHECK(Refusal(with(oidc, P("/oidc/issuer"), "http://127.0.0.1:9090")).empty());
  CHECK(Refusal(with(oidc, P("/oidc/client_id"), "")).find("client_id") != std::string::npos);
  CHECK(Refusal(with(oidc, P("/oidc/client_secret_env"), "HOME")).find("client_secret_env") != std::string::npos);
  CHECK(Refusal(with(oidc, P("/oidc/scopes"), {"profile"})).find("openid") != std::string::npos);
  CHECK(Refusal(with(oidc, P("/oidc/requested_acr"), "urn:other")).find("requested_acr") != std::string::npos);
  CHECK(Refusal(with(oidc, P("/oidc/claims/Given-Name"), "given_name")).find("claims") != std::string::npos);
  CHECK(Refusal(with(oidc, P("/oidc/claims/address.formatted"), "street")).find("claims") != std::string::npos);
  CHECK(Refusal(with(oidc, P("/oidc/claims/address.street_address"), "street")).empty());
  auto twice = ParseProviders(nlohmann::json::array({saml, saml}));
  CHECK(twice.status().message().find("twice") != absl::string_view::npos);
}

TEST_CASE("the company account template maps the organisation attributes", "[unit]") {
  auto elster = ParseProvider(Template("elster-company.json"));
  REQUIRE(elster.ok());
  CHECK(elster->saml.attributes.at("urn:oid:2.5.4.10") == "organisation_name");
  CHECK(elster->saml.attributes.at("urn:oid:2.5.4.97") == "organisation_id");
  CHECK(elster->organisation_accounts);
  // Without the flag, a provider cannot name organisations.
  auto document = Template("elster-company.json");
  document.erase("organisation_accounts");
  CHECK(ParseProvider(document).status().message().find("needs organisation_accounts: true") !=
        absl::string_view::npos);
  document["organisation_accounts"] = "yes";
  CHECK(ParseProvider(document).status().message().find("true or false") != absl::string_view::npos);
  auto bundid = ParseProvider(Template("bundid.json"));
  REQUIRE(bundid.ok());
  CHECK_FALSE(bundid->organisation_accounts);
  CHECK(elster->Highest() == v1::ASSURANCE_LEVEL_HIGH);
  CHECK(AssertedLevel(*elster, "STORK-QAA-Level-1").status().code() == absl::StatusCode::kPermissionDenied);
}

TEST_CASE("a log-in returns only to a path of the portal", "[unit]") {
  for (const std::string ok : {"/", "/antraege", "/drafts/42?step=2", "/a/b#c", "/stra%C3%9Fe"}) {
    INFO(ok);
    CHECK(Federation::IsReturnPath(ok));
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "antraege", "//evil.example/", "/\\evil.example", "https://evil.example/", "/a b",
                                "/a\r\nSet-Cookie: x=1", "/a\tb", std::string("/a\0b", 4), "/" + std::string(512, 'a'),
                                "/\x7f", "/\xc3\xa4"}) {
    INFO(bad);
    CHECK_FALSE(Federation::IsReturnPath(bad));
  }
}

TEST_CASE("level names both ways; anything else is no level", "[unit]") {
  for (const Level l : {v1::ASSURANCE_LEVEL_LOW, v1::ASSURANCE_LEVEL_SUBSTANTIAL, v1::ASSURANCE_LEVEL_HIGH}) {
    CHECK(LevelOf(LevelName(l)) == l);
  }
  CHECK(std::string(LevelName(v1::ASSURANCE_LEVEL_UNSPECIFIED)).empty());
  CHECK(LevelOf("High") == v1::ASSURANCE_LEVEL_UNSPECIFIED);
  CHECK(LevelOf("") == v1::ASSURANCE_LEVEL_UNSPECIFIED);
}

}  // namespace stadtportal::identity::federation

// Partner portals (Portalverbund) registered by tenant admins through the gateway: the
// secret shown once, hostile registrations refused field by field, disable, enable,
// rotation, tenant admins with the second factor only, every change in the audit log.
#include <map>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/e2e/operators.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using nlohmann::json;

// A public EC P-256 key made for this test.
const json kEcKey = {{"kty", "EC"},
                     {"crv", "P-256"},
                     {"kid", "ec-1"},
                     {"x", "Blrtv_-hGfeGzpHlUY5MFy-uWqundGkLsYpfaMg9l90"},
                     {"y", "hRWfmbyUMhpPVEzjCs9cOIZ97XZx90guBGJUZBAUEh8"}};

json Answer(const httplib::Result& r, int status, int line = __builtin_LINE()) {
  INFO("line " << line << ": " << (r ? r->body : "no answer"));
  REQUIRE(Status(r) == status);
  return json::parse(r->body);
}

// The refused fields of a 422 problem, as "field: code".
std::vector<std::string> Refused(const httplib::Result& r) {
  const json p = Answer(r, 422);
  std::vector<std::string> out;
  for (const auto& e : p["errors"]) out.push_back(e["field"].get<std::string>() + ": " + e["code"].get<std::string>());
  return out;
}

json Registration() {
  return {{"name", "Landesportal Bayern"},
          {"redirect_uris", {"https://partner.example/callback"}},
          {"post_logout_redirect_uris", {"https://partner.example/bye"}},
          {"backchannel_logout_uri", "https://partner.example/backchannel"},
          {"scopes", {"openid", "profile", "submissions:read"}},
          {"token_endpoint_auth_method", "client_secret_basic"}};
}

}  // namespace

TEST_CASE("partner portals: registered, read, disabled, enabled and rotated by tenant admins", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(std::chrono::seconds(60)));
  auto c = stack.Http();
  const json admin = Admin(stack, c);
  const std::string base = "/api/v1/admin/partner-clients";

  // A secret client: the secret in the answer to the registration only.
  auto created = PostJson(c, base, Registration(), Bearer(admin));
  const json secret_client = Answer(created, 201);
  CHECK(created->get_header_value("Cache-Control") == "no-store");
  const std::string id = secret_client["client_id"];
  const std::string secret = secret_client["client_secret"];
  CHECK(secret.size() >= 40);
  CHECK(secret_client["redirect_uris"] == json{"https://partner.example/callback"});
  CHECK(secret_client["token_endpoint_auth_method"] == "client_secret_basic");
  CHECK(secret_client["jwks"].is_null());

  // A private_key_jwt client with its key set inline: no secret.
  json signed_registration = Registration();
  signed_registration["token_endpoint_auth_method"] = "private_key_jwt";
  signed_registration["jwks"] = {{"keys", {kEcKey}}};
  const json signer = Answer(PostJson(c, base, signed_registration, Bearer(admin)), 201);
  CHECK_FALSE(signer.contains("client_secret"));
  CHECK(signer["jwks"]["keys"][0]["kid"] == "ec-1");

  // Hostile registrations: 422, each field named, nothing registered.
  json hostile = Registration();
  hostile["redirect_uris"] = {"https://*.partner.example/cb", "https://user@partner.example/cb",
                              "https://partner.example/cb#fragment", "http://partner.example/cb", 7};
  CHECK(Refused(PostJson(c, base, hostile, Bearer(admin))) == std::vector<std::string>{"redirect_uris[4]: invalid"});
  hostile["redirect_uris"].erase(4);
  hostile["scopes"] = {"profile", "admin"};
  hostile["name"] = "Portal\nX-Injected: 1";
  CHECK(Refused(PostJson(c, base, hostile, Bearer(admin))) ==
        std::vector<std::string>{"name: control_characters", "redirect_uris[0]: wildcard",
                                 "redirect_uris[1]: user_info", "redirect_uris[2]: fragment",
                                 "redirect_uris[3]: not_https", "scopes[1]: unknown_scope", "scopes: openid_required"});
  json private_key = signed_registration;
  json with_d = kEcKey;
  with_d["d"] = "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE";
  private_key["jwks"] = {{"keys", {with_d}}};
  CHECK(Refused(PostJson(c, base, private_key, Bearer(admin))) == std::vector<std::string>{"jwks: private_key"});
  private_key["jwks_uri"] = "https://partner.example/jwks";
  private_key["jwks"] = {{"keys", {kEcKey}}};
  CHECK(Refused(PostJson(c, base, private_key, Bearer(admin))) == std::vector<std::string>{"jwks: jwks_or_jwks_uri"});

  // Listed (with the tenant's other partner portals, from other tests), read, never with a secret.
  const json listed = Answer(c.Get((base + "?page_size=100").c_str(), Bearer(admin)), 200);
  std::set<std::string> ids;
  for (const auto& item : listed["items"]) ids.insert(item["client_id"].get<std::string>());
  CHECK(ids.count(id) == 1);
  CHECK(ids.count(signer["client_id"].get<std::string>()) == 1);
  CHECK(listed.dump().find(secret) == std::string::npos);
  for (const auto& item : listed["items"]) CHECK_FALSE(item.contains("client_secret"));
  const json read = Answer(c.Get((base + "/" + id).c_str(), Bearer(admin)), 200);
  CHECK(read["name"] == "Landesportal Bayern");
  CHECK_FALSE(read.contains("client_secret"));
  CHECK(Status(c.Get((base + "/00000000-0000-4000-8000-000000000000").c_str(), Bearer(admin))) == 404);
  CHECK(Status(c.Get((base + "/not-a-uuid").c_str(), Bearer(admin))) == 404);

  // Disabled and enabled.
  CHECK(Answer(PostJson(c, base + "/" + id + "/disable", json::object(), Bearer(admin)), 200)["disabled"] == true);
  CHECK(Answer(c.Get((base + "/" + id).c_str(), Bearer(admin)), 200)["disabled"] == true);
  CHECK(Answer(PostJson(c, base + "/" + id + "/enable", json::object(), Bearer(admin)), 200)["disabled"] == false);

  // Rotation: a new secret once (no body); a signer's new key set URL.
  auto rotated = c.Post((base + "/" + id + "/rotate-credentials").c_str(), Bearer(admin), "", "application/json");
  const json new_secret = Answer(rotated, 200);
  CHECK(rotated->get_header_value("Cache-Control") == "no-store");
  CHECK(new_secret["client_secret"] != secret);
  const std::string signer_id = signer["client_id"];
  CHECK(Refused(PostJson(c, base + "/" + signer_id + "/rotate-credentials", json::object(), Bearer(admin))) ==
        std::vector<std::string>{"jwks: required"});
  const json rekeyed = Answer(PostJson(c, base + "/" + signer_id + "/rotate-credentials",
                                       {{"jwks_uri", "https://partner.example/jwks.json"}}, Bearer(admin)),
                              200);
  CHECK(rekeyed["jwks"].is_null());
  CHECK(rekeyed["jwks_uri"] == "https://partner.example/jwks.json");
  CHECK_FALSE(rekeyed.contains("client_secret"));

  // Not for citizens, nor for another admin before the second factor.
  const json citizen = Onboard(stack, c, UniqueEmail());
  CHECK(Status(PostJson(c, base, Registration(), Bearer(citizen))) == 403);
  CHECK(Status(c.Get((base + "/" + id).c_str(), Bearer(citizen))) == 403);
  const json unverified = AdminWithoutSecondFactor(stack, c, nullptr, nullptr);
  CHECK(Status(c.Get(base.c_str(), Bearer(unverified))) == 403);
  CHECK(Status(PostJson(c, base + "/" + id + "/disable", json::object(), Bearer(unverified))) == 403);
  CHECK(Answer(c.Get((base + "/" + id).c_str(), Bearer(admin)), 200)["disabled"] == false);

  // Every change in the audit log, naming the partner portal.
  const std::string account = Answer(c.Get("/api/v1/me", Bearer(admin)), 200)["account_id"];
  const json log =
      Answer(c.Get(("/api/v1/admin/audit-log?page_size=100&actor=" + account).c_str(), Bearer(admin)), 200);
  std::map<std::string, int> actions;
  for (const auto& e : log["items"]) {
    const std::string action = e["action"];
    if (action.rfind("partner_client.", 0) != 0) continue;
    ++actions[action];
    CHECK(e["service"] == "identity");
    CHECK(e["targets"].contains("partner_client_id"));
  }
  CHECK(actions == std::map<std::string, int>{{"partner_client.create", 2},
                                              {"partner_client.disable", 1},
                                              {"partner_client.enable", 1},
                                              {"partner_client.rotate_credentials", 2}});
  CHECK(log.dump().find(secret) == std::string::npos);
}

}  // namespace stadtportal::e2e

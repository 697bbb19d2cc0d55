// Log-in with upstream identity providers through the whole platform, against independent
// implementations on loopback: SimpleSAMLphp as the BundID stand-in (scripts/lib/idp.sh)
// and npm oidc-provider as an OpenID Connect upstream (scripts/lib/op.sh), driven over HTTP
// like a browser.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <regex>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/federated.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using nlohmann::json;

// The verified profile once accounts took identity's event (asynchronous): up to 10 s.
json VerifiedProfile(httplib::Client& c, const std::string& token, size_t attributes) {
  json profile;
  for (int i = 0; i < 100; ++i) {
    auto r = c.Get("/api/v1/me/profile", BearerToken(token));
    if (Status(r) == 200) {
      profile = json::parse(r->body);
      size_t verified = 0;
      for (const auto& [name, a] : profile["attributes"].items()) verified += a.value("source", "") == "provider";
      if (verified >= attributes) return profile;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return profile;
}

std::map<std::string, json> ByName(const json& profile) {
  std::map<std::string, json> out;
  for (const auto& [name, a] : profile["attributes"].items()) out[name] = a;
  return out;
}

}  // namespace

TEST_CASE("BundID over SAML: log-in creates the account at level substantial with verified, read-only prefill",
          "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  auto providers = c.Get("/api/v1/auth/providers");
  REQUIRE(Status(providers) == 200);
  const auto list = json::parse(providers->body)["providers"];
  REQUIRE(list.size() == 2);
  CHECK(list[0]["id"] == "bundid");
  CHECK(list[0]["kind"] == "saml");
  CHECK(list[0]["highest_assurance_level"] == "high");

  Browser b;
  auto done = f.SamlLogIn(b, "erika", "erika-test-1", "?return_to=/antraege");
  INFO(done.body);
  REQUIRE(done.status == 303);
  CHECK(done.location == "/antraege");
  const std::string token = b.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(!token.empty());
  CHECK(b.Cookie(f.gateway, "__Host-stadtportal_federation").empty());  // The flow is used up.

  auto session = c.Get("/api/v1/me", BearerToken(token));
  REQUIRE(Status(session) == 200);
  CHECK(json::parse(session->body)["assurance_level"] == "substantial");
  // The IdP allows a session of 8 h (SessionNotOnOrAfter); ours would last 12 h.
  absl::Time ends;
  std::string err;
  REQUIRE(absl::ParseTime(absl::RFC3339_full, json::parse(session->body)["session_expires_at"].get<std::string>(),
                          &ends, &err));
  CHECK(ends <= absl::Now() + absl::Hours(8) + absl::Minutes(1));
  CHECK(ends >= absl::Now() + absl::Hours(8) - absl::Minutes(5));

  const auto profile = ByName(VerifiedProfile(c, token, 8));
  CHECK(profile.at("given_name")["value"] == "Erika");
  CHECK(profile.at("family_name")["value"] == "Mustermann");
  CHECK(profile.at("birth_date")["value"] == "1964-08-12");
  CHECK(profile.at("address.street")["value"] == "Heidestraße");
  CHECK(profile.at("address.house_number")["value"] == "17");
  CHECK(profile.at("address.postcode")["value"] == "51147");
  CHECK(profile.at("address.city")["value"] == "Köln");
  CHECK(profile.at("family_name")["provider"] == "bundid");
  CHECK(profile.at("family_name")["assurance_level"] == "substantial");

  // A substantial-level service: allowed, its name and birth date prefilled read-only.
  auto draft = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerToken(token));
  INFO(draft->body);
  REQUIRE(Status(draft) == 201);
  const auto d = json::parse(draft->body);
  CHECK(d["data"]["family_name"] == "Mustermann");
  CHECK(d["data"]["birth_date"] == "1964-08-12");
  const auto read_only = d["read_only_fields"].get<std::vector<std::string>>();
  for (const char* field : {"given_name", "family_name", "birth_date"}) {
    CHECK(std::find(read_only.begin(), read_only.end(), field) != read_only.end());
  }
  // Verified means the person cannot change it.
  auto change =
      c.Patch("/api/v1/me/profile", BearerToken(token), json{{"family_name", "Anders"}}.dump(), "application/json");
  CHECK(Status(change) == 409);

  // The same person again: the same account, no second one.
  Browser again;
  REQUIRE(f.SamlLogIn(again, "erika", "erika-test-1").status == 303);
  auto me1 = json::parse(c.Get("/api/v1/me", BearerToken(token))->body);
  auto me2 = json::parse(c.Get("/api/v1/me", BearerToken(again.Cookie(f.gateway, "__Host-stadtportal_session")))->body);
  CHECK(me1["account_id"] == me2["account_id"]);

  auto linked = c.Get("/api/v1/me/providers", BearerToken(token));
  REQUIRE(Status(linked) == 200);
  CHECK(json::parse(linked->body)["providers"][0]["provider"] == "bundid");
  // The only way into this account cannot be removed.
  CHECK(Status(c.Delete("/api/v1/me/providers/bundid", BearerToken(token))) == 409);

  // Log-out ends the IdP's session too (single log-out).
  auto out = c.Post("/api/v1/auth/logout", BearerToken(token), "", "application/json");
  REQUIRE(Status(out) == 200);
  CHECK(json::parse(out->body)["upstream_logout_url"].get<std::string>().rfind(f.idp, 0) == 0);
  CHECK(Status(c.Get("/api/v1/me", BearerToken(token))) == 401);
}

TEST_CASE("an OpenID Connect provider: the same journey at its acr", "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  Browser b;
  auto done = f.OidcLogIn(b, "max", "max-test-1");
  INFO(done.body);
  REQUIRE(done.status == 303);
  const std::string token = b.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(!token.empty());
  auto session = json::parse(c.Get("/api/v1/me", BearerToken(token))->body);
  CHECK(session["assurance_level"] == "high");
  const auto profile = ByName(VerifiedProfile(c, token, 3));
  CHECK(profile.at("given_name")["value"] == "Max");
  CHECK(profile.at("birth_date")["value"] == "1980-01-31");
  CHECK(profile.at("birth_date")["provider"] == "generic-oidc");
  CHECK(profile.at("birth_date")["assurance_level"] == "high");
  auto draft = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerToken(token));
  REQUIRE(Status(draft) == 201);
  CHECK(json::parse(draft->body)["data"]["given_name"] == "Max");
  const auto read_only = json::parse(draft->body)["read_only_fields"].get<std::vector<std::string>>();
  CHECK(std::find(read_only.begin(), read_only.end(), "birth_date") != read_only.end());

  // The provider's answer again (a replayed callback): the flow is gone.
  const double before = f.Refusals("state");
  auto replay = b.Get(done.url);
  CHECK(replay.status == 403);
  CHECK(json::parse(replay.body)["reason"] == "state");
  CHECK(f.Refusals("state") == before + 1);

  // Log-out: on to the provider's end-session endpoint with the ID token as hint.
  auto out = c.Post("/api/v1/auth/logout", BearerToken(token), "", "application/json");
  REQUIRE(Status(out) == 200);
  const std::string end_session = json::parse(out->body)["upstream_logout_url"];
  CHECK(end_session.rfind(f.op, 0) == 0);
  CHECK(end_session.find("id_token_hint=") != std::string::npos);
}

TEST_CASE("step-up: a password session gets 403 naming the providers, steps up through BundID, keeps its draft",
          "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  const std::string email = UniqueEmail();
  const json anna = Onboard(f.stack, c, email);
  const std::string low = anna["token"];

  // An open draft of a low-level service.
  auto dog = PostJson(c, "/api/v1/services/dog-tax-registration/drafts", json::object(), BearerToken(low));
  REQUIRE(Status(dog) == 201);
  const std::string draft_id = json::parse(dog->body)["id"];

  auto refused = PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerToken(low));
  REQUIRE(Status(refused) == 403);
  const auto problem = json::parse(refused->body);
  CHECK(problem["required_assurance_level"] == "substantial");
  REQUIRE(problem["step_up_providers"].size() == 2);
  CHECK(problem["step_up_providers"][0]["id"] == "bundid");
  const std::string step_up = problem["step_up_providers"][0]["step_up_url"];
  CHECK(step_up == "/api/v1/auth/providers/bundid/login?minimum_level=substantial");

  // Erika has an account of her own through her state ID: it is never linked to another
  // one, and the session stays as it was.
  Browser erika;
  REQUIRE(f.SamlLogIn(erika, "erika", "erika-test-1").status == 303);
  Browser b;
  b.SetCookie(f.gateway, "__Host-stadtportal_session", low);
  auto taken = f.SamlLogIn(b, "erika", "erika-test-1", "?minimum_level=substantial");
  CHECK(taken.status == 409);
  CHECK(json::parse(taken.body)["errors"][0]["code"] == "linked_to_another_account");
  CHECK(Status(c.Get("/api/v1/me", BearerToken(low))) == 200);
  b = Browser();
  b.SetCookie(f.gateway, "__Host-stadtportal_session", low);
  auto done = f.SamlLogIn(b, "max", "max-test-1", "?minimum_level=substantial&return_to=/weiter");
  INFO(done.body);
  REQUIRE(done.status == 303);
  CHECK(done.location == "/weiter");
  const std::string high = b.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(!high.empty());
  CHECK(high != low);                                           // Rotated …
  CHECK(Status(c.Get("/api/v1/me", BearerToken(low))) == 401);  // … the old id is gone.
  auto session = json::parse(c.Get("/api/v1/me", BearerToken(high))->body);
  CHECK(session["assurance_level"] == "high");  // Max's level, above the one asked for.
  CHECK(session["auth_method"] == "saml:bundid");

  // The draft is intact and the service now allowed.
  auto kept = c.Get(("/api/v1/drafts/" + draft_id).c_str(), BearerToken(high));
  CHECK(Status(kept) == 200);
  CHECK(Status(PostJson(c, "/api/v1/services/change-of-address/drafts", json::object(), BearerToken(high))) == 201);
  auto linked = json::parse(c.Get("/api/v1/me/providers", BearerToken(high))->body);
  CHECK(linked["providers"][0]["provider"] == "bundid");
  // Max logs in to the account through BundID elsewhere as well.
  Browser elsewhere;
  REQUIRE(f.SamlLogIn(elsewhere, "max", "max-test-1").status == 303);
  const std::string other = elsewhere.Cookie(f.gateway, "__Host-stadtportal_session");
  REQUIRE(Status(c.Get("/api/v1/me", BearerToken(other))) == 200);
  CHECK(json::parse(c.Get("/api/v1/me", BearerToken(other))->body)["account_id"] == session["account_id"]);
  // With a password as well, the provider can be removed again; whoever came in through
  // it is out, the session that removed it goes on.
  CHECK(Status(c.Delete("/api/v1/me/providers/bundid", BearerToken(high))) == 200);
  CHECK(Status(c.Get("/api/v1/me", BearerToken(other))) == 401);
  CHECK(Status(c.Get("/api/v1/me", BearerToken(high))) == 200);

  // A step-up whose session ended meanwhile (logged out) links nothing.
  const std::string cara = Onboard(f.stack, c, UniqueEmail())["token"];
  Browser left;
  left.SetCookie(f.gateway, "__Host-stadtportal_session", cara);
  auto ended = f.SamlLogIn(left, "max", "max-test-1", "?minimum_level=substantial", {}, nullptr, [&] {
    CHECK(Status(c.Post("/api/v1/auth/logout", BearerToken(cara), "", "application/json")) == 204);
  });
  CHECK(ended.status == 409);
  CHECK(json::parse(ended.body)["errors"][0]["code"] == "changed");

  // A link from another site never binds the flow to the browser's session (else whoever
  // the provider then names, say an upstream session the other site planted, would be
  // linked to the account): it is a plain log-in.
  const std::string bert_mail = UniqueEmail();
  const std::string bert = Onboard(f.stack, c, bert_mail)["token"];
  Browser victim;
  victim.SetCookie(f.gateway, "__Host-stadtportal_session", bert);
  auto planted =
      f.SamlLogIn(victim, "erika", "erika-test-1", "?minimum_level=substantial", {{"Sec-Fetch-Site", "cross-site"}});
  INFO(planted.body);
  REQUIRE(planted.status == 303);
  const auto erika_me =
      json::parse(c.Get("/api/v1/me", BearerToken(erika.Cookie(f.gateway, "__Host-stadtportal_session")))->body);
  const auto now_me =
      json::parse(c.Get("/api/v1/me", BearerToken(victim.Cookie(f.gateway, "__Host-stadtportal_session")))->body);
  CHECK(now_me["account_id"] == erika_me["account_id"]);
  // The log-in ended the session the browser had, though the provider's answer came
  // without its cookie.
  CHECK(Status(c.Get("/api/v1/me", BearerToken(bert))) == 401);
  const std::string bert_again = Login(c, bert_mail)["token"];
  auto bert_linked = c.Get("/api/v1/me/providers", BearerToken(bert_again));
  REQUIRE(Status(bert_linked) == 200);
  CHECK(json::parse(bert_linked->body)["providers"].empty());
}

TEST_CASE("SAML answers the flow did not ask for are refused and counted", "[e2e]") {
  Federated f;
  auto c = f.stack.Http();
  Browser b;
  std::string saml;
  auto first = f.SamlLogIn(b, "max", "max-test-1", "", {}, &saml);
  REQUIRE(first.status == 303);

  // The same answer again, in a new flow of the same browser: not the request it answers.
  const double unsolicited = f.Refusals("unsolicited");
  auto start = b.Get(f.gateway + "/api/v1/auth/providers/bundid/login");
  REQUIRE(start.status == 303);
  // The flow cookie cannot be planted by a neighbouring subdomain (__Host-: no Domain,
  // Path=/), and goes with the provider's cross-site POST.
  const auto cookie = start.headers.find("Set-Cookie");
  REQUIRE(cookie != start.headers.end());
  CHECK(cookie->second.rfind("__Host-stadtportal_federation=", 0) == 0);
  CHECK(cookie->second.find("; Path=/;") != std::string::npos);
  CHECK(cookie->second.find("Domain") == std::string::npos);
  CHECK(cookie->second.find("SameSite=None") != std::string::npos);
  auto replay = b.PostForm(f.gateway + "/api/v1/auth/saml/bundid/acs", {{"SAMLResponse", saml}, {"RelayState", "x"}});
  CHECK(replay.status == 403);
  CHECK(json::parse(replay.body)["reason"] == "unsolicited");
  // Without the browser's flow cookie (another browser): refused as well.
  Browser other;
  auto stranger = other.PostForm(f.gateway + "/api/v1/auth/saml/bundid/acs", {{"SAMLResponse", saml}});
  CHECK(stranger.status == 403);
  CHECK(f.Refusals("unsolicited") == unsolicited + 2);
  // No answer, and not a form: 400 before identity is asked.
  CHECK(other.PostForm(f.gateway + "/api/v1/auth/saml/bundid/acs", {}).status == 400);
  // An unknown provider, and a provider id that is no id.
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/nobody/login").status == 404);
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/..%2F..%2Fetc/login").status == 404);
  // A return path to another site is refused before the browser leaves.
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/bundid/login?return_to=//evil.example/").status == 422);
  // Raw non-ASCII would go into the Location header as it is: refused (percent-encoded is fine).
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/bundid/login?return_to=/stra%C3%9Fe").status == 422);
  CHECK(b.Get(f.gateway + "/api/v1/auth/providers/bundid/login?minimum_level=ultra").status == 422);
  // The log lines name the reason, never the answer.
  const std::string logs = f.stack.AllLogs();
  CHECK(logs.find("\"reason\":\"unsolicited\"") != std::string::npos);
  CHECK(logs.find(saml.substr(0, 40)) == std::string::npos);
}

}  // namespace stadtportal::e2e

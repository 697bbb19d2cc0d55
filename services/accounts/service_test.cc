#include "services/accounts/service.h"

#include <mutex>
#include <regex>

#include <grpcpp/grpcpp.h>
#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "libs/auth/caller.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"
#include "services/accounts/test_caller.h"

namespace stadtportal::accounts {
namespace {

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "accounts"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  mail::Outbox outbox{schema.pool()};
  Service service{store, Options{}};
  grpc::ServerContext ctx;

  v1::Organisation CreateOrganisation(const auth::Caller& as, const std::string& name) {
    grpcx::TestCaller scope(as);
    v1::CreateOrganisationRequest req;
    req.set_name(name);
    req.set_legal_form(v1::LEGAL_FORM_COMPANY);
    req.set_register_number("HRB 12345");
    auto* a = req.mutable_address();
    a->set_street("Hauptmarkt");
    a->set_house_number("18");
    a->set_postcode("90403");
    a->set_city("Nürnberg");
    a->set_country("DE");
    v1::Organisation org;
    REQUIRE(service.CreateOrganisation(&ctx, &req, &org).ok());
    return org;
  }

  grpc::Status Invite(const auth::Caller& as, const std::string& org, const std::string& email, v1::Role role) {
    grpcx::TestCaller scope(as);
    v1::InviteMemberRequest req;
    req.set_organisation_id(org);
    req.set_email(email);
    req.set_role(role);
    v1::Invitation inv;
    return service.InviteMember(&ctx, &req, &inv);
  }

  std::string LastInvitationToken() {
    auto claimed = outbox.Claim(100);
    REQUIRE(claimed.ok());
    REQUIRE_FALSE(claimed->empty());
    std::smatch m;
    REQUIRE(std::regex_search(claimed->back().mail.body, m, std::regex("token=([A-Za-z0-9_-]+)")));
    return m[1].str();
  }

  grpc::Status Accept(const auth::Caller& as, const std::string& token, v1::Membership* out) {
    grpcx::TestCaller scope(as);
    v1::AnswerInvitationRequest req;
    req.set_token(token);
    return service.AcceptInvitation(&ctx, &req, out);
  }

  std::string PartyOf(const auth::Caller& as) {
    grpcx::TestCaller scope(as);
    v1::GetMyPartyRequest req;
    v1::Party p;
    REQUIRE(service.GetMyParty(&ctx, &req, &p).ok());
    return p.id();
  }

  // As identity's account.verified event does: `who` verified `email`.
  void Verified(const auth::Caller& who, const std::string& email) {
    REQUIRE(
        schema.pool()
            .Transact([&](pqxx::work& tx) { return Store::SetVerifiedEmail(tx, who.account_id, who.tenant, email); })
            .ok());
  }

  // Makes `who` a member of `org` with `role`, invited by `by`.
  void Join(const auth::Caller& by, const std::string& org, const auth::Caller& who, v1::Role role) {
    const std::string email = who.account_id + "@example.de";
    Verified(who, email);
    REQUIRE(Invite(by, org, email, role).ok());
    v1::Membership m;
    REQUIRE(Accept(who, LastInvitationToken(), &m).ok());
  }

  grpc::Status Remove(const auth::Caller& as, const std::string& org, const std::string& party) {
    grpcx::TestCaller scope(as);
    v1::RemoveMemberRequest req;
    req.set_organisation_id(org);
    req.set_person_party_id(party);
    v1::RemoveMemberResponse resp;
    return service.RemoveMember(&ctx, &req, &resp);
  }
};

const auth::Caller kAnna = PersonCaller("11111111-1111-4111-8111-111111111111");
const auth::Caller kBen = PersonCaller("22222222-2222-4222-8222-222222222222");
const auth::Caller kCem = PersonCaller("33333333-3333-4333-8333-333333333333");

}  // namespace

TEST_CASE("an organisation is created with its creator as owner and hidden from others", "[integration]") {
  Fixture f;
  auto org = f.CreateOrganisation(kAnna, "Bäckerei Schmidt GmbH");
  CHECK(org.my_role() == v1::ROLE_OWNER);
  CHECK(org.party().kind() == common::v1::PARTY_KIND_ORGANISATION);
  CHECK(org.address().postcode() == "90403");

  v1::GetOrganisationRequest get;
  get.set_id(org.party().id());
  v1::Organisation seen;
  {
    grpcx::TestCaller scope(kBen);
    CHECK(f.service.GetOrganisation(&f.ctx, &get, &seen).error_code() == grpc::StatusCode::NOT_FOUND);
    v1::ListMembersRequest members;
    members.set_organisation_id(org.party().id());
    v1::ListMembersResponse list;
    CHECK(f.service.ListMembers(&f.ctx, &members, &list).error_code() == grpc::StatusCode::NOT_FOUND);
    v1::CheckActingPartyRequest act;
    act.set_party_id(org.party().id());
    v1::Party p;
    CHECK(f.service.CheckActingParty(&f.ctx, &act, &p).error_code() == grpc::StatusCode::NOT_FOUND);
  }
  CHECK(f.Invite(kBen, org.party().id(), "x@example.de", v1::ROLE_MEMBER).error_code() == grpc::StatusCode::NOT_FOUND);
  {
    grpcx::TestCaller scope(kAnna);
    REQUIRE(f.service.GetOrganisation(&f.ctx, &get, &seen).ok());
    CHECK(seen.party().display_name() == "Bäckerei Schmidt GmbH");
  }
}

TEST_CASE("an invitation is mailed, accepted once, and makes a member", "[integration]") {
  Fixture f;
  auto org = f.CreateOrganisation(kAnna, "Sportverein Nord e.V.");
  REQUIRE(f.Invite(kAnna, org.party().id(), "Ben@Example.de", v1::ROLE_MEMBER).ok());
  const auto token = f.LastInvitationToken();
  f.Verified(kBen, "BEN@example.DE");
  v1::Membership m;
  REQUIRE(f.Accept(kBen, token, &m).ok());
  CHECK(m.role() == v1::ROLE_MEMBER);
  CHECK(m.organisation_id() == org.party().id());
  CHECK(f.Accept(kCem, token, &m).error_code() == grpc::StatusCode::INVALID_ARGUMENT);  // Single use.
  CHECK(f.Accept(kCem, "forged", &m).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  grpcx::TestCaller scope(kBen);
  v1::CheckActingPartyRequest act;
  act.set_party_id(org.party().id());
  v1::Party p;
  REQUIRE(f.service.CheckActingParty(&f.ctx, &act, &p).ok());
  CHECK(p.id() == org.party().id());
  v1::ListMyOrganisationsRequest mine;
  v1::ListMyOrganisationsResponse list;
  REQUIRE(f.service.ListMyOrganisations(&f.ctx, &mine, &list).ok());
  REQUIRE(list.organisations_size() == 1);
}

TEST_CASE("role rules: members do not invite or remove, admins do not remove owners, the last owner stays",
          "[integration]") {
  Fixture f;
  auto org = f.CreateOrganisation(kAnna, "Stadtwerke Test");
  const auto id = org.party().id();
  f.Join(kAnna, id, kBen, v1::ROLE_MEMBER);
  f.Join(kAnna, id, kCem, v1::ROLE_ADMIN);
  const auto anna = f.PartyOf(kAnna), ben = f.PartyOf(kBen), cem = f.PartyOf(kCem);

  CHECK(f.Invite(kBen, id, "x@example.de", v1::ROLE_MEMBER).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Remove(kBen, id, cem).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Remove(kCem, id, anna).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Invite(kCem, id, "x@example.de", v1::ROLE_OWNER).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Remove(kAnna, id, anna).error_code() == grpc::StatusCode::FAILED_PRECONDITION);  // Last owner.
  {
    grpcx::TestCaller scope(kAnna);
    v1::ChangeRoleRequest demote;
    demote.set_organisation_id(id);
    demote.set_person_party_id(anna);
    demote.set_role(v1::ROLE_MEMBER);
    v1::Membership m;
    CHECK(f.service.ChangeRole(&f.ctx, &demote, &m).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  }
  CHECK(f.Remove(kCem, id, ben).ok());                                         // An admin removes a member…
  CHECK(f.Remove(kBen, id, ben).error_code() == grpc::StatusCode::NOT_FOUND);  // …who is gone.
  CHECK(f.Remove(kCem, id, cem).ok());                                         // Leaving.

  grpcx::TestCaller scope(kCem);
  v1::CheckActingPartyRequest act;
  act.set_party_id(id);
  v1::Party p;
  CHECK(f.service.CheckActingParty(&f.ctx, &act, &p).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("bad organisation input is refused and stores nothing", "[integration]") {
  Fixture f;
  grpcx::TestCaller scope(kAnna);
  v1::CreateOrganisationRequest req;
  req.set_name(std::string(10000, 'x'));
  req.set_legal_form(v1::LEGAL_FORM_COMPANY);
  auto* a = req.mutable_address();
  a->set_street("Hauptmarkt");
  a->set_house_number("1");
  a->set_postcode("90403");
  a->set_city("Nürnberg");
  a->set_country("DE");
  v1::Organisation org;
  CHECK(f.service.CreateOrganisation(&f.ctx, &req, &org).error_message() == "name: at most 200 characters");
  req.set_name("Gut");
  a->set_postcode("9040");
  CHECK(f.service.CreateOrganisation(&f.ctx, &req, &org).error_message() == "address.postcode: invalid_postcode");
  a->set_postcode("90403");
  req.set_legal_form(v1::LEGAL_FORM_UNSPECIFIED);
  CHECK(f.service.CreateOrganisation(&f.ctx, &req, &org).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListMyOrganisationsRequest mine;
  v1::ListMyOrganisationsResponse list;
  REQUIRE(f.service.ListMyOrganisations(&f.ctx, &mine, &list).ok());
  CHECK(list.organisations_size() == 0);

  auto created = f.CreateOrganisation(kAnna, "Gut");
  CHECK(f.Invite(kAnna, created.party().id(), "not-an-address", v1::ROLE_MEMBER).error_message() ==
        "email: invalid_email");
  CHECK(f.Invite(kAnna, created.party().id(), "a@example.de", v1::ROLE_UNSPECIFIED).error_message() ==
        "role: invalid_role");
}

TEST_CASE("anonymous callers get nothing", "[integration]") {
  Fixture f;
  v1::GetMyPartyRequest req;
  v1::Party p;
  CHECK(f.service.GetMyParty(&f.ctx, &req, &p).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace stadtportal::accounts

namespace stadtportal::accounts {

TEST_CASE("profile values are validated: dates, postcodes, phones, lengths", "[unit]") {
  const std::string today = "2026-11-28";
  CHECK(ValidateProfileValue("birth_date", "1990-02-28", "DE", today).ok());
  CHECK(ValidateProfileValue("birth_date", "2000-02-29", "DE", today).ok());  // Leap year.
  CHECK(ValidateProfileValue("birth_date", "1999-02-29", "DE", today).message() == "birth_date: invalid_date");
  CHECK(ValidateProfileValue("birth_date", "2030-01-01", "DE", today).message() == "birth_date: date_in_future");
  CHECK(ValidateProfileValue("birth_date", "28.11.1990", "DE", today).message() == "birth_date: invalid_date");
  CHECK(ValidateProfileValue("address.postcode", "90403", "DE", today).ok());
  CHECK(ValidateProfileValue("address.postcode", "9040", "DE", today).message() ==
        "address.postcode: invalid_postcode");
  CHECK(ValidateProfileValue("address.postcode", "1010", "AT", today).ok());
  CHECK(ValidateProfileValue("phone", "+49 911 231-0", "DE", today).ok());
  CHECK(ValidateProfileValue("phone", "call me", "DE", today).message() == "phone: invalid_phone");
  CHECK(ValidateProfileValue("given_name", std::string(10000, 'x'), "DE", today).message() ==
        "given_name: at most 100 characters");
  CHECK(ValidateProfileValue("shoe_size", "44", "DE", today).message() == "shoe_size: unknown_field");
  CHECK(ValidateProfileValue("given_name", "", "DE", today).ok());  // Removal.
}

TEST_CASE("the profile keeps provenance; verified attributes cannot be changed", "[integration]") {
  Fixture f;
  grpcx::TestCaller scope(kAnna);
  v1::UpdateProfileRequest req;
  (*req.mutable_values())["given_name"] = "Anna";
  (*req.mutable_values())["address.postcode"] = "90403";
  v1::Profile p;
  REQUIRE(f.service.UpdateProfile(&f.ctx, &req, &p).ok());
  REQUIRE(p.attributes_size() == 2);
  CHECK(p.attributes(1).name() == "given_name");
  CHECK(p.attributes(1).source() == "self");

  // An identity provider vouches for the family name and the birth date.
  const std::string me = f.PartyOf(kAnna);
  REQUIRE(f.store
              ->RecordVerified("09564000", me, {{"family_name", "Muster"}, {"birth_date", "1990-02-28"}}, "bayernid",
                               "substantial")
              .ok());
  v1::UpdateProfileRequest change;
  (*change.mutable_values())["family_name"] = "Fälschung";
  (*change.mutable_values())["given_name"] = "Anne";
  auto refused = f.service.UpdateProfile(&f.ctx, &change, &p);
  CHECK(refused.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(refused.error_message() == "family_name: verified");
  v1::GetProfileRequest get;
  REQUIRE(f.service.GetProfile(&f.ctx, &get, &p).ok());
  std::map<std::string, v1::ProfileAttribute> attrs;
  for (const auto& a : p.attributes()) attrs[a.name()] = a;
  CHECK(attrs["given_name"].value() == "Anna");  // The refused update changed nothing.
  CHECK(attrs["family_name"].value() == "Muster");
  CHECK(attrs["family_name"].source() == "provider");
  CHECK(attrs["family_name"].provider() == "bayernid");
  CHECK(attrs["family_name"].assurance_level() == "substantial");
  CHECK(attrs["family_name"].vouched_at().seconds() > 0);

  v1::UpdateProfileRequest bad;
  (*bad.mutable_values())["birth_date"] = "2999-01-01";
  (*bad.mutable_values())["phone"] = "nope";
  auto invalid = f.service.UpdateProfile(&f.ctx, &bad, &p);
  CHECK(invalid.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(invalid.error_message() == "birth_date: date_in_future; phone: invalid_phone");  // All at once.
}

TEST_CASE("preferences default to German with every notification, and are kept per person", "[integration]") {
  Fixture f;
  grpcx::TestCaller scope(kAnna);
  v1::GetPreferencesRequest get;
  v1::Preferences p;
  REQUIRE(f.service.GetPreferences(&f.ctx, &get, &p).ok());
  CHECK(p.language() == "de");
  CHECK(p.email().messages());
  v1::Preferences set;
  set.set_language("en");
  set.mutable_email()->set_messages(true);
  set.mutable_email()->set_reminders(false);
  REQUIRE(f.service.UpdatePreferences(&f.ctx, &set, &p).ok());
  CHECK(p.language() == "en");
  CHECK_FALSE(p.email().reminders());
  set.set_language("fr");
  CHECK(f.service.UpdatePreferences(&f.ctx, &set, &p).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  grpcx::TestCaller other(kBen);
  REQUIRE(f.service.GetPreferences(&f.ctx, &get, &p).ok());
  CHECK(p.language() == "de");
}

TEST_CASE("consents are listed and withdrawable only by their giver", "[integration]") {
  Fixture f;
  v1::Consent c;
  {
    grpcx::TestCaller scope(kAnna);
    v1::GiveConsentRequest give;
    give.set_purpose("satisfaction-survey");
    give.set_text_version("2026-01");
    REQUIRE(f.service.GiveConsent(&f.ctx, &give, &c).ok());
    CHECK_FALSE(c.has_withdrawn_at());
    give.set_purpose("Not A Slug");
    v1::Consent bad;
    CHECK(f.service.GiveConsent(&f.ctx, &give, &bad).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::WithdrawConsentRequest withdraw;
  withdraw.set_id(c.id());
  v1::Consent w;
  {
    grpcx::TestCaller scope(kBen);
    CHECK(f.service.WithdrawConsent(&f.ctx, &withdraw, &w).error_code() == grpc::StatusCode::NOT_FOUND);
  }
  grpcx::TestCaller scope(kAnna);
  REQUIRE(f.service.WithdrawConsent(&f.ctx, &withdraw, &w).ok());
  CHECK(w.has_withdrawn_at());
  v1::ListConsentsRequest list;
  v1::ListConsentsResponse all;
  REQUIRE(f.service.ListConsents(&f.ctx, &list, &all).ok());
  REQUIRE(all.consents_size() == 1);
  CHECK(all.consents(0).has_withdrawn_at());
  // Withdrawing again keeps the first time.
  v1::Consent again;
  REQUIRE(f.service.WithdrawConsent(&f.ctx, &withdraw, &again).ok());
  CHECK(again.withdrawn_at().seconds() == w.withdrawn_at().seconds());
  CHECK(again.withdrawn_at().nanos() == w.withdrawn_at().nanos());
  // Given and withdrawn, each published once, at the consent's own times; the refused
  // attempts published nothing.
  CHECK(
      testing::QueryValue(
          f.schema.pool(),
          "SELECT string_agg(payload->>'state' || '|' || key || '|' || (payload->>'party_id') || '|' ||"
          " (payload->>'consent_id') || '|' || (payload->>'purpose') || '|' || (payload->>'text_version') || '|' ||"
          " ((payload->>'occurred_at')::timestamptz = CASE payload->>'state' WHEN 'given' THEN c.given_at"
          " ELSE c.withdrawn_at END)::text, ',' ORDER BY o.id)"
          " FROM outbox o JOIN consents c ON c.id::text = o.payload->>'consent_id' WHERE topic = 'consent.changed'") ==
      "given|" + kAnna.account_id + "|" + kAnna.account_id + "|" + c.id() +
          "|satisfaction-survey|2026-01|true,withdrawn|" + kAnna.account_id + "|" + kAnna.account_id + "|" + c.id() +
          "|satisfaction-survey|2026-01|true");
}

}  // namespace stadtportal::accounts

namespace stadtportal::accounts {

TEST_CASE("an expired or declined invitation cannot be accepted", "[integration]") {
  Fixture f;
  auto org = f.CreateOrganisation(kAnna, "Verein Süd");
  REQUIRE(f.Invite(kAnna, org.party().id(), "ben@example.de", v1::ROLE_MEMBER).ok());
  const auto expired = f.LastInvitationToken();
  {
    pqxx::connection conn(testing::DatabaseUrl());
    pqxx::work tx(conn);
    tx.exec("UPDATE " + tx.quote_name(f.schema.name()) + ".invitations SET expires_at = now() - interval '1 second'");
    tx.commit();
  }
  v1::Membership m;
  CHECK(f.Accept(kBen, expired, &m).error_message() == "token: invalid_token");

  REQUIRE(f.Invite(kAnna, org.party().id(), "ben@example.de", v1::ROLE_MEMBER).ok());
  const auto declined = f.LastInvitationToken();
  f.Verified(kBen, "ben@example.de");
  {
    grpcx::TestCaller scope(kBen);
    v1::AnswerInvitationRequest req;
    req.set_token(declined);
    v1::DeclineInvitationResponse resp;
    REQUIRE(f.service.DeclineInvitation(&f.ctx, &req, &resp).ok());
  }
  CHECK(f.Accept(kBen, declined, &m).error_message() == "token: invalid_token");
  grpcx::TestCaller scope(kBen);
  v1::ListMyOrganisationsRequest mine;
  v1::ListMyOrganisationsResponse list;
  REQUIRE(f.service.ListMyOrganisations(&f.ctx, &mine, &list).ok());
  CHECK(list.organisations_size() == 0);
}

TEST_CASE("an invitation is accepted only by the account whose verified address it was sent to", "[integration]") {
  Fixture f;
  auto org = f.CreateOrganisation(kAnna, "Verein West");
  REQUIRE(f.Invite(kAnna, org.party().id(), "ben@example.de", v1::ROLE_ADMIN).ok());
  const auto token = f.LastInvitationToken();
  v1::Membership m;
  // Cem got hold of the link: his verified address is another one.
  f.Verified(kCem, "cem@example.de");
  CHECK(f.Accept(kCem, token, &m).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  {
    // Nor can he spoil it for Ben by declining it.
    grpcx::TestCaller scope(kCem);
    v1::AnswerInvitationRequest req;
    req.set_token(token);
    v1::DeclineInvitationResponse resp;
    CHECK(f.service.DeclineInvitation(&f.ctx, &req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  // Ben has not verified an address yet (or identity has not told accounts so far).
  CHECK(f.Accept(kBen, token, &m).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // A similar address is not the address.
  f.Verified(kBen, "ben@example.de.evil.example");
  CHECK(f.Accept(kBen, token, &m).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  {
    grpcx::TestCaller scope(kCem);
    v1::ListMyOrganisationsRequest mine;
    v1::ListMyOrganisationsResponse list;
    REQUIRE(f.service.ListMyOrganisations(&f.ctx, &mine, &list).ok());
    CHECK(list.organisations_size() == 0);  // Refusals changed nothing…
  }
  // …and left the invitation open for its addressee.
  f.Verified(kBen, " Ben@Example.DE");
  REQUIRE(f.Accept(kBen, token, &m).ok());
  CHECK(m.role() == v1::ROLE_ADMIN);
  // Another tenant's verification of the same address does not count.
  REQUIRE(f.Invite(kAnna, org.party().id(), "dora@example.de", v1::ROLE_MEMBER).ok());
  const auto dora_token = f.LastInvitationToken();
  const auth::Caller dora = PersonCaller("44444444-4444-4444-8444-444444444444");
  auth::Caller dora_elsewhere = dora;
  dora_elsewhere.tenant = "09162000";
  f.Verified(dora_elsewhere, "dora@example.de");
  CHECK(f.Accept(dora, dora_token, &m).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace stadtportal::accounts

namespace stadtportal::accounts {
namespace {

// Identity as far as switching goes: records what it was asked and by whom.
class Sessions final : public identity::v1::IdentityService::Service {
 public:
  explicit Sessions(auth::Verifier verifier) : verifier_(std::move(verifier)) {}
  grpc::Status SetActingParty(grpc::ServerContext* ctx, const identity::v1::SetActingPartyRequest* req,
                              identity::v1::LoginResponse* resp) override {
    auto caller = verifier_.Verify(grpcx::ClientMetadata(*ctx, auth::kCallerMetadataKey));
    std::lock_guard<std::mutex> lock(mu_);
    asked.push_back(*req);
    callers.push_back(caller.ok() ? *caller : auth::Caller{});
    resp->set_session_id("rotated");
    resp->mutable_session()->set_acting_party_id(req->acting_party_id());
    return grpc::Status::OK;
  }
  std::mutex mu_;
  std::vector<identity::v1::SetActingPartyRequest> asked;
  std::vector<auth::Caller> callers;

 private:
  auth::Verifier verifier_;
};

}  // namespace

TEST_CASE("switching the acting party checks the membership, then has identity rotate the session as accounts",
          "[integration]") {
  Fixture f;
  auto signer = auth::Signer::FromKey(auth::NewSigningKey("accounts-test"), std::chrono::seconds(60), "accounts");
  REQUIRE(signer.ok());
  auto gateway = auth::Signer::FromKey(auth::NewSigningKey("gateway-test"), std::chrono::seconds(60));
  auto verifier = auth::Verifier::FromKeys(gateway->PublicKey(), "identity");
  REQUIRE(verifier.ok());
  REQUIRE(verifier->TrustServiceKeys("accounts", signer->PublicKey()).ok());
  Sessions identity(*verifier);
  grpc::ServerBuilder builder;
  builder.RegisterService(&identity);
  auto server = builder.BuildAndStart();
  Service service(f.store, Options{}, nullptr, server->InProcessChannel({}), *signer);
  grpc::ServerContext ctx;

  // Anna's organisation; Ben is no member.
  auto org = f.CreateOrganisation(kAnna, "Bäckerei Schmidt GmbH");
  v1::SwitchActingPartyRequest req;
  req.set_session_id("session-of-the-caller");
  req.set_party_id(org.party().id());
  v1::SwitchActingPartyResponse resp;
  // The gateway names the caller's session in the token by its hash.
  auto in_session = [](auth::Caller c, const std::string& session_id) {
    c.session_ref = absl::BytesToHexString(auth::Sha256(session_id));
    return c;
  };
  const auth::Caller anna = in_session(kAnna, "session-of-the-caller");
  {
    grpcx::TestCaller scope(in_session(kBen, "session-of-the-caller"));
    CHECK(service.SwitchActingParty(&ctx, &req, &resp).error_code() == grpc::StatusCode::NOT_FOUND);
    req.set_party_id("not-a-uuid");
    CHECK(service.SwitchActingParty(&ctx, &req, &resp).error_code() == grpc::StatusCode::NOT_FOUND);
  }
  {
    grpcx::TestCaller anonymous(auth::Caller{});
    CHECK(service.SwitchActingParty(&ctx, &req, &resp).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    // Anna's token from another of her sessions (or none): that session is not switched.
    req.set_party_id(org.party().id());
    grpcx::TestCaller other(in_session(kAnna, "another-session"));
    CHECK(service.SwitchActingParty(&ctx, &req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    grpcx::TestCaller none(kAnna);
    CHECK(service.SwitchActingParty(&ctx, &req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(identity.asked.empty());  // Refused before identity is asked.

  grpcx::TestCaller scope(anna);
  req.set_party_id(org.party().id());
  REQUIRE(service.SwitchActingParty(&ctx, &req, &resp).ok());
  CHECK(resp.party().id() == org.party().id());
  CHECK(resp.login().session_id() == "rotated");
  // And back to herself: no acting party.
  req.set_party_id("");
  REQUIRE(service.SwitchActingParty(&ctx, &req, &resp).ok());
  CHECK(resp.party().kind() == common::v1::PARTY_KIND_PERSON);
  REQUIRE(identity.asked.size() == 2);
  CHECK(identity.asked[0].session_id() == "session-of-the-caller");
  CHECK(identity.asked[0].account_id() == kAnna.account_id);
  CHECK(identity.asked[0].acting_party_id() == org.party().id());
  CHECK(identity.asked[1].acting_party_id().empty());
  // Asked as accounts itself, the platform service, for Anna's tenant.
  CHECK(identity.callers[0].account_id == "accounts");
  CHECK(identity.callers[0].roles == std::vector<std::string>{"service"});
  CHECK(identity.callers[0].tenant == "09564000");
  server->Shutdown();
}

}  // namespace stadtportal::accounts

#include "services/accounts/service.h"

#include <regex>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/api/api.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"
#include "services/accounts/file.h"

namespace stadtportal::accounts {
namespace {

// Identity rotating a session: one indexed read and write.
constexpr std::chrono::milliseconds kIdentityDeadline{3000};
// Kept back from the caller's deadline for the answer to travel back.
constexpr std::chrono::milliseconds kAnswerMargin{200};

// Rank for the role rules: a smaller number is more powerful.
int Rank(const std::string& role) { return role == "owner" ? 0 : role == "admin" ? 1 : 2; }

absl::Status NotMember() { return absl::NotFoundError("organisation not found"); }

// ISO 3166-1 alpha-2.
bool IsCountry(const std::string& country) {
  static const std::regex kCountry("^[A-Z]{2}$");
  return std::regex_match(country, kCountry);
}

// German postcodes have five digits; elsewhere 2-10 letters, digits, spaces or dashes.
bool IsPostcode(const std::string& postcode, const std::string& country) {
  static const std::regex kDe("^[0-9]{5}$"), kOther("^[A-Za-z0-9 -]{2,10}$");
  return std::regex_match(postcode, country == "DE" ? kDe : kOther);
}

mail::Mail InvitationMail(const std::string& language, const std::string& to, const std::string& name,
                          const std::string& link) {
  // Validated when stored, and still inserted as plain text: a stored name must not
  // become a header or a paragraph of the platform's own mail.
  const std::string organisation = api::PlainLine(name, 200);
  if (language == "en") {
    return {to, "Invitation to act for " + organisation + " on stadtportal",
            "Hello,\r\n\r\nyou are invited to act for " + organisation +
                " on stadtportal. To accept or decline, log in and open this link within 7 days:\r\n\r\n" + link +
                "\r\n\r\nIf you do not know this organisation, ignore this mail.\r\n"};
  }
  return {to, "Einladung: für " + organisation + " auf stadtportal handeln",
          "Guten Tag,\r\n\r\nSie sind eingeladen, auf stadtportal für " + organisation +
              " zu handeln. Melden Sie sich an und öffnen Sie innerhalb von 7 Tagen diesen Link, um anzunehmen oder "
              "abzulehnen:\r\n\r\n" +
              link + "\r\n\r\nKennen Sie diese Organisation nicht, ignorieren Sie diese Nachricht.\r\n"};
}

}  // namespace

absl::Status ValidateAddress(const v1::Address& a) {
  if (auto s = api::ValidateText(a.street(), "address.street", 200); !s.ok()) return s;
  if (auto s = api::ValidateText(a.house_number(), "address.house_number", 20); !s.ok()) return s;
  if (auto s = api::ValidateText(a.city(), "address.city", 100); !s.ok()) return s;
  if (!IsCountry(a.country())) return status::FieldError("address.country", "invalid_country");
  if (!IsPostcode(a.postcode(), a.country())) return status::FieldError("address.postcode", "invalid_postcode");
  return absl::OkStatus();
}

Service::Service(std::shared_ptr<Store> store, Options options, mail::Relay* relay,
                 std::shared_ptr<grpc::ChannelInterface> identity_channel, auth::Signer signer)
    : store_(std::move(store)),
      options_(std::move(options)),
      relay_(relay),
      identity_(identity_channel != nullptr ? identity::v1::IdentityService::NewStub(identity_channel) : nullptr),
      signer_(std::move(signer)) {
  if (options_.document_types == nullptr) {
    auto types = DocumentTypes::Embedded();
    if (!types.ok()) throw config::Error(std::string(types.status().message()));
    options_.document_types = std::make_shared<const DocumentTypes>(*std::move(types));
  }
}

std::string Service::Tenant(const auth::Caller& caller) const {
  return caller.tenant.empty() ? options_.default_tenant : caller.tenant;
}

absl::StatusOr<v1::Party> Service::Person(const auth::Caller& caller) {
  if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
  return store_->EnsurePerson(Tenant(caller), caller.account_id);
}

absl::StatusOr<v1::Party> Service::Me(const auth::Caller& caller) {
  auto me = Person(caller);
  if (!me.ok()) return me.status();
  // The acting organisation must still have the person as a member.
  auto scope = auth::ScopeParty(caller);
  if (!scope.ok()) return scope.status();
  if (*scope != me->id()) {
    auto role = store_->RoleOf(Tenant(caller), *scope, me->id());
    if (!role.ok()) return role.status();
    if (!role->has_value()) return absl::PermissionDeniedError("acting_party: not_a_member");
  }
  return me;
}

absl::StatusOr<std::string> Service::MyRole(const auth::Caller& caller, const v1::Party& me, const std::string& org) {
  if (!api::ValidateUuid(org, "organisation_id").ok()) return NotMember();
  auto role = store_->RoleOf(Tenant(caller), org, me.id());
  if (!role.ok()) return role.status();
  if (!role->has_value()) return NotMember();
  return **role;
}

grpc::Status Service::CreateParty(grpc::ServerContext* ctx, const v1::CreatePartyRequest* req, v1::Party* resp) {
  return grpcx::Handle(ctx, "CreateParty", [&]() -> absl::Status {
    auto tenant = api::ResolveTenant(req->tenant(), options_.default_tenant);
    if (!tenant.ok()) return tenant.status();
    if (auto s = api::ValidateText(req->display_name(), "display_name", 200); !s.ok()) return s;
    NewParty p{*tenant, "", req->display_name(), req->identity_account_id()};
    switch (req->kind()) {
      case common::v1::PARTY_KIND_PERSON:
        p.kind = "person";
        if (auto s = api::ValidateUuid(p.identity_account_id, "identity_account_id"); !s.ok()) return s;
        break;
      case common::v1::PARTY_KIND_ORGANISATION:
        p.kind = "organisation";
        if (!p.identity_account_id.empty()) {
          return status::FieldError("identity_account_id", "invalid", "only persons log in with an identity account");
        }
        break;
      default: return status::FieldError("kind", "invalid", "PERSON or ORGANISATION required");
    }
    return grpcx::Respond(resp, store_->CreateParty(p));
  });
}

grpc::Status Service::GetParty(grpc::ServerContext* ctx, const v1::GetPartyRequest* req, v1::Party* resp) {
  return grpcx::Handle(ctx, "GetParty", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = api::ValidateUuid(req->id(), "id"); !s.ok()) return s;
    return grpcx::Respond(resp, store_->GetParty(Tenant(caller), req->id()));
  });
}

grpc::Status Service::GetMyParty(grpc::ServerContext* ctx, const v1::GetMyPartyRequest*, v1::Party* resp) {
  return grpcx::Handle(ctx, "GetMyParty", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    *resp = *me;
    return absl::OkStatus();
  });
}

grpc::Status Service::CreateOrganisation(grpc::ServerContext* ctx, const v1::CreateOrganisationRequest* req,
                                         v1::Organisation* resp) {
  return grpcx::Handle(ctx, "CreateOrganisation", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (auto s = api::ValidateText(req->name(), "name", 200); !s.ok()) return s;
    std::string form;
    switch (req->legal_form()) {
      case v1::LEGAL_FORM_COMPANY: form = "company"; break;
      case v1::LEGAL_FORM_ASSOCIATION: form = "association"; break;
      case v1::LEGAL_FORM_AUTHORITY: form = "authority"; break;
      default: return status::FieldError("legal_form", "invalid");
    }
    if (!req->register_number().empty()) {
      if (auto s = api::ValidateText(req->register_number(), "register_number", 40); !s.ok()) return s;
    }
    if (auto s = ValidateAddress(req->address()); !s.ok()) return s;
    return grpcx::Respond(resp, store_->CreateOrganisation({Tenant(caller), req->name(), form, req->register_number(),
                                                            req->address(), me->id()}));
  });
}

grpc::Status Service::GetOrganisation(grpc::ServerContext* ctx, const v1::GetOrganisationRequest* req,
                                      v1::Organisation* resp) {
  return grpcx::Handle(ctx, "GetOrganisation", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (!api::ValidateUuid(req->id(), "id").ok()) return NotMember();
    return grpcx::Respond(resp, store_->GetOrganisation(Tenant(caller), req->id(), me->id()));
  });
}

grpc::Status Service::ListMyOrganisations(grpc::ServerContext* ctx, const v1::ListMyOrganisationsRequest*,
                                          v1::ListMyOrganisationsResponse* resp) {
  return grpcx::Handle(ctx, "ListMyOrganisations", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    auto found = store_->ListOrganisationsOf(Tenant(caller), me->id());
    if (!found.ok()) return found.status();
    for (auto& o : *found) *resp->add_organisations() = std::move(o);
    return absl::OkStatus();
  });
}

grpc::Status Service::ListMembers(grpc::ServerContext* ctx, const v1::ListMembersRequest* req,
                                  v1::ListMembersResponse* resp) {
  return grpcx::Handle(ctx, "ListMembers", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (auto role = MyRole(caller, *me, req->organisation_id()); !role.ok()) return role.status();
    auto found = store_->ListMembers(Tenant(caller), req->organisation_id());
    if (!found.ok()) return found.status();
    for (auto& m : *found) *resp->add_members() = std::move(m);
    return absl::OkStatus();
  });
}

grpc::Status Service::InviteMember(grpc::ServerContext* ctx, const v1::InviteMemberRequest* req, v1::Invitation* resp) {
  return grpcx::Handle(ctx, "InviteMember", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    auto mine = MyRole(caller, *me, req->organisation_id());
    if (!mine.ok()) return mine.status();
    const std::string role = RoleName(req->role());
    if (role.empty()) return status::FieldError("role", "invalid_role");
    if (Rank(*mine) > 1) return absl::PermissionDeniedError("only owners and admins invite");
    if (Rank(role) < Rank(*mine)) return absl::PermissionDeniedError("an admin cannot invite owners");
    auto email = api::NormalizeEmail(req->email(), "email");
    if (!email.ok()) return email.status();
    auto org = store_->GetOrganisation(Tenant(caller), req->organisation_id(), me->id());
    if (!org.ok()) return org.status();
    const std::string token = auth::RandomToken();
    const std::string link = options_.public_url + "/invitations?token=" + token;
    auto invited = store_->Invite(
        {Tenant(caller), req->organisation_id(), *email, role, auth::Sha256(token), me->id(), options_.invitation_ttl},
        InvitationMail(req->language() == "en" ? "en" : "de", *email, org->party().display_name(), link));
    if (!invited.ok()) return invited.status();
    if (relay_ != nullptr) relay_->Notify();
    *resp = *invited;
    return absl::OkStatus();
  });
}

grpc::Status Service::AcceptInvitation(grpc::ServerContext* ctx, const v1::AnswerInvitationRequest* req,
                                       v1::Membership* resp) {
  return grpcx::Handle(ctx, "AcceptInvitation", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (req->token().empty() || req->token().size() > 128) return status::FieldError("token", "invalid_token");
    // A person's party id is its identity account id: the verified address is looked
    // up by it (only that account may accept what was sent to its address).
    return grpcx::Respond(resp, store_->AcceptInvitation(auth::Sha256(req->token()), me->id()));
  });
}

grpc::Status Service::DeclineInvitation(grpc::ServerContext* ctx, const v1::AnswerInvitationRequest* req,
                                        v1::DeclineInvitationResponse*) {
  return grpcx::Handle(ctx, "DeclineInvitation", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (req->token().empty() || req->token().size() > 128) return status::FieldError("token", "invalid_token");
    return store_->DeclineInvitation(auth::Sha256(req->token()), me->id());
  });
}

grpc::Status Service::ChangeRole(grpc::ServerContext* ctx, const v1::ChangeRoleRequest* req, v1::Membership* resp) {
  return grpcx::Handle(ctx, "ChangeRole", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    auto mine = MyRole(caller, *me, req->organisation_id());
    if (!mine.ok()) return mine.status();
    const std::string role = RoleName(req->role());
    if (role.empty()) return status::FieldError("role", "invalid_role");
    if (!api::ValidateUuid(req->person_party_id(), "person_party_id").ok())
      return absl::NotFoundError("member not found");
    auto theirs = store_->RoleOf(Tenant(caller), req->organisation_id(), req->person_party_id());
    if (!theirs.ok()) return theirs.status();
    if (!theirs->has_value()) return absl::NotFoundError("member not found");
    // Owners change anyone; admins only members and admins, and never make owners.
    if (Rank(*mine) > 1 || (Rank(*mine) == 1 && (Rank(**theirs) == 0 || Rank(role) == 0))) {
      return absl::PermissionDeniedError("your role does not allow this change");
    }
    return grpcx::Respond(resp,
                          store_->ChangeRole(Tenant(caller), req->organisation_id(), req->person_party_id(), role));
  });
}

grpc::Status Service::RemoveMember(grpc::ServerContext* ctx, const v1::RemoveMemberRequest* req,
                                   v1::RemoveMemberResponse*) {
  return grpcx::Handle(ctx, "RemoveMember", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    auto mine = MyRole(caller, *me, req->organisation_id());
    if (!mine.ok()) return mine.status();
    if (!api::ValidateUuid(req->person_party_id(), "person_party_id").ok())
      return absl::NotFoundError("member not found");
    const bool leaving = req->person_party_id() == me->id();
    if (!leaving) {
      auto theirs = store_->RoleOf(Tenant(caller), req->organisation_id(), req->person_party_id());
      if (!theirs.ok()) return theirs.status();
      if (!theirs->has_value()) return absl::NotFoundError("member not found");
      // Members remove nobody; admins cannot remove owners.
      if (Rank(*mine) > 1 || Rank(**theirs) < Rank(*mine)) {
        return absl::PermissionDeniedError("your role does not allow removing this member");
      }
    }
    return store_->RemoveMember(Tenant(caller), req->organisation_id(), req->person_party_id());
  });
}

absl::StatusOr<v1::Party> Service::ActingParty(const auth::Caller& caller, const std::string& party_id) {
  if (caller.anonymous()) return absl::UnauthenticatedError("log-in required");
  if (party_id.empty() || party_id == caller.account_id) return Person(caller);
  // A membership check (the gateway asks at every request acting for an organisation):
  // one read, as a person's party id is its identity account id.
  if (!api::ValidateUuid(party_id, "party_id").ok()) return NotMember();
  auto org = store_->GetOrganisation(Tenant(caller), party_id, caller.account_id);
  if (!org.ok()) return org.status();
  return org->party();
}

grpc::Status Service::CheckActingParty(grpc::ServerContext* ctx, const v1::CheckActingPartyRequest* req,
                                       v1::Party* resp) {
  return grpcx::Handle(ctx, "CheckActingParty", [&](const auth::Caller& caller) -> absl::Status {
    return grpcx::Respond(resp, ActingParty(caller, req->party_id()));
  });
}

grpc::Status Service::SwitchActingParty(grpc::ServerContext* ctx, const v1::SwitchActingPartyRequest* req,
                                        v1::SwitchActingPartyResponse* resp) {
  return grpcx::Handle(ctx, "SwitchActingParty", [&](const auth::Caller& caller) -> absl::Status {
    auto party = ActingParty(caller, req->party_id());
    if (!party.ok()) return party.status();
    // Only the caller's own session switches: its token names the session by its hash, so
    // another session of the same person (or a session id from elsewhere) is refused.
    if (caller.session_ref.empty() || absl::BytesToHexString(auth::Sha256(req->session_id())) != caller.session_ref) {
      return absl::PermissionDeniedError("not the caller's session");
    }
    if (identity_ == nullptr) return absl::UnavailableError("identity is not configured");
    // Identity takes the switch from accounts only, as the platform service, for the
    // session of the account named here (the caller's).
    identity::v1::SetActingPartyRequest in;
    in.set_session_id(req->session_id());
    in.set_account_id(caller.account_id);
    // Acting as oneself is recorded as "no acting party".
    in.set_acting_party_id(party->kind() == common::v1::PARTY_KIND_ORGANISATION ? party->id() : "");
    // Within the caller's own deadline, with time left to answer: a rotation whose answer
    // arrived after the gateway gave up would leave the person without a session.
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(ctx->deadline() - std::chrono::system_clock::now()) -
        kAnswerMargin;
    if (left <= std::chrono::milliseconds(0)) return absl::DeadlineExceededError("no time left to switch");
    auto call =
        grpcx::NewClientContext(std::min(kIdentityDeadline, left), signer_.SignSelf(Tenant(caller), "identity"));
    if (auto s = status::FromGrpc(identity_->SetActingParty(call.get(), in, resp->mutable_login())); !s.ok()) {
      return s;
    }
    *resp->mutable_party() = *std::move(party);
    return absl::OkStatus();
  });
}

bool IsDate(const std::string& value) {
  static const std::regex kDate("^([0-9]{4})-([0-9]{2})-([0-9]{2})$");
  std::smatch m;
  if (!std::regex_match(value, m, kDate)) return false;
  const int y = std::stoi(m[1].str()), mo = std::stoi(m[2].str()), d = std::stoi(m[3].str());
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (y < 1900 || y > 2199 || mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1]) return false;
  return !(mo == 2 && d == 29 && !leap);
}

absl::Status ValidateExpiry(const std::string& value, const std::string& today) {
  if (value.empty()) return status::FieldError("expires_on", "required");
  if (value.size() != 10 || !IsDate(value)) return status::FieldError("expires_on", "invalid_date");
  // ISO dates compare as strings.
  if (value < today) return status::FieldError("expires_on", "too_early", "the document has expired");
  const std::string latest = std::to_string(std::stoi(today.substr(0, 4)) + 30) + today.substr(4);
  if (value > latest) return status::FieldError("expires_on", "too_late", "at most 30 years from today");
  return absl::OkStatus();
}

absl::Status ValidateDocumentLabel(const std::string& value) {
  if (value.empty()) return absl::OkStatus();
  if (value.size() > 4 * 80) return status::FieldError("label", "invalid", "at most 80 characters");
  return api::ValidateText(value, "label", 80);
}

absl::Status ValidateProfileValue(const std::string& name, const std::string& value, const std::string& country,
                                  const std::string& today) {
  auto invalid = [&](const char* code) { return status::FieldError(name, code); };
  if (value.empty()) return absl::OkStatus();  // Removes the attribute.
  if (name == "given_name" || name == "family_name" || name == "address.street" || name == "address.city") {
    return api::ValidateText(value, name, 100);
  }
  if (name == "address.house_number") return api::ValidateText(value, name, 20);
  if (name == "birth_date") {
    static const std::regex kDate("^([0-9]{4})-([0-9]{2})-([0-9]{2})$");
    std::smatch m;
    if (!std::regex_match(value, m, kDate)) return invalid("invalid_date");
    const int y = std::stoi(m[1].str()), mo = std::stoi(m[2].str()), d = std::stoi(m[3].str());
    static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap))
      return invalid("invalid_date");
    if (y < 1900) return invalid("invalid_date");
    if (value > today) return invalid("date_in_future");  // ISO dates compare as strings.
    return absl::OkStatus();
  }
  if (name == "phone") {
    static const std::regex kPhone(R"(^\+?[0-9][0-9 ()/-]{4,29}$)");
    return std::regex_match(value, kPhone) ? absl::OkStatus() : invalid("invalid_phone");
  }
  if (name == "contact_email") return api::NormalizeEmail(value, name).status();
  if (name == "address.country") return IsCountry(value) ? absl::OkStatus() : invalid("invalid_country");
  if (name == "address.postcode") return IsPostcode(value, country) ? absl::OkStatus() : invalid("invalid_postcode");
  return invalid("unknown_field");
}

grpc::Status Service::GetProfile(grpc::ServerContext* ctx, const v1::GetProfileRequest*, v1::Profile* resp) {
  return grpcx::Handle(ctx, "GetProfile", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    auto profile = store_->GetProfile(Tenant(caller), me->id());
    if (!profile.ok()) return profile.status();
    // A partner portal's read is on the person's access log before it is answered.
    if (caller.partner()) {
      if (auto s = store_->RecordAccess(audit::PartnerRead(caller, "profile")); !s.ok()) return s;
    }
    *resp = *std::move(profile);
    return absl::OkStatus();
  });
}

grpc::Status Service::UpdateProfile(grpc::ServerContext* ctx, const v1::UpdateProfileRequest* req, v1::Profile* resp) {
  return grpcx::Handle(ctx, "UpdateProfile", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (req->values().empty()) return status::FieldError("values", "required");
    // The postcode rule depends on the country: the new one, else the stored one, else DE.
    std::string country = "DE";
    auto current = store_->GetProfile(Tenant(caller), me->id());
    if (!current.ok()) return current.status();
    for (const auto& a : current->attributes()) {
      if (a.name() == "address.country") country = a.value();
    }
    if (auto it = req->values().find("address.country"); it != req->values().end() && !it->second.empty()) {
      country = it->second;
    }
    const std::string today = absl::FormatTime("%Y-%m-%d", absl::Now(), absl::LocalTimeZone());
    // Sorted by name, so the field errors come in a stable order.
    const std::map<std::string, std::string> values(req->values().begin(), req->values().end());
    std::vector<status::FieldViolation> errors;
    std::vector<std::string> messages;
    for (const auto& [name, value] : values) {
      if (auto s = ValidateProfileValue(name, value, country, today); !s.ok()) {
        for (auto& v : status::FieldViolations(s)) errors.push_back(std::move(v));
        messages.emplace_back(s.message());
      }
    }
    // All field errors at once.
    if (!errors.empty()) return status::InvalidFields(std::move(errors), absl::StrJoin(messages, "; "));
    return grpcx::Respond(resp, store_->UpdateProfile(Tenant(caller), me->id(), values));
  });
}

grpc::Status Service::GetPreferences(grpc::ServerContext* ctx, const v1::GetPreferencesRequest*,
                                     v1::Preferences* resp) {
  return grpcx::Handle(ctx, "GetPreferences", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    return grpcx::Respond(resp, store_->GetPreferences(Tenant(caller), me->id()));
  });
}

grpc::Status Service::UpdatePreferences(grpc::ServerContext* ctx, const v1::Preferences* req, v1::Preferences* resp) {
  return grpcx::Handle(ctx, "UpdatePreferences", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (req->language() != "de" && req->language() != "en") return status::FieldError("language", "invalid");
    return grpcx::Respond(resp, store_->SetPreferences(Tenant(caller), me->id(), *req));
  });
}

grpc::Status Service::ListConsents(grpc::ServerContext* ctx, const v1::ListConsentsRequest*,
                                   v1::ListConsentsResponse* resp) {
  return grpcx::Handle(ctx, "ListConsents", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    auto list = store_->ListConsents(Tenant(caller), me->id());
    if (!list.ok()) return list.status();
    for (auto& c : *list) *resp->add_consents() = std::move(c);
    return absl::OkStatus();
  });
}

grpc::Status Service::GiveConsent(grpc::ServerContext* ctx, const v1::GiveConsentRequest* req, v1::Consent* resp) {
  return grpcx::Handle(ctx, "GiveConsent", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (auto s = api::ValidateSlug(req->purpose(), "purpose"); !s.ok()) return s;
    if (auto s = api::ValidateText(req->text_version(), "text_version", 40); !s.ok()) return s;
    return grpcx::Respond(resp, store_->GiveConsent(Tenant(caller), me->id(), req->purpose(), req->text_version()));
  });
}

grpc::Status Service::WithdrawConsent(grpc::ServerContext* ctx, const v1::WithdrawConsentRequest* req,
                                      v1::Consent* resp) {
  return grpcx::Handle(ctx, "WithdrawConsent", [&](const auth::Caller& caller) -> absl::Status {
    auto me = Me(caller);
    if (!me.ok()) return me.status();
    if (!api::ValidateUuid(req->id(), "id").ok()) return absl::NotFoundError("consent not found");
    return grpcx::Respond(resp, store_->WithdrawConsent(Tenant(caller), me->id(), req->id()));
  });
}

absl::StatusOr<std::string> Service::DocumentOwner(const auth::Caller& caller) {
  auto me = Me(caller);
  if (!me.ok()) return me.status();
  return auth::ScopeParty(caller);
}

v1::Document Service::WithRenewal(v1::Document d) const {
  if (const auto* type = options_.document_types->Find(d.type()); type != nullptr) {
    d.set_renewal_service_id(type->renewal_service_id());
  }
  return d;
}

grpc::Status Service::ListDocuments(grpc::ServerContext* ctx, const v1::ListDocumentsRequest*,
                                    v1::ListDocumentsResponse* resp) {
  return grpcx::Handle(ctx, "ListDocuments", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = DocumentOwner(caller);
    if (!owner.ok()) return owner.status();
    auto list = store_->ListDocuments(Tenant(caller), *owner);
    if (!list.ok()) return list.status();
    for (auto& d : *list) *resp->add_documents() = WithRenewal(std::move(d));
    return absl::OkStatus();
  });
}

grpc::Status Service::GetDocument(grpc::ServerContext* ctx, const v1::GetDocumentRequest* req, v1::Document* resp) {
  return grpcx::Handle(ctx, "GetDocument", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = DocumentOwner(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "document"); !s.ok()) return s;
    auto d = store_->GetDocument(Tenant(caller), *owner, req->id());
    if (!d.ok()) return d.status();
    *resp = WithRenewal(*std::move(d));
    return absl::OkStatus();
  });
}

grpc::Status Service::AddDocument(grpc::ServerContext* ctx, const v1::AddDocumentRequest* req, v1::Document* resp) {
  return grpcx::Handle(ctx, "AddDocument", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = DocumentOwner(caller);
    if (!owner.ok()) return owner.status();
    // Every field error at once, in a stable order.
    std::vector<status::FieldViolation> errors;
    std::vector<std::string> messages;
    auto check = [&](const absl::Status& s) {
      if (s.ok()) return;
      for (auto& v : status::FieldViolations(s)) errors.push_back(std::move(v));
      messages.emplace_back(s.message());
    };
    const auto* type = options_.document_types->Find(req->type());
    if (req->type().empty()) {
      check(status::FieldError("type", "required"));
    } else if (type == nullptr) {
      check(status::FieldError("type", "invalid_option", "not a known document type"));
    }
    check(ValidateDocumentLabel(req->label()));
    check(ValidateExpiry(req->expires_on(), absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone())));
    if (!errors.empty()) return status::InvalidFields(std::move(errors), absl::StrJoin(messages, "; "));
    NewDocument d;
    d.tenant = Tenant(caller);
    d.party_id = *owner;
    d.type = req->type();
    d.label = req->label();
    d.expires_on = req->expires_on();
    d.source = "person";
    d.remind_days_before = type->remind_days_before();
    auto added = store_->AddDocument(d);
    if (!added.ok()) return added.status();
    *resp = WithRenewal(*std::move(added));
    return absl::OkStatus();
  });
}

grpc::Status Service::DeleteDocument(grpc::ServerContext* ctx, const v1::DeleteDocumentRequest* req,
                                     v1::DeleteDocumentResponse*) {
  return grpcx::Handle(ctx, "DeleteDocument", [&](const auth::Caller& caller) -> absl::Status {
    auto owner = DocumentOwner(caller);
    if (!owner.ok()) return owner.status();
    if (auto s = api::CheckId(req->id(), "document"); !s.ok()) return s;
    return store_->DeleteDocument(Tenant(caller), *owner, req->id());
  });
}

grpc::Status Service::ListDocumentTypes(grpc::ServerContext* ctx, const v1::ListDocumentTypesRequest*,
                                        v1::ListDocumentTypesResponse* resp) {
  return grpcx::Handle(ctx, "ListDocumentTypes", [&]() -> absl::Status {
    for (const auto& t : options_.document_types->All()) *resp->add_types() = t;
    return absl::OkStatus();
  });
}

grpc::Status Service::ListAccessLog(grpc::ServerContext* ctx, const v1::ListAccessLogRequest* req,
                                    v1::ListAccessLogResponse* resp) {
  return grpcx::Handle(ctx, "ListAccessLog", [&](const auth::Caller& caller) -> absl::Status {
    // The party's own view: a partner portal reads for the person, never who else read.
    if (caller.partner()) return absl::PermissionDeniedError("not open to partner portals");
    auto owner = DocumentOwner(caller);
    if (!owner.ok()) return owner.status();
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    AccessLogQuery q;
    q.tenant = Tenant(caller);
    q.party_id = *owner;
    q.page_size = page->size;
    if (!page->after.empty()) {
      static const std::regex kCursor("^(-?[0-9]{1,17})\\|([0-9]{1,18})$");
      std::smatch m;
      if (!std::regex_match(page->after, m, kCursor)) {
        return status::MalformedField("page.page_token", "invalid", "not a token this service issued");
      }
      q.after_micros = std::stoll(m[1].str());
      q.after_id = std::stoll(m[2].str());
    }
    // Bounds within the years a log can hold; to after from.
    constexpr int64_t kMinMicros = 946684800LL * 1000000, kMaxMicros = 4102444800LL * 1000000;  // 2000 … 2100
    auto bound = [&](const char* field, const google::protobuf::Timestamp& t, int64_t* out) -> absl::Status {
      using google::protobuf::util::TimeUtil;
      if (t.nanos() < 0 || t.nanos() > 999999999 || t.seconds() < kMinMicros / 1000000 ||
          t.seconds() > kMaxMicros / 1000000) {
        return status::MalformedField(field, "out_of_range");
      }
      *out = TimeUtil::TimestampToMicroseconds(t);
      if (*out < kMinMicros || *out > kMaxMicros) return status::MalformedField(field, "out_of_range");
      return absl::OkStatus();
    };
    if (req->has_from()) {
      if (auto s = bound("from", req->from(), &q.from_micros); !s.ok()) return s;
    }
    if (req->has_to()) {
      if (auto s = bound("to", req->to(), &q.to_micros); !s.ok()) return s;
    }
    if (q.from_micros != 0 && q.to_micros != 0 && q.from_micros >= q.to_micros) {
      return status::MalformedField("to", "invalid", "must be after from");
    }
    return grpcx::Respond(resp, store_->ListAccessLog(q));
  });
}

namespace {

// A date filter (YYYY-MM-DD, UTC) as microseconds since the epoch of its midnight.
int64_t DayMicros(const std::string& date) {
  absl::CivilDay day;
  (void)absl::ParseCivilTime(date, &day);
  return absl::ToUnixMicros(absl::FromCivil(day, absl::UTCTimeZone()));
}

}  // namespace

grpc::Status Service::ListFileItems(grpc::ServerContext* ctx, const v1::ListFileItemsRequest* req,
                                    v1::ListFileItemsResponse* resp) {
  return grpcx::Handle(ctx, "ListFileItems", [&](const auth::Caller& caller) -> absl::Status {
    // The party's own view: a partner portal never reads the whole file.
    if (caller.partner()) return absl::PermissionDeniedError("not open to partner portals");
    // The acting party's file: the person's own, or the organisation's for its members.
    auto party = DocumentOwner(caller);
    if (!party.ok()) return party.status();
    FileQuery q;
    q.tenant = Tenant(caller);
    q.party_id = *party;
    // Query parameters: a bad one is a malformed request (400), the first one named.
    if (!req->kind().empty() && !IsFileKind(req->kind())) {
      return status::MalformedField("kind", "invalid_option", "not a kind of the citizen file");
    }
    q.kind = req->kind();
    if (!req->service_id().empty() && !api::ValidateSlug(req->service_id(), "service").ok()) {
      return status::MalformedField("service", "invalid", "not a service id");
    }
    q.service_id = req->service_id();
    for (const auto& [value, field] : {std::make_pair(&req->from(), "from"), std::make_pair(&req->to(), "to")}) {
      if (!value->empty() && !IsDate(*value)) return status::MalformedField(field, "invalid_date", "YYYY-MM-DD");
    }
    if (!req->from().empty()) q.from_us = DayMicros(req->from());
    // "to" takes the whole day.
    if (!req->to().empty()) q.until_us = DayMicros(req->to()) + int64_t{86400} * 1000000;
    if (q.from_us && q.until_us && *q.from_us >= *q.until_us) {
      return status::MalformedField("to", "before_from", "to must not be before from");
    }
    const int size = req->page().page_size();
    if (size < 0 || size > 100) return status::MalformedField("page_size", "invalid", "1 to 100");
    if (size > 0) q.page_size = size;
    if (!req->page().page_token().empty()) {
      auto after = ParseFileCursor(req->page().page_token());
      if (!after.ok()) return after.status();
      q.after = *after;
    }
    auto page = store_->ListFile(q);
    if (!page.ok()) return page.status();
    *resp = *std::move(page);
    return absl::OkStatus();
  });
}

grpc::Status Service::ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                         common::v1::PersonalData* resp) {
  return grpcx::Handle(ctx, "ExportPersonalData", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    return grpcx::Respond(resp, store_->ExportPersonalData(Tenant(caller), *party));
  });
}

grpc::Status Service::ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest*,
                                          common::v1::RetainedRecords* resp) {
  return grpcx::Handle(ctx, "ListRetainedRecords", [&](const auth::Caller& caller) -> absl::Status {
    auto party = privacy::OwnPerson(caller);
    if (!party.ok()) return party.status();
    resp->Clear();  // Nothing of the person is kept after an erasure (docs/data-protection.md).
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::accounts

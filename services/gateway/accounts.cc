// The gateway's routes for organisations, memberships and acting for an organisation.
#include <set>

#include <google/protobuf/util/time_util.h>

#include "absl/time/time.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/gateway/json.h"
#include "services/gateway/service.h"

namespace stadtportal::gateway {
namespace {

namespace acv1 = accounts::v1;
using http::FieldSpec;
using http::FieldType;

const char* RoleName(acv1::Role r) {
  switch (r) {
    case acv1::ROLE_OWNER: return "owner";
    case acv1::ROLE_ADMIN: return "admin";
    default: return "member";
  }
}

acv1::Role ParseRole(const std::string& s) {
  if (s == "owner") return acv1::ROLE_OWNER;
  if (s == "admin") return acv1::ROLE_ADMIN;
  if (s == "member") return acv1::ROLE_MEMBER;
  return acv1::ROLE_UNSPECIFIED;
}

// A page token is the services' cursor in base64: anything longer is none of theirs.
constexpr size_t kMaxPageToken = 200;

nlohmann::json AccessLogJson(const acv1::AccessLogEntry& e) {
  return {{"occurred_at", json::Time(e.occurred_at())},
          {"accessor_kind", e.accessor_kind()},
          {"accessor_id", e.accessor_id().empty() ? nlohmann::json() : nlohmann::json(e.accessor_id())},
          {"accessor_name", e.accessor_name()},
          {"resource", e.resource()},
          {"resource_id", e.resource_id().empty() ? nlohmann::json() : nlohmann::json(e.resource_id())},
          {"reference", e.reference().empty() ? nlohmann::json() : nlohmann::json(e.reference())},
          {"action", e.action()},
          {"purpose", e.purpose()}};
}

nlohmann::json PartyJson(const acv1::Party& p) {
  return {{"id", p.id()},
          {"kind", p.kind() == common::v1::PARTY_KIND_PERSON ? "person" : "organisation"},
          {"display_name", p.display_name()}};
}

nlohmann::json OrganisationJson(const acv1::Organisation& o) {
  const char* form = o.legal_form() == acv1::LEGAL_FORM_COMPANY       ? "company"
                     : o.legal_form() == acv1::LEGAL_FORM_ASSOCIATION ? "association"
                                                                      : "authority";
  const auto& a = o.address();
  return {{"id", o.party().id()},
          {"name", o.party().display_name()},
          {"legal_form", form},
          {"register_number", o.register_number()},
          {"address",
           {{"street", a.street()},
            {"house_number", a.house_number()},
            {"postcode", a.postcode()},
            {"city", a.city()},
            {"country", a.country()}}},
          {"my_role", RoleName(o.my_role())}};
}

// An item of the citizen file; its summary is accounts' JSON object (an unreadable one
// shows as empty, never as text).
nlohmann::json FileItemJson(const acv1::FileItem& i) {
  nlohmann::json summary = nlohmann::json::parse(i.summary_json(), nullptr, /*allow_exceptions=*/false);
  if (!summary.is_object()) summary = nlohmann::json::object();
  return {{"id", i.id()},
          {"kind", i.kind()},
          {"occurred_at", json::Time(i.occurred_at())},
          {"service_id", i.service_id()},
          {"link", i.link()},
          {"summary", std::move(summary)}};
}

nlohmann::json MembershipJson(const acv1::Membership& m) {
  return {{"organisation_id", m.organisation_id()},
          {"person", PartyJson(m.person())},
          {"role", RoleName(m.role())},
          {"since", json::Time(m.since())}};
}

nlohmann::json ProfileJson(const acv1::Profile& p) {
  nlohmann::json attributes = nlohmann::json::object();
  for (const auto& a : p.attributes()) {
    nlohmann::json j = {{"value", a.value()},
                        {"source", a.source()},
                        {"verified", a.source() == "provider"},
                        {"updated_at", json::Time(a.updated_at())}};
    if (a.source() == "provider") {
      j["provider"] = a.provider();
      j["assurance_level"] = a.assurance_level();
      j["vouched_at"] = json::Time(a.vouched_at());
    }
    attributes[a.name()] = j;
  }
  return {{"party_id", p.party_id()}, {"attributes", attributes}};
}

nlohmann::json PreferencesJson(const acv1::Preferences& p) {
  return {{"language", p.language()},
          {"email",
           {{"messages", p.email().messages()},
            {"status_changes", p.email().status_changes()},
            {"reminders", p.email().reminders()}}}};
}

nlohmann::json ConsentJson(const acv1::Consent& c) {
  nlohmann::json j = {{"id", c.id()},
                      {"purpose", c.purpose()},
                      {"text_version", c.text_version()},
                      {"given_at", json::Time(c.given_at())},
                      {"withdrawn_at", json::TimeOrNull(c.has_withdrawn_at(), c.withdrawn_at())}};
  return j;
}

nlohmann::json DocumentJson(const acv1::Document& d) {
  nlohmann::json j = {{"id", d.id()},
                      {"type", d.type()},
                      {"label", d.label()},
                      {"expires_on", d.expires_on()},
                      {"source", d.source()},
                      {"created_at", json::Time(d.created_at())},
                      {"renewal_service_id", d.renewal_service_id().empty() ? nlohmann::json(nullptr)
                                                                            : nlohmann::json(d.renewal_service_id())},
                      {"reminder", d.reminder_state().empty() ? nlohmann::json(nullptr)
                                                              : nlohmann::json{{"due_on", d.reminder_due_on()},
                                                                               {"state", d.reminder_state()}}}};
  if (d.source() == "department") {
    j["submission"] = {{"id", d.submission_id()}, {"reference", d.reference()}, {"destination", d.destination()}};
  }
  return j;
}

nlohmann::json DocumentTypeJson(const acv1::DocumentType& t) {
  return {{"id", t.id()},
          {"name", {{"de", t.name_de()}, {"en", t.name_en()}}},
          {"remind_days_before", t.remind_days_before()},
          {"renewal_service_id",
           t.renewal_service_id().empty() ? nlohmann::json(nullptr) : nlohmann::json(t.renewal_service_id())}};
}

}  // namespace

void Service::AddAccountsRoutes() {
  Add({"POST", "/api/v1/organisations", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res,
                     {{"name", {FieldType::kString}},
                      {"legal_form", {FieldType::kString}},
                      {"register_number", {FieldType::kString, false}},
                      {"address", {FieldType::kObject}}});
    if (!body) return;
    acv1::CreateOrganisationRequest in;
    in.set_name((*body)["name"]);
    const std::string form = (*body)["legal_form"];
    in.set_legal_form(form == "company"       ? acv1::LEGAL_FORM_COMPANY
                      : form == "association" ? acv1::LEGAL_FORM_ASSOCIATION
                      : form == "authority"   ? acv1::LEGAL_FORM_AUTHORITY
                                              : acv1::LEGAL_FORM_UNSPECIFIED);
    in.set_register_number(body->value("register_number", ""));
    std::vector<http::FieldError> errors;
    auto* address = in.mutable_address();
    for (const auto& [name, setter] : std::vector<std::pair<std::string, void (acv1::Address::*)(const std::string&)>>{
             {"street", &acv1::Address::set_street},
             {"house_number", &acv1::Address::set_house_number},
             {"postcode", &acv1::Address::set_postcode},
             {"city", &acv1::Address::set_city},
             {"country", &acv1::Address::set_country}}) {
      const auto& v = (*body)["address"];
      if (!v.contains(name))
        errors.push_back({"address." + name, "required"});
      else if (!v[name].is_string())
        errors.push_back({"address." + name, "wrong_type_string"});
      else
        (address->*setter)(v[name].get<std::string>());
    }
    if (!errors.empty()) return Fail(req, res, status::InvalidFields(std::move(errors), "invalid address"));
    acv1::Organisation out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::CreateOrganisation, in, &out)) return;
    http::WriteJson(res, 201, OrganisationJson(out));
  });

  Add({"GET", "/api/v1/organisations", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::ListMyOrganisationsRequest in;
    acv1::ListMyOrganisationsResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ListMyOrganisations, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.organisations(), OrganisationJson)}});
  });

  Add({"GET", "/api/v1/organisations/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    acv1::GetOrganisationRequest in;
    in.set_id(p.at("id"));
    acv1::Organisation out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::GetOrganisation, in, &out)) return;
    http::WriteJson(res, 200, OrganisationJson(out));
  });

  Add({"GET", "/api/v1/organisations/{id}/members", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        acv1::ListMembersRequest in;
        in.set_organisation_id(p.at("id"));
        acv1::ListMembersResponse out;
        if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ListMembers, in, &out)) return;
        http::WriteJson(res, 200, {{"items", json::Array(out.members(), MembershipJson)}});
      });

  Add({"POST", "/api/v1/organisations/{id}/invitations", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        auto body = Body(req, res, {{"email", {FieldType::kString}}, {"role", {FieldType::kString}}});
        if (!body) return;
        acv1::InviteMemberRequest in;
        in.set_organisation_id(p.at("id"));
        in.set_email((*body)["email"]);
        in.set_role(ParseRole((*body)["role"]));
        in.set_language(http::Language(req));
        acv1::Invitation out;
        if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::InviteMember, in, &out)) return;
        http::WriteJson(res, 201,
                        {{"id", out.id()},
                         {"organisation_id", out.organisation_id()},
                         {"email", out.email()},
                         {"role", RoleName(out.role())},
                         {"expires_at", json::Time(out.expires_at())}});
      });

  for (const bool accept : {true, false}) {
    Add({"POST", accept ? "/api/v1/invitations/accept" : "/api/v1/invitations/decline", Who::kSession, "auth"},
        [this, accept](Req req, Res res, P, const Authenticated& a) {
          auto body = Body(req, res, {{"token", {FieldType::kString}}});
          if (!body) return;
          acv1::AnswerInvitationRequest in;
          in.set_token((*body)["token"]);
          if (accept) {
            acv1::Membership out;
            if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::AcceptInvitation, in, &out)) return;
            http::WriteJson(res, 200, MembershipJson(out));
          } else {
            acv1::DeclineInvitationResponse out;
            if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::DeclineInvitation, in, &out)) return;
            res.status = 204;
          }
        });
  }

  Add({"PATCH", "/api/v1/organisations/{id}/members/{party_id}", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        auto body = Body(req, res, {{"role", {FieldType::kString}}});
        if (!body) return;
        acv1::ChangeRoleRequest in;
        in.set_organisation_id(p.at("id"));
        in.set_person_party_id(p.at("party_id"));
        in.set_role(ParseRole((*body)["role"]));
        acv1::Membership out;
        if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ChangeRole, in, &out)) return;
        http::WriteJson(res, 200, MembershipJson(out));
      });

  Add({"DELETE", "/api/v1/organisations/{id}/members/{party_id}", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        acv1::RemoveMemberRequest in;
        in.set_organisation_id(p.at("id"));
        in.set_person_party_id(p.at("party_id"));
        acv1::RemoveMemberResponse out;
        if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::RemoveMember, in, &out)) return;
        res.status = 204;
      });

  Add({"GET", "/api/v1/me/profile", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::GetProfileRequest in;
    acv1::Profile out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::GetProfile, in, &out)) return;
    http::WriteJson(res, 200, ProfileJson(out));
  });

  Add({"PATCH", "/api/v1/me/profile", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    const FieldSpec optional_text{FieldType::kString, false};
    auto body = Body(req, res,
                     {{"given_name", optional_text},
                      {"family_name", optional_text},
                      {"birth_date", optional_text},
                      {"phone", optional_text},
                      {"contact_email", optional_text},
                      {"address", {FieldType::kObject, false}}});
    if (!body) return;
    acv1::UpdateProfileRequest in;
    std::vector<http::FieldError> errors;
    for (auto it = body->begin(); it != body->end(); ++it) {
      if (it.key() != "address") {
        (*in.mutable_values())[it.key()] = it.value().get<std::string>();
        continue;
      }
      for (auto f = it.value().begin(); f != it.value().end(); ++f) {
        static const std::set<std::string> kParts = {"street", "house_number", "postcode", "city", "country"};
        const std::string name = "address." + f.key();
        if (kParts.count(f.key()) == 0)
          errors.push_back({name, "unknown_field"});
        else if (!f.value().is_string())
          errors.push_back({name, "wrong_type_string"});
        else
          (*in.mutable_values())[name] = f.value().get<std::string>();
      }
    }
    if (!errors.empty()) return Fail(req, res, status::InvalidFields(std::move(errors), "invalid address"));
    acv1::Profile out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::UpdateProfile, in, &out)) return;
    http::WriteJson(res, 200, ProfileJson(out));
  });

  Add({"GET", "/api/v1/me/preferences", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::GetPreferencesRequest in;
    acv1::Preferences out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::GetPreferences, in, &out)) return;
    http::WriteJson(res, 200, PreferencesJson(out));
  });

  Add({"PUT", "/api/v1/me/preferences", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res, {{"language", {FieldType::kString}}, {"email", {FieldType::kObject}}});
    if (!body) return;
    acv1::Preferences in;
    in.set_language((*body)["language"]);
    std::vector<http::FieldError> errors;
    const auto& email = (*body)["email"];
    for (const auto& [name, setter] :
         std::vector<std::pair<std::string, void (acv1::NotificationPreferences::*)(bool)>>{
             {"messages", &acv1::NotificationPreferences::set_messages},
             {"status_changes", &acv1::NotificationPreferences::set_status_changes},
             {"reminders", &acv1::NotificationPreferences::set_reminders}}) {
      if (!email.contains(name))
        errors.push_back({"email." + name, "required"});
      else if (!email[name].is_boolean())
        errors.push_back({"email." + name, "wrong_type_boolean"});
      else
        (in.mutable_email()->*setter)(email[name].get<bool>());
    }
    if (email.size() > 3) errors.push_back({"email", "unknown_field"});
    if (!errors.empty()) return Fail(req, res, status::InvalidFields(std::move(errors), "invalid preferences"));
    acv1::Preferences out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::UpdatePreferences, in, &out)) return;
    http::WriteJson(res, 200, PreferencesJson(out));
  });

  Add({"GET", "/api/v1/me/consents", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::ListConsentsRequest in;
    acv1::ListConsentsResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ListConsents, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.consents(), ConsentJson)}});
  });

  Add({"POST", "/api/v1/me/consents", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res, {{"purpose", {FieldType::kString}}, {"text_version", {FieldType::kString}}});
    if (!body) return;
    acv1::GiveConsentRequest in;
    in.set_purpose((*body)["purpose"]);
    in.set_text_version((*body)["text_version"]);
    acv1::Consent out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::GiveConsent, in, &out)) return;
    http::WriteJson(res, 201, ConsentJson(out));
  });

  Add({"POST", "/api/v1/me/consents/{id}/withdraw", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        acv1::WithdrawConsentRequest in;
        in.set_id(p.at("id"));
        acv1::Consent out;
        if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::WithdrawConsent, in, &out)) return;
        http::WriteJson(res, 200, ConsentJson(out));
      });

  // Who other than the party read its data: the acting party's access log, newest first.
  // Not for partner portals (no scope: 403).
  Add({"GET", "/api/v1/me/access-log", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::ListAccessLogRequest in;
    if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
    if (in.page().page_token().size() > kMaxPageToken) {
      return Fail(req, res, status::MalformedField("page_token", "invalid", "not a token this API issued"));
    }
    for (const auto& [name, field] : {std::make_pair("from", &acv1::ListAccessLogRequest::mutable_from),
                                      std::make_pair("to", &acv1::ListAccessLogRequest::mutable_to)}) {
      if (!req.has_param(name)) continue;
      absl::Time t;
      std::string error;
      const std::string v = req.get_param_value(name);
      if (v.size() > 40 || req.get_param_value_count(name) != 1 ||
          !absl::ParseTime(absl::RFC3339_full, v, &t, &error)) {
        return Fail(req, res, status::MalformedField(name, "invalid", "an RFC 3339 time, e.g. 2026-05-01T10:00:00Z"));
      }
      *(in.*field)() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
    }
    acv1::ListAccessLogResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ListAccessLog, in, &out)) return;
    http::WriteJson(res, 200, json::Page(json::Array(out.entries(), AccessLogJson), out.page()));
  });

  // The party the session acts for, checked against current memberships: a person who
  // left the organisation gets 404 until switching back.
  Add({"GET", "/api/v1/me/acting-party", Who::kSessionAnyParty}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::CheckActingPartyRequest in;
    in.set_party_id(a.session.acting_party_id());
    acv1::Party out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::CheckActingParty, in, &out)) return;
    http::WriteJson(res, 200, PartyJson(out));
  });

  // One call: accounts checks the membership and has identity rotate the session.
  Add({"POST", "/api/v1/me/acting-party", Who::kSessionAnyParty}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(req, res, {{"party_id", {FieldType::kString}}});
    if (!body) return;
    acv1::SwitchActingPartyRequest in;
    in.set_session_id(a.session_id);
    in.set_party_id((*body)["party_id"]);
    acv1::SwitchActingPartyResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::SwitchActingParty, in, &out)) return;
    auto session = StartSession(res, out.login());  // A privilege change: a new session id.
    session["acting_party"] = PartyJson(out.party());
    http::WriteJson(res, 200, session);
  });

  // The acting party's citizen file. No partner scope: a partner portal never reads the
  // whole file (its tokens get 403).
  Add({"GET", "/api/v1/me/file", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::ListFileItemsRequest in;
    in.set_kind(req.get_param_value("kind"));
    in.set_service_id(req.get_param_value("service"));
    in.set_from(req.get_param_value("from"));
    in.set_to(req.get_param_value("to"));
    if (auto s = ParsePageParams(req, in.mutable_page()); !s.ok()) return Fail(req, res, s);
    acv1::ListFileItemsResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ListFileItems, in, &out)) return;
    http::WriteJson(res, 200, json::Page(json::Array(out.items(), FileItemJson), out.page()));
  });

  AddDocumentRoutes();
}

// Documents with an expiry of the acting party, and the reminders before they expire.
void Service::AddDocumentRoutes() {
  Add({"GET", "/api/v1/document-types"}, [this](Req req, Res res, P) {
    acv1::ListDocumentTypesRequest in;
    acv1::ListDocumentTypesResponse out;
    if (!Call(req, res, *accounts_, &acv1::AccountsService::Stub::ListDocumentTypes, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.types(), DocumentTypeJson)}});
  });

  Add({"GET", "/api/v1/me/documents", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    acv1::ListDocumentsRequest in;
    acv1::ListDocumentsResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::ListDocuments, in, &out)) return;
    http::WriteJson(res, 200, {{"items", json::Array(out.documents(), DocumentJson)}});
  });

  Add({"POST", "/api/v1/me/documents", Who::kSession}, [this](Req req, Res res, P, const Authenticated& a) {
    auto body = Body(
        req, res,
        {{"type", {FieldType::kString}}, {"label", {FieldType::kString, false}}, {"expires_on", {FieldType::kString}}});
    if (!body) return;
    acv1::AddDocumentRequest in;
    in.set_type((*body)["type"]);
    in.set_label(body->value("label", ""));
    in.set_expires_on((*body)["expires_on"]);
    acv1::Document out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::AddDocument, in, &out)) return;
    res.set_header("Location", "/api/v1/me/documents/" + out.id());
    http::WriteJson(res, 201, DocumentJson(out));
  });

  Add({"GET", "/api/v1/me/documents/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    acv1::GetDocumentRequest in;
    in.set_id(p.at("id"));
    acv1::Document out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::GetDocument, in, &out)) return;
    http::WriteJson(res, 200, DocumentJson(out));
  });

  Add({"DELETE", "/api/v1/me/documents/{id}", Who::kSession}, [this](Req req, Res res, P p, const Authenticated& a) {
    acv1::DeleteDocumentRequest in;
    in.set_id(p.at("id"));
    acv1::DeleteDocumentResponse out;
    if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::DeleteDocument, in, &out)) return;
    res.status = 204;
  });

  // The renewal a reminder links to (the portal's page /dokumente/{id}/verlaengern calls
  // it): a draft of the document type's online service, made by the submission service's
  // normal draft creation, prefilled from the profile and with the document's type,
  // label and expiry offered as document.type, document.label, document.expires_on.
  Add({"POST", "/api/v1/me/documents/{id}/renewal", Who::kSession},
      [this](Req req, Res res, P p, const Authenticated& a) {
        acv1::GetDocumentRequest get;
        get.set_id(p.at("id"));
        acv1::Document document;
        if (!Call(req, res, a, *accounts_, &acv1::AccountsService::Stub::GetDocument, get, &document)) return;
        if (document.renewal_service_id().empty()) {
          return Fail(req, res, status::FieldConflict("type", "no_online_renewal", "no online service renews this"));
        }
        submission::v1::CreateDraftRequest in;
        in.set_service_id(document.renewal_service_id());
        // Prefill from the profile: a convenience, so an unavailable profile does not block.
        acv1::Profile profile;
        if (auto s = Invoke(a.Token("accounts"), *accounts_, &acv1::AccountsService::Stub::GetProfile, {}, &profile);
            !s.ok()) {
          log::Warn("profile for prefill unavailable", {{"error", std::string(s.message())}});
        }
        for (const auto& attr : profile.attributes()) {
          auto& v = (*in.mutable_profile())[attr.name()];
          v.set_value(attr.value());
          v.set_verified(attr.source() == "provider");
        }
        (*in.mutable_profile())["document.type"].set_value(document.type());
        if (!document.label().empty()) (*in.mutable_profile())["document.label"].set_value(document.label());
        (*in.mutable_profile())["document.expires_on"].set_value(document.expires_on());
        submission::v1::Draft out;
        if (!Call(req, res, a, *submission_, &submission::v1::SubmissionService::Stub::CreateDraft, in, &out)) return;
        res.set_header("Location", "/api/v1/drafts/" + out.id());
        http::WriteJson(res, 201,
                        {{"draft_id", out.id()}, {"service_id", out.service_id()}, {"document_id", document.id()}});
      });
}

}  // namespace stadtportal::gateway

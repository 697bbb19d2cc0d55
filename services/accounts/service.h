#pragma once

#include <memory>
#include <string>

#include "libs/auth/caller.h"
#include "libs/mail/mail.h"
#include "services/accounts/store.h"
#include "stadtportal/accounts/v1/accounts.grpc.pb.h"
#include "stadtportal/identity/v1/identity.grpc.pb.h"

namespace stadtportal::accounts {

struct Options {
  std::string default_tenant = "09564000";
  std::string public_url = "http://127.0.0.1:8080";  // Links in invitation mails.
  std::chrono::seconds invitation_ttl{7 * 24 * 60 * 60};
  // The document types (STADTPORTAL_DOCUMENT_TYPES_FILE); null: the compiled-in default.
  std::shared_ptr<const DocumentTypes> document_types;
};

// gRPC edge of the accounts service: validates requests, applies the role rules,
// calls the store, maps errors.
class Service final : public v1::AccountsService::Service {
 public:
  // `identity_channel`: where SwitchActingParty has sessions rotated, as the platform
  // service signed by `signer` (STADTPORTAL_ACCOUNTS_SIGNING_KEY); without it,
  // SwitchActingParty is UNAVAILABLE.
  Service(std::shared_ptr<Store> store, Options options, mail::Relay* relay = nullptr,
          std::shared_ptr<grpc::ChannelInterface> identity_channel = nullptr, auth::Signer signer = {});

  grpc::Status CreateParty(grpc::ServerContext* ctx, const v1::CreatePartyRequest* req, v1::Party* resp) override;
  grpc::Status GetParty(grpc::ServerContext* ctx, const v1::GetPartyRequest* req, v1::Party* resp) override;
  grpc::Status GetMyParty(grpc::ServerContext* ctx, const v1::GetMyPartyRequest* req, v1::Party* resp) override;
  grpc::Status CreateOrganisation(grpc::ServerContext* ctx, const v1::CreateOrganisationRequest* req,
                                  v1::Organisation* resp) override;
  grpc::Status GetOrganisation(grpc::ServerContext* ctx, const v1::GetOrganisationRequest* req,
                               v1::Organisation* resp) override;
  grpc::Status ListMyOrganisations(grpc::ServerContext* ctx, const v1::ListMyOrganisationsRequest* req,
                                   v1::ListMyOrganisationsResponse* resp) override;
  grpc::Status ListMembers(grpc::ServerContext* ctx, const v1::ListMembersRequest* req,
                           v1::ListMembersResponse* resp) override;
  grpc::Status InviteMember(grpc::ServerContext* ctx, const v1::InviteMemberRequest* req,
                            v1::Invitation* resp) override;
  grpc::Status AcceptInvitation(grpc::ServerContext* ctx, const v1::AnswerInvitationRequest* req,
                                v1::Membership* resp) override;
  grpc::Status DeclineInvitation(grpc::ServerContext* ctx, const v1::AnswerInvitationRequest* req,
                                 v1::DeclineInvitationResponse* resp) override;
  grpc::Status ChangeRole(grpc::ServerContext* ctx, const v1::ChangeRoleRequest* req, v1::Membership* resp) override;
  grpc::Status RemoveMember(grpc::ServerContext* ctx, const v1::RemoveMemberRequest* req,
                            v1::RemoveMemberResponse* resp) override;
  grpc::Status CheckActingParty(grpc::ServerContext* ctx, const v1::CheckActingPartyRequest* req,
                                v1::Party* resp) override;
  grpc::Status SwitchActingParty(grpc::ServerContext* ctx, const v1::SwitchActingPartyRequest* req,
                                 v1::SwitchActingPartyResponse* resp) override;
  grpc::Status GetProfile(grpc::ServerContext* ctx, const v1::GetProfileRequest* req, v1::Profile* resp) override;
  grpc::Status UpdateProfile(grpc::ServerContext* ctx, const v1::UpdateProfileRequest* req, v1::Profile* resp) override;
  grpc::Status GetPreferences(grpc::ServerContext* ctx, const v1::GetPreferencesRequest* req,
                              v1::Preferences* resp) override;
  grpc::Status UpdatePreferences(grpc::ServerContext* ctx, const v1::Preferences* req, v1::Preferences* resp) override;
  grpc::Status ListConsents(grpc::ServerContext* ctx, const v1::ListConsentsRequest* req,
                            v1::ListConsentsResponse* resp) override;
  grpc::Status GiveConsent(grpc::ServerContext* ctx, const v1::GiveConsentRequest* req, v1::Consent* resp) override;
  grpc::Status WithdrawConsent(grpc::ServerContext* ctx, const v1::WithdrawConsentRequest* req,
                               v1::Consent* resp) override;
  grpc::Status ListDocuments(grpc::ServerContext* ctx, const v1::ListDocumentsRequest* req,
                             v1::ListDocumentsResponse* resp) override;
  grpc::Status GetDocument(grpc::ServerContext* ctx, const v1::GetDocumentRequest* req, v1::Document* resp) override;
  grpc::Status AddDocument(grpc::ServerContext* ctx, const v1::AddDocumentRequest* req, v1::Document* resp) override;
  grpc::Status DeleteDocument(grpc::ServerContext* ctx, const v1::DeleteDocumentRequest* req,
                              v1::DeleteDocumentResponse* resp) override;
  grpc::Status ListDocumentTypes(grpc::ServerContext* ctx, const v1::ListDocumentTypesRequest* req,
                                 v1::ListDocumentTypesResponse* resp) override;
  grpc::Status ListAccessLog(grpc::ServerContext* ctx, const v1::ListAccessLogRequest* req,
                             v1::ListAccessLogResponse* resp) override;
  grpc::Status ListFileItems(grpc::ServerContext* ctx, const v1::ListFileItemsRequest* req,
                             v1::ListFileItemsResponse* resp) override;
  // The person's own data (libs/privacy: only a person acting as themself). Accounts
  // keeps nothing a retention rule holds after an erasure: ListRetainedRecords is empty.
  grpc::Status ExportPersonalData(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                  common::v1::PersonalData* resp) override;
  grpc::Status ListRetainedRecords(grpc::ServerContext* ctx, const common::v1::PersonalDataRequest* req,
                                   common::v1::RetainedRecords* resp) override;

 private:
  // The caller's person party; UNAUTHENTICATED for anonymous callers.
  absl::StatusOr<v1::Party> Person(const auth::Caller& caller);
  // The party whose documents the caller sees: the acting party (auth::ScopeParty),
  // after Me() checked the membership.
  absl::StatusOr<std::string> DocumentOwner(const auth::Caller& caller);
  // The document with its type's renewal service.
  v1::Document WithRenewal(v1::Document d) const;
  // Person(), and PERMISSION_DENIED while acting for an organisation the person left.
  absl::StatusOr<v1::Party> Me(const auth::Caller& caller);
  // The caller's role in the organisation; NOT_FOUND when not a member (or no such organisation).
  absl::StatusOr<std::string> MyRole(const auth::Caller& caller, const v1::Party& me, const std::string& org);
  std::string Tenant(const auth::Caller& caller) const;
  // The party the caller may act for: itself (empty or its own id), or an organisation it
  // is a member of (NOT_FOUND otherwise). Not Me(): switching back works after leaving.
  absl::StatusOr<v1::Party> ActingParty(const auth::Caller& caller, const std::string& party_id);

  std::shared_ptr<Store> store_;
  Options options_;
  mail::Relay* relay_;
  std::unique_ptr<identity::v1::IdentityService::Stub> identity_;
  auth::Signer signer_;
};

// INVALID_ARGUMENT "address.<part>: <code>" for an organisation's address that is not one.
absl::Status ValidateAddress(const v1::Address& a);

// Whether `value` is a calendar date YYYY-MM-DD (years 1900 to 2199).
bool IsDate(const std::string& value);

// INVALID_ARGUMENT "expires_on: <code>" unless `value` is a date (invalid_date) from
// `today` (too_early) to 30 years after it (too_late); dates YYYY-MM-DD.
absl::Status ValidateExpiry(const std::string& value, const std::string& today);

// INVALID_ARGUMENT "label: <code>" unless `value` is empty or one line of at most 80
// characters without control, separator or bidi characters.
absl::Status ValidateDocumentLabel(const std::string& value);

// INVALID_ARGUMENT "<name>: <code>" unless `value` is valid for the profile attribute
// `name` (given_name, family_name, birth_date YYYY-MM-DD not in the future, phone,
// contact_email, address.street|house_number|postcode|city|country).
absl::Status ValidateProfileValue(const std::string& name, const std::string& value, const std::string& country,
                                  const std::string& today);

}  // namespace stadtportal::accounts

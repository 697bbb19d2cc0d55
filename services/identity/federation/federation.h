#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/identity/federation/providers.h"

// What the SAML service provider (saml.h) and the OpenID Connect relying party (oidc.h)
// hand to the log-in flow (flows.h) once an upstream answer passed every check, and how
// they refuse one that did not.
namespace stadtportal::identity::federation {

// A person as an upstream provider vouched for them.
struct Identity {
  std::string provider;  // Provider::id.
  // The provider's stable id of the person: the NameID's whole text (SAML) or `sub`
  // (OpenID Connect). Never empty.
  std::string subject;
  Level level = v1::ASSURANCE_LEVEL_UNSPECIFIED;  // Mapped by the provider's table.
  std::string asserted;                           // What it asserted (AuthnContextClassRef, acr).
  // Profile field (ProfileFields()) → value, only the fields the provider's table maps.
  std::map<std::string, std::string> attributes;
  // For single log-out: SAML SessionIndex; OpenID Connect: the ID token (id_token_hint).
  std::string logout_hint;
  // Until when the upstream vouches for this log-in (assertion NotOnOrAfter / token exp).
  absl::Time valid_until = absl::InfinitePast();
  // The latest end the provider allows for a session made from it (SAML
  // SessionNotOnOrAfter); InfiniteFuture when it sets none.
  absl::Time session_until = absl::InfiniteFuture();
};

// Why an upstream answer was refused: one word from this list, used as the metric label
// stadtportal_identity_federation_refusals_total{provider,reason}, in the log line and
// in the problem document's "reason".
//   SAML: unsigned, bad_signature, wrapped (more than one assertion, or the signed
//   element is not the consumed one), doctype, audience, destination, recipient,
//   expired, not_yet_valid, replayed, unsolicited (InResponseTo is not our request),
//   level_below, level_unknown, malformed, status (the IdP answered an error status),
//   decrypt, transform (a signature transform other than the enveloped signature and
//   canonicalisation).
//   OpenID Connect: state, nonce, audience, azp, issuer, expired, not_yet_valid, alg,
//   kid, bad_signature, code (the token endpoint refused the code), subject (userinfo
//   sub differs), level_below, level_unknown, malformed, upstream (unreachable, too
//   big, too slow, error answer).
// The refusal is PERMISSION_DENIED with the message "federation: <reason>".
absl::Status Refused(const std::string& reason);
// The reason of a status made by Refused(); "" for any other status.
std::string RefusalReason(const absl::Status& status);
// Counts a refusal in stadtportal_identity_federation_refusals_total; a reason not in the
// list above is counted as "other" (bounded labels).
void CountRefusal(const std::string& provider, const std::string& reason);
// Exports every reason of `provider` at 0, so that rates and alerts see the series from
// the start.
void RegisterRefusals(const std::string& provider);

}  // namespace stadtportal::identity::federation

#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/redis/client.h"
#include "services/identity/federation/federation.h"
#include "services/identity/federation/providers.h"

// The SAML 2.0 service provider (Web Browser SSO) for one upstream such as BundID or
// BayernID: our metadata, the signed AuthnRequest (HTTP-Redirect), the response posted
// to our assertion consumer service checked by Lasso and again by us, and single log-out
// (docs/adr/0023-saml-library.md, docs/federation.md).
namespace stadtportal::identity::federation {

// Our endpoints for one provider, from the portal's public URL.
struct SamlEndpoints {
  std::string entity_id;  // <public>/api/v1/auth/saml/<provider>/metadata
  std::string acs_url;    // <public>/api/v1/auth/saml/<provider>/acs   (HTTP-POST)
  std::string slo_url;    // <public>/api/v1/auth/saml/<provider>/slo   (HTTP-Redirect)
  static SamlEndpoints For(const std::string& public_url, const std::string& provider_id);
};

// PEM files: our signing and encryption key pair (one RSA key and its certificate).
struct SamlKeys {
  std::string key_file, cert_file;
};

struct LassoState;  // saml.cc: Lasso's server object (our SP and the one trusted IdP).

// Thread-safe: Lasso's objects are only touched under one mutex, each call makes its own
// Lasso profile; Redis is called outside of it.
class SamlServiceProvider {
 public:
  // Loads the IdP metadata (provider.saml.idp_metadata, a file of at most 1 MiB without a
  // DOCTYPE, one EntityDescriptor with an IDPSSODescriptor) and our key pair; no network.
  static absl::StatusOr<std::unique_ptr<SamlServiceProvider>> Create(const Provider& provider,
                                                                     const SamlEndpoints& endpoints,
                                                                     const SamlKeys& keys, redis::Client& redis);
  ~SamlServiceProvider();
  SamlServiceProvider(const SamlServiceProvider&) = delete;
  SamlServiceProvider& operator=(const SamlServiceProvider&) = delete;

  // Our SP metadata XML: entity id, signing and encryption KeyDescriptors, ACS
  // (HTTP-POST), SLO (HTTP-Redirect), AuthnRequestsSigned and WantAssertionsSigned.
  const std::string& Metadata() const { return metadata_; }
  // The IdP's entity id, from its metadata.
  const std::string& IdpEntityId() const { return idp_entity_id_; }

  struct Request {
    std::string redirect_url;  // The IdP's SSO URL with SAMLRequest, RelayState, SigAlg, Signature.
    std::string request_id;    // The AuthnRequest's ID: the response's InResponseTo.
  };
  // A signed AuthnRequest (HTTP-Redirect) asking for at least `minimum`
  // (RequestedAuthnContext Comparison="minimum": the provider's requested_context when it
  // reaches `minimum`, else the lowest STORK-QAA/eIDAS value of its table that maps to
  // `minimum`), the persistent NameID, AKDB's akdb:AuthenticationRequest extension with
  // the requested attributes, and `relay_state` (at most 80 bytes, SAML's limit).
  // FAILED_PRECONDITION when the provider's table cannot reach `minimum`.
  absl::StatusOr<Request> Start(const std::string& relay_state, Level minimum) const;

  // The SAMLResponse form value (base64) posted to our ACS, answering `request_id`
  // that asked for `minimum`. Every check of ADR 0023; a failed one is
  // Refused(reason) (federation.h), counted and logged with the reason only. Redis
  // failures (replay cache) are UNAVAILABLE, not refusals.
  absl::StatusOr<Identity> Consume(const std::string& saml_response, const std::string& request_id, Level minimum,
                                   absl::Time now) const;

  // Single log-out: a signed LogoutRequest (HTTP-Redirect) for the identity's NameID
  // (subject) and SessionIndex (logout_hint). NOT_FOUND when the IdP's metadata names
  // no SingleLogoutService with the HTTP-Redirect binding.
  absl::StatusOr<std::string> LogoutUrl(const Identity& identity, const std::string& relay_state) const;

 private:
  SamlServiceProvider(const Provider& provider, const SamlEndpoints& endpoints, redis::Client& redis);
  absl::Status Refuse(const std::string& reason) const;
  // Everything but the replay cache: the checked identity, the assertion id and until
  // when it must be remembered.
  absl::StatusOr<Identity> Check(const std::string& xml, const std::string& request_id, Level minimum, absl::Time now,
                                 std::string* assertion_id, absl::Time* remember_until) const;

  Provider provider_;
  SamlEndpoints endpoints_;
  redis::Client& redis_;
  std::string metadata_;
  std::string idp_entity_id_;
  bool idp_has_slo_ = false;
  mutable std::mutex mu_;  // Guards lasso_ (Lasso's objects are not thread-safe).
  std::unique_ptr<LassoState> lasso_;
};

}  // namespace stadtportal::identity::federation

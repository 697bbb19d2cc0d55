#pragma once

#include <memory>
#include <string>

#include "libs/config/config.h"
#include "libs/redis/client.h"
#include "services/identity/federation/flows.h"

namespace stadtportal::identity::federation {

// The deployment's upstream providers from its configuration (docs/federation.md):
//   STADTPORTAL_FEDERATION_PROVIDERS   a JSON file listing provider documents (unset: none)
//   STADTPORTAL_SAML_KEY_FILE, STADTPORTAL_SAML_CERT_FILE
//                                      our SAML signing and encryption key pair (PEM),
//                                      required with a SAML provider
//   STADTPORTAL_OIDC_PRIVATE_KEY_FILE  optional: private_key_jwt instead of the secret
//   <client_secret_env> (or _FILE)     each OpenID Connect provider's client secret
//   STADTPORTAL_FEDERATION_FLOW_S      how long a browser may take at the provider (600)
// Endpoints are under `public_url` (the gateway's public address). nullptr without
// providers; config::Error naming the problem for a bad configuration.
std::shared_ptr<Federation> FederationFromEnv(const config::Env& env, const std::string& public_url,
                                              redis::Client& redis);

}  // namespace stadtportal::identity::federation

#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/redis/client.h"
#include "services/identity/federation/federation.h"
#include "services/identity/federation/providers.h"

// The log-in flow with an upstream provider, from the browser leaving for the provider to
// its answer coming back (docs/federation.md). The flow lives in Redis under the SHA-256
// of its id, which only the browser holds (a cookie): an answer is taken only from the
// browser that started the flow, only once, and only within the flow's lifetime.
namespace stadtportal::identity::federation {

// One configured provider, SAML or OpenID Connect (upstreams.cc makes them).
class Upstream {
 public:
  virtual ~Upstream() = default;

  struct Started {
    std::string redirect_url;  // Where the browser goes.
    // The value the provider sends back (SAML RelayState, OpenID Connect state).
    std::string relay;
    // What Finish needs of the request (request id; nonce and PKCE verifier), kept in
    // the flow on our side only.
    nlohmann::json request;
  };
  virtual absl::StatusOr<Started> Start(Level minimum) = 0;

  // The answer as the browser brought it to our endpoint.
  struct Answer {
    std::string saml_response;  // SAML: the SAMLResponse form value.
    std::string code;           // OpenID Connect: the code …
    std::string error;          // … or the error it sent instead.
  };
  // Every check of the provider's protocol; Refused(reason) (counted) on failure.
  virtual absl::StatusOr<Identity> Finish(const Answer& answer, const nlohmann::json& request, Level minimum,
                                          absl::Time now) = 0;
  // Our metadata for the provider (SAML); NOT_FOUND for OpenID Connect.
  virtual absl::StatusOr<std::string> Metadata() const = 0;
  // Where to send the browser to end the provider's session; NOT_FOUND without single
  // log-out.
  virtual absl::StatusOr<std::string> LogoutUrl(const Identity& identity) = 0;
};

struct FlowOptions {
  // How long the browser may take at the provider.
  std::chrono::seconds lifetime{10 * 60};
};

// A flow begun: where to send the browser and the id it must bring back.
struct FlowStarted {
  std::string redirect_url;
  std::string flow_id;
  absl::Time expires_at;
};

// What the flow was begun for, as Start recorded it.
struct FlowContext {
  // Step-up or linking: the account and session that began the flow ("" for a log-in).
  std::string account_id;
  // With account_id: the session that began the flow. Without: the session the browser
  // had, which the log-in ends ("" for none).
  std::string session_ref;
  // A path of the portal ("/…"); "/" when none was given.
  std::string return_to;
};

struct FlowFinished {
  Identity identity;
  FlowContext context;
};

// The providers of the deployment and the flows through them.
class Federation {
 public:
  // `upstreams` by provider id, one for each of `providers`.
  Federation(std::vector<Provider> providers, std::map<std::string, std::unique_ptr<Upstream>> upstreams,
             redis::Client& redis, FlowOptions options = {});

  const std::vector<Provider>& providers() const { return providers_; }
  // nullptr for an unknown id.
  const Provider* Find(const std::string& provider_id) const;

  absl::StatusOr<std::string> Metadata(const std::string& provider_id) const;
  // NOT_FOUND "provider" for an unknown provider; FAILED_PRECONDITION
  // "minimum_level: provider_cannot_reach" when the provider cannot assert `minimum`;
  // INVALID_ARGUMENT "return_to: invalid" for anything but a path of the portal.
  absl::StatusOr<FlowStarted> Start(const std::string& provider_id, Level minimum, const FlowContext& context);
  // The browser's flow id and the relay value it brought with the answer. A flow that is
  // unknown, expired, used, of another provider or with another relay value is refused
  // ("unsolicited" for SAML, "state" for OpenID Connect), counted like the provider's own
  // refusals. The flow is used up by the attempt, whatever its outcome.
  absl::StatusOr<FlowFinished> Finish(const std::string& provider_id, const std::string& flow_id,
                                      const std::string& relay, const Upstream::Answer& answer, absl::Time now);
  // NOT_FOUND when the provider has no single log-out (or is no longer configured).
  absl::StatusOr<std::string> LogoutUrl(const Identity& identity);

  // Whether `path` may be returned to: "/" followed by no "/" or "\", no scheme, printable
  // ASCII only (no control characters, no raw non-ASCII), at most 512 bytes.
  static bool IsReturnPath(const std::string& path);

 private:
  std::vector<Provider> providers_;
  std::map<std::string, std::unique_ptr<Upstream>> upstreams_;
  redis::Client& redis_;
  FlowOptions options_;
};

}  // namespace stadtportal::identity::federation

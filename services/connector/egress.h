#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/net/egress.h"

// Where push deliveries may go. Every push URL is resolved at registration and again at
// each send; only public addresses pass, unless an operator's allow-list names them, and
// a request goes to the address that was checked (pinned), never to a second lookup.
namespace stadtportal::connector {

// The platform's egress policy (libs/net/egress.h); the connector's allow-list is
// STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS, http:// is STADTPORTAL_CONNECTOR_ALLOW_HTTP.
using EgressPolicy = net::EgressPolicy;
// A push endpoint, parsed and resolved; every address passed the policy.
using Endpoint = net::Endpoint;

// INVALID_ARGUMENT ("endpoint_url: …") when `url` is not an https:// URL without user
// information, its host does not resolve, or any address it resolves to is not public
// (loopback, private, link-local, CGNAT, unique-local, multicast, documentation, …) and
// not allowed (net::ResolveEgress).
absl::StatusOr<Endpoint> ResolveEndpoint(const std::string& url, const EgressPolicy& policy);

struct PushResult {
  int http_status = 0;  // 0: no answer.
  std::string error;    // Empty on a 2xx answer.
};

// A push destination's signing secret: 32 to 200 bytes.
inline constexpr size_t kMinSecretBytes = 32;

// The signature header of a push delivery: "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body).
std::string DeliverySignature(const std::string& secret, int64_t timestamp, const std::string& body);

// POSTs `body` as JSON to the endpoint's first address: the connection is refused for
// any other address; no redirects are followed and no proxy is used. Never inside a
// database transaction (libs/db/network_guard.h).
PushResult Post(const Endpoint& endpoint, const std::vector<std::pair<std::string, std::string>>& headers,
                const std::string& body, std::chrono::milliseconds timeout);

}  // namespace stadtportal::connector

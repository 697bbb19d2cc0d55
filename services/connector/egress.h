#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/net/address.h"

// Where push deliveries may go. Every push URL is resolved at registration and again at
// each send; only public addresses pass, unless an operator's allow-list names them, and
// a request goes to the address that was checked (pinned), never to a second lookup.
namespace stadtportal::connector {

struct EgressPolicy {
  // Non-public networks that are allowed anyway (STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS;
  // e.g. 127.0.0.1 for local runs and tests, or a department's network behind a VPN).
  std::vector<net::Network> allowed;
  // http:// endpoints, and only when every address is in `allowed` (development).
  bool allow_http = false;
};

// A push endpoint, parsed and resolved; every address passed the policy.
struct Endpoint {
  std::string url;
  std::string host;  // As in the URL, without the brackets of an IPv6 literal.
  int port = 0;
  std::vector<net::Address> addresses;
};

// INVALID_ARGUMENT ("endpoint_url: …") when `url` is not an https:// URL without user
// information, its host does not resolve, or any address it resolves to is not public
// (loopback, private, link-local, CGNAT, unique-local, multicast, documentation, …) and
// not allowed.
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

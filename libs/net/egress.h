#pragma once

#include <curl/curl.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/net/address.h"

// Where requests to URLs that tenants or partners register may go (push destinations,
// partner portals' key sets and back-channel log-out): the URL's host is resolved at each
// request; only public addresses pass, unless an operator's allow-list names them; and the
// request goes to the address that was checked (pinned), never to a second lookup (DNS
// rebinding), without a proxy and without following redirects.
namespace stadtportal::net {

struct EgressPolicy {
  // Non-public networks that are allowed anyway (e.g. 127.0.0.1 for local runs and tests,
  // or a department's network behind a VPN).
  std::vector<Network> allowed;
  // http:// URLs, and only when every address is in `allowed` (development).
  bool allow_http = false;
};

// A URL, parsed and resolved; every address passed the policy.
struct Endpoint {
  std::string url;
  std::string host;  // As in the URL, without the brackets of an IPv6 literal.
  int port = 0;
  std::vector<Address> addresses;
};

// INVALID_ARGUMENT naming why, when `url` is not an https:// URL (http:// with
// `allow_http`) without user information, or its host does not resolve;
// PERMISSION_DENIED naming why, when any address it resolves to is not public (loopback,
// private, link-local, CGNAT, unique-local, multicast, documentation, …) and not allowed,
// or it is http:// to an address outside `allowed`. A name that also resolves inward is
// refused as a whole.
absl::StatusOr<Endpoint> ResolveEgress(const std::string& url, const EgressPolicy& policy);

// Sets up `curl` (whose CURLOPT_URL is the endpoint's URL) so that it connects to the
// endpoint's first checked address only: the name resolves to that address (CURLOPT_RESOLVE),
// a socket to any other address is refused, no proxy is used and no redirect is followed.
// Lives as long as the transfer.
class PinnedConnection {
 public:
  PinnedConnection(CURL* curl, const Endpoint& endpoint);
  ~PinnedConnection();
  PinnedConnection(const PinnedConnection&) = delete;
  PinnedConnection& operator=(const PinnedConnection&) = delete;

 private:
  std::optional<Address> pinned_;  // None: every address is refused.
  curl_slist* resolve_ = nullptr;
};

}  // namespace stadtportal::net

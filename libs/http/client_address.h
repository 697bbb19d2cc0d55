#pragma once

#include <string>
#include <vector>

#include <httplib.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/net/address.h"

namespace stadtportal::http {

// Proxies whose X-Forwarded-For is believed: a list of CIDR ranges, IPv4 and IPv6
// (addresses and ranges are libs/net's, the one parser of both).
class TrustedProxies {
 public:
  TrustedProxies() = default;
  // "10.0.0.0/8, fd00::/8, 192.0.2.1" (a bare address is one host); an error names the
  // first malformed entry.
  static absl::StatusOr<TrustedProxies> Parse(absl::string_view list);

  bool Contains(const net::Address& address) const { return net::AnyContains(ranges_, address); }
  bool empty() const { return ranges_.empty(); }

  // The client of a request whose TCP peer is `peer`, in canonical text. An untrusted
  // peer is the client (its X-Forwarded-For is ignored). From a trusted peer, the
  // X-Forwarded-For entries (all such headers, in order) are walked right to left: the
  // first entry that is not a trusted proxy is the client. A malformed entry, or more
  // hops than any real chain has, stops the walk at the last trusted hop.
  std::string ClientAddress(const std::string& peer, const httplib::Headers& headers) const;

 private:
  std::vector<net::Network> ranges_;
};

// TrustedProxies::ClientAddress of a request: the one way every part of the gateway
// names "the client" (rate limits, log-in throttles).
std::string ClientAddress(const httplib::Request& req, const TrustedProxies& trusted);

// What a client's limits and log-in failures count under: an IPv4 client's address, an
// IPv6 client's /64 ("2001:db8:1:2::/64", the smallest block a subscriber is given), so
// that rotating addresses within it gains nothing. Anything else is kept as it is.
std::string ClientKey(const std::string& client_address);

}  // namespace stadtportal::http

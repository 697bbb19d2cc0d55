#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include <httplib.h>

#include "absl/status/statusor.h"

namespace stadtportal::http {

// An IPv4 or IPv6 address; IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one
// client has one form whichever way it is written.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  // Numeric IPv4 ("203.0.113.7") or IPv6 ("2001:db8::1", "[2001:db8::1]"), nothing else
  // (no ports, zones or host names); false when malformed.
  static bool Parse(absl::string_view text, IpAddress* out);
  bool IsV4() const;
  // Canonical text: dotted quad for IPv4, RFC 5952 for IPv6.
  std::string ToString() const;
};

// Proxies whose X-Forwarded-For is believed: a list of CIDR ranges, IPv4 and IPv6.
class TrustedProxies {
 public:
  TrustedProxies() = default;
  // "10.0.0.0/8, fd00::/8, 192.0.2.1" (a bare address is one host); an error names the
  // first malformed entry.
  static absl::StatusOr<TrustedProxies> Parse(absl::string_view list);

  bool Contains(const IpAddress& address) const;
  bool empty() const { return ranges_.empty(); }

  // The client of a request whose TCP peer is `peer`, in canonical text. An untrusted
  // peer is the client (its X-Forwarded-For is ignored). From a trusted peer, the
  // X-Forwarded-For entries (all such headers, in order) are walked right to left: the
  // first entry that is not a trusted proxy is the client. A malformed entry, or more
  // hops than any real chain has, stops the walk at the last trusted hop.
  std::string ClientAddress(const std::string& peer, const httplib::Headers& headers) const;

 private:
  struct Range {
    IpAddress network;
    int prefix;  // In bits of the 128-bit (mapped) form.
  };
  std::vector<Range> ranges_;
};

// TrustedProxies::ClientAddress of a request: the one way every part of the gateway
// names "the client" (rate limits, log-in throttles).
std::string ClientAddress(const httplib::Request& req, const TrustedProxies& trusted);

// What a client's limits and log-in failures count under: an IPv4 client's address, an
// IPv6 client's /64 ("2001:db8:1:2::/64", the smallest block a subscriber is given), so
// that rotating addresses within it gains nothing. Anything else is kept as it is.
std::string ClientKey(const std::string& client_address);

}  // namespace stadtportal::http

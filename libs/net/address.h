#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// IP addresses and networks (CIDR), and which addresses are public: for settings that
// name networks (allow-lists) and for checking where outbound requests may go.
namespace stadtportal::net {

// An IPv4 or IPv6 address. IPv4 is kept IPv4-mapped (::ffff:a.b.c.d), so an IPv6
// spelling of an IPv4 address is the same address.
struct Address {
  std::array<uint8_t, 16> bytes{};
  bool IsV4() const;
  // "192.0.2.1" or "2001:db8::1".
  std::string ToString() const;
  bool operator==(const Address&) const = default;
};

// A numeric address ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"); no names, no
// shorthand forms such as "127.1".
std::optional<Address> ParseAddress(absl::string_view text);
// The address of an AF_INET or AF_INET6 socket address.
std::optional<Address> FromSockaddr(const sockaddr* sa);

// An address block: "10.0.0.0/8", "fc00::/7"; a bare address is a block of one.
struct Network {
  Address base;
  int prefix = 128;  // In IPv6 bits (an IPv4 /8 is /104).
  bool Contains(const Address& a) const;
  std::string ToString() const;
};

absl::StatusOr<Network> ParseNetwork(absl::string_view text);
// A comma-separated list of networks; empty text: none.
absl::StatusOr<std::vector<Network>> ParseNetworks(absl::string_view text);
bool AnyContains(const std::vector<Network>& networks, const Address& a);

// Why an address is not on the public internet ("loopback", "private", "link-local",
// "shared" (CGNAT), "multicast", "documentation", "reserved", …), or empty when it is a
// public unicast address (IANA special-purpose address registries).
absl::string_view NonPublicReason(const Address& a);

}  // namespace stadtportal::net

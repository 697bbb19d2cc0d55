#include "libs/net/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace stadtportal::net {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

struct Special {
  Network network;
  absl::string_view reason;
};

Network Must(absl::string_view text) { return *ParseNetwork(text); }

// IANA IPv4 and IPv6 special-purpose address registries: what is not globally reachable.
const std::vector<Special>& V4Specials() {
  static const auto* s = new std::vector<Special>{
      {Must("0.0.0.0/8"), "this-network"},       {Must("10.0.0.0/8"), "private"},
      {Must("100.64.0.0/10"), "shared"},         {Must("127.0.0.0/8"), "loopback"},
      {Must("169.254.0.0/16"), "link-local"},    {Must("172.16.0.0/12"), "private"},
      {Must("192.0.0.0/24"), "reserved"},        {Must("192.0.2.0/24"), "documentation"},
      {Must("192.88.99.0/24"), "reserved"},      {Must("192.168.0.0/16"), "private"},
      {Must("198.18.0.0/15"), "benchmarking"},   {Must("198.51.100.0/24"), "documentation"},
      {Must("203.0.113.0/24"), "documentation"}, {Must("224.0.0.0/4"), "multicast"},
      {Must("240.0.0.0/4"), "reserved"},
  };
  return *s;
}

const std::vector<Special>& V6Specials() {
  static const auto* s = new std::vector<Special>{
      {Must("::/128"), "unspecified"},          {Must("::1/128"), "loopback"},
      {Must("fe80::/10"), "link-local"},        {Must("fc00::/7"), "unique-local"},
      {Must("ff00::/8"), "multicast"},          {Must("64:ff9b::/96"), "translation"},
      {Must("64:ff9b:1::/48"), "translation"},  {Must("2002::/16"), "translation"},
      {Must("2001:db8::/32"), "documentation"}, {Must("3fff::/20"), "documentation"},
      {Must("2001::/23"), "reserved"},
  };
  return *s;
}

}  // namespace

bool Address::IsV4() const { return std::memcmp(bytes.data(), kMappedPrefix, 12) == 0; }

std::string Address::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (IsV4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

std::optional<Address> ParseAddress(absl::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string s(text);
  Address a;
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    std::memcpy(a.bytes.data(), kMappedPrefix, 12);
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  return std::nullopt;
}

std::optional<Address> FromSockaddr(const sockaddr* sa) {
  if (sa == nullptr) return std::nullopt;
  Address a;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(a.bytes.data(), kMappedPrefix, 12);
    std::memcpy(a.bytes.data() + 12, &in->sin_addr, 4);
    return a;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(a.bytes.data(), &in6->sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

bool Network::Contains(const Address& a) const {
  const int full = prefix / 8;
  if (std::memcmp(base.bytes.data(), a.bytes.data(), full) != 0) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (base.bytes[full] & mask) == (a.bytes[full] & mask);
}

std::string Network::ToString() const {
  return absl::StrCat(base.ToString(), "/", base.IsV4() && prefix >= 96 ? prefix - 96 : prefix);
}

absl::StatusOr<Network> ParseNetwork(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  const size_t slash = text.find('/');
  auto base = ParseAddress(text.substr(0, slash));
  if (!base) return absl::InvalidArgumentError(absl::StrCat("not an IP address or network: ", text.substr(0, 64)));
  const bool v4 = base->IsV4() && text.substr(0, slash).find(':') == absl::string_view::npos;
  int bits = v4 ? 32 : 128;
  if (slash != absl::string_view::npos) {
    // Digits only: no sign, no space, no second slash ("10.0.0.0/+8", "/ 8", "/8/8").
    const absl::string_view digits = text.substr(slash + 1);
    const bool all_digits = !digits.empty() && digits.size() <= 3 &&
                            std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    int parsed = -1;
    if (!all_digits || !absl::SimpleAtoi(digits, &parsed) || parsed > bits) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in ", text.substr(0, 64)));
    }
    bits = parsed;
  }
  Network n{*base, v4 ? bits + 96 : bits};
  // Host bits are cleared: "10.1.2.3/8" is 10.0.0.0/8.
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(n.prefix - i * 8, 0, 8);
    n.base.bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return n;
}

absl::StatusOr<std::vector<Network>> ParseNetworks(absl::string_view text) {
  std::vector<Network> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    auto n = ParseNetwork(part);
    if (!n.ok()) return n.status();
    out.push_back(*n);
  }
  return out;
}

bool AnyContains(const std::vector<Network>& networks, const Address& a) {
  for (const auto& n : networks) {
    if (n.Contains(a)) return true;
  }
  return false;
}

absl::string_view NonPublicReason(const Address& a) {
  if (a.IsV4()) {
    for (const auto& s : V4Specials()) {
      if (s.network.Contains(a)) return s.reason;
    }
    return {};
  }
  for (const auto& s : V6Specials()) {
    if (s.network.Contains(a)) return s.reason;
  }
  // Global unicast is 2000::/3; everything else is not assigned for public use.
  if ((a.bytes[0] & 0xe0) != 0x20) return "reserved";
  return {};
}

}  // namespace stadtportal::net

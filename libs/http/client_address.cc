#include "libs/http/client_address.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace stadtportal::http {
namespace {

// Longer chains than this are not real proxies but padding.
constexpr int kMaxHops = 16;
constexpr char kForwardedFor[] = "X-Forwarded-For";

// An address as written in X-Forwarded-For: bare, or an IPv6 address in brackets.
std::optional<net::Address> ParseHop(absl::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  return net::ParseAddress(text);
}

}  // namespace

absl::StatusOr<TrustedProxies> TrustedProxies::Parse(absl::string_view list) {
  auto ranges = net::ParseNetworks(list);
  if (!ranges.ok()) return ranges.status();
  TrustedProxies out;
  out.ranges_ = *std::move(ranges);
  return out;
}

std::string TrustedProxies::ClientAddress(const std::string& peer, const httplib::Headers& headers) const {
  auto peer_address = ParseHop(peer);
  if (!peer_address) return peer;
  net::Address current = *peer_address;
  if (!Contains(current)) return current.ToString();
  // Every X-Forwarded-For header, in the order received, is one list.
  std::vector<absl::string_view> hops;
  const auto [begin, end] = headers.equal_range(kForwardedFor);
  for (auto it = begin; it != end; ++it) {
    for (absl::string_view hop : absl::StrSplit(it->second, ',')) hops.push_back(hop);
  }
  int walked = 0;
  for (auto it = hops.rbegin(); it != hops.rend() && walked < kMaxHops; ++it, ++walked) {
    auto hop = ParseHop(absl::StripAsciiWhitespace(*it));
    if (!hop) break;
    current = *hop;
    if (!Contains(current)) break;
  }
  return current.ToString();
}

std::string ClientAddress(const httplib::Request& req, const TrustedProxies& trusted) {
  return trusted.ClientAddress(req.remote_addr, req.headers);
}

std::string ClientKey(const std::string& client_address) {
  auto parsed = net::ParseAddress(client_address);
  if (!parsed) return client_address;
  net::Address a = *parsed;
  if (a.IsV4()) return a.ToString();
  std::fill(a.bytes.begin() + 8, a.bytes.end(), 0);
  return a.ToString() + "/64";
}

}  // namespace stadtportal::http

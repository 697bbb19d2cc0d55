#include "libs/http/client_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stadtportal::http {
namespace {

// Longer chains than this are not real proxies but padding.
constexpr int kMaxHops = 16;
constexpr char kForwardedFor[] = "X-Forwarded-For";

}  // namespace

bool IpAddress::Parse(absl::string_view text, IpAddress* out) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  // INET6_ADDRSTRLEN - 1 characters at most; inet_pton needs a terminated copy.
  if (text.empty() || text.size() > 45) return false;
  char buf[46];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (text.find(':') == absl::string_view::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, buf, &v4) != 1) return false;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &v4, 4);
  } else if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) {
    return false;
  }
  *out = a;
  return true;
}

bool IpAddress::IsV4() const {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes.data(), kMapped, sizeof kMapped) == 0;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  const char* s = IsV4() ? inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf)
                         : inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  return s != nullptr ? std::string(s) : std::string();
}

absl::StatusOr<TrustedProxies> TrustedProxies::Parse(absl::string_view list) {
  TrustedProxies out;
  for (absl::string_view entry : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    const auto bad = [&] {
      return absl::InvalidArgumentError(absl::StrCat("not an IPv4 or IPv6 address or CIDR range: ", entry));
    };
    Range r;
    const size_t slash = entry.find('/');
    if (!IpAddress::Parse(absl::string_view(entry.data(), std::min(slash, entry.size())), &r.network)) return bad();
    const int max_prefix = r.network.IsV4() ? 32 : 128;
    int prefix = max_prefix;
    if (slash != absl::string_view::npos) {
      const absl::string_view digits = entry.substr(slash + 1);
      const bool all_digits = !digits.empty() && digits.size() <= 3 &&
                              std::all_of(digits.begin(), digits.end(),
                                          [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); });
      if (!all_digits || !absl::SimpleAtoi(digits, &prefix) || prefix > max_prefix) {
        return bad();
      }
    }
    r.prefix = r.network.IsV4() ? prefix + 96 : prefix;
    // The network address itself: host bits cleared.
    for (int bit = r.prefix; bit < 128; ++bit) r.network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    out.ranges_.push_back(r);
  }
  return out;
}

bool TrustedProxies::Contains(const IpAddress& address) const {
  for (const auto& r : ranges_) {
    const int full = r.prefix / 8;
    if (std::memcmp(address.bytes.data(), r.network.bytes.data(), static_cast<size_t>(full)) != 0) continue;
    const int rest = r.prefix % 8;
    if (rest == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    if ((address.bytes[static_cast<size_t>(full)] & mask) == r.network.bytes[static_cast<size_t>(full)]) return true;
  }
  return false;
}

std::string TrustedProxies::ClientAddress(const std::string& peer, const httplib::Headers& headers) const {
  IpAddress current;
  if (!IpAddress::Parse(peer, &current)) return peer;
  if (!Contains(current)) return current.ToString();
  // Every X-Forwarded-For header, in the order received, is one list.
  std::vector<absl::string_view> hops;
  const auto [begin, end] = headers.equal_range(kForwardedFor);
  for (auto it = begin; it != end; ++it) {
    for (absl::string_view hop : absl::StrSplit(it->second, ',')) hops.push_back(hop);
  }
  int walked = 0;
  for (auto it = hops.rbegin(); it != hops.rend() && walked < kMaxHops; ++it, ++walked) {
    IpAddress hop;
    if (!IpAddress::Parse(absl::StripAsciiWhitespace(*it), &hop)) break;
    current = hop;
    if (!Contains(hop)) break;
  }
  return current.ToString();
}

std::string ClientAddress(const httplib::Request& req, const TrustedProxies& trusted) {
  return trusted.ClientAddress(req.remote_addr, req.headers);
}

std::string ClientKey(const std::string& client_address) {
  IpAddress a;
  if (!IpAddress::Parse(client_address, &a)) return client_address;
  if (a.IsV4()) return a.ToString();
  std::fill(a.bytes.begin() + 8, a.bytes.end(), 0);
  return a.ToString() + "/64";
}

}  // namespace stadtportal::http

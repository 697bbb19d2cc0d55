#include "libs/net/egress.h"

#include <netdb.h>
#include <sys/socket.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace stadtportal::net {
namespace {

constexpr size_t kMaxUrl = 2048;

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

// One part of a parsed URL; empty when absent.
std::string Part(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* v = nullptr;
  if (curl_url_get(u, part, &v, flags) != CURLUE_OK || v == nullptr) return "";
  std::string s(v);
  curl_free(v);
  return s;
}

bool IsHostname(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  return true;
}

void GlobalInit() {
  static const bool done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)done;
}

// The pinned address: the only one a socket may be opened to.
curl_socket_t OpenPinned(void* pinned, curlsocktype, curl_sockaddr* a) {
  const auto& only = *static_cast<const std::optional<Address>*>(pinned);
  auto to = FromSockaddr(&a->addr);
  if (!to || !only || !(*to == *only)) return CURL_SOCKET_BAD;
  return socket(a->family, a->socktype, a->protocol);
}

}  // namespace

absl::StatusOr<Endpoint> ResolveEgress(const std::string& url, const EgressPolicy& policy) {
  GlobalInit();
  const auto bad = [](absl::string_view why) { return absl::InvalidArgumentError(why); };
  if (url.empty() || url.size() > kMaxUrl) return bad("an https:// URL of at most 2048 characters");
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (u == nullptr) return absl::ResourceExhaustedError("out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return bad("not a URL");
  const std::string scheme = absl::AsciiStrToLower(Part(u.get(), CURLUPART_SCHEME));
  if (scheme != "https" && !(scheme == "http" && policy.allow_http)) return bad("an https:// URL is required");
  if (!Part(u.get(), CURLUPART_USER).empty() || !Part(u.get(), CURLUPART_PASSWORD).empty() ||
      !Part(u.get(), CURLUPART_OPTIONS).empty()) {
    return bad("no user information in the URL");
  }
  if (!Part(u.get(), CURLUPART_ZONEID).empty()) return bad("no zone in the URL");
  Endpoint e;
  e.url = url;
  e.host = Part(u.get(), CURLUPART_HOST);
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') {
    e.host = e.host.substr(1, e.host.size() - 2);
    if (!ParseAddress(e.host)) return bad("not a valid host");
  } else if (!IsHostname(e.host)) {
    return bad("not a valid host");
  }
  if (!absl::SimpleAtoi(Part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT), &e.port) || e.port <= 0 || e.port > 65535) {
    return bad("not a valid port");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(e.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return bad("the host does not resolve");
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    auto a = FromSockaddr(ai->ai_addr);
    if (!a) continue;
    // Every address must pass: a name that also resolves inward is refused as a whole.
    if (!AnyContains(policy.allowed, *a)) {
      if (auto reason = NonPublicReason(*a); !reason.empty()) {
        return absl::PermissionDeniedError(absl::StrCat("resolves to a ", reason, " address, which is not allowed"));
      }
      if (scheme == "http") return absl::PermissionDeniedError("http:// only to allowed networks (development)");
    }
    bool seen = false;
    for (const auto& have : e.addresses) seen = seen || have == *a;
    if (!seen) e.addresses.push_back(*a);
  }
  if (e.addresses.empty()) return bad("the host does not resolve");
  return e;
}

PinnedConnection::PinnedConnection(CURL* curl, const Endpoint& endpoint) {
  if (!endpoint.addresses.empty()) pinned_ = endpoint.addresses.front();
  const Address a = pinned_.value_or(Address{});
  const std::string address = a.IsV4() ? a.ToString() : "[" + a.ToString() + "]";
  // The name resolves to the checked address only: no second lookup (DNS rebinding).
  resolve_ = curl_slist_append(nullptr, absl::StrCat(endpoint.host, ":", endpoint.port, ":", address).c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve_);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, OpenPinned);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &pinned_);
}

PinnedConnection::~PinnedConnection() { curl_slist_free_all(resolve_); }

}  // namespace stadtportal::net

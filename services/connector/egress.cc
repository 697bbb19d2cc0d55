#include "services/connector/egress.h"

#include <curl/curl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"
#include "libs/db/network_guard.h"
#include "libs/status/status.h"

namespace stadtportal::connector {
namespace {

constexpr size_t kMaxUrl = 2048;
constexpr size_t kMaxResponse = 64 * 1024;

absl::Status Bad(absl::string_view why) { return status::FieldError("endpoint_url", "invalid", why); }

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

size_t Discard(char*, size_t size, size_t n, void* seen) {
  auto* total = static_cast<size_t*>(seen);
  *total += size * n;
  return *total > kMaxResponse ? 0 : size * n;  // A receiver that talks on and on is cut off.
}

// The pinned address: the only one a socket may be opened to.
curl_socket_t OpenPinned(void* pinned, curlsocktype, curl_sockaddr* a) {
  auto to = net::FromSockaddr(&a->addr);
  if (!to || !(*to == *static_cast<const net::Address*>(pinned))) return CURL_SOCKET_BAD;
  return socket(a->family, a->socktype, a->protocol);
}

}  // namespace

absl::StatusOr<Endpoint> ResolveEndpoint(const std::string& url, const EgressPolicy& policy) {
  GlobalInit();
  if (url.empty() || url.size() > kMaxUrl) return Bad("an https:// URL of at most 2048 characters");
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (u == nullptr) return absl::ResourceExhaustedError("out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return Bad("not a URL");
  const std::string scheme = absl::AsciiStrToLower(Part(u.get(), CURLUPART_SCHEME));
  if (scheme != "https" && !(scheme == "http" && policy.allow_http)) {
    return Bad("push destinations need an https:// URL");
  }
  if (!Part(u.get(), CURLUPART_USER).empty() || !Part(u.get(), CURLUPART_PASSWORD).empty() ||
      !Part(u.get(), CURLUPART_OPTIONS).empty()) {
    return Bad("no user information in the URL");
  }
  if (!Part(u.get(), CURLUPART_ZONEID).empty()) return Bad("no zone in the URL");
  Endpoint e;
  e.url = url;
  e.host = Part(u.get(), CURLUPART_HOST);
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') {
    e.host = e.host.substr(1, e.host.size() - 2);
    if (!net::ParseAddress(e.host)) return Bad("not a valid host");
  } else if (!IsHostname(e.host)) {
    return Bad("not a valid host");
  }
  if (!absl::SimpleAtoi(Part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT), &e.port) || e.port <= 0 || e.port > 65535) {
    return Bad("not a valid port");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(e.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return Bad("the host does not resolve");
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    auto a = net::FromSockaddr(ai->ai_addr);
    if (!a) continue;
    const bool allowed = net::AnyContains(policy.allowed, *a);
    // Every address must pass: a name that also resolves inward is refused as a whole.
    if (!allowed) {
      if (auto reason = net::NonPublicReason(*a); !reason.empty()) {
        return Bad(absl::StrCat("resolves to a ", reason, " address, which is not allowed"));
      }
      if (scheme == "http") return Bad("http:// only to allowed networks (development)");
    }
    bool seen = false;
    for (const auto& have : e.addresses) seen = seen || have == *a;
    if (!seen) e.addresses.push_back(*a);
  }
  if (e.addresses.empty()) return Bad("the host does not resolve");
  return e;
}

std::string DeliverySignature(const std::string& secret, int64_t timestamp, const std::string& body) {
  return "v1=" + auth::HmacSha256Hex(secret, absl::StrCat(timestamp, ".", body));
}

PushResult Post(const Endpoint& endpoint, const std::vector<std::pair<std::string, std::string>>& headers,
                const std::string& body, std::chrono::milliseconds timeout) {
  db::ExpectNoTransaction("http");
  GlobalInit();
  PushResult out;
  if (endpoint.addresses.empty()) {
    out.error = "no checked address";
    return out;
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    out.error = "curl_easy_init failed";
    return out;
  }
  net::Address pinned = endpoint.addresses.front();
  const std::string address = pinned.IsV4() ? pinned.ToString() : "[" + pinned.ToString() + "]";
  // The name resolves to the checked address only: no second lookup (DNS rebinding).
  curl_slist* resolve =
      curl_slist_append(nullptr, absl::StrCat(endpoint.host, ":", endpoint.port, ":", address).c_str());
  curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
  list = curl_slist_append(list, "Expect:");
  for (const auto& [name, value] : headers) list = curl_slist_append(list, absl::StrCat(name, ": ", value).c_str());
  size_t received = 0;
  curl_easy_setopt(curl, CURLOPT_URL, endpoint.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, OpenPinned);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &pinned);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(list);
  curl_slist_free_all(resolve);
  curl_easy_cleanup(curl);
  out.http_status = static_cast<int>(status);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && status != 0)) {
    out.error = curl_easy_strerror(rc);
  } else if (status < 200 || status >= 300) {
    out.error = absl::StrCat("HTTP ", status);
  }
  return out;
}

}  // namespace stadtportal::connector

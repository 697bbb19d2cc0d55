#include "services/connector/egress.h"

#include <curl/curl.h>

#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"
#include "libs/db/network_guard.h"
#include "libs/status/status.h"

namespace stadtportal::connector {
namespace {

constexpr size_t kMaxResponse = 64 * 1024;

void GlobalInit() {
  static const bool done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)done;
}

size_t Discard(char*, size_t size, size_t n, void* seen) {
  auto* total = static_cast<size_t*>(seen);
  *total += size * n;
  return *total > kMaxResponse ? 0 : size * n;  // A receiver that talks on and on is cut off.
}

}  // namespace

absl::StatusOr<Endpoint> ResolveEndpoint(const std::string& url, const EgressPolicy& policy) {
  auto e = net::ResolveEgress(url, policy);
  if (e.ok()) return e;
  const absl::StatusCode code = e.status().code();
  if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kPermissionDenied) return e.status();
  const absl::string_view why = e.status().message();
  return status::FieldError("endpoint_url", "invalid",
                            why == "an https:// URL is required" ? "push destinations need an https:// URL" : why);
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
  curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
  list = curl_slist_append(list, "Expect:");
  for (const auto& [name, value] : headers) list = curl_slist_append(list, absl::StrCat(name, ": ", value).c_str());
  size_t received = 0;
  curl_easy_setopt(curl, CURLOPT_URL, endpoint.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  // The checked address only; no redirects, no proxy.
  net::PinnedConnection pin(curl, endpoint);
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

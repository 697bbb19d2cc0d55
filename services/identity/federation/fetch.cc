#include "services/identity/federation/fetch.h"

#include <curl/curl.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/api/text.h"
#include "libs/db/network_guard.h"
#include "libs/net/url.h"

namespace stadtportal::identity::fetch {
namespace {

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string UrlPart(CURLU* u, CURLUPart part) {
  char* v = nullptr;
  if (curl_url_get(u, part, &v, 0) != CURLUE_OK || v == nullptr) return "";
  std::string out(v);
  curl_free(v);
  return out;
}

void CurlGlobalInit() {
  static const bool done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  (void)done;
}

struct Received {
  std::string body;
  size_t limit = 0;
  bool too_big = false;
};

size_t Collect(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Received*>(user);
  const size_t n = size * count;
  if (r->body.size() + n > r->limit) {
    r->too_big = true;
    return 0;  // Aborts the transfer.
  }
  r->body.append(data, n);
  return n;
}

}  // namespace

std::string AllowedScheme(const std::string& url) {
  if (url.size() > 2048 || !api::IsPlainText(url)) return "";
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "";
  const std::string scheme = absl::AsciiStrToLower(UrlPart(u.get(), CURLUPART_SCHEME));
  const std::string host = absl::AsciiStrToLower(UrlPart(u.get(), CURLUPART_HOST));
  if (host.empty() || !UrlPart(u.get(), CURLUPART_USER).empty() || !UrlPart(u.get(), CURLUPART_FRAGMENT).empty()) {
    return "";
  }
  if (scheme == "https") return "https";
  if (scheme == "http" && (host == "127.0.0.1" || host == "[::1]" || host == "localhost")) return "http";
  return "";
}

namespace {

// One request to `url` with `scheme`; `pinned` set: to its checked address only.
absl::StatusOr<Answer> Perform(const std::string& url, const std::string& scheme, const net::Endpoint* pinned,
                               const std::vector<std::string>& headers, const std::string* form, const Limits& limits) {
  db::ExpectNoTransaction("http");
  CurlGlobalInit();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::UnavailableError("curl_easy_init failed");
  Received received;
  received.limit = limits.max_bytes;
  curl_slist* list = curl_slist_append(nullptr, "Accept: application/json");
  list = curl_slist_append(list, "Expect:");
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  const long timeout_ms = static_cast<long>(limits.timeout.count());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, scheme.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  if (scheme == "http") curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  std::optional<net::PinnedConnection> pin;
  if (pinned != nullptr) pin.emplace(curl, *pinned);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if (form != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(form->size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
  curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(limits.max_bytes));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  Answer answer;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  char* content_type = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &content_type) == CURLE_OK && content_type != nullptr) {
    answer.content_type = absl::AsciiStrToLower(content_type);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  if (received.too_big || rc == CURLE_FILESIZE_EXCEEDED) return absl::UnavailableError("answer too big");
  if (rc != CURLE_OK) return absl::UnavailableError(curl_easy_strerror(rc));
  answer.body = std::move(received.body);
  return answer;
}

}  // namespace

absl::StatusOr<Answer> Fetch(const std::string& url, const std::vector<std::string>& headers, const std::string* form,
                             const Limits& limits) {
  const std::string scheme = AllowedScheme(url);
  if (scheme.empty()) return absl::UnavailableError("not an https URL (http only on loopback)");
  return Perform(url, scheme, nullptr, headers, form, limits);
}

absl::StatusOr<Answer> FetchPartner(const std::string& url, const net::EgressPolicy& policy,
                                    const std::vector<std::string>& headers, const std::string* form,
                                    const Limits& limits) {
  const std::string scheme = AllowedScheme(url);
  if (scheme.empty()) return absl::InvalidArgumentError("not an https URL (http only on loopback)");
  CurlGlobalInit();
  auto endpoint = net::ResolveEgress(url, policy);
  if (!endpoint.ok()) return endpoint.status();
  return Perform(url, scheme, &*endpoint, headers, form, limits);
}

// The answer's body as a JSON object, when it is one (application/json, or a JSON-based
// type such as application/jwk-set+json).
std::optional<nlohmann::json> JsonObject(const Answer& answer) {
  const std::string media(absl::StripAsciiWhitespace(answer.content_type.substr(0, answer.content_type.find(';'))));
  if (media != "application/json" && !(absl::StartsWith(media, "application/") && absl::EndsWith(media, "+json"))) {
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(answer.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::string Form(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : fields)
    parts.push_back(absl::StrCat(net::PercentEncode(name), "=", net::PercentEncode(value)));
  return absl::StrJoin(parts, "&");
}

std::string WithQuery(const std::string& base, const std::string& query) {
  return absl::StrCat(base, base.find('?') == std::string::npos ? "?" : "&", query);
}

}  // namespace stadtportal::identity::fetch

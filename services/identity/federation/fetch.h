#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "libs/net/egress.h"

// Requests identity makes to other parties (upstream providers' discovery, keys and token
// endpoints; partner portals' key sets and back-channel logout): every exchange with a
// size limit and a time limit, no redirects followed, https only (http on loopback).
namespace stadtportal::identity::fetch {

struct Limits {
  std::chrono::milliseconds timeout{5000};
  size_t max_bytes = 256 * 1024;
};

struct Answer {
  long status = 0;
  std::string body;
  std::string content_type;  // Lower case.
};

// The scheme a URL may be fetched with ("https", or "http" for loopback hosts), or ""
// when it may not be fetched at all (other schemes, user information, no host, fragment).
std::string AllowedScheme(const std::string& url);

// One request; UNAVAILABLE naming what went wrong (never the body or the headers).
// `form` set: a POST of that x-www-form-urlencoded body.
absl::StatusOr<Answer> Fetch(const std::string& url, const std::vector<std::string>& headers, const std::string* form,
                             const Limits& limits);

// A request to a URL a partner registered (key set, back-channel log-out): the URL must
// be allowed by AllowedScheme, and its host is resolved and checked against `policy` now
// (net::ResolveEgress: INVALID_ARGUMENT or PERMISSION_DENIED naming why, before any
// connection); the request then goes to the checked address only, without a proxy.
// Otherwise as Fetch.
absl::StatusOr<Answer> FetchPartner(const std::string& url, const net::EgressPolicy& policy,
                                    const std::vector<std::string>& headers, const std::string* form,
                                    const Limits& limits);

// The answer's body as a JSON object, when it is one (application/json, or a JSON-based
// type such as application/jwk-set+json).
std::optional<nlohmann::json> JsonObject(const Answer& answer);

// application/x-www-form-urlencoded of the fields, in their order.
std::string Form(const std::vector<std::pair<std::string, std::string>>& fields);
// `base` with `query` appended (a base that has a query already keeps it).
std::string WithQuery(const std::string& base, const std::string& query);

}  // namespace stadtportal::identity::fetch

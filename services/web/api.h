#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace stadtportal::web {

// The public REST API as the web part calls it: over HTTP to the gateway, exactly as a
// partner portal would. Every call has a connect and read timeout and a limit on the
// answer's size; a transport failure, a timeout or an oversized answer is status 0.
struct ApiOptions {
  std::string base_url = "http://127.0.0.1:8080";  // scheme://host:port, http only.
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds timeout{5000};  // Read and write, per call.
  size_t max_body = 1 << 20;                // A JSON answer.
  size_t max_download = 25 << 20;           // A file (receipt, attachment, export).
  int pool = 16;                            // Idle keep-alive connections kept.
};

// What the caller is: the API session (bearer token; "" for anonymous calls), the
// language for problem texts and the browser's address (X-Forwarded-For, for the
// gateway's per-client rate limits when it trusts this part).
struct ApiCaller {
  std::string token;
  std::string lang = "de";
  std::string client_address;
};

struct ApiResult {
  int status = 0;  // 0: no answer (unreachable, timed out, too large, not JSON).
  nlohmann::json body;  // The parsed JSON answer (a problem document on 4xx/5xx), or null.
  std::string content_type;
  std::string raw;  // Files only (Download).
  std::map<std::string, std::string> headers;  // Location, Content-Disposition, Retry-After.

  bool ok() const { return status >= 200 && status < 300; }
  // The problem's field errors: field → message (in the caller's language).
  std::map<std::string, std::string> FieldErrors() const;
  // The same as field → code ("required", "too_short", …).
  std::map<std::string, std::string> FieldCodes() const;
};

// A multipart part of an upload.
struct ApiFile {
  std::string field;
  std::string filename;
  std::string content_type;
  std::string content;
};

class Api {
 public:
  explicit Api(ApiOptions options);

  ApiResult Get(const ApiCaller& caller, const std::string& path,
                const std::map<std::string, std::string>& extra_headers = {});
  ApiResult Send(const ApiCaller& caller, const std::string& method, const std::string& path,
                 const nlohmann::json& body, const std::map<std::string, std::string>& extra_headers = {});
  ApiResult Upload(const ApiCaller& caller, const std::string& path, const std::vector<ApiFile>& files,
                   const std::map<std::string, std::string>& fields = {});
  // A file (up to max_download): raw holds its bytes.
  ApiResult Download(const ApiCaller& caller, const std::string& path);

  // "a b/ä" → "a%20b%2F%C3%A4" for a query value or path segment.
  static std::string Escape(const std::string& value);

 private:
  using Call = std::function<httplib::Result(httplib::Client&, const httplib::Headers&)>;
  ApiResult Run(const ApiCaller& caller, const std::string& method, const std::string& route, const Call& call,
                size_t limit, bool json);
  std::unique_ptr<httplib::Client> Take();
  void Give(std::unique_ptr<httplib::Client> client);

  ApiOptions options_;
  std::string host_;
  int port_ = 80;
  std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;
};

}  // namespace stadtportal::web

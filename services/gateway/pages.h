#pragma once

#include <string>
#include <vector>

#include <httplib.h>

// The one HTML page the gateway serves itself: the OpenID Provider's authorization page
// (log-in, step-up, consent, an error, logged out) for partner portals. No JavaScript, in
// German and English, every value escaped. (The citizen portal's pages are not made here.)
namespace stadtportal::gateway::pages {

struct Provider {
  std::string name;  // In the page's language.
  std::string url;   // Where the step-up begins (a path of ours).
};

struct Page {
  enum class Kind { kLogin, kStepUp, kConsent, kError, kLoggedOut };
  Kind kind = Kind::kError;
  std::string lang = "de";  // "de" or "en".
  std::string csrf_token;   // The pending authorization's; in every form.
  std::string client_name;
  std::vector<std::string> scopes;  // Consent: the scopes asked for.
  std::string required_level;       // Step-up: "substantial", "high".
  // Log-in: "credentials" (e-mail or password wrong), "throttled"; "" for none.
  std::string problem;
  int retry_after_seconds = 0;
  std::string email;                // Prefilled (login_hint).
  std::vector<Provider> providers;  // Log-in and step-up with an upstream provider.
  std::string error;                // Error page: the error code, e.g. "invalid_redirect_uri".
  std::string error_description;
};

// Text for HTML content and attribute values.
std::string Escape(const std::string& text);
// The page as HTML.
std::string Render(const Page& page);
// The page's Content-Security-Policy: nothing but its own stylesheet (by hash); forms post
// to us only, and the client's origin (`form_origin`, "" for none) where our answer to a
// form sends the browser on to the client.
std::string ContentSecurityPolicy(const std::string& form_origin);
// Writes the page with its headers (CSP, no framing, no caching, no referrer).
void Write(httplib::Response& res, int status, const Page& page, const std::string& form_origin = "");

}  // namespace stadtportal::gateway::pages

#include "services/gateway/pages.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"

namespace stadtportal::gateway::pages {
namespace {

// The page's only styling, allowed by its hash (no inline style attributes anywhere):
// readable widths, labels above their fields, a focus ring that shows on any background.
constexpr char kStyle[] =
    "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;padding:1rem;color:#0b0c0c;background:#fff}"
    "main{max-width:34rem;margin:0 auto}"
    "label{display:block;font-weight:600;margin-top:1rem}"
    "input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:2px solid #0b0c0c}"
    "input[aria-invalid=true]{border-color:#b10e1e}"
    "button,a.button{display:inline-block;margin:1rem .5rem 0 0;padding:.6rem 1.2rem;font-size:1rem;"
    "border:2px solid #00457d;background:#00457d;color:#fff;text-decoration:none;cursor:pointer}"
    "button.secondary{background:#fff;color:#00457d}"
    "a{color:#00457d}"
    ":focus{outline:3px solid #ffbf47;outline-offset:0;box-shadow:0 0 0 6px #0b0c0c}"
    ".error-summary{border:4px solid #b10e1e;padding:1rem;margin:1rem 0}"
    ".error-summary h2{margin-top:0;font-size:1.25rem}"
    ".field-error{color:#b10e1e;font-weight:600;margin:.25rem 0}"
    "ul.providers{list-style:none;padding:0}";

const std::string& StyleHash() {
  static const std::string hash = "'sha256-" + absl::Base64Escape(auth::Sha256(kStyle)) + "'";
  return hash;
}

// German and English texts, by key.
const std::string& T(const std::string& lang, const std::string& key) {
  static const std::map<std::string, std::pair<std::string, std::string>> kTexts = {
      {"site", {"stadtportal", "stadtportal"}},
      {"login.title", {"Anmelden", "Log in"}},
      {"login.intro",
       {"„{client}“ möchte Sie über Ihr Konto bei stadtportal anmelden.",
        "“{client}” would like you to log in with your stadtportal account."}},
      {"email", {"E-Mail-Adresse", "E-mail address"}},
      {"password", {"Passwort", "Password"}},
      {"login.submit", {"Anmelden", "Log in"}},
      {"login.providers", {"Oder melden Sie sich an mit:", "Or log in with:"}},
      {"provider.with", {"Anmelden mit {name}", "Log in with {name}"}},
      {"problem.title", {"Es gibt ein Problem", "There is a problem"}},
      {"problem.credentials",
       {"E-Mail-Adresse oder Passwort ist falsch.", "The e-mail address or the password is wrong."}},
      {"problem.throttled",
       {"Zu viele Versuche. Bitte versuchen Sie es in {seconds} Sekunden erneut.",
        "Too many attempts. Please try again in {seconds} seconds."}},
      {"problem.locked",
       {"Dieses Konto ist gesperrt. Bitte wenden Sie sich an die Stadt.",
        "This account is locked. Please contact the city."}},
      {"problem.not_verified",
       {"Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse mit dem Link, den wir Ihnen geschickt haben.",
        "Please confirm your e-mail address first with the link we sent you."}},
      {"error.prefix", {"Fehler: ", "Error: "}},
      {"stepup.title", {"Höheres Vertrauensniveau nötig", "A higher level of assurance is needed"}},
      {"stepup.intro",
       {"„{client}“ verlangt eine Anmeldung mit dem Vertrauensniveau „{level}“. Melden Sie sich dafür mit einem "
        "dieser Dienste an:",
        "“{client}” requires a log-in at the level of assurance “{level}”. Please log in with one of these "
        "services:"}},
      {"stepup.none",
       {"Keiner unserer Anmeldedienste bietet dieses Vertrauensniveau an.",
        "None of our log-in services offers this level of assurance."}},
      {"consent.title", {"Zugriff erlauben?", "Allow access?"}},
      {"consent.intro", {"„{client}“ bittet um Zugriff auf:", "“{client}” asks for access to:"}},
      {"consent.note",
       {"Sie können den Zugriff jederzeit in Ihrem Konto unter „Verbundene Portale“ widerrufen.",
        "You can withdraw the access at any time in your account under “Connected portals”."}},
      {"consent.allow", {"Erlauben", "Allow"}},
      {"consent.deny", {"Ablehnen", "Deny"}},
      {"error.title", {"Anmeldung nicht möglich", "Log-in not possible"}},
      {"error.invalid_client",
       {"Das Partnerportal ist bei uns nicht (mehr) zugelassen.",
        "The partner portal is not (or no longer) "
        "registered with us."}},
      {"error.invalid_redirect_uri",
       {"Die Rücksprungadresse des Partnerportals ist bei uns nicht registriert. Aus Sicherheitsgründen leiten "
        "wir Sie nicht dorthin weiter.",
        "The partner portal's return address is not registered with us. For your security we do not send you "
        "there."}},
      {"error.expired",
       {"Die Anmeldung ist abgelaufen oder wurde schon abgeschlossen. Bitte beginnen Sie im Partnerportal neu.",
        "The log-in has expired or was already finished. Please start again at the partner portal."}},
      {"error.invalid_request",
       {"Die Anfrage des Partnerportals ist fehlerhaft.", "The partner portal's request is malformed."}},
      {"error.other", {"Die Anmeldung konnte nicht fortgesetzt werden.", "The log-in could not go on."}},
      {"error.code", {"Fehlercode", "Error code"}},
      {"loggedout.title", {"Abgemeldet", "Logged out"}},
      {"loggedout.text",
       {"Sie sind bei stadtportal abgemeldet. Sie können dieses Fenster schließen.",
        "You are logged out of stadtportal. You may close this window."}},
      {"scope.openid",
       {"Ihre Anmeldung (eine Kennung nur für dieses Portal)", "Your log-in (an identifier for this portal only)"}},
      {"scope.profile", {"Ihren Namen und Ihr Geburtsdatum", "Your name and date of birth"}},
      {"scope.email", {"Ihre E-Mail-Adresse", "Your e-mail address"}},
      {"scope.address", {"Ihre Anschrift", "Your postal address"}},
      {"scope.submissions:read", {"Ihre Anträge und deren Stand lesen", "Read your applications and their status"}},
      {"scope.drafts:write",
       {"Anträge für Sie anlegen, bearbeiten und einreichen", "Start, edit and submit applications for you"}},
      {"scope.mailbox:read", {"Ihr Postfach lesen", "Read your mailbox"}},
      {"level.low", {"niedrig", "low"}},
      {"level.substantial", {"substanziell", "substantial"}},
      {"level.high", {"hoch", "high"}},
  };
  static const std::string kEmpty;
  auto it = kTexts.find(key);
  if (it == kTexts.end()) return kEmpty;
  return lang == "en" ? it->second.second : it->second.first;
}

// The text of `key` escaped, with each {name} replaced by its value, escaped too.
std::string Text(const std::string& lang, const std::string& key,
                 const std::vector<std::pair<std::string, std::string>>& values = {}) {
  std::string out = Escape(T(lang, key));
  for (const auto& [name, value] : values) {
    const std::string slot = "{" + name + "}";
    for (size_t at = out.find(slot); at != std::string::npos; at = out.find(slot, at)) {
      const std::string escaped = Escape(value);
      out.replace(at, slot.size(), escaped);
      at += escaped.size();
    }
  }
  return out;
}

std::string Hidden(const std::string& name, const std::string& value) {
  return "<input type=\"hidden\" name=\"" + Escape(name) + "\" value=\"" + Escape(value) + "\">\n";
}

std::string LoginBody(const Page& p, bool* error) {
  const std::string& l = p.lang;
  std::string html = "<h1>" + Text(l, "login.title") + "</h1>\n";
  std::string problem;
  if (p.problem == "credentials") problem = Text(l, "problem.credentials");
  if (p.problem == "throttled") {
    problem = Text(l, "problem.throttled", {{"seconds", std::to_string(std::max(1, p.retry_after_seconds))}});
  }
  if (p.problem == "locked" || p.problem == "not_verified") problem = Text(l, "problem." + p.problem);
  if (!p.problem.empty() && problem.empty()) problem = Text(l, "error.other");
  *error = !problem.empty();
  if (*error) {
    // Read out at once; each entry leads to the field to correct.
    html +=
        "<div class=\"error-summary\" role=\"alert\" aria-labelledby=\"error-summary-title\" tabindex=\"-1\">\n"
        "<h2 id=\"error-summary-title\">" +
        Text(l, "problem.title") + "</h2>\n<ul>\n<li><a href=\"#email\">" + problem + "</a></li>\n</ul>\n</div>\n";
  }
  if (!p.client_name.empty()) html += "<p>" + Text(l, "login.intro", {{"client", p.client_name}}) + "</p>\n";
  html += "<form method=\"post\" action=\"/api/v1/oidc/authorize/login\" novalidate>\n" +
          Hidden("csrf_token", p.csrf_token);
  const std::string invalid = *error ? " aria-invalid=\"true\" aria-describedby=\"email-error\"" : "";
  html += "<label for=\"email\">" + Text(l, "email") + "</label>\n";
  if (*error) html += "<p id=\"email-error\" class=\"field-error\">" + problem + "</p>\n";
  html +=
      "<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" spellcheck=\"false\" required"
      " value=\"" +
      Escape(p.email) + "\"" + invalid + ">\n";
  html += "<label for=\"password\">" + Text(l, "password") + "</label>\n";
  html += "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required" +
          std::string(*error ? " aria-invalid=\"true\"" : "") + ">\n";
  html += "<button type=\"submit\">" + Text(l, "login.submit") + "</button>\n</form>\n";
  if (!p.providers.empty()) {
    html += "<p>" + Text(l, "login.providers") + "</p>\n<ul class=\"providers\">\n";
    for (const auto& provider : p.providers) {
      html += "<li><a class=\"button\" href=\"" + Escape(provider.url) + "\">" +
              Text(l, "provider.with", {{"name", provider.name}}) + "</a></li>\n";
    }
    html += "</ul>\n";
  }
  return html;
}

std::string StepUpBody(const Page& p) {
  const std::string& l = p.lang;
  std::string html = "<h1>" + Text(l, "stepup.title") + "</h1>\n";
  html += "<p>" + Text(l, "stepup.intro", {{"client", p.client_name}, {"level", T(l, "level." + p.required_level)}}) +
          "</p>\n";
  if (p.providers.empty()) return html + "<p>" + Text(l, "stepup.none") + "</p>\n";
  // Links, not form buttons: they lead to another site (the provider), which a page's
  // form-action policy would not let a form's answer do.
  html += "<ul class=\"providers\">\n";
  for (const auto& provider : p.providers) {
    html += "<li><a class=\"button\" href=\"" + Escape(provider.url) + "\">" +
            Text(l, "provider.with", {{"name", provider.name}}) + "</a></li>\n";
  }
  return html + "</ul>\n";
}

std::string ConsentBody(const Page& p) {
  const std::string& l = p.lang;
  std::string html = "<h1>" + Text(l, "consent.title") + "</h1>\n";
  html += "<p>" + Text(l, "consent.intro", {{"client", p.client_name}}) + "</p>\n<ul>\n";
  for (const auto& scope : p.scopes) {
    const std::string& text = T(l, "scope." + scope);
    html += "<li>" + Escape(text.empty() ? scope : text) + "</li>\n";
  }
  html += "</ul>\n<p>" + Text(l, "consent.note") + "</p>\n";
  html += "<form method=\"post\" action=\"/api/v1/oidc/authorize/consent\">\n" + Hidden("csrf_token", p.csrf_token);
  html += "<button type=\"submit\" name=\"decision\" value=\"allow\">" + Text(l, "consent.allow") + "</button>\n";
  html += "<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">" + Text(l, "consent.deny") +
          "</button>\n</form>\n";
  return html;
}

std::string ErrorBody(const Page& p) {
  const std::string& l = p.lang;
  std::string text = T(l, "error." + p.error).empty() ? Text(l, "error.other") : Text(l, "error." + p.error);
  std::string html = "<h1>" + Text(l, "error.title") + "</h1>\n<p>" + text + "</p>\n";
  if (!p.error.empty()) {
    html += "<p>" + Text(l, "error.code") + ": <code>" + Escape(p.error) + "</code>";
    if (!p.error_description.empty()) html += " – " + Escape(p.error_description);
    html += "</p>\n";
  }
  return html;
}

}  // namespace

std::string Escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Render(const Page& page) {
  Page p = page;
  if (p.lang != "en") p.lang = "de";
  bool error = false;
  std::string title, body;
  switch (p.kind) {
    case Page::Kind::kLogin:
      body = LoginBody(p, &error);
      title = T(p.lang, "login.title");
      break;
    case Page::Kind::kStepUp:
      body = StepUpBody(p);
      title = T(p.lang, "stepup.title");
      break;
    case Page::Kind::kConsent:
      body = ConsentBody(p);
      title = T(p.lang, "consent.title");
      break;
    case Page::Kind::kLoggedOut:
      body = "<h1>" + Text(p.lang, "loggedout.title") + "</h1>\n<p>" + Text(p.lang, "loggedout.text") + "</p>\n";
      title = T(p.lang, "loggedout.title");
      break;
    case Page::Kind::kError:
      body = ErrorBody(p);
      title = T(p.lang, "error.title");
      error = true;
      break;
  }
  if (error) title = T(p.lang, "error.prefix") + title;
  return absl::StrCat("<!DOCTYPE html>\n<html lang=\"", p.lang,
                      "\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
                      Escape(title), " – ", T(p.lang, "site"), "</title>\n<style>", kStyle,
                      "</style>\n</head>\n<body>\n<main>\n", body, "</main>\n</body>\n</html>\n");
}

std::string ContentSecurityPolicy(const std::string& form_origin) {
  return "default-src 'none'; style-src " + StyleHash() + "; form-action 'self'" +
         (form_origin.empty() ? "" : " " + form_origin) + "; frame-ancestors 'none'; base-uri 'none'";
}

void Write(httplib::Response& res, int status, const Page& page, const std::string& form_origin) {
  // In place of the API's policy (nothing at all) and whatever an earlier step set.
  for (const char* name : {"Content-Security-Policy", "X-Frame-Options", "Cache-Control", "Referrer-Policy"}) {
    res.headers.erase(name);
  }
  res.set_header("Content-Security-Policy", ContentSecurityPolicy(form_origin));
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cache-Control", "no-store");
  res.set_header("Referrer-Policy", "no-referrer");
  res.status = status;
  res.set_content(Render(page), "text/html; charset=utf-8");
}

}  // namespace stadtportal::gateway::pages

// Registration, e-mail verification, log-in and log-out.
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/log/log.h"
#include "services/web/service.h"

namespace stadtportal::web {

namespace {

// The form's error summary and inline errors: `errors` maps field ids to messages; the
// summary lists them in `order` and links to each field.
nlohmann::json Errors(const std::map<std::string, std::string>& errors, const std::vector<std::string>& order,
                      const std::map<std::string, std::string>& labels = {}) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& id : order) {
    auto it = errors.find(id);
    auto label = labels.find(id);
    if (it != errors.end()) {
      list.push_back({{"href", "#" + id}, {"text", (label != labels.end() ? label->second + ": " : "") + it->second}});
    }
  }
  for (const auto& [id, text] : errors) {
    if (std::find(order.begin(), order.end(), id) == order.end()) list.push_back({{"href", "#" + id}, {"text", text}});
  }
  return list;
}

// A form field's model: id, value, error (and aria-describedby).
nlohmann::json Field(const std::string& id, const std::string& value, const std::map<std::string, std::string>& errors,
                     const std::string& label, const std::string& type, const std::string& autocomplete,
                     const std::string& hint = "") {
  nlohmann::json f = {{"id", id}, {"value", value}, {"label", label}, {"type", type},
                      {"autocomplete", autocomplete}, {"required", true}, {"error", ""}, {"hint", ""},
                      {"describedby", ""}, {"optional", false}};
  std::string describedby;
  if (!hint.empty()) {
    f["hint"] = hint;
    describedby = id + "-hint";
  }
  auto it = errors.find(id);
  if (it != errors.end()) {
    f["error"] = it->second;
    describedby += (describedby.empty() ? "" : " ") + id + "-error";
  }
  if (!describedby.empty()) f["describedby"] = describedby;
  return f;
}

int64_t ParseExpiry(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) return 0;
  return absl::ToUnixSeconds(t);
}

bool IsToken(const std::string& token) {
  static const std::regex kToken("^[A-Za-z0-9_-]{16,200}$");
  return std::regex_match(token, kToken);
}

}  // namespace

void Service::AddAccountRoutes() {
  Get("/register", [this](Req req, Res res, P, Visit& v) { RegisterForm(req, res, v); });
  Post("/register", [this](Req req, Res res, P, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    Register(req, res, v, *form);
  });
  // The link in the verification mail (identity's "verify-email" page) and its short form.
  Get("/verify", [this](Req req, Res res, P, Visit& v) { VerifyForm(req, res, v); });
  Get("/verify-email", [this](Req req, Res res, P, Visit& v) { VerifyForm(req, res, v); });
  Post("/verify", [this](Req req, Res res, P, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    Verify(req, res, v, *form);
  });
  Get("/login", [this](Req req, Res res, P, Visit& v) { LoginForm(req, res, v, req.get_param_value("next")); });
  Post("/login", [this](Req req, Res res, P, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    Login(req, res, v, *form);
  });
  Post("/logout", [this](Req req, Res res, P, Visit& v) { Logout(req, res, v); });

  // Forgotten password: the mail's link leads to /password-reset/confirm?token=.
  Get("/password-reset", [this](Req req, Res res, P, Visit& v) {
    EnsureSession(v, res);
    const std::map<std::string, std::string> none;
    Page(res, v, 200, req.get_param_value("sent") == "1" ? "reset_sent" : "reset",
         {{"title", T(v, "reset_title")}, {"email", Field("email", "", none, T(v, "email_label"), "email", "email")}});
  });
  Post("/password-reset", [this](Req req, Res res, P, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    const std::string email = form->Get("email");
    std::map<std::string, std::string> errors;
    int status = 422;
    if (email.empty()) {
      errors["email"] = T(v, "error_email_required");
    } else {
      const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/auth/password-reset", {{"email", email}});
      if (r.ok()) return SeeOther(res, "/password-reset?sent=1");
      if (r.status == 429) {
        errors["email"] = T(v, "error_too_many");
        status = 429;
      } else if (r.status == 400 || r.status == 422) {
        errors["email"] = T(v, "field_invalid_email");
      } else {
        return ApiFailure(res, v, r);
      }
    }
    Page(res, v, status, "reset",
         {{"title", T(v, "reset_title")},
          {"errors", Errors(errors, {"email"}, {{"email", T(v, "email_label")}})},
          {"email", Field("email", email, errors, T(v, "email_label"), "email", "email")}});
  });
  Get("/password-reset/confirm", [this](Req req, Res res, P, Visit& v) {
    EnsureSession(v, res);
    const std::string token = req.get_param_value("token");
    if (!IsToken(token)) return Page(res, v, 400, "verify_failed", {{"title", T(v, "verify_failed_title")}});
    const std::map<std::string, std::string> none;
    Page(res, v, 200, "reset_confirm",
         {{"title", T(v, "reset_confirm_title")},
          {"token", token},
          {"password", Field("password", "", none, T(v, "new_password_label"), "password", "new-password",
                             T(v, "password_hint"))}});
  });
  Post("/password-reset/confirm", [this](Req req, Res res, P, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    const std::string token = form->Get("token");
    const std::string password = form->Get("password");
    if (!IsToken(token)) return Page(res, v, 400, "verify_failed", {{"title", T(v, "verify_failed_title")}});
    std::map<std::string, std::string> errors;
    if (password.empty()) {
      errors["password"] = T(v, "error_password_required");
    } else {
      const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/auth/password-reset/confirm",
                                    {{"token", token}, {"new_password", password}});
      if (r.ok()) {
        Flash(v, res, "password_changed");
        return SeeOther(res, "/login");
      }
      if (r.status == 400 || r.status == 422) {
        const auto fields = r.FieldErrors();
        if (fields.count("token") || fields.empty()) {
          return Page(res, v, 400, "verify_failed", {{"title", T(v, "verify_failed_title")}});
        }
        errors["password"] = fields.begin()->second;
      } else {
        return ApiFailure(res, v, r);
      }
    }
    Page(res, v, 422, "reset_confirm",
         {{"title", T(v, "reset_confirm_title")},
          {"token", token},
          {"errors", Errors(errors, {"password"}, {{"password", T(v, "new_password_label")}})},
          {"password", Field("password", "", errors, T(v, "new_password_label"), "password", "new-password",
                             T(v, "password_hint"))}});
  });
}

void Service::RegisterForm(Req req, Res res, Visit& v) {
  EnsureSession(v, res);
  if (req.get_param_value("sent") == "1") {
    return Page(res, v, 200, "register_sent", {{"title", T(v, "register_sent_title")}});
  }
  const std::map<std::string, std::string> none;
  Page(res, v, 200, "register",
       {{"title", T(v, "register_title")},
        {"display_name", Field("display_name", "", none, T(v, "name_label"), "text", "name")},
        {"email", Field("email", "", none, T(v, "email_label"), "email", "email")},
        {"password", Field("password", "", none, T(v, "password_label"), "password", "new-password",
                           T(v, "password_hint"))}});
}

void Service::Register(Req, Res res, Visit& v, const Form& form) {
  const std::string name = form.Get("display_name");
  const std::string email = form.Get("email");
  const std::string password = form.Get("password");
  std::map<std::string, std::string> errors;
  if (name.empty()) errors["display_name"] = T(v, "error_name_required");
  if (email.empty()) errors["email"] = T(v, "error_email_required");
  if (password.empty()) errors["password"] = T(v, "error_password_required");
  int status = 422;
  if (errors.empty()) {
    const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/auth/register",
                                  {{"email", email}, {"password", password}, {"display_name", name},
                                   {"language", v.lang}});
    if (r.ok()) return SeeOther(res, "/register?sent=1");
    if (r.status == 422 || r.status == 400) {
      errors = r.FieldErrors();
      if (errors.empty()) errors["email"] = T(v, "error_check_input");
    } else if (r.status == 429) {
      errors["email"] = T(v, "error_too_many");
      status = 429;
    } else {
      return ApiFailure(res, v, r);
    }
  }
  Page(res, v, status, "register",
       {{"title", T(v, "register_title")},
        {"errors", Errors(errors, {"display_name", "email", "password"},
                          {{"display_name", T(v, "name_label")}, {"email", T(v, "email_label")},
                           {"password", T(v, "password_label")}})},
        {"display_name", Field("display_name", name, errors, T(v, "name_label"), "text", "name")},
        {"email", Field("email", email, errors, T(v, "email_label"), "email", "email")},
        {"password", Field("password", "", errors, T(v, "password_label"), "password", "new-password",
                           T(v, "password_hint"))}});
}

void Service::VerifyForm(Req req, Res res, Visit& v) {
  const std::string token = req.get_param_value("token");
  EnsureSession(v, res);
  // The page's address holds the token: it is not handed on (Referrer-Policy) and not kept.
  if (!IsToken(token)) {
    return Page(res, v, 400, "verify_failed", {{"title", T(v, "verify_failed_title")}});
  }
  // Confirmed by a button, not by opening the link: mail scanners that open links
  // must not use the single-use token up.
  Page(res, v, 200, "verify", {{"title", T(v, "verify_title")}, {"token", token}});
}

void Service::Verify(Req, Res res, Visit& v, const Form& form) {
  const std::string token = form.Get("token");
  if (!IsToken(token)) {
    return Page(res, v, 400, "verify_failed", {{"title", T(v, "verify_failed_title")}});
  }
  const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/auth/verify-email", {{"token", token}});
  if (r.ok()) {
    Flash(v, res, "verified");
    return SeeOther(res, "/login");
  }
  if (r.status == 400 || r.status == 404 || r.status == 409 || r.status == 410 || r.status == 422) {
    return Page(res, v, 400, "verify_failed", {{"title", T(v, "verify_failed_title")}});
  }
  ApiFailure(res, v, r);
}

void Service::LoginForm(Req, Res res, Visit& v, const std::string& next) {
  if (v.logged_in()) return SeeOther(res, SafeNext(next));
  EnsureSession(v, res);
  const std::map<std::string, std::string> none;
  Page(res, v, 200, "login",
       {{"title", T(v, "login_title")},
        {"next", SafeNext(next)},
        {"email", Field("email", "", none, T(v, "email_label"), "email", "username")},
        {"password", Field("password", "", none, T(v, "password_label"), "password", "current-password")}});
}

void Service::Login(Req, Res res, Visit& v, const Form& form) {
  const std::string email = form.Get("email");
  const std::string password = form.Get("password");
  const std::string next = SafeNext(form.Get("next"));
  std::map<std::string, std::string> errors;
  if (email.empty()) errors["email"] = T(v, "error_email_required");
  if (password.empty()) errors["password"] = T(v, "error_password_required");
  int status = 422;
  if (errors.empty()) {
    const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/auth/login", {{"email", email}, {"password", password}});
    if (r.ok() && r.body.is_object() && r.body.contains("token") && r.body["token"].is_string()) {
      // A new session id at log-in (no fixation); the anonymous one goes.
      const std::string old = v.session ? v.session->id : "";
      auto made = sessions_.Create(v.lang);
      if (!made.ok()) return ErrorPage(res, v, 503);
      WebSession s = *made;
      s.api_token = r.body["token"].get<std::string>();
      s.expires_at = ParseExpiry(r.body.value("expires_at", ""));
      if (s.expires_at == 0) s.expires_at = absl::ToUnixSeconds(absl::Now()) + 1800;
      if (auto st = sessions_.Save(s); !st.ok()) return ErrorPage(res, v, 503);
      if (!old.empty()) (void)sessions_.Drop(old);
      SetSessionCookie(res, s.id, -1);
      log::Info("logged in");
      return SeeOther(res, next);
    }
    if (r.status == 401) {
      errors["email"] = T(v, "error_login_failed");
      status = 401;
    } else if (r.status == 409) {
      errors["email"] = T(v, "error_not_verified");
      status = 409;
    } else if (r.status == 429) {
      errors["email"] = T(v, "error_too_many");
      status = 429;
    } else if (r.status == 400 || r.status == 422) {
      errors = r.FieldErrors();
      if (errors.empty()) errors["email"] = T(v, "error_check_input");
    } else {
      return ApiFailure(res, v, r);
    }
  }
  Page(res, v, status, "login",
       {{"title", T(v, "login_title")},
        {"next", next},
        // "E-mail address or password is wrong" names both fields itself.
        {"errors", Errors(errors, {"email", "password"},
                          status == 401 || status == 409 || status == 429
                              ? std::map<std::string, std::string>{}
                              : std::map<std::string, std::string>{{"email", T(v, "email_label")},
                                                                   {"password", T(v, "password_label")}})},
        {"email", Field("email", email, errors, T(v, "email_label"), "email", "username")},
        {"password", Field("password", "", errors, T(v, "password_label"), "password", "current-password")}});
}

void Service::Logout(Req, Res res, Visit& v) {
  if (v.logged_in()) {
    const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/auth/logout", nullptr);
    if (!r.ok() && r.status != 401) log::Warn("API log-out failed", {{"status", r.status}});
  }
  if (v.session) (void)sessions_.Drop(v.session->id);
  v.session.reset();
  v.caller.token.clear();
  SetSessionCookie(res, "", 0);
  auto fresh = sessions_.Create(v.lang);
  if (fresh.ok()) {
    v.session = *fresh;
    v.session->flash = "logged_out";
    SaveSession(v);
    SetSessionCookie(res, v.session->id, -1);
  }
  SeeOther(res, "/");
}

}  // namespace stadtportal::web

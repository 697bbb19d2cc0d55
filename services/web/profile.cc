// The account: profile, preferences, consents, the organisation acted for, the citizen
// file and the data export.
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/log/log.h"
#include "services/web/service.h"

namespace stadtportal::web {

namespace {

bool IsId(const std::string& id) {
  static const std::regex kUuid("^[0-9a-fA-F-]{36}$");
  return std::regex_match(id, kUuid);
}

std::string Str(const nlohmann::json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

const std::vector<std::string> kProfileFields = {"given_name", "family_name", "birth_date", "phone", "contact_email"};
const std::vector<std::string> kAddressParts = {"street", "house_number", "postcode", "city"};

}  // namespace

void Service::AddProfileRoutes() {
  Get("/profile", [this](Req req, Res res, P, Visit& v) { ProfilePage(req, res, v, {}, nlohmann::json()); });
  Post("/profile", [this](Req req, Res res, P, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    const std::string section = form->Get("section");
    if (section == "profile") {
      nlohmann::json body = nlohmann::json::object();
      for (const auto& f : kProfileFields) {
        if (form->fields.count(f)) body[f] = form->Get(f);
      }
      nlohmann::json address = nlohmann::json::object();
      bool any = false;
      for (const auto& part : kAddressParts) {
        if (!form->fields.count("address." + part)) continue;
        address[part] = form->Get("address." + part);
        any = true;
      }
      if (any) {
        address["country"] = "DE";
        body["address"] = address;
      }
      const ApiResult r = api_.Send(v.caller, "PATCH", "/api/v1/me/profile", body);
      if (r.ok()) {
        Flash(v, res, "profile_saved");
        return SeeOther(res, "/profile");
      }
      if (r.status == 422 || r.status == 400 || r.status == 409) {
        std::map<std::string, std::string> errors;
        const auto codes = r.FieldCodes();
        for (const auto& [field, message] : r.FieldErrors()) {
          errors[field] = FieldMessage(v, codes.count(field) ? codes.at(field) : "", message);
        }
        if (errors.empty()) errors["given_name"] = T(v, r.status == 409 ? "error_verified_fixed" : "error_check_input");
        nlohmann::json entered = nlohmann::json::object();
        for (const auto& [k, val] : form->fields) entered[k] = val;
        return ProfilePage(req, res, v, errors, entered);
      }
      return ApiFailure(res, v, r);
    }
    if (section == "preferences") {
      const std::string lang = form->Get("language") == "en" ? "en" : "de";
      nlohmann::json body = {{"language", lang},
                             {"email",
                              {{"messages", form->Get("email_messages") == "true"},
                               {"status_changes", form->Get("email_status_changes") == "true"},
                               {"reminders", form->Get("email_reminders") == "true"}}}};
      const ApiResult r = api_.Send(v.caller, "PUT", "/api/v1/me/preferences", body);
      if (!r.ok()) return ApiFailure(res, v, r);
      Flash(v, res, "preferences_saved");
      return SeeOther(res, "/profile#preferences");
    }
    if (section == "withdraw_consent") {
      const std::string id = form->Get("consent");
      if (!IsId(id)) return ErrorPage(res, v, 400);
      const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/me/consents/" + id + "/withdraw", nullptr);
      if (!r.ok()) return ApiFailure(res, v, r);
      Flash(v, res, "consent_withdrawn_done");
      return SeeOther(res, "/profile#consents");
    }
    ErrorPage(res, v, 400);
  });
  Post("/acting-party", [this](Req req, Res res, P, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    const std::string party = form->Get("party_id");
    if (!party.empty() && !IsId(party)) return ErrorPage(res, v, 400);
    const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/me/acting-party", {{"party_id", party}});
    if (!r.ok() || Str(r.body, "token").empty()) return ApiFailure(res, v, r);
    // The API session changed (a new token); the web session keeps its id and CSRF token.
    v.session->api_token = Str(r.body, "token");
    absl::Time t;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, Str(r.body, "expires_at"), &t, &err)) {
      v.session->expires_at = absl::ToUnixSeconds(t);
    }
    v.session->flash = "acting_party_changed";
    SaveSession(v);
    SeeOther(res, "/profile");
  });
  Get("/file", [this](Req req, Res res, P, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    const ApiResult r = api_.Get(v.caller, "/api/v1/me/file?page_size=100");
    if (!r.ok() || !r.body.is_object()) return ApiFailure(res, v, r);
    nlohmann::json items = nlohmann::json::array();
    for (const auto& it : r.body.value("items", nlohmann::json::array())) {
      const std::string kind = Str(it, "kind");
      const auto summary = it.value("summary", nlohmann::json::object());
      std::string what = T(v, "file_kind_" + kind);
      if (what.empty()) what = kind;
      std::string detail;
      if (kind == "submission_status") {
        detail = absl::StrCat(Str(summary, "reference"), ": ", T(v, "status_" + Str(summary, "status")));
      } else if (kind == "message" || kind == "notice" || kind == "reply" || kind == "system_message") {
        detail = Str(summary, "subject");
      } else if (kind == "payment" || kind == "refund") {
        const auto amount = summary.value("amount", nlohmann::json::object());
        if (amount.is_object()) {
          detail = FormatMoney(amount.value("amount_minor", int64_t{0}), amount.value("currency", "EUR"), v.lang);
        }
      } else if (kind == "reminder") {
        detail = absl::StrCat(Str(summary, v.lang == "en" ? "document_name_en" : "document_name_de"), " · ",
                              FormatDate(Str(summary, "expires_on"), v.lang));
      } else if (kind == "consent" || kind == "provider_link") {
        detail = absl::StrCat(Str(summary, kind == "consent" ? "purpose" : "provider"), " · ",
                              T(v, "file_state_" + Str(summary, "state")));
      }
      // Where the item leads in the portal (submissions and threads; others have no page here).
      std::string href;
      if (IsId(Str(summary, "thread_id"))) href = "/mailbox/" + Str(summary, "thread_id");
      else if (IsId(Str(summary, "submission_id"))) href = "/submissions/" + Str(summary, "submission_id");
      items.push_back({{"at", FormatTimestamp(Str(it, "occurred_at"), v.lang)},
                       {"what", what},
                       {"detail", detail},
                       {"href", href}});
    }
    Page(res, v, 200, "file",
         {{"title", T(v, "file_title")}, {"items", items}, {"none", items.empty()}});
  });
  Get("/export", [this](Req req, Res res, P, Visit& v) {
    if (!RequireLogin(req, res, v)) return;
    const std::string format = req.get_param_value("download");
    if (format != "json" && format != "zip") {
      return Page(res, v, 200, "export", {{"title", T(v, "export_title")}});
    }
    const ApiResult r = api_.Download(v.caller, "/api/v1/me/export?format=" + format);
    if (r.status == 403) {
      const bool recent = r.body.is_object() && absl::StrContains(r.body.dump(), "recent_login_required");
      return Page(res, v, 403, "export",
                  {{"title", T(v, "export_title")},
                   {"refused", T(v, recent ? "export_login_again" : "export_not_allowed")}});
    }
    if (!r.ok()) return ApiFailure(res, v, r);
    const std::string type = format == "zip" ? "application/zip" : "application/json";
    res.status = 200;
    res.set_header("Content-Disposition",
                   std::string("attachment; filename=\"stadtportal-export.") + format + "\"");
    res.set_content(r.raw, type);
  });
}

void Service::ProfilePage(Req req, Res res, Visit& v, const std::map<std::string, std::string>& errors,
                          const nlohmann::json& entered) {
  if (!RequireLogin(req, res, v)) return;
  const ApiResult profile = api_.Get(v.caller, "/api/v1/me/profile");
  if (!profile.ok() || !profile.body.is_object()) return ApiFailure(res, v, profile);
  const ApiResult prefs = api_.Get(v.caller, "/api/v1/me/preferences");
  if (!prefs.ok() || !prefs.body.is_object()) return ApiFailure(res, v, prefs);
  const ApiResult consents = api_.Get(v.caller, "/api/v1/me/consents");
  if (!consents.ok() || !consents.body.is_object()) return ApiFailure(res, v, consents);
  const ApiResult me = api_.Get(v.caller, "/api/v1/me");
  if (!me.ok() || !me.body.is_object()) return ApiFailure(res, v, me);
  const ApiResult orgs = api_.Get(v.caller, "/api/v1/organisations");
  const ApiResult acting = api_.Get(v.caller, "/api/v1/me/acting-party");

  const auto attributes = profile.body.value("attributes", nlohmann::json::object());
  auto attr = [&](const std::string& name) -> std::pair<std::string, bool> {
    if (!attributes.is_object() || !attributes.contains(name) || !attributes[name].is_object()) return {"", false};
    return {Str(attributes[name], "value"), attributes[name].value("verified", false)};
  };
  nlohmann::json fields = nlohmann::json::array();
  std::vector<std::pair<std::string, std::string>> kinds = {{"given_name", "text"}, {"family_name", "text"},
                                                           {"birth_date", "date"}, {"phone", "tel"},
                                                           {"contact_email", "email"}};
  nlohmann::json summary = nlohmann::json::array();
  for (const auto& [name, type] : kinds) {
    auto [value, verified] = attr(name);
    if (entered.is_object() && entered.contains(name)) value = entered[name].get<std::string>();
    nlohmann::json f = {{"id", name}, {"label", T(v, "profile_" + name)}, {"type", type}, {"value", value},
                        {"readonly", verified}, {"error", ""}};
    auto e = errors.find(name);
    if (e != errors.end()) {
      f["error"] = e->second;
      summary.push_back({{"href", "#" + name}, {"text", f["label"].get<std::string>() + ": " + e->second}});
    }
    fields.push_back(f);
  }
  // The address: one attribute, or parts.
  nlohmann::json address_parts = nlohmann::json::array();
  for (const auto& part : kAddressParts) {
    auto [value, verified] = attr("address." + part);
    if (value.empty()) {
      auto [whole, v2] = attr("address");
      verified = v2;
      auto parsed = nlohmann::json::parse(whole, nullptr, false);
      if (parsed.is_object()) value = Str(parsed, part);
    }
    if (entered.is_object() && entered.contains("address." + part)) value = entered["address." + part].get<std::string>();
    nlohmann::json pm = {{"id", "address-" + part}, {"name", "address." + part}, {"label", T(v, "address_" + part)},
                         {"value", value}, {"readonly", verified}, {"error", ""}};
    auto e = errors.find("address." + part);
    if (e != errors.end()) {
      pm["error"] = e->second;
      summary.push_back({{"href", "#address-" + part},
                         {"text", T(v, "profile_address") + ", " + T(v, "address_" + part) + ": " + e->second}});
    }
    address_parts.push_back(pm);
  }
  for (const auto& [field, message] : errors) {
    if (field.rfind("address.", 0) != 0 && std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) {
                                              return k.first == field;
                                            }) == kinds.end()) {
      summary.push_back({{"href", "#given_name"}, {"text", message}});
    }
  }
  const auto email = prefs.body.value("email", nlohmann::json::object());
  nlohmann::json consent_items = nlohmann::json::array();
  for (const auto& c : consents.body.value("items", nlohmann::json::array())) {
    if (!IsId(Str(c, "id"))) continue;
    const bool withdrawn = c.contains("withdrawn_at") && c["withdrawn_at"].is_string();
    consent_items.push_back({{"id", Str(c, "id")},
                             {"purpose", Str(c, "purpose")},
                             {"version", Str(c, "text_version")},
                             {"given", FormatTimestamp(Str(c, "given_at"), v.lang, false)},
                             {"withdrawn", withdrawn},
                             {"withdrawn_at", withdrawn ? FormatTimestamp(Str(c, "withdrawn_at"), v.lang, false) : ""}});
  }
  nlohmann::json parties = nlohmann::json::array();
  const std::string current = acting.ok() ? Str(acting.body, "id") : "";
  const bool as_self = !acting.ok() || Str(acting.body, "kind") != "organisation";
  if (orgs.ok()) {
    for (const auto& o : orgs.body.value("items", nlohmann::json::array())) {
      if (!IsId(Str(o, "id"))) continue;
      parties.push_back({{"id", Str(o, "id")}, {"name", Str(o, "name").empty() ? Str(o, "display_name") : Str(o, "name")},
                         {"current", Str(o, "id") == current}});
    }
  }
  Page(res, v, errors.empty() ? 200 : 422, "profile",
       {{"title", T(v, "profile_title")},
        {"errors", summary},
        {"display_name", Str(me.body, "display_name")},
        {"account_email", Str(me.body, "email")},
        {"level", T(v, "level_" + Str(me.body, "assurance_level"))},
        {"fields", fields},
        {"address_parts", address_parts},
        {"pref_de", Str(prefs.body, "language") != "en"},
        {"pref_en", Str(prefs.body, "language") == "en"},
        {"email_messages", email.is_object() && email.value("messages", true)},
        {"email_status_changes", email.is_object() && email.value("status_changes", true)},
        {"email_reminders", email.is_object() && email.value("reminders", true)},
        {"consents", consent_items},
        {"has_consents", !consent_items.empty()},
        {"parties", parties},
        {"has_parties", !parties.empty()},
        {"as_self", as_self}});
}

}  // namespace stadtportal::web

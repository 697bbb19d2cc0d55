// The form wizard: a draft's steps, one per page, rendered from the form definition;
// check your answers; submit.
#include <cmath>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "services/web/service.h"

namespace stadtportal::web {

namespace {

const std::vector<std::string> kAddressParts = {"street", "house_number", "postcode", "city"};

bool IsId(const std::string& id) {
  static const std::regex kUuid("^[0-9a-fA-F-]{36}$");
  return std::regex_match(id, kUuid);
}

std::string Localized(const nlohmann::json& t, const std::string& lang) {
  if (t.is_string()) return t.get<std::string>();
  if (!t.is_object()) return "";
  if (t.contains(lang) && t[lang].is_string()) return t[lang].get<std::string>();
  if (t.contains("de") && t["de"].is_string()) return t["de"].get<std::string>();
  return "";
}

const nlohmann::json& Steps(const nlohmann::json& service) {
  static const nlohmann::json kNone = nlohmann::json::array();
  if (!service.contains("form") || !service["form"].is_object()) return kNone;
  const auto& form = service["form"];
  if (!form.contains("steps") || !form["steps"].is_array()) return kNone;
  return form["steps"];
}

const nlohmann::json& Fields(const nlohmann::json& step) {
  static const nlohmann::json kNone = nlohmann::json::array();
  return step.is_object() && step.contains("fields") && step["fields"].is_array() ? step["fields"] : kNone;
}

std::string Str(const nlohmann::json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

bool Visible(const nlohmann::json& field, const nlohmann::json& data) {
  if (!field.contains("visible_when") || !field["visible_when"].is_object()) return true;
  const auto& c = field["visible_when"];
  const std::string on = Str(c, "field");
  const nlohmann::json v = data.is_object() && data.contains(on) ? data[on] : nlohmann::json();
  if (c.contains("equals")) return v == c["equals"];
  if (c.contains("in") && c["in"].is_array()) {
    for (const auto& e : c["in"]) {
      if (v == e) return true;
    }
    return false;
  }
  return true;
}

// The field in `steps` with `id`, and its step's index (or -1).
int StepOfField(const nlohmann::json& steps, const std::string& id) {
  for (size_t i = 0; i < steps.size(); ++i) {
    for (const auto& f : Fields(steps[i])) {
      if (Str(f, "id") == id) return static_cast<int>(i);
    }
  }
  return -1;
}

const nlohmann::json* FieldById(const nlohmann::json& steps, const std::string& id) {
  for (const auto& step : steps) {
    for (const auto& f : Fields(step)) {
      if (Str(f, "id") == id) return &f;
    }
  }
  return nullptr;
}

std::string NumberText(const nlohmann::json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
    return v.dump();
  }
  return v.is_string() ? v.get<std::string>() : "";
}

std::string OptionLabel(const nlohmann::json& field, const std::string& value, const std::string& lang) {
  if (field.contains("options") && field["options"].is_array()) {
    for (const auto& o : field["options"]) {
      if (Str(o, "value") == value) return Localized(o.value("label", nlohmann::json()), lang);
    }
  }
  return value;
}

// The id of the input that shows an error of API field `field` ("address.postcode" → "address-postcode").
std::string InputId(const std::string& field) { return absl::StrReplaceAll(field, {{".", "-"}}); }

int64_t Version(const nlohmann::json& draft) {
  return draft.is_object() && draft.contains("version") && draft["version"].is_number_integer()
             ? draft["version"].get<int64_t>()
             : 0;
}

}  // namespace

std::string Service::FieldMessage(const Visit& v, const std::string& code, const std::string& api_message) const {
  // Our own plain words for the API's codes; its message for codes we do not know.
  std::string text = code.empty() ? "" : T(v, "field_" + code);
  if (text.empty()) text = api_message;
  return text.empty() ? T(v, "error_check_input") : text;
}

void Service::AddWizardRoutes() {
  Post("/services/{id}/start", [this](Req req, Res res, P p, Visit& v) { StartDraft(req, res, p.at("id"), v); });
  Get("/drafts/{id}/steps/{n}", [this](Req req, Res res, P p, Visit& v) { StepPage(req, res, p.at("id"), p.at("n"), v); });
  Post(
      "/drafts/{id}/steps/{n}",
      [this](Req req, Res res, P p, Visit& v) {
        auto form = ParseForm(req);
        if (!form) return ErrorPage(res, v, 400);
        SaveStep(req, res, p.at("id"), p.at("n"), v, *form);
      },
      /*upload=*/true);
  Get("/drafts/{id}/check", [this](Req req, Res res, P p, Visit& v) { CheckPage(req, res, p.at("id"), v); });
  Post("/drafts/{id}/submit", [this](Req req, Res res, P p, Visit& v) {
    auto form = ParseForm(req);
    if (!form) return ErrorPage(res, v, 400);
    Submit(req, res, p.at("id"), v, *form);
  });
}

std::optional<nlohmann::json> Service::FormOf(Visit& v, const std::string& service_id, int64_t form_version) {
  {
    std::lock_guard<std::mutex> lock(forms_mu_);
    auto it = forms_.find(service_id);
    if (it != forms_.end() && it->second.first == form_version) return it->second.second;
  }
  const ApiResult r = api_.Get(v.caller, "/api/v1/services/" + Api::Escape(service_id));
  if (!r.ok() || !r.body.is_object()) return std::nullopt;
  const int64_t version = r.body.value("form_version", int64_t{0});
  std::lock_guard<std::mutex> lock(forms_mu_);
  if (forms_.size() >= 512) forms_.clear();
  forms_[service_id] = {version, r.body};
  return r.body;
}

void Service::StartDraft(Req req, Res res, const std::string& service_id, Visit& v) {
  if (!RequireLogin(req, res, v)) return;
  static const std::regex kId("^[a-z][a-z0-9-]{0,63}$");
  if (!std::regex_match(service_id, kId)) return ErrorPage(res, v, 404);
  const ApiResult r = api_.Send(v.caller, "POST", "/api/v1/services/" + service_id + "/drafts", nullptr);
  if (r.status == 403 && r.body.is_object() && r.body.contains("required_assurance_level")) {
    return Page(res, v, 403, "level_needed",
                {{"title", T(v, "level_needed_title")},
                 {"level", T(v, "level_" + Str(r.body, "required_assurance_level"))},
                 {"back_href", "/services/" + service_id}});
  }
  if (!r.ok() || Str(r.body, "id").empty() || !IsId(Str(r.body, "id"))) return ApiFailure(res, v, r);
  log::Info("draft started", {{"service", service_id}});
  SeeOther(res, "/drafts/" + Str(r.body, "id") + "/steps/1");
}

void Service::StepPage(Req req, Res res, const std::string& draft_id, const std::string& n, Visit& v) {
  if (!RequireLogin(req, res, v)) return;
  size_t index = 0;
  if (!IsId(draft_id) || !absl::SimpleAtoi(n, &index) || index < 1 || index > 20) return ErrorPage(res, v, 404);
  const ApiResult draft = api_.Get(v.caller, "/api/v1/drafts/" + draft_id);
  if (!draft.ok() || !draft.body.is_object()) return ApiFailure(res, v, draft);
  auto service = FormOf(v, Str(draft.body, "service_id"), draft.body.value("form_version", int64_t{0}));
  if (!service) return ErrorPage(res, v, 503);
  if (index > Steps(*service).size()) return ErrorPage(res, v, 404);
  RenderStep(res, v, draft.body, *service, index - 1, draft.body.value("data", nlohmann::json::object()), {},
             req.get_param_value("return") == "check", 200);
}

void Service::RenderStep(Res res, Visit& v, const nlohmann::json& draft, const nlohmann::json& service, size_t index,
                         const nlohmann::json& data, const std::map<std::string, std::string>& errors,
                         bool return_check, int status) {
  const auto& steps = Steps(service);
  const auto& step = steps[index];
  const std::string draft_id = Str(draft, "id");
  std::set<std::string> read_only;
  if (draft.contains("read_only_fields") && draft["read_only_fields"].is_array()) {
    for (const auto& f : draft["read_only_fields"]) {
      if (f.is_string()) read_only.insert(f.get<std::string>());
    }
  }
  std::set<std::string> here;
  for (const auto& f : Fields(step)) here.insert(Str(f, "id"));
  nlohmann::json fields = nlohmann::json::array();
  nlohmann::json summary = nlohmann::json::array();
  bool multipart = false;
  for (const auto& f : Fields(step)) {
    const std::string id = Str(f, "id");
    const std::string type = Str(f, "type");
    // A condition on a field of another step is decided here; one on a field of this
    // step is shown with the field (the script hides it until it applies).
    std::string on;
    if (f.contains("visible_when") && f["visible_when"].is_object()) on = Str(f["visible_when"], "field");
    const bool same_step = !on.empty() && here.count(on) != 0;
    if (!on.empty() && !same_step && !Visible(f, data)) continue;
    const nlohmann::json value = data.is_object() && data.contains(id) ? data[id] : nlohmann::json();
    nlohmann::json m = {{"id", id},
                        {"label", Localized(f.value("label", nlohmann::json()), v.lang)},
                        {"hint", Localized(f.value("help", nlohmann::json()), v.lang)},
                        {"required", f.value("required", false)},
                        {"optional", !f.value("required", false)},
                        {"readonly", read_only.count(id) != 0},
                        {"error", ""},
                        {"describedby", ""},
                        {"conditional", false},
                        {"is_" + type, true}};
    std::vector<std::string> described;
    if (!m["hint"].get<std::string>().empty()) described.push_back(id + "-hint");
    if (same_step) {
      const auto& c = f["visible_when"];
      std::vector<std::string> values;
      std::vector<std::string> labels;
      const nlohmann::json* controller = FieldById(steps, on);
      if (c.contains("equals")) {
        values.push_back(c["equals"].is_string() ? c["equals"].get<std::string>() : c["equals"].dump());
      } else if (c.contains("in") && c["in"].is_array()) {
        for (const auto& e : c["in"]) values.push_back(e.is_string() ? e.get<std::string>() : e.dump());
      }
      for (const auto& val : values) labels.push_back(controller ? OptionLabel(*controller, val, v.lang) : val);
      m["conditional"] = true;
      m["when_field"] = on;
      m["when_values"] = absl::StrJoin(values, " ");
      m["when_text"] = absl::StrCat(T(v, "only_if"), " ",
                                    controller ? Localized(controller->value("label", nlohmann::json()), v.lang) : on,
                                    ": ", absl::StrJoin(labels, ", "));
      m["hidden_now"] = !Visible(f, data);
      described.push_back(id + "-when");
    }
    // Errors of this field (address parts have their own).
    auto err = errors.find(id);
    if (err != errors.end()) {
      m["error"] = err->second;
      described.push_back(id + "-error");
      // The summary names the field; the inline error next to it needs no name.
      summary.push_back({{"href", "#" + InputId(id) + (type == "multiselect" ? "-0" : "")},
                         {"text", m["label"].get<std::string>() + ": " + err->second}});
    }
    if (!described.empty()) m["describedby"] = absl::StrJoin(described, " ");
    if (type == "address") {
      nlohmann::json parts = nlohmann::json::array();
      for (const auto& part : kAddressParts) {
        const std::string key = id + "." + part;
        nlohmann::json pm = {{"id", InputId(key)},
                             {"name", key},
                             {"label", T(v, "address_" + part)},
                             {"value", value.is_object() ? Str(value, part) : ""},
                             {"autocomplete", part == "postcode"  ? "postal-code"
                                              : part == "city"    ? "address-level2"
                                              : part == "street"  ? "address-line1"
                                                                  : "address-line2"},
                             {"narrow", part == "house_number" || part == "postcode"},
                             {"error", ""},
                             {"readonly", read_only.count(id) != 0}};
        auto e = errors.find(key);
        if (e != errors.end()) {
          pm["error"] = e->second;
          summary.push_back({{"href", "#" + InputId(key)},
                             {"text", m["label"].get<std::string>() + ", " + pm["label"].get<std::string>() + ": " +
                                          e->second}});
        }
        parts.push_back(pm);
      }
      m["parts"] = parts;
    } else if (type == "select" || type == "multiselect") {
      nlohmann::json options = nlohmann::json::array();
      size_t i = 0;
      for (const auto& o : f.value("options", nlohmann::json::array())) {
        const std::string ov = Str(o, "value");
        bool selected = value.is_string() && value.get<std::string>() == ov;
        if (value.is_array()) {
          for (const auto& e : value) selected = selected || (e.is_string() && e.get<std::string>() == ov);
        }
        options.push_back({{"value", ov},
                           {"label", Localized(o.value("label", nlohmann::json()), v.lang)},
                           {"selected", selected},
                           {"input_id", id + "-" + std::to_string(i++)}});
      }
      m["options"] = options;
    } else if (type == "checkbox") {
      m["checked"] = value.is_boolean() && value.get<bool>();
    } else if (type == "file") {
      multipart = true;
      nlohmann::json files = nlohmann::json::array();
      for (const auto& a : draft.value("attachments", nlohmann::json::array())) {
        if (Str(a, "field") != id) continue;
        files.push_back({{"id", Str(a, "id")},
                         {"filename", Str(a, "filename")},
                         {"size", std::to_string((a.value("size", int64_t{0}) + 1023) / 1024) + " KB"}});
      }
      m["files"] = files;
      m["has_files"] = !files.empty();
      const int64_t max_files = f.value("max_files", int64_t{1});
      m["multiple"] = max_files > 1;
      std::vector<std::string> accept;
      for (const auto& a : f.value("accept", nlohmann::json::array())) {
        if (a.is_string()) accept.push_back(a.get<std::string>());
      }
      m["accept"] = absl::StrJoin(accept, ",");
      m["file_hint"] = absl::StrCat(T(v, "file_types"), " ",
                                    absl::StrReplaceAll(absl::StrJoin(accept, ", "),
                                                        {{"application/pdf", "PDF"}, {"image/png", "PNG"}, {"image/jpeg", "JPEG"}}),
                                    "; ", T(v, "file_max"), " ",
                                    std::to_string(f.value("max_size_bytes", int64_t{0}) / (1024 * 1024)), " MB");
    } else {
      m["value"] = type == "number" ? NumberText(value) : (value.is_string() ? value.get<std::string>() : "");
      m["input_type"] = type == "email" ? "email" : type == "phone" ? "tel" : type == "date" ? "date" : "text";
      if (type == "number") m["inputmode"] = f.value("integer", false) ? "numeric" : "decimal";
      if (f.contains("max_length") && f["max_length"].is_number_integer()) m["maxlength"] = f["max_length"].dump();
      if (type == "date") {
        if (f.contains("min") && f["min"].is_string() && f["min"] != "today") m["min"] = f["min"];
        if (f.contains("max") && f["max"].is_string() && f["max"] != "today") m["max"] = f["max"];
      }
      m["autocomplete"] = type == "email" ? "email" : type == "phone" ? "tel" : "";
      const std::string prefill = Str(f, "prefill");
      if (prefill == "given_name") m["autocomplete"] = "given-name";
      if (prefill == "family_name") m["autocomplete"] = "family-name";
      if (prefill == "birth_date") m["autocomplete"] = "bday";
      m["long_text"] = type == "text" && f.value("max_length", int64_t{0}) > 500;
      m["spellcheck_off"] = type == "iban";
    }
    fields.push_back(m);
  }
  // Errors of fields not on this page (should not happen): still listed.
  for (const auto& [field, message] : errors) {
    const std::string base = field.substr(0, field.find('.'));
    if (here.count(base) == 0) summary.push_back({{"href", "#main"}, {"text", message}});
  }
  const std::string service_name = Localized(service.value("name", nlohmann::json()), v.lang);
  const std::string step_title = Localized(step.value("title", nlohmann::json()), v.lang);
  nlohmann::json model = {
      {"title", step_title + " – " + service_name},
      {"service_name", service_name},
      {"step_title", step_title},
      {"progress", absl::StrCat(T(v, "step"), " ", index + 1, " ", T(v, "of"), " ", steps.size())},
      {"action", absl::StrCat("/drafts/", draft_id, "/steps/", index + 1)},
      {"multipart", multipart},
      {"fields", fields},
      {"errors", summary},
      {"return_check", return_check},
      {"back_href", index == 0 ? "/services/" + Str(draft, "service_id")
                               : absl::StrCat("/drafts/", draft_id, "/steps/", index)},
      {"draft_id", draft_id}};
  Page(res, v, status, "step", model);
}

void Service::SaveStep(Req req, Res res, const std::string& draft_id, const std::string& n, Visit& v,
                       const Form& form) {
  if (!RequireLogin(req, res, v)) return;
  size_t index = 0;
  if (!IsId(draft_id) || !absl::SimpleAtoi(n, &index) || index < 1 || index > 20) return ErrorPage(res, v, 404);
  ApiResult draft = api_.Get(v.caller, "/api/v1/drafts/" + draft_id);
  if (!draft.ok() || !draft.body.is_object()) return ApiFailure(res, v, draft);
  auto service = FormOf(v, Str(draft.body, "service_id"), draft.body.value("form_version", int64_t{0}));
  if (!service) return ErrorPage(res, v, 503);
  const auto& steps = Steps(*service);
  if (index > steps.size()) return ErrorPage(res, v, 404);
  const auto& step = steps[index - 1];
  const bool return_check = form.Get("return") == "check";
  std::set<std::string> read_only;
  for (const auto& f : draft.body.value("read_only_fields", nlohmann::json::array())) {
    if (f.is_string()) read_only.insert(f.get<std::string>());
  }
  std::map<std::string, std::string> errors;

  // Remove an attachment (a button of the file field), then show the step again.
  const std::string remove = form.Get("remove_attachment");
  if (!remove.empty()) {
    if (!IsId(remove)) return ErrorPage(res, v, 400);
    const ApiResult r = api_.Send(v.caller, "DELETE", "/api/v1/attachments/" + remove, nullptr);
    if (!r.ok() && r.status != 404) return ApiFailure(res, v, r);
    return SeeOther(res, absl::StrCat("/drafts/", draft_id, "/steps/", index, return_check ? "?return=check" : ""));
  }

  // The answers of this step as the API takes them.
  nlohmann::json data = draft.body.value("data", nlohmann::json::object());
  nlohmann::json patch = nlohmann::json::object();
  for (const auto& f : Fields(step)) {
    const std::string id = Str(f, "id");
    const std::string type = Str(f, "type");
    if (read_only.count(id) != 0 || type == "file") continue;
    nlohmann::json value;
    if (type == "address") {
      nlohmann::json a = nlohmann::json::object();
      bool any = false;
      for (const auto& part : kAddressParts) {
        const std::string s(absl::StripAsciiWhitespace(form.Get(id + "." + part)));
        a[part] = s;
        any = any || !s.empty();
      }
      if (any) value = a;
    } else if (type == "multiselect") {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& s : form.All(id)) list.push_back(s);
      if (!list.empty()) value = list;
    } else if (type == "checkbox") {
      value = form.Get(id) == "true";
    } else if (type == "number") {
      std::string s(absl::StripAsciiWhitespace(form.Get(id)));
      if (!s.empty()) {
        double d = 0;
        std::string normalized = absl::StrReplaceAll(s, {{",", "."}});
        if (absl::SimpleAtod(normalized, &d) && std::isfinite(d)) {
          if (f.value("integer", false) && std::floor(d) == d && std::fabs(d) < 1e15) {
            value = static_cast<int64_t>(d);
          } else {
            value = d;
          }
        } else {
          errors[id] = T(v, "error_number");
        }
      }
    } else if (type == "date") {
      std::string s(absl::StripAsciiWhitespace(form.Get(id)));
      // Typed as TT.MM.JJJJ where the browser has no date picker.
      static const std::regex kGerman(R"(^([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})$)");
      std::smatch m;
      if (std::regex_match(s, m, kGerman)) {
        s = absl::StrCat(m[3].str(), "-", m[2].str().size() == 1 ? "0" : "", m[2].str(), "-",
                         m[1].str().size() == 1 ? "0" : "", m[1].str());
      }
      if (!s.empty()) value = s;
    } else {
      std::string s = form.Get(id);
      if (type != "text" || !f.value("max_length", int64_t{0}) || f.value("max_length", int64_t{0}) <= 500) {
        s = std::string(absl::StripAsciiWhitespace(s));
      }
      if (type == "iban") s = absl::StrReplaceAll(s, {{" ", ""}});
      if (!s.empty()) value = s;
    }
    patch[id] = value;  // null removes the answer.
    data[id] = value;
  }
  // Answers of fields that no longer apply are removed.
  for (const auto& f : Fields(step)) {
    const std::string id = Str(f, "id");
    if (read_only.count(id) == 0 && Str(f, "type") != "file" && !Visible(f, data)) {
      patch[id] = nullptr;
      data[id] = nullptr;
    }
  }

  // Autosave from the page's script: the answers are saved as they are, not checked.
  if (form.Get("autosave") == "1") {
    if (!patch.empty()) {
      const ApiResult saved = api_.Send(v.caller, "PATCH", "/api/v1/drafts/" + draft_id, {{"data", patch}},
                                        {{"If-Match", "\"" + std::to_string(Version(draft.body)) + "\""}});
      res.status = saved.ok() ? 204 : (saved.status == 0 ? 503 : saved.status == 422 ? 422 : 409);
    } else {
      res.status = 204;
    }
    return;
  }

  // Files: each uploaded as an attachment of its field.
  for (const auto& f : Fields(step)) {
    const std::string id = Str(f, "id");
    if (Str(f, "type") != "file" || !Visible(f, data)) continue;
    for (auto [it, end] = req.files.equal_range(id); it != end; ++it) {
      if (it->second.filename.empty() && it->second.content.empty()) continue;
      const ApiResult up = api_.Upload(v.caller, "/api/v1/drafts/" + draft_id + "/attachments?field=" + Api::Escape(id),
                                       {{"file", it->second.filename.substr(0, 200), it->second.content_type,
                                         it->second.content}});
      if (up.status == 413) {
        errors[id] = T(v, "error_file_too_large");
      } else if (up.status == 422 || up.status == 400) {
        auto fe = up.FieldErrors();
        errors[id] = fe.empty() ? T(v, "error_file") : fe.begin()->second;
      } else if (!up.ok()) {
        return ApiFailure(res, v, up);
      }
    }
  }

  // Save (autosave semantics: merged), once more on a version conflict.
  if (!patch.empty()) {
    for (int attempt = 0;; ++attempt) {
      const ApiResult saved =
          api_.Send(v.caller, "PATCH", "/api/v1/drafts/" + draft_id, {{"data", patch}},
                    {{"If-Match", "\"" + std::to_string(Version(draft.body)) + "\""}});
      if (saved.ok()) {
        draft.body = saved.body;
        break;
      }
      if (saved.status == 412 && attempt == 0) {
        draft = api_.Get(v.caller, "/api/v1/drafts/" + draft_id);
        if (!draft.ok()) return ApiFailure(res, v, draft);
        continue;
      }
      if (saved.status == 422 || saved.status == 400) {
        const auto codes = saved.FieldCodes();
        for (const auto& [field, message] : saved.FieldErrors()) {
          errors.emplace(field, FieldMessage(v, codes.count(field) ? codes.at(field) : "", message));
        }
        if (errors.empty()) errors["main"] = T(v, "error_check_input");
        break;
      }
      return ApiFailure(res, v, saved);
    }
  }
  // The step's rules (required, ranges, formats), all errors at once (a value refused
  // above keeps its own message).
  {
    const ApiResult checked = api_.Send(
        v.caller, "POST", "/api/v1/drafts/" + draft_id + "/validate?step=" + Api::Escape(Str(step, "id")), nullptr);
    if (!checked.ok() || !checked.body.is_object()) return ApiFailure(res, v, checked);
    for (const auto& e : checked.body.value("errors", nlohmann::json::array())) {
      const std::string field = Str(e, "field");
      const std::string message = FieldMessage(v, Str(e, "code"), Str(e, "message"));
      if (!field.empty()) errors.emplace(field, message);
    }
  }
  if (!errors.empty()) {
    // Shown again with what was entered (also what the API refused).
    nlohmann::json shown = draft.body.value("data", nlohmann::json::object());
    for (const auto& [k, val] : patch.items()) shown[k] = val;
    for (const auto& f : Fields(step)) {
      const std::string id = Str(f, "id");
      if (Str(f, "type") == "number" && errors.count(id) && !form.Get(id).empty()) shown[id] = form.Get(id);
    }
    return RenderStep(res, v, draft.body, *service, index - 1, shown, errors, return_check, 422);
  }
  // The step is done: recorded for the funnel.
  const ApiResult done =
      api_.Send(v.caller, "PATCH", "/api/v1/drafts/" + draft_id,
                {{"data", nlohmann::json::object()}, {"completed_step", Str(step, "id")}},
                {{"If-Match", "\"" + std::to_string(Version(draft.body)) + "\""}});
  if (!done.ok()) log::Warn("step completion not recorded", {{"status", done.status}});
  if (return_check || index == steps.size()) return SeeOther(res, "/drafts/" + draft_id + "/check");
  SeeOther(res, absl::StrCat("/drafts/", draft_id, "/steps/", index + 1));
}

void Service::CheckPage(Req req, Res res, const std::string& draft_id, Visit& v) {
  if (!RequireLogin(req, res, v)) return;
  if (!IsId(draft_id)) return ErrorPage(res, v, 404);
  const ApiResult draft = api_.Get(v.caller, "/api/v1/drafts/" + draft_id);
  if (!draft.ok() || !draft.body.is_object()) return ApiFailure(res, v, draft);
  auto service = FormOf(v, Str(draft.body, "service_id"), draft.body.value("form_version", int64_t{0}));
  if (!service) return ErrorPage(res, v, 503);
  const auto& steps = Steps(*service);
  const nlohmann::json data = draft.body.value("data", nlohmann::json::object());
  // All rules at once: what is still missing is listed with a link to its step.
  const ApiResult checked = api_.Send(v.caller, "POST", "/api/v1/drafts/" + draft_id + "/validate", nullptr);
  if (!checked.ok() || !checked.body.is_object()) return ApiFailure(res, v, checked);
  nlohmann::json errors = nlohmann::json::array();
  for (const auto& e : checked.body.value("errors", nlohmann::json::array())) {
    const std::string field = Str(e, "field");
    const int at = StepOfField(steps, field.substr(0, field.find('.')));
    const nlohmann::json* f = FieldById(steps, field.substr(0, field.find('.')));
    errors.push_back({{"href", absl::StrCat("/drafts/", draft_id, "/steps/", at + 1, "?return=check#", InputId(field))},
                      {"text", (f ? Localized(f->value("label", nlohmann::json()), v.lang) + ": " : "") +
                                   FieldMessage(v, Str(e, "code"), Str(e, "message"))}});
  }
  nlohmann::json sections = nlohmann::json::array();
  for (size_t i = 0; i < steps.size(); ++i) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& f : Fields(steps[i])) {
      if (!Visible(f, data)) continue;
      const std::string id = Str(f, "id");
      const std::string type = Str(f, "type");
      const nlohmann::json value = data.contains(id) ? data[id] : nlohmann::json();
      std::string shown;
      if (type == "file") {
        std::vector<std::string> names;
        for (const auto& a : draft.body.value("attachments", nlohmann::json::array())) {
          if (Str(a, "field") == id) names.push_back(Str(a, "filename"));
        }
        shown = absl::StrJoin(names, ", ");
      } else if (type == "address" && value.is_object()) {
        shown = absl::StrCat(Str(value, "street"), " ", Str(value, "house_number"), ", ", Str(value, "postcode"), " ",
                             Str(value, "city"));
      } else if (type == "select" && value.is_string()) {
        shown = OptionLabel(f, value.get<std::string>(), v.lang);
      } else if (type == "multiselect" && value.is_array()) {
        std::vector<std::string> labels;
        for (const auto& e : value) {
          if (e.is_string()) labels.push_back(OptionLabel(f, e.get<std::string>(), v.lang));
        }
        shown = absl::StrJoin(labels, ", ");
      } else if (type == "checkbox") {
        shown = value.is_boolean() && value.get<bool>() ? T(v, "yes") : T(v, "no");
      } else if (type == "date" && value.is_string()) {
        shown = FormatDate(value.get<std::string>(), v.lang);
      } else if (type == "number") {
        shown = NumberText(value);
      } else if (value.is_string()) {
        shown = value.get<std::string>();
      }
      const std::string label = Localized(f.value("label", nlohmann::json()), v.lang);
      rows.push_back({{"label", label},
                      {"value", shown.empty() ? T(v, "not_given") : shown},
                      {"change_href", absl::StrCat("/drafts/", draft_id, "/steps/", i + 1, "?return=check#",
                                                   type == "address" ? id + "-street" : id)}});
    }
    sections.push_back({{"title", Localized(steps[i].value("title", nlohmann::json()), v.lang)}, {"rows", rows}});
  }
  const auto fee = draft.body.value("fee", nlohmann::json::object());
  const int64_t amount = fee.is_object() ? fee.value("amount_minor", int64_t{0}) : 0;
  const std::string service_name = Localized(service->value("name", nlohmann::json()), v.lang);
  Page(res, v, 200, "check",
       {{"title", T(v, "check_title") + " – " + service_name},
        {"service_name", service_name},
        {"sections", sections},
        {"problems", errors},
        {"has_problems", !errors.empty()},
        {"has_fee", amount > 0},
        {"fee", FormatMoney(amount, fee.is_object() ? fee.value("currency", "EUR") : "EUR", v.lang)},
        {"submit_action", "/drafts/" + draft_id + "/submit"},
        // One key per rendering: a double click sends it twice, and the API answers both
        // with the one submission.
        {"idempotency_key", auth::RandomToken(24)}});
}

void Service::Submit(Req req, Res res, const std::string& draft_id, Visit& v, const Form& form) {
  if (!RequireLogin(req, res, v)) return;
  if (!IsId(draft_id)) return ErrorPage(res, v, 404);
  const std::string key = form.Get("idempotency_key");
  static const std::regex kKey("^[A-Za-z0-9_-]{16,64}$");
  if (!std::regex_match(key, kKey)) return ErrorPage(res, v, 400);
  const ApiResult r =
      api_.Send(v.caller, "POST", "/api/v1/drafts/" + draft_id + "/submit", nullptr, {{"Idempotency-Key", "web-" + key}});
  if (r.ok() && IsId(Str(r.body, "id"))) {
    log::Info("submitted");
    Flash(v, res, "submitted");
    return SeeOther(res, "/submissions/" + Str(r.body, "id"));
  }
  if (r.status == 422 || r.status == 412) return SeeOther(res, "/drafts/" + draft_id + "/check");
  if (r.status == 404) {
    // Submitted already (the draft became the submission): the list has it.
    return SeeOther(res, "/submissions");
  }
  ApiFailure(res, v, r);
}

}  // namespace stadtportal::web

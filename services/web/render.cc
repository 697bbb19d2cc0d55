#include "services/web/render.h"

#include <memory>
#include <stdexcept>

#include <kainjow/mustache.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace stadtportal::web {

namespace mustache = kainjow::mustache;

namespace {

mustache::data ToData(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      mustache::data d{mustache::data::type::object};
      for (const auto& [k, v] : j.items()) d.set(k, ToData(v));
      return d;
    }
    case nlohmann::json::value_t::array: {
      mustache::data d{mustache::data::type::list};
      for (const auto& v : j) d.push_back(ToData(v));
      return d;
    }
    case nlohmann::json::value_t::boolean:
      return j.get<bool>() ? mustache::data{mustache::data::type::bool_true}
                           : mustache::data{mustache::data::type::bool_false};
    case nlohmann::json::value_t::string:
      // "" is false: {{#hint}}…{{/hint}} leaves out an empty hint, and an empty value
      // hides a name of an enclosing context (a field's empty error is not the page's).
      if (j.get_ref<const std::string&>().empty()) return mustache::data{mustache::data::type::bool_false};
      return mustache::data{j.get<std::string>()};
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return mustache::data{j.dump()};
    default:
      return mustache::data{mustache::data::type::bool_false};
  }
}

void SameKeys(const nlohmann::json& a, const nlohmann::json& b, const std::string& where) {
  for (const auto& [k, v] : a.items()) {
    if (!b.contains(k)) throw std::runtime_error("text " + where + k + " missing in one language");
  }
}

}  // namespace

struct Renderer::Base {
  mustache::data data{mustache::data::type::object};
};

Renderer::~Renderer() = default;

Renderer::Renderer(const std::vector<std::pair<std::string, std::string>>& files) {
  for (const auto& [path, text] : files) {
    if (absl::StartsWith(path, "templates/") && absl::EndsWith(path, ".mustache")) {
      const std::string name = path.substr(10, path.size() - 10 - 9);
      mustache::mustache parsed(text);
      if (!parsed.is_valid()) throw std::runtime_error("template " + name + ": " + parsed.error_message());
      templates_[name] = text;
    } else if (absl::StartsWith(path, "i18n/") && absl::EndsWith(path, ".json")) {
      const std::string lang = path.substr(5, path.size() - 5 - 5);
      auto doc = nlohmann::json::parse(text, nullptr, false);
      if (!doc.is_object()) throw std::runtime_error("texts " + path + " are not a JSON object");
      texts_[lang] = doc;
    }
  }
  if (texts_.count("de") == 0 || texts_.count("en") == 0) throw std::runtime_error("texts de and en are required");
  SameKeys(texts_["de"], texts_["en"], "");
  SameKeys(texts_["en"], texts_["de"], "");
  // The texts and partials are the same for every page of a language: converted once, the
  // bottom frame of each rendering's context (the page's model is pushed on top).
  for (const auto& [lang, texts] : texts_) {
    auto base = std::make_shared<Base>();
    base->data.set("t", ToData(texts));
    for (const auto& [name, text] : templates_) {
      if (!absl::StartsWith(name, "_")) continue;
      const std::string* body = &text;
      base->data.set(name.substr(1), mustache::data{mustache::partial{[body] { return *body; }}});
    }
    bases_[lang] = base;
  }
}

const nlohmann::json& Renderer::Texts(const std::string& lang) const {
  auto it = texts_.find(lang);
  return it != texts_.end() ? it->second : texts_.at("de");
}

std::string Renderer::Text(const std::string& lang, const std::string& key) const {
  const auto& t = Texts(lang);
  auto it = t.find(key);
  return it != t.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Renderer::Render(const std::string& name, nlohmann::json model, const std::string& lang) const {
  // Parsed once per thread: a parsed template is not shared between threads.
  thread_local std::map<std::string, std::unique_ptr<mustache::mustache>> parsed;
  auto it = parsed.find(name);
  if (it == parsed.end()) {
    auto t = templates_.find(name);
    if (t == templates_.end()) throw std::runtime_error("no template " + name);
    it = parsed.emplace(name, std::make_unique<mustache::mustache>(t->second)).first;
  }
  auto base = bases_.find(lang);
  if (base == bases_.end()) base = bases_.find("de");
  const mustache::data data = ToData(model);
  mustache::context<std::string> ctx(&base->second->data);
  ctx.push(&data);
  std::string out = it->second->render(ctx);
  if (!it->second->is_valid()) throw std::runtime_error("template " + name + ": " + it->second->error_message());
  return out;
}

std::string FormatMoney(int64_t minor, const std::string& currency, const std::string& lang) {
  const bool negative = minor < 0;
  const uint64_t abs = negative ? static_cast<uint64_t>(-minor) : static_cast<uint64_t>(minor);
  std::string units = std::to_string(abs / 100);
  const std::string sep = lang == "en" ? "," : ".";
  for (int i = static_cast<int>(units.size()) - 3; i > 0; i -= 3) units.insert(static_cast<size_t>(i), sep);
  const std::string cents = absl::StrFormat("%02d", static_cast<int>(abs % 100));
  const std::string symbol = currency == "EUR" ? "€" : currency;
  if (lang == "en") return absl::StrCat(negative ? "-" : "", symbol, units, ".", cents);
  return absl::StrCat(negative ? "-" : "", units, ",", cents, " ", symbol);
}

namespace {

const char* kMonthsEn[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

std::string FormatTimestamp(const std::string& rfc3339, const std::string& lang, bool time) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) return rfc3339;
  absl::TimeZone berlin;
  if (!absl::LoadTimeZone("Europe/Berlin", &berlin)) berlin = absl::UTCTimeZone();
  const auto c = berlin.At(t).cs;
  std::string date = lang == "en" ? absl::StrFormat("%d %s %d", c.day(), kMonthsEn[c.month() - 1], c.year())
                                  : absl::StrFormat("%02d.%02d.%d", c.day(), c.month(), c.year());
  if (!time) return date;
  return absl::StrFormat("%s, %02d:%02d", date, c.hour(), c.minute());
}

std::string FormatDate(const std::string& iso_date, const std::string& lang) {
  int y = 0, m = 0, d = 0;
  if (iso_date.size() != 10 || sscanf(iso_date.c_str(), "%4d-%2d-%2d", &y, &m, &d) != 3 || m < 1 || m > 12) {
    return iso_date;
  }
  return lang == "en" ? absl::StrFormat("%d %s %d", d, kMonthsEn[m - 1], y) : absl::StrFormat("%02d.%02d.%d", d, m, y);
}

}  // namespace stadtportal::web

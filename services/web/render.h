#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <memory>

#include <nlohmann/json.hpp>

namespace stadtportal::web {

// The pages' templates (mustache, compiled into the binary) and texts (de, en).
// {{name}} escapes HTML; {{{name}}} is used only for HTML this part rendered itself
// (the page inside the layout), never for text from outside.
class Renderer {
 public:
  // `files`: (path, text) as compiled in: "templates/<name>.mustache", "i18n/<lang>.json".
  // Throws std::runtime_error when a template does not parse or a text file is no object,
  // or when the two languages do not have the same keys.
  explicit Renderer(const std::vector<std::pair<std::string, std::string>>& files);
  ~Renderer();

  // Renders template `name` with `model` (plus "t": the texts of `lang`) and returns HTML.
  std::string Render(const std::string& name, nlohmann::json model, const std::string& lang) const;
  // The text `key` in `lang` ("" if there is none).
  std::string Text(const std::string& lang, const std::string& key) const;
  const nlohmann::json& Texts(const std::string& lang) const;
  bool HasTemplate(const std::string& name) const { return templates_.count(name) != 0; }

 private:
  struct Base;  // Per language, built once: the texts as "t" and the partials.

  std::map<std::string, std::string> templates_;  // name → text (partials: names starting with "_").
  std::map<std::string, nlohmann::json> texts_;    // lang → object
  std::map<std::string, std::shared_ptr<Base>> bases_;  // lang → the bottom frame of every rendering
};

// Money in the locale: 1200 EUR → "12,00 €" (de) or "€12.00" (en).
std::string FormatMoney(int64_t minor, const std::string& currency, const std::string& lang);
// "2026-12-08T10:15:00Z" → "08.12.2026, 10:15" (de) or "8 Dec 2026, 10:15" (en), in Europe/Berlin;
// with `time` false the date only. Unparseable input is returned as it is.
std::string FormatTimestamp(const std::string& rfc3339, const std::string& lang, bool time = true);
// "2026-12-08" → "08.12.2026" (de) or "8 Dec 2026" (en).
std::string FormatDate(const std::string& iso_date, const std::string& lang);

}  // namespace stadtportal::web

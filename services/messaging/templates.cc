#include "services/messaging/templates.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "libs/api/text.h"

namespace stadtportal::messaging {

const std::vector<std::pair<std::string, std::string>>& TemplateFiles();  // Generated (CMake).

const std::set<std::string>& NotificationVariables() {
  static const std::set<std::string> kVariables = {"sender",   "mailbox_url", "portal_name",
                                                   "document", "expires_on",  "renewal_url"};
  return kVariables;
}

absl::StatusOr<Templates> Templates::Load(const std::vector<std::pair<std::string, std::string>>& files,
                                          const std::set<std::string>& types, const std::set<std::string>& variables) {
  static const std::regex kName("^([a-z_]+)\\.(de|en)\\.txt$");
  static const std::regex kPlaceholder("\\{\\{\\s*([^}]*?)\\s*\\}\\}");
  Templates out;
  for (const auto& [file, text] : files) {
    std::smatch m;
    if (!std::regex_match(file, m, kName)) return absl::InvalidArgumentError("template " + file + ": bad file name");
    if (text.rfind("Subject: ", 0) != 0 || text.find('\n') == std::string::npos) {
      return absl::InvalidArgumentError("template " + file + ": the first line must be \"Subject: …\"");
    }
    Template t;
    t.subject = text.substr(9, text.find('\n') - 9);
    t.body = text.substr(text.find('\n') + 1);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), kPlaceholder); it != std::sregex_iterator(); ++it) {
      const std::string name = (*it)[1];
      if (!variables.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat("template ", file, ": unknown variable {{", name, "}}"));
      }
      t.variables.insert(name);
    }
    out.templates_[{m[1], m[2]}] = std::move(t);
  }
  for (const auto& type : types) {
    for (const char* lang : {"de", "en"}) {
      if (!out.templates_.count({type, lang})) {
        return absl::InvalidArgumentError(absl::StrCat("template ", type, ".", lang, ".txt is missing"));
      }
    }
  }
  return out;
}

absl::StatusOr<Templates> Templates::Embedded() {
  return Load(TemplateFiles(), {"message", "notice", "reminder"}, NotificationVariables());
}

absl::StatusOr<mail::Mail> Templates::Render(const std::string& type, const std::string& language,
                                             const std::string& to,
                                             const std::map<std::string, std::string>& values) const {
  auto it = templates_.find({type, language == "en" ? "en" : "de"});
  if (it == templates_.end()) return absl::InvalidArgumentError("no template " + type);
  auto fill = [&](const std::string& text) -> absl::StatusOr<std::string> {
    static const std::regex kPlaceholder("\\{\\{\\s*([^}]*?)\\s*\\}\\}");
    std::string out;
    auto last = text.cbegin();
    for (auto m = std::sregex_iterator(text.begin(), text.end(), kPlaceholder); m != std::sregex_iterator(); ++m) {
      auto v = values.find((*m)[1]);
      if (v == values.end()) return absl::InvalidArgumentError(absl::StrCat("no value for {{", (*m)[1].str(), "}}"));
      out.append(last, (*m)[0].first);
      out += api::PlainLine(v->second, 500);
      last = (*m)[0].second;
    }
    out.append(last, text.cend());
    return out;
  };
  auto subject = fill(it->second.subject);
  if (!subject.ok()) return subject.status();
  auto body = fill(it->second.body);
  if (!body.ok()) return body.status();
  return mail::Mail{to, *subject, *body};
}

}  // namespace stadtportal::messaging

#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/mail/mail.h"

namespace stadtportal::messaging {

// Notification mails from template files (services/messaging/templates/<type>.<lang>.txt,
// compiled in): the first line is "Subject: …", the rest the body; {{name}} inserts a
// variable. Loading checks that every type exists in German and English and that each
// template uses only variables the code supplies, so a wrong name fails at start, not
// as a blank in a mail.
class Templates {
 public:
  // `files`: (file name, text); `variables`: the variables the code supplies.
  static absl::StatusOr<Templates> Load(const std::vector<std::pair<std::string, std::string>>& files,
                                        const std::set<std::string>& types, const std::set<std::string>& variables);
  // The compiled-in templates for the types "message", "notice" and "reminder".
  static absl::StatusOr<Templates> Embedded();

  // Values are inserted as plain text (api::PlainLine): control characters, line and
  // paragraph separators and bidi overrides (a line break could start a header or a
  // paragraph of the mail) become spaces. INVALID_ARGUMENT for a variable not given.
  absl::StatusOr<mail::Mail> Render(const std::string& type, const std::string& language, const std::string& to,
                                    const std::map<std::string, std::string>& values) const;

 private:
  struct Template {
    std::string subject;
    std::string body;
    std::set<std::string> variables;
  };
  std::map<std::pair<std::string, std::string>, Template> templates_;  // (type, language)
};

// The variables the notification code supplies.
const std::set<std::string>& NotificationVariables();

}  // namespace stadtportal::messaging

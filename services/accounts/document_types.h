#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/config/config.h"
#include "stadtportal/accounts/v1/accounts.pb.h"

namespace stadtportal::accounts {

// The kinds of documents with an expiry the platform reminds of: per type its names,
// how many days before the expiry the reminder goes, and the online service of the
// catalogue that renews it. One JSON file (services/accounts/document-types/
// document-types.json is compiled in as the default; STADTPORTAL_DOCUMENT_TYPES_FILE
// names another), checked completely at start: a bad file stops the start.
class DocumentTypes {
 public:
  // {"types": [{"id", "name": {"de", "en"}, "remind_days_before", "renewal_service_id"}]}.
  // INVALID_ARGUMENT naming the first thing that is wrong ("types[2].id: …").
  static absl::StatusOr<DocumentTypes> Parse(const std::string& json);
  // The compiled-in default.
  static absl::StatusOr<DocumentTypes> Embedded();
  // STADTPORTAL_DOCUMENT_TYPES_FILE, else the default; throws config::Error with the
  // file's name and what is wrong in it.
  static DocumentTypes FromEnv(const config::Env& env);

  // nullptr for an unknown type.
  const v1::DocumentType* Find(const std::string& id) const;
  const std::vector<v1::DocumentType>& All() const { return types_; }

 private:
  std::vector<v1::DocumentType> types_;
  std::map<std::string, size_t> by_id_;
};

}  // namespace stadtportal::accounts

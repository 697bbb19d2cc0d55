#include "services/accounts/document_types.h"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "libs/api/text.h"

namespace stadtportal::accounts {

const std::vector<std::pair<std::string, std::string>>& DocumentTypeFiles();  // Generated (CMake).

namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr int kMaxTypes = 200;

absl::Status Bad(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

}  // namespace

absl::StatusOr<DocumentTypes> DocumentTypes::Parse(const std::string& text) {
  if (text.size() > kMaxFileBytes) return Bad("file", "larger than 1 MiB");
  const auto root = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Bad("file", "not valid JSON");
  if (!root.is_object() || root.size() != 1 || !root.contains("types")) {
    return Bad("file", "must be an object with exactly the member \"types\"");
  }
  const auto& list = root["types"];
  if (!list.is_array() || list.empty()) return Bad("types", "must be a non-empty array");
  if (list.size() > kMaxTypes) return Bad("types", absl::StrCat("at most ", kMaxTypes, " types"));
  static const std::regex kId("^[a-z][a-z0-9_]{0,63}$");
  static const std::regex kService("^[a-z0-9][a-z0-9-]{0,63}$");
  static const std::set<std::string> kKeys = {"id", "name", "remind_days_before", "renewal_service_id"};
  DocumentTypes out;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = absl::StrCat("types[", i, "]");
    const auto& t = list[i];
    if (!t.is_object()) return Bad(at, "must be an object");
    for (const auto& [key, value] : t.items()) {
      if (!kKeys.count(key)) return Bad(at, "unknown member \"" + api::PlainLine(key, 64) + "\"");
    }
    for (const auto& key : kKeys) {
      if (!t.contains(key)) return Bad(at, "\"" + key + "\" is missing");
    }
    v1::DocumentType type;
    if (!t["id"].is_string() || !std::regex_match(t["id"].get<std::string>(), kId)) {
      return Bad(at + ".id", "must match ^[a-z][a-z0-9_]{0,63}$");
    }
    type.set_id(t["id"].get<std::string>());
    if (out.by_id_.count(type.id())) return Bad(at + ".id", "\"" + type.id() + "\" appears twice");
    const auto& name = t["name"];
    if (!name.is_object() || name.size() != 2 || !name.contains("de") || !name.contains("en")) {
      return Bad(at + ".name", "must be an object with exactly \"de\" and \"en\"");
    }
    for (const char* lang : {"de", "en"}) {
      if (!name[lang].is_string()) return Bad(at + ".name." + lang, "must be a text");
      if (auto s = api::ValidateText(name[lang].get<std::string>(), "name", 100); !s.ok()) {
        return Bad(at + ".name." + lang, "must be 1 to 100 characters of one line");
      }
    }
    type.set_name_de(name["de"].get<std::string>());
    type.set_name_en(name["en"].get<std::string>());
    const auto& days = t["remind_days_before"];
    if (!days.is_number_integer() || days.get<int64_t>() < 1 || days.get<int64_t>() > 365) {
      return Bad(at + ".remind_days_before", "must be a whole number from 1 to 365");
    }
    type.set_remind_days_before(static_cast<int32_t>(days.get<int64_t>()));
    const auto& service = t["renewal_service_id"];
    if (!service.is_string() ||
        (!service.get<std::string>().empty() && !std::regex_match(service.get<std::string>(), kService))) {
      return Bad(at + ".renewal_service_id", "must be \"\" or an online service id (^[a-z0-9][a-z0-9-]{0,63}$)");
    }
    type.set_renewal_service_id(service.get<std::string>());
    out.by_id_[type.id()] = out.types_.size();
    out.types_.push_back(std::move(type));
  }
  return out;
}

absl::StatusOr<DocumentTypes> DocumentTypes::Embedded() {
  for (const auto& [name, text] : DocumentTypeFiles()) {
    if (name == "document-types.json") return Parse(text);
  }
  return absl::InternalError("document-types.json is not compiled in");
}

DocumentTypes DocumentTypes::FromEnv(const config::Env& env) {
  const std::string path = env.String("STADTPORTAL_DOCUMENT_TYPES_FILE", "");
  absl::StatusOr<DocumentTypes> types;
  std::string source = "the compiled-in document types";
  if (!path.empty()) {
    source = "STADTPORTAL_DOCUMENT_TYPES_FILE (" + api::PlainLine(path, 500) + ")";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw config::Error(source + ": cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    types = Parse(text.str());
  } else {
    types = Embedded();
  }
  if (!types.ok()) throw config::Error(source + ": " + std::string(types.status().message()));
  return *std::move(types);
}

const v1::DocumentType* DocumentTypes::Find(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &types_[it->second];
}

}  // namespace stadtportal::accounts

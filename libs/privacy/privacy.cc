#include "libs/privacy/privacy.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/tokens.h"

namespace stadtportal::privacy {
namespace {

constexpr size_t kMaxFilename = 100;
constexpr size_t kMaxPath = 300;

bool IsIdChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }
bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool AllOf(std::string_view s, bool (*ok)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!ok(c)) return false;
  }
  return true;
}

std::string SafeSegment(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() == kMaxFilename) break;
    out += IsNameChar(c) ? c : '_';
  }
  if (out.empty() || out == "." || out == "..") return "file";
  return out;
}

}  // namespace

absl::StatusOr<std::string> OwnPerson(const auth::Caller& caller) {
  if (caller.anonymous()) return absl::UnauthenticatedError("authentication required");
  if (caller.partner()) return absl::PermissionDeniedError("a partner portal cannot export or erase an account");
  if (!caller.roles.empty()) return absl::PermissionDeniedError("only the person themself");
  if (!caller.acting_party.empty() && caller.acting_party != caller.account_id) {
    return absl::PermissionDeniedError("switch back to your own account first");
  }
  return caller.account_id;
}

std::string ExportPath(std::string_view service, std::string_view kind, std::string_view id,
                       std::string_view filename) {
  auto id_part = [](std::string_view s) { return AllOf(s, IsIdChar) ? std::string(s) : SafeSegment(s); };
  return id_part(service) + "/" + id_part(kind) + "/" + id_part(id) + "/" + SafeSegment(filename);
}

absl::StatusOr<ExportPathParts> ParseExportPath(std::string_view path) {
  const auto refuse = [] { return absl::InvalidArgumentError("not a path of the export"); };
  if (path.size() > kMaxPath) return refuse();
  std::vector<std::string> parts = absl::StrSplit(std::string(path), '/');
  if (parts.size() != 4) return refuse();
  for (int i = 0; i < 3; ++i) {
    if (!AllOf(parts[i], IsIdChar)) return refuse();
  }
  if (!AllOf(parts[3], IsNameChar) || parts[3] == "." || parts[3] == ".." || parts[3].size() > kMaxFilename) {
    return refuse();
  }
  return ExportPathParts{parts[0], parts[1], parts[2], parts[3]};
}

std::string Tombstone(std::string_view tenant, std::string_view party_id) {
  return absl::BytesToHexString(auth::Sha256(std::string(tenant) + "/" + std::string(party_id)));
}

}  // namespace stadtportal::privacy

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/auth/caller.h"

// What every service shares for the person's own data (docs/data-protection.md, "Export"
// and "Erasure"; ADR 0026): who may ask for it, the paths of the export's files, and the
// key an erased party is remembered by without keeping its id.
namespace stadtportal::privacy {

// The party whose export a call may read, or whose retained records it may list: the
// caller's own person party (its id is the account id). Only a person acting as themself:
// UNAUTHENTICATED when anonymous; PERMISSION_DENIED for a caller acting for an
// organisation, a partner portal, a platform service or a caller with any role (back
// office, administrator).
absl::StatusOr<std::string> OwnPerson(const auth::Caller& caller);

// A path inside the export's ZIP: "<service>/<kind>/<id>/<file name>". service, kind and
// id are the platform's own ([a-z0-9-]); the file name comes from outside and is reduced
// to [A-Za-z0-9._-] (at most 100 characters, never "." or "..", "file" when nothing is left).
std::string ExportPath(std::string_view service, std::string_view kind, std::string_view id, std::string_view filename);

struct ExportPathParts {
  std::string service;
  std::string kind;
  std::string id;
  std::string filename;
};
// The parts of a path ExportPath made; INVALID_ARGUMENT for anything else (another number
// of segments, a character outside the sets above, "..", longer than 300 characters).
absl::StatusOr<ExportPathParts> ParseExportPath(std::string_view path);

// How an erased party is remembered (so a late event cannot bring its data back) without
// keeping its id: hex SHA-256 of "<tenant>/<party id>".
std::string Tombstone(std::string_view tenant, std::string_view party_id);

}  // namespace stadtportal::privacy

#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace stadtportal::db {

// One versioned migration: name "V001__create_parties.sql" and its SQL.
struct MigrationFile {
  std::string name;
  std::string sql;
};

// The migrations compiled into the running service (see cmake/embed_migrations.cmake).
const std::vector<MigrationFile>& EmbeddedMigrations();

struct MigrationResult {
  int applied = 0;          // Applied by this run.
  int already_applied = 0;  // Found applied (by an earlier run or a concurrent replica).
};

// Applies the not yet applied migrations to `schema`, each in its own transaction
// with search_path set to the schema, recording version, name, checksum and time in
// <schema>.schema_migrations. Runs under a PostgreSQL advisory lock per schema, so
// replicas starting together apply each migration once: the others wait, then see it
// applied. Fails if an applied file has changed or names are malformed. The one change
// allowed to an applied file: tables a shared library's migration (libs/<lib>/migrations,
// CREATE ... IF NOT EXISTS) now creates may leave it, and the file then says which
// checksum it was applied with, in a line "-- applied as <checksum>".
absl::StatusOr<MigrationResult> Migrate(const std::string& url, const std::string& schema,
                                        const std::vector<MigrationFile>& files);

// The checksum recorded for a migration's SQL (schema_migrations.checksum).
std::string Checksum(const std::string& sql);

}  // namespace stadtportal::db

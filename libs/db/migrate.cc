#include "libs/db/migrate.h"

#include <map>
#include <regex>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "libs/log/log.h"

namespace stadtportal::db {

// FNV-1a 64: stable across builds and platforms, enough to notice an edited file.
std::string Checksum(const std::string& sql) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : sql) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return absl::StrFormat("%016x", h);
}

namespace {

// Whether `sql` names `checksum` as one it was applied with before a shared library's
// migration took its tables over: a line "-- applied as <checksum>".
bool AppliedAs(const std::string& sql, const std::string& checksum) {
  for (absl::string_view line : absl::StrSplit(sql, '\n')) {
    if (line == "-- applied as " + checksum) return true;
  }
  return false;
}

struct Parsed {
  int version;
  const MigrationFile* file;
};

absl::StatusOr<std::vector<Parsed>> ParseNames(const std::vector<MigrationFile>& files) {
  static const std::regex kName(R"(V(\d{3,})__[a-z0-9_]+\.sql)");
  std::map<int, const MigrationFile*> by_version;
  for (const auto& f : files) {
    std::smatch m;
    if (!std::regex_match(f.name, m, kName)) {
      return absl::InvalidArgumentError(absl::StrCat("migration ", f.name, ": name must look like V001__what.sql"));
    }
    int v = std::stoi(m[1].str());
    if (!by_version.emplace(v, &f).second) {
      return absl::InvalidArgumentError(absl::StrCat("migration ", f.name, ": version ", v, " used twice"));
    }
  }
  std::vector<Parsed> out;
  for (const auto& [v, f] : by_version) out.push_back({v, f});
  return out;
}

}  // namespace

absl::StatusOr<MigrationResult> Migrate(const std::string& url, const std::string& schema,
                                        const std::vector<MigrationFile>& files) {
  auto parsed = ParseNames(files);
  if (!parsed.ok()) return parsed.status();
  MigrationResult result;
  try {
    pqxx::connection conn(url);
    const std::string q_schema = conn.quote_name(schema);
    {
      // Session-level lock, held until unlocked below or the connection closes.
      pqxx::nontransaction tx(conn);
      tx.exec("SELECT pg_advisory_lock(hashtext('stadtportal.migrations'), hashtext(" + tx.quote(schema) + "))");
      // A service's own role owns its schema but may not create schemas: only when missing.
      auto owner = tx.exec(
          "SELECT pg_get_userbyid(nspowner), pg_get_userbyid(nspowner) = current_user"
          " FROM pg_namespace WHERE nspname = " +
          tx.quote(schema));
      if (owner.empty()) {
        try {
          tx.exec("CREATE SCHEMA " + q_schema);
        } catch (const pqxx::insufficient_privilege&) {
          return absl::FailedPreconditionError(
              absl::StrCat("schema ", schema,
                           " does not exist and this role may not create it: create the service "
                           "roles and schemas first (deploy/containers/postgres-roles.sql)"));
        }
      } else if (!owner[0][1].as<bool>()) {
        // Whoever connects (e.g. an operator's role that is a member of the owner), the
        // schema's objects belong to its owner, the service's role.
        tx.exec("SET ROLE " + tx.quote_name(owner[0][0].as<std::string>()));
      }
      tx.exec("CREATE TABLE IF NOT EXISTS " + q_schema +
              ".schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
              "applied_at timestamptz NOT NULL DEFAULT now())");
    }
    std::map<int, std::pair<std::string, std::string>> applied;
    {
      pqxx::read_transaction tx(conn);
      for (const auto& row : tx.exec("SELECT version, name, checksum FROM " + q_schema + ".schema_migrations")) {
        applied[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
      }
    }
    for (const auto& p : *parsed) {
      const std::string sum = Checksum(p.file->sql);
      auto it = applied.find(p.version);
      if (it != applied.end()) {
        if (it->second.second != sum) {
          if (!AppliedAs(p.file->sql, it->second.second)) {
            return absl::FailedPreconditionError(
                absl::StrCat("migration ", p.file->name, " in schema ", schema, " was changed after it was applied"));
          }
          // Accepted once: the file's new content becomes the applied one, so a further
          // edit of it is refused like any other.
          pqxx::work tx(conn);
          tx.exec("UPDATE " + q_schema + ".schema_migrations SET checksum = " + tx.quote(sum) +
                  " WHERE version = " + tx.quote(p.version));
          tx.commit();
          log::Warn("migration accepted under its earlier checksum",
                    {{"schema", schema}, {"migration", p.file->name}, {"was", it->second.second}, {"now", sum}});
        }
        ++result.already_applied;
        continue;
      }
      pqxx::work tx(conn);
      tx.exec("SET LOCAL search_path TO " + q_schema);
      tx.exec(p.file->sql);
      tx.exec("INSERT INTO " + q_schema + ".schema_migrations (version, name, checksum) VALUES (" +
              tx.quote(p.version) + ", " + tx.quote(p.file->name) + ", " + tx.quote(sum) + ")");
      tx.commit();
      ++result.applied;
      log::Info("migration applied", {{"schema", schema}, {"migration", p.file->name}});
    }
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT pg_advisory_unlock(hashtext('stadtportal.migrations'), hashtext(" + tx.quote(schema) + "))");
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat("migrations of ", schema, ": database unreachable: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("migrations of ", schema, " failed: ", e.what()));
  }
  return result;
}

}  // namespace stadtportal::db

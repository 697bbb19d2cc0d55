#include "libs/db/migrate.h"

#include <future>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include "libs/testing/testing.h"

namespace stadtportal::db {
namespace {

std::string UniqueSchema() {
  static std::atomic<int> n{0};
  return "mig_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" + std::to_string(std::random_device{}());
}

int Count(const std::string& schema, const std::string& table) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::read_transaction tx(conn);
  return tx.exec1("SELECT count(*) FROM " + tx.quote_name(schema) + "." + tx.quote_name(table))[0].as<int>();
}

void Drop(const std::string& schema) {
  pqxx::connection conn(testing::DatabaseUrl());
  pqxx::nontransaction tx(conn);
  tx.exec("DROP SCHEMA IF EXISTS " + tx.quote_name(schema) + " CASCADE");
}

const std::vector<MigrationFile> kFiles = {
    {"V001__create_things.sql", "CREATE TABLE things (id serial PRIMARY KEY, name text NOT NULL);"},
    {"V002__seed_things.sql", "INSERT INTO things (name) VALUES ('a'), ('b');"},
};

}  // namespace

TEST_CASE("migrations are applied once and recorded; a re-run is a no-op", "[integration]") {
  const auto schema = UniqueSchema();
  auto first = Migrate(testing::DatabaseUrl(), schema, kFiles);
  REQUIRE(first.ok());
  CHECK(first->applied == 2);
  CHECK(Count(schema, "things") == 2);
  CHECK(Count(schema, "schema_migrations") == 2);

  auto again = Migrate(testing::DatabaseUrl(), schema, kFiles);
  REQUIRE(again.ok());
  CHECK(again->applied == 0);
  CHECK(again->already_applied == 2);
  CHECK(Count(schema, "things") == 2);  // The seed did not run twice.

  auto more = kFiles;
  more.push_back({"V003__more.sql", "INSERT INTO things (name) VALUES ('c');"});
  auto third = Migrate(testing::DatabaseUrl(), schema, more);
  REQUIRE(third.ok());
  CHECK(third->applied == 1);
  CHECK(Count(schema, "things") == 3);
  Drop(schema);
}

TEST_CASE("two runners at once: one applies, the other waits and sees it applied", "[integration]") {
  const auto schema = UniqueSchema();
  // The first migration holds its lock a while, so the runners really overlap.
  std::vector<MigrationFile> slow = {
      {"V001__slow.sql", "SELECT pg_sleep(0.5); CREATE TABLE things (id serial PRIMARY KEY, name text);"},
      {"V002__seed.sql", "INSERT INTO things (name) VALUES ('once');"},
  };
  auto a = std::async(std::launch::async, [&] { return Migrate(testing::DatabaseUrl(), schema, slow); });
  auto b = std::async(std::launch::async, [&] { return Migrate(testing::DatabaseUrl(), schema, slow); });
  auto ra = a.get();
  auto rb = b.get();
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  CHECK(ra->applied + rb->applied == 2);
  CHECK(((ra->applied == 2 && rb->already_applied == 2) || (rb->applied == 2 && ra->already_applied == 2)));
  CHECK(Count(schema, "things") == 1);
  Drop(schema);
}

TEST_CASE("a changed applied migration and a failing one are reported", "[integration]") {
  const auto schema = UniqueSchema();
  REQUIRE(Migrate(testing::DatabaseUrl(), schema, kFiles).ok());
  auto edited = kFiles;
  edited[1].sql = "INSERT INTO things (name) VALUES ('changed');";
  auto r = Migrate(testing::DatabaseUrl(), schema, edited);
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);

  auto broken = kFiles;
  broken.push_back({"V003__broken.sql", "INSERT INTO no_such_table VALUES (1);"});
  CHECK_FALSE(Migrate(testing::DatabaseUrl(), schema, broken).ok());
  CHECK(Count(schema, "schema_migrations") == 2);  // The failed one is not recorded…
  CHECK(Count(schema, "things") == 2);             // …and left nothing behind.

  CHECK(Migrate(testing::DatabaseUrl(), schema, {{"bad-name.sql", "SELECT 1"}}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  Drop(schema);
}

TEST_CASE("a table moved into a library migration leaves the applied file, which names its old checksum",
          "[integration]") {
  const std::vector<MigrationFile> before = {
      {"V001__things_and_outbox.sql", "CREATE TABLE things (id int);\nCREATE TABLE outbox (id int);\n"}};
  const std::string library_sql = "CREATE TABLE IF NOT EXISTS outbox (id int);\n";
  // A database migrated before the move…
  const auto existing = UniqueSchema();
  REQUIRE(Migrate(testing::DatabaseUrl(), existing, before).ok());
  const std::vector<MigrationFile> after = {
      {"V001__things_and_outbox.sql", "-- applied as " + Checksum(before[0].sql) + "\nCREATE TABLE things (id int);\n"},
      {"V900__outbox.sql", library_sql}};
  auto r = Migrate(testing::DatabaseUrl(), existing, after);
  REQUIRE(r.ok());
  CHECK(r->already_applied == 1);
  CHECK(r->applied == 1);
  // …and a new one end up alike.
  const auto fresh = UniqueSchema();
  REQUIRE(Migrate(testing::DatabaseUrl(), fresh, after).ok());
  for (const auto& schema : {existing, fresh}) {
    CHECK(Count(schema, "things") == 0);
    CHECK(Count(schema, "outbox") == 0);
    CHECK(Count(schema, "schema_migrations") == 2);
  }
  // Another edit is still refused, whatever the file claims…
  auto edited = after;
  edited[0].sql = "-- applied as 0123456789abcdef\nCREATE TABLE things (id int);\n";
  CHECK(Migrate(testing::DatabaseUrl(), existing, edited).status().code() == absl::StatusCode::kFailedPrecondition);
  // …also one that keeps the line naming the earlier checksum: the accepted content is now
  // the applied one.
  edited[0].sql = after[0].sql + "ALTER TABLE things ADD COLUMN name text;\n";
  for (const auto& schema : {existing, fresh}) {
    CHECK(Migrate(testing::DatabaseUrl(), schema, edited).status().code() == absl::StatusCode::kFailedPrecondition);
  }
  Drop(existing);
  Drop(fresh);
}

}  // namespace stadtportal::db

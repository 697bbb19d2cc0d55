#include "libs/db/pool.h"

#include <functional>

#include <catch2/catch.hpp>

#include "libs/db/network_guard.h"
#include "libs/testing/testing.h"

namespace stadtportal::db {
namespace {

const std::vector<MigrationFile> kFiles = {
    {"V001__create_items.sql", "CREATE TABLE items (id text PRIMARY KEY, n integer NOT NULL CHECK (n >= 0));"},
};

}  // namespace

TEST_CASE("the pool maps database errors to canonical codes", "[integration]") {
  testing::TestSchema schema(kFiles, "pool");
  auto& pool = schema.pool([](pqxx::connection& c) { c.prepare("insert_item", "INSERT INTO items VALUES ($1, $2)"); });
  auto insert = [&](const std::string& id, int n) {
    return pool.Transact([&](pqxx::work& tx) {
      tx.exec_prepared("insert_item", id, n);
      return absl::OkStatus();
    });
  };
  CHECK(insert("a", 1).ok());
  CHECK(insert("a", 2).code() == absl::StatusCode::kAlreadyExists);
  CHECK(insert("b", -1).code() == absl::StatusCode::kInvalidArgument);
  // A non-OK result from the function rolls back.
  auto s = pool.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("insert_item", "c", 3);
    return absl::NotFoundError("changed my mind");
  });
  CHECK(s.code() == absl::StatusCode::kNotFound);
  CHECK(insert("c", 3).ok());
  CHECK(pool.Ping().ok());
}

TEST_CASE("a value the database cannot take is INVALID_ARGUMENT, not an error to retry", "[integration]") {
  testing::TestSchema schema(kFiles, "pool");
  auto& pool = schema.pool([](pqxx::connection& c) {
    c.prepare("insert_item", "INSERT INTO items VALUES ($1, $2)");
    c.prepare("insert_item_text", "INSERT INTO items VALUES ($1, $2::integer)");
    c.prepare("as_json", "SELECT $1::jsonb");
  });
  auto run = [&](const std::function<void(pqxx::work&)>& fn) {
    return pool.Transact([&](pqxx::work& tx) {
      fn(tx);
      return absl::OkStatus();
    });
  };
  // Not UTF-8.
  CHECK(run([](pqxx::work& tx) { tx.exec_prepared("insert_item", std::string("\xff\xfe"), 1); }).code() ==
        absl::StatusCode::kInvalidArgument);
  // A NUL character where text is stored.
  CHECK(run([](pqxx::work& tx) { tx.exec_prepared("as_json", R"({"name": "a\u0000b"})"); }).code() ==
        absl::StatusCode::kInvalidArgument);
  // Out of range, and not of the column's type.
  CHECK(run([](pqxx::work& tx) { tx.exec_prepared("insert_item_text", "a", "99999999999"); }).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(run([](pqxx::work& tx) { tx.exec_prepared("insert_item_text", "a", "one"); }).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(run([](pqxx::work& tx) { tx.exec_prepared("insert_item", "a", 1); }).ok());
}

TEST_CASE("a transaction that produces a value commits only with the value", "[integration]") {
  testing::TestSchema schema(kFiles, "pool");
  auto& pool = schema.pool([](pqxx::connection& c) {
    c.prepare("insert_item", "INSERT INTO items VALUES ($1, $2)");
    c.prepare("count_items", "SELECT count(*) AS n FROM items");
  });
  auto count = [&] {
    return pool.Transact(
        [&](pqxx::work& tx) -> absl::StatusOr<int> { return tx.exec_prepared1("count_items")["n"].as<int>(); });
  };
  auto added = pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
    tx.exec_prepared("insert_item", "a", 1);
    return std::string("a");
  });
  REQUIRE(added.ok());
  CHECK(*added == "a");
  // An error instead of a value rolls back what the function wrote.
  auto refused = pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
    tx.exec_prepared("insert_item", "b", 2);
    return absl::FailedPreconditionError("not this one");
  });
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  // A database error is mapped as for any transaction.
  auto duplicate = pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    tx.exec_prepared("insert_item", "a", 3);
    return 1;
  });
  CHECK(duplicate.status().code() == absl::StatusCode::kAlreadyExists);
  REQUIRE(count().ok());
  CHECK(*count() == 1);
}

TEST_CASE("a read runs its one statement without a transaction block, errors mapped alike", "[integration]") {
  testing::TestSchema schema(kFiles, "pool");
  auto& pool = schema.pool([](pqxx::connection& c) {
    c.prepare("insert_item", "INSERT INTO items VALUES ($1, $2)");
    c.prepare("get_item", "SELECT n FROM items WHERE id = $1");
  });
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                tx.exec_prepared("insert_item", "a", 7);
                return absl::OkStatus();
              })
              .ok());
  auto get = [&](const std::string& id) {
    return pool.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<int> {
      auto res = tx.exec_prepared("get_item", id);
      if (res.empty()) return absl::NotFoundError("no item");
      return res[0]["n"].as<int>();
    });
  };
  REQUIRE(get("a").ok());
  CHECK(*get("a") == 7);
  CHECK(get("b").status().code() == absl::StatusCode::kNotFound);
  // The statement is its own transaction (no BEGIN before it); in Transact it is not.
  const auto alone = [](auto& tx) -> absl::StatusOr<bool> {
    return tx.exec1("SELECT statement_timestamp() = transaction_timestamp()")[0].template as<bool>();
  };
  auto read = pool.Read(alone);
  REQUIRE(read.ok());
  CHECK(*read);
  auto transact = pool.Transact(alone);
  REQUIRE(transact.ok());
  CHECK_FALSE(*transact);
  // Errors map as for a transaction, and the connection serves the next call.
  CHECK(pool.Read([](pqxx::nontransaction& tx) {
              tx.exec("SELECT 1 / 0");
              return absl::OkStatus();
            })
            .code() == absl::StatusCode::kInvalidArgument);
  CHECK(pool.Read([](pqxx::nontransaction& tx) {
              CHECK(InTransaction());
              tx.exec("SELECT * FROM no_such_table");
              return absl::OkStatus();
            })
            .code() == absl::StatusCode::kInternal);
  CHECK(*get("a") == 7);
}

TEST_CASE("the pool hands out at most its size and waits for a returned lease", "[integration]") {
  testing::TestSchema schema(kFiles, "pool");
  PoolOptions o{testing::DatabaseUrl(), schema.name(), 2, std::chrono::milliseconds(200)};
  Pool pool(o, nullptr);
  auto a = pool.Acquire();
  auto b = pool.Acquire();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto c = pool.Acquire();
  CHECK(c.status().code() == absl::StatusCode::kUnavailable);
  { auto released = std::move(*a); }
  CHECK(pool.Acquire().ok());
}

TEST_CASE("a connection the server closed is replaced", "[integration]") {
  testing::TestSchema schema(kFiles, "pool");
  PoolOptions o{testing::DatabaseUrl(), schema.name(), 1, std::chrono::milliseconds(2000)};
  Pool pool(o, nullptr);
  int pid = 0;
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                pid = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
                return absl::OkStatus();
              })
              .ok());
  {
    pqxx::connection admin(testing::DatabaseUrl());
    pqxx::nontransaction tx(admin);
    tx.exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  }
  // The first use notices the dead connection; the next gets a fresh one.
  auto first = pool.Ping();
  if (!first.ok()) CHECK(first.code() == absl::StatusCode::kUnavailable);
  CHECK(pool.Ping().ok());
}

TEST_CASE("the pool reports lent and idle connections, and marks the thread inside a transaction", "[integration]") {
  testing::TestSchema schema(kFiles, "poolstats");
  auto& pool = schema.pool();
  REQUIRE(pool.Ping().ok());
  CHECK(pool.stats().in_use == 0);
  CHECK(pool.stats().idle == 1);
  CHECK_FALSE(InTransaction());
  REQUIRE(pool.Transact([&](pqxx::work&) {
                CHECK(InTransaction());
                CHECK(pool.stats().in_use == 1);
                CHECK(pool.stats().idle == 0);
                return absl::OkStatus();
              })
              .ok());
  CHECK_FALSE(InTransaction());
  CHECK(pool.stats().in_use == 0);
}

}  // namespace stadtportal::db

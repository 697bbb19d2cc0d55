#pragma once

#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"
#include "services/connector/store.h"

namespace stadtportal::connector {

// The connector's schema for one test, with its store.
struct ConnectorSchema {
  // What a counting query gives.
  int64_t Count(const std::string& sql) {
    auto n = pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<int64_t> { return tx.exec1(sql)[0].as<int64_t>(); });
    REQUIRE(n.ok());
    return *n;
  }
  // A delivery's state ("none" without one).
  std::string State(const std::string& submission_id) {
    auto s = pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::string> {
      auto r = tx.exec_params("SELECT state FROM deliveries WHERE submission_id = $1::uuid", submission_id);
      return r.empty() ? std::string("none") : r[0]["state"].as<std::string>();
    });
    REQUIRE(s.ok());
    return *s;
  }
  absl::Status Exec(const std::string& sql) {
    return pool.Transact([&](pqxx::work& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  }

  testing::TestSchema schema{db::EmbeddedMigrations(), "connector"};
  db::Pool& pool = schema.pool(Store::Prepare);
  std::shared_ptr<Store> store = std::make_shared<Store>(pool);
};

}  // namespace stadtportal::connector

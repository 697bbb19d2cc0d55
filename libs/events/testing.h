#pragma once

#include <string>

#include "libs/events/events.h"
#include "libs/testing/testing.h"

// For the tests of a service's event handlers (services/<name>/consumers_test.cc).
namespace stadtportal::events {

// A service's handlers on a schema of their own, with the service's migrations.
class HandlerTest {
 public:
  HandlerTest(const std::string& service, db::Prepare prepare, Handlers handlers)
      : schema_(db::EmbeddedMigrations(), service),
        pool_(schema_.pool(std::move(prepare))),
        handlers_(std::move(handlers)) {}

  db::Pool& pool() { return pool_; }
  // Runs a handler with its message in a transaction, as the consumer does once its
  // inbox let the event through.
  template <class M>
  absl::Status Apply(absl::Status (*handle)(pqxx::work&, const M&), const M& message) {
    return pool_.Transact([&](pqxx::work& tx) { return handle(tx, message); });
  }
  // Hands an event, payload as published, to the service's Handlers.
  absl::Status Handle(const Event& event) {
    return pool_.Transact([&](pqxx::work& tx) { return handlers_(tx, event); });
  }
  // The first column of the first row of `sql`, as text.
  std::string Query(const std::string& sql) { return testing::QueryValue(pool_, sql); }

 private:
  testing::TestSchema schema_;
  db::Pool& pool_;
  Handlers handlers_;
};

}  // namespace stadtportal::events

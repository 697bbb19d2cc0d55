#include "libs/events/events.h"

#include <catch2/catch.hpp>

#include "libs/auth/tokens.h"
#include "libs/testing/testing.h"

namespace stadtportal::events {
namespace {

const std::vector<db::MigrationFile> kFiles = {
    {"V001__events.sql",
     "CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, topic text NOT NULL, key text NOT NULL,"
     " payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz);"
     "CREATE TABLE inbox (event_id text PRIMARY KEY, topic text NOT NULL,"
     " received_at timestamptz NOT NULL DEFAULT now());"
     "CREATE TABLE effects (key text PRIMARY KEY, times integer NOT NULL);"},
};

int64_t Scalar(db::Pool& pool, const std::string& sql) {
  int64_t n = 0;
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                n = tx.exec1(sql)[0].as<int64_t>();
                return absl::OkStatus();
              })
              .ok());
  return n;
}

}  // namespace

TEST_CASE("events travel from the outbox to a consumer once in effect, even when published twice", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  // Topics of their own: parallel test runs share the Redis server.
  const std::string topic = "test." + auth::RandomToken(6);
  const std::string other = "test." + auth::RandomToken(6);

  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, topic, "a", {{"n", 1}});
                PublishJson(tx, topic, "b", {{"n", 2}});
                PublishJson(tx, other, "c", {{"n", 3}});
                return absl::OkStatus();
              })
              .ok());
  // A rolled-back change publishes nothing.
  REQUIRE_FALSE(pool.Transact([&](pqxx::work& tx) {
                      PublishJson(tx, topic, "lost", {{"n", 9}});
                      return absl::AbortedError("changed my mind");
                    })
                    .ok());

  Relay relay(pool, redis, "testsvc");
  REQUIRE(*relay.RelayOnce() == 3);
  CHECK(*relay.RelayOnce() == 0);
  // As if the relay crashed after XADD and before marking: everything goes out again.
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                tx.exec("UPDATE outbox SET published_at = NULL");
                return absl::OkStatus();
              })
              .ok());
  REQUIRE(*relay.RelayOnce() == 3);

  std::vector<Event> seen;
  Consumer consumer(
      pool, *redis::Options::FromUrl(testing::RedisUrl()), "testgroup", {topic, other},
      [&](pqxx::work& tx, const Event& e) {
        seen.push_back(e);
        tx.exec_params("INSERT INTO effects VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET times = effects.times + 1",
                       e.key);
        return absl::OkStatus();
      });
  int handled = 0;
  for (int i = 0; i < 5; ++i) handled += *consumer.PollOnce(std::chrono::milliseconds(50));
  CHECK(handled == 6);        // Six messages acknowledged…
  REQUIRE(seen.size() == 3);  // …three effects.
  CHECK(Scalar(pool, "SELECT sum(times) FROM effects") == 3);
  CHECK(seen[0].id == "testsvc-1");
  CHECK(seen[0].payload["n"] == 1);
  CHECK(Scalar(pool, "SELECT count(*) FROM inbox") == 3);
}

TEST_CASE("an event whose handler fails is retried until it succeeds", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  const std::string topic = "test." + auth::RandomToken(6);
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, topic, "k", {{"n", 1}});
                return absl::OkStatus();
              })
              .ok());
  Relay relay(pool, redis, "testsvc");
  REQUIRE(*relay.RelayOnce() == 1);

  int attempts = 0;
  Consumer consumer(
      pool, *redis::Options::FromUrl(testing::RedisUrl()), "retrygroup", {topic},
      [&](pqxx::work& tx, const Event& e) {
        ++attempts;
        tx.exec_params("INSERT INTO effects VALUES ($1, 1)", e.key);
        // The first attempt fails after writing: its write must be rolled back.
        return attempts == 1 ? absl::UnavailableError("department offline") : absl::OkStatus();
      },
      std::chrono::milliseconds(1));
  CHECK(*consumer.PollOnce(std::chrono::milliseconds(50)) == 0);
  CHECK(Scalar(pool, "SELECT count(*) FROM effects") == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(*consumer.PollOnce(std::chrono::milliseconds(50)) == 1);  // Claimed again and handled.
  CHECK(attempts == 2);
  CHECK(Scalar(pool, "SELECT times FROM effects WHERE key = 'k'") == 1);
  CHECK(*consumer.PollOnce(std::chrono::milliseconds(50)) == 0);  // Nothing left.
}

}  // namespace stadtportal::events

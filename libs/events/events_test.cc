#include "libs/events/events.h"

#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "libs/auth/tokens.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/testing/testing.h"

namespace stadtportal::events {
namespace {

// The library's own migration (libs/events/migrations, embedded by CMake) and a table
// for the effects of the test handlers.
const std::vector<db::MigrationFile> kFiles = [] {
  auto files = db::EmbeddedMigrations();
  files.push_back({"V001__effects.sql", "CREATE TABLE effects (key text PRIMARY KEY, times integer NOT NULL);"});
  return files;
}();

int64_t Scalar(db::Pool& pool, const std::string& sql) {
  int64_t n = 0;
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                n = tx.exec1(sql)[0].as<int64_t>();
                return absl::OkStatus();
              })
              .ok());
  return n;
}

// A name of its own in lowercase letters, as the services publishing events have.
std::string RandomName() {
  std::string out;
  for (char c : auth::RandomToken(9)) out += static_cast<char>('a' + static_cast<unsigned char>(c) % 26);
  return out;
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

TEST_CASE("typed events: Publish, relay, and the topic's handler receives its message", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  // The topics are the real ones, whose streams other tests share: the keys and the
  // publisher's name are this test's own.
  const std::string run = RandomName();
  const std::string delivered_key = "delivered-" + run, paid_key = "paid-" + run;
  v1::DeliveryDelivered delivered;
  delivered.set_tenant("09564000");
  delivered.set_submission_id(delivered_key);
  delivered.set_destination("standesamt");
  v1::PaymentSucceeded paid;
  paid.set_submission_id(paid_key);
  paid.mutable_amount()->set_amount_minor(1250);
  paid.mutable_amount()->set_currency("EUR");
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                Publish(tx, delivered_key, delivered);
                Publish(tx, paid_key, paid);
                return absl::OkStatus();
              })
              .ok());
  CHECK(Scalar(pool, "SELECT count(*) FROM outbox WHERE topic IN ('delivery.delivered', 'payment.succeeded')") == 2);
  Relay relay(pool, redis, "typed" + run);
  REQUIRE(*relay.RelayOnce() == 2);

  std::vector<v1::DeliveryDelivered> deliveries;
  std::vector<std::string> payments;
  Handlers handlers;
  handlers.On<v1::DeliveryDelivered>([&](pqxx::work&, const v1::DeliveryDelivered& e) {
    if (e.submission_id() == delivered_key) deliveries.push_back(e);
    return absl::OkStatus();
  });
  handlers.On<v1::PaymentSucceeded>([&](pqxx::work&, const Event& envelope, const v1::PaymentSucceeded& e) {
    if (e.submission_id() == paid_key) {
      payments.push_back(envelope.id + " " + e.amount().currency() + " " + std::to_string(e.amount().amount_minor()));
    }
    return absl::OkStatus();
  });
  CHECK(handlers.Topics() == std::vector<std::string>{"delivery.delivered", "payment.succeeded"});
  Consumer consumer(pool, *redis::Options::FromUrl(testing::RedisUrl()), "typed" + run, handlers);
  CHECK(testing::Eventually(
      [&] {
        (void)consumer.PollOnce(std::chrono::milliseconds(20));
        return !deliveries.empty() && !payments.empty();
      },
      std::chrono::seconds(10)));
  REQUIRE(deliveries.size() == 1);
  CHECK(deliveries[0].destination() == "standesamt");
  CHECK(deliveries[0].tenant() == "09564000");
  CHECK(payments == std::vector<std::string>{"typed" + run + "-2 EUR 1250"});
}

TEST_CASE("a payload that is not its topic's message is acknowledged, not retried; the next event is handled",
          "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  const std::string run = RandomName();
  v1::DeliveryDelayed good;
  good.set_submission_id("good-" + run);
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, "delivery.delayed", "poison-" + run, {{"submission_id", {{"not", "a string"}}}});
                Publish(tx, good.submission_id(), good);
                return absl::OkStatus();
              })
              .ok());
  const std::string publisher = "poison" + run;
  Relay relay(pool, redis, publisher);
  REQUIRE(*relay.RelayOnce() == 2);

  std::vector<std::string> handled;
  Handlers handlers;
  handlers.On<v1::DeliveryDelayed>([&](pqxx::work& tx, const v1::DeliveryDelayed& e) {
    if (absl::EndsWith(e.submission_id(), run)) {
      handled.push_back(e.submission_id());
      tx.exec_params("INSERT INTO effects VALUES ($1, 1)", e.submission_id());
    }
    return absl::OkStatus();
  });
  const std::string group = "poison" + run;
  Consumer consumer(pool, *redis::Options::FromUrl(testing::RedisUrl()), group, handlers, std::chrono::milliseconds(1));
  CHECK(testing::Eventually(
      [&] {
        (void)consumer.PollOnce(std::chrono::milliseconds(20));
        return !handled.empty();
      },
      std::chrono::seconds(10)));
  // Claimed again by now if it were pending: it is not.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (int i = 0; i < 3; ++i) (void)consumer.PollOnce(std::chrono::milliseconds(20));
  CHECK(handled == std::vector<std::string>{"good-" + run});
  CHECK(redis.Command({"XPENDING", StreamOf("delivery.delayed"), group})->raw()->element[0]->integer == 0);
  // The refusal left no trace in the consumer's database; the event stays in the
  // publisher's outbox for an operator.
  CHECK(Scalar(pool, "SELECT count(*) FROM inbox WHERE event_id = '" + publisher + "-1'") == 0);
  CHECK(Scalar(pool, "SELECT count(*) FROM inbox WHERE event_id = '" + publisher + "-2'") == 1);
  CHECK(Scalar(pool, "SELECT count(*) FROM effects") == 1);
  CHECK(Scalar(pool, "SELECT count(*) FROM outbox WHERE key = 'poison-" + run + "'") == 1);
}

TEST_CASE("an event whose id is not the relay's \"<source>-<outbox id>\" is refused before the inbox",
          "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  const std::string topic = "test." + auth::RandomToken(6);
  // Written to the stream by someone else than a relay; an empty id twice, as it would
  // otherwise stand in the inbox for the second.
  for (const std::string id : {"", "", "Payment-1", "payment-", "-1", "payment-1x", "payment 1", "payment-1\n"}) {
    REQUIRE(redis.Command({"XADD", StreamOf(topic), "*", "id", id, "topic", topic, "key", "k", "payload", "{}"}).ok());
  }
  REQUIRE(redis.Command({"XADD", StreamOf(topic), "*", "id", "payment-7", "topic", topic, "key", "k", "payload", "{}"})
              .ok());
  std::vector<std::string> handled;
  Consumer consumer(
      pool, *redis::Options::FromUrl(testing::RedisUrl()), "idgroup", {topic},
      [&](pqxx::work&, const Event& e) {
        handled.push_back(e.id);
        return absl::OkStatus();
      },
      std::chrono::milliseconds(1));
  CHECK(*consumer.PollOnce(std::chrono::milliseconds(50)) == 9);  // Every one acknowledged…
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(*consumer.PollOnce(std::chrono::milliseconds(50)) == 0);  // Refused ones are not claimed again.
  CHECK(handled == std::vector<std::string>{"payment-7"});        // …one handled.
  CHECK(Scalar(pool, "SELECT count(*) FROM inbox") == 1);
  CHECK(redis.Command({"XPENDING", StreamOf(topic), "idgroup"})->raw()->element[0]->integer == 0);
}

TEST_CASE("a broadcast passes every new event to every replica, from where it started", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  const std::string topic = "test." + auth::RandomToken(6);
  Relay relay(pool, redis, RandomName());
  const auto publish = [&](const std::string& key) {
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  PublishJson(tx, topic, key, {{"key", key}});
                  return absl::OkStatus();
                })
                .ok());
    REQUIRE(relay.RelayOnce().ok());
  };
  publish("before");  // Already in the stream when the readers start: not passed on.

  struct Reader {
    std::vector<std::string> keys;
    int resets = 0;
    std::unique_ptr<Broadcast> broadcast;
  };
  std::vector<Reader> readers(2);
  for (auto& r : readers) {
    r.broadcast = std::make_unique<Broadcast>(
        *redis::Options::FromUrl(testing::RedisUrl()), std::vector<std::string>{topic},
        [&r](const Event& e) { r.keys.push_back(e.key); }, [&r] { ++r.resets; }, std::chrono::milliseconds(100));
    CHECK_FALSE(r.broadcast->live());
    REQUIRE(r.broadcast->PollOnce().ok());  // Positions at the end, nothing new yet.
    CHECK(r.resets == 1);
    CHECK(r.broadcast->live());
  }
  publish("first");
  publish("second");
  for (auto& r : readers) {
    REQUIRE(r.broadcast->PollOnce().ok());
    CHECK(r.keys == std::vector<std::string>{"first", "second"});
    CHECK(r.resets == 1);
  }
  // Without answers from Redis for three read timeouts, a reader is no longer live.
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  CHECK_FALSE(readers[0].broadcast->live());
}

TEST_CASE("a broadcast that loses Redis is not live and resets when it is back", "[integration]") {
  auto options = *redis::Options::FromUrl("redis://127.0.0.1:" + std::to_string(testing::FreePort()));
  options.max_attempts = 1;
  int resets = 0;
  Broadcast b(
      options, {"test.nothing"}, [](const Event&) {}, [&] { ++resets; }, std::chrono::milliseconds(100));
  CHECK_FALSE(b.PollOnce().ok());
  CHECK_FALSE(b.live());
  CHECK(resets == 0);  // Not positioned, so nothing to reset yet; it resets before its first read.
}

}  // namespace stadtportal::events

namespace stadtportal::events {

TEST_CASE("published events are pruned after their retention; a stream is never trimmed past an unread entry",
          "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  const std::string topic = "test." + RandomName();
  const std::string quiet = "test." + RandomName();  // No consumer group.
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                for (int i = 0; i < 3; ++i) PublishJson(tx, topic, "k", {{"n", i}});
                PublishJson(tx, quiet, "k", {{"n", 9}});
                return absl::OkStatus();
              })
              .ok());
  Relay relay(pool, redis, "testsvc");
  REQUIRE(*relay.RelayOnce() == 4);
  // A group that read one entry without acknowledging it, and has not read the others.
  REQUIRE(redis.Command({"XGROUP", "CREATE", StreamOf(topic), "g", "0"}).ok());
  REQUIRE(redis.Command({"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", StreamOf(topic), ">"}).ok());
  auto length = [&](const std::string& t) { return redis.Command({"XLEN", StreamOf(t)})->integer(); };

  EventRetention retention;
  retention.age = std::chrono::hours(24 * 30);
  retention.clock = app::FixedClock(absl::Now() + absl::Hours(24 * 29));
  auto pruned = relay.PruneOnce(retention);
  REQUIRE(pruned.ok());
  CHECK(pruned->outbox_rows == 0);  // Not yet 30 days old.
  CHECK(length(topic) == 3);

  retention.clock = app::FixedClock(absl::Now() + absl::Hours(24 * 31));
  // A topic whose stream is gone (Redis emptied) is no reason to fail.
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, "test." + RandomName(), "k", {{"n", 0}});
                tx.exec("UPDATE outbox SET published_at = now() WHERE published_at IS NULL");
                return absl::OkStatus();
              })
              .ok());
  pruned = relay.PruneOnce(retention);
  INFO(pruned.status().message());
  REQUIRE(pruned.ok());
  CHECK(pruned->outbox_rows == 5);
  CHECK(Scalar(pool, "SELECT count(*) FROM outbox") == 0);
  CHECK(length(quiet) == 0);
  CHECK(length(topic) == 3);  // The pending entry and the two unread after it stay.
  CHECK(pruned->held_back == 1);

  // Once the group has read and acknowledged everything, the next prune trims the rest
  // (the outbox no longer names the topic: it remembered the stream it held back).
  auto read = redis.Command({"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", StreamOf(topic), "0"});
  REQUIRE(read.ok());
  auto rest = redis.Command({"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", StreamOf(topic), ">"});
  REQUIRE(rest.ok());
  auto range = redis.Command({"XRANGE", StreamOf(topic), "-", "+"});
  for (size_t i = 0; i < range->size(); ++i) {
    const auto* e = range->raw()->element[i]->element[0];
    REQUIRE(redis.Command({"XACK", StreamOf(topic), "g", std::string(e->str, e->len)}).ok());
  }
  // A relay started again (a restart, another replica) knows the stream it held back.
  Relay restarted(pool, redis, "testsvc");
  pruned = restarted.PruneOnce(retention);
  REQUIRE(pruned.ok());
  CHECK(pruned->held_back == 0);
  CHECK(pruned->stream_entries == 3);
  CHECK(length(topic) == 0);
  (void)redis.Command({"DEL", StreamOf(topic), StreamOf(quiet)});
}

}  // namespace stadtportal::events

namespace stadtportal::events {

TEST_CASE("an erasure deletes the published outbox rows that name the person, and only those", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  const std::string anna = "0b6c1f0e-1111-4222-8333-944455556666";
  const std::string mail = "anna@example.org";
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, "t.a", anna, {{"n", 1}});                                      // by key
                PublishJson(tx, "t.b", "s-1", {{"party_id", anna}});                           // a member
                PublishJson(tx, "t.c", "s-2", {{"to", {{"list", {mail, "x@example.org"}}}}});  // nested in an array
                PublishJson(tx, "t.d", "s-3", {{"note", "anna@example.org was here"}});        // a part of a text: kept
                PublishJson(tx, "t.e", "s-4", {{"party_id", anna + "0"}});                     // another id: kept
                PublishJson(tx, "t.f", "s-5", {{"party_id", "someone-else"}});
                tx.exec("UPDATE outbox SET published_at = now()");
                PublishJson(tx, "t.g", anna, {{"party_id", anna}});  // not yet published: kept
                return absl::OkStatus();
              })
              .ok());
  int64_t erased = 0;
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                erased = ErasePublished(tx, {anna, mail, ""});
                return absl::OkStatus();
              })
              .ok());
  CHECK(erased == 3);
  CHECK(Scalar(pool, "SELECT count(*) FROM outbox WHERE topic IN ('t.a', 't.b', 't.c')") == 0);
  CHECK(Scalar(pool, "SELECT count(*) FROM outbox WHERE topic IN ('t.d', 't.e', 't.f', 't.g')") == 4);
  // Again: nothing left to erase.
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                erased = ErasePublished(tx, {anna, mail});
                return absl::OkStatus();
              })
              .ok());
  CHECK(erased == 0);
}

}  // namespace stadtportal::events

namespace stadtportal::events {

TEST_CASE("an event carries the trace of the change that published it to its handler", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  const std::string topic = "test." + auth::RandomToken(6);
  const std::string traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  {
    log::RequestScope request("req-1", traced);
    REQUIRE(pool.Transact([&](pqxx::work& tx) {
                  PublishJson(tx, topic, "traced", {{"n", 1}});
                  return absl::OkStatus();
                })
                .ok());
  }
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, topic, "untraced", {{"n", 2}});
                return absl::OkStatus();
              })
              .ok());
  Relay relay(pool, redis, "testsvc");
  REQUIRE(*relay.RelayOnce() == 2);

  std::map<std::string, std::pair<std::string, std::string>> seen;  // key → (event's, bound while handling)
  Consumer consumer(pool, *redis::Options::FromUrl(testing::RedisUrl()), "tracegroup", {topic},
                    [&](pqxx::work&, const Event& e) {
                      seen[e.key] = {e.traceparent, log::CurrentTraceparent()};
                      return absl::OkStatus();
                    });
  REQUIRE(*consumer.PollOnce(std::chrono::milliseconds(50)) == 2);
  CHECK(seen["traced"].first == traced);
  CHECK(seen["traced"].second == traced);
  // Without a trace, the handler gets a fresh one of its own.
  CHECK(seen["untraced"].first.empty());
  CHECK(log::NormalizeTraceparent(seen["untraced"].second) == seen["untraced"].second);
  CHECK_FALSE(seen["untraced"].second.empty());
  CHECK(log::CurrentTraceparent().empty());  // Unbound again after the handler.
}

}  // namespace stadtportal::events

namespace stadtportal::events {

TEST_CASE("the relay measures its outbox backlog", "[integration]") {
  testing::TestSchema schema(kFiles, "events");
  auto& pool = schema.pool();
  redis::Client redis(*redis::Options::FromUrl(testing::RedisUrl()));
  Relay relay(pool, redis, "testsvc");
  auto empty = relay.MeasureBacklog();
  REQUIRE(empty.ok());
  CHECK(empty->pending == 0);
  CHECK(empty->oldest_seconds == 0);

  const std::string topic = "test." + auth::RandomToken(6);
  REQUIRE(pool.Transact([&](pqxx::work& tx) {
                PublishJson(tx, topic, "a", {{"n", 1}});
                PublishJson(tx, topic, "b", {{"n", 2}});
                tx.exec("UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE key = 'a'");
                return absl::OkStatus();
              })
              .ok());
  auto waiting = relay.MeasureBacklog();
  REQUIRE(waiting.ok());
  CHECK(waiting->pending == 2);
  CHECK(waiting->oldest_seconds >= 90);
  CHECK(waiting->oldest_seconds < 120);
  CHECK(metrics::Serialize().find("stadtportal_events_outbox_backlog{kind=\"pending\"} 2") != std::string::npos);

  REQUIRE(*relay.RelayOnce() == 2);
  CHECK(relay.MeasureBacklog()->pending == 0);
  (void)redis.Command({"DEL", StreamOf(topic)});
}

}  // namespace stadtportal::events

#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "libs/app/clock.h"
#include "libs/app/periodic.h"
#include "libs/db/pool.h"
#include "libs/events/topics.h"
#include "libs/redis/client.h"

// Events between services: a service writes an event into its own `outbox` table in the
// transaction that makes the change; a relay moves it to the Redis Stream of its topic;
// consumers read with a consumer group per service and apply each event in a
// transaction that records its id in their `inbox` table. At-least-once transport,
// exactly-once effect. Payloads are the messages of proto/stadtportal/events/v1 as JSON;
// each message has its topic (libs/events/topics.h). Both tables are created by each
// service's migrations:
//   outbox (id bigint identity PK, topic, key, payload jsonb, created_at, published_at)
//   inbox  (event_id text PK, topic, received_at)
namespace stadtportal::events {

struct Event {
  std::string id;     // "<source service>-<outbox id>", unique across the platform.
  std::string topic;  // "payment.succeeded"
  std::string key;    // What the event is about (a submission id…).
  nlohmann::json payload;
  // The W3C traceparent of the change that published it ("" when it had none).
  std::string traceparent = "";
};

// The Redis Stream of a topic.
std::string StreamOf(const std::string& topic);

// An event message as JSON: proto field names, fields at their default value included.
nlohmann::json ToJson(const google::protobuf::Message& message);
// Reads an event's JSON into `message`, ignoring fields it does not know (a newer
// publisher's additions); INVALID_ARGUMENT when the JSON is not such a message.
absl::Status FromJson(const nlohmann::json& json, google::protobuf::Message* message);

// The untyped form, for tests and tools that replay stored events.
void PublishJson(pqxx::work& tx, const std::string& topic, const std::string& key, const nlohmann::json& payload);

// The time of the caller's transaction (PostgreSQL's now()): the `occurred_at` of an
// event about a change the transaction makes, the same time its rows carry.
google::protobuf::Timestamp TransactionTime(pqxx::work& tx);

// The erasure of a person (party.erasure_requested): deletes this service's published
// outbox rows whose key is one of `values`, or whose payload holds one of them as a whole
// string value anywhere (an id, an e-mail address — never a part of a longer string).
// Unpublished rows stay: their consumers still need them, and the next erasure run or the
// event window ends them. Returns how many rows were deleted.
int64_t ErasePublished(pqxx::work& tx, const std::vector<std::string>& values);

// Writes an event in the caller's transaction, under the topic of its message type.
template <class M>
void Publish(pqxx::work& tx, const std::string& key, const M& payload) {
  PublishJson(tx, std::string(Topic<M>::kName), key, ToJson(payload));
}

// A message as a consumer receives it, under its topic (for tests of handlers).
template <class M>
Event EventOf(const std::string& id, const std::string& key, const M& message) {
  return {id, std::string(Topic<M>::kName), key, ToJson(message)};
}

// A consumer's handlers, one per topic, each receiving its topic's message:
//   Handlers h;
//   h.On<v1::PaymentSucceeded>([](pqxx::work& tx, const v1::PaymentSucceeded& e) { ... });
//   Consumer consumer(pool, redis, "submission", h);
// An event whose payload is not its topic's message is refused with INVALID_ARGUMENT
// (the consumer logs it and does not retry it).
class Handlers {
 public:
  template <class M>
  Handlers& On(std::function<absl::Status(pqxx::work&, const M&)> handle) {
    return On<M>(std::function<absl::Status(pqxx::work&, const Event&, const M&)>(
        [handle = std::move(handle)](pqxx::work& tx, const Event&, const M& message) { return handle(tx, message); }));
  }
  // The same for a handler that also reads the envelope (the event id names the publisher).
  template <class M>
  Handlers& On(std::function<absl::Status(pqxx::work&, const Event&, const M&)> handle) {
    const std::string topic(Topic<M>::kName);
    topics_.push_back(topic);
    by_topic_[topic] = [handle = std::move(handle)](pqxx::work& tx, const Event& e) -> absl::Status {
      M message;
      if (auto s = FromJson(e.payload, &message); !s.ok()) return s;
      return handle(tx, e, message);
    };
    return *this;
  }
  const std::vector<std::string>& Topics() const { return topics_; }
  absl::Status operator()(pqxx::work& tx, const Event& e) const;

 private:
  std::vector<std::string> topics_;
  std::map<std::string, std::function<absl::Status(pqxx::work&, const Event&)>> by_topic_;
};

// How long published events are kept, in the outbox and in the streams.
struct EventRetention {
  std::chrono::hours age{24 * 30};
  // How often the relay prunes.
  std::chrono::milliseconds every{std::chrono::hours(1)};
  app::Clock clock = app::SystemClock();
  // STADTPORTAL_EVENT_RETENTION_DAYS (default 30, 1–3650), STADTPORTAL_RETENTION_INTERVAL_MS,
  // STADTPORTAL_CLOCK_FILE.
  static EventRetention FromEnv(const config::Env& env);
};

// What one prune did.
struct Pruned {
  int64_t outbox_rows = 0;     // Deleted from this service's outbox.
  int64_t stream_entries = 0;  // Trimmed from the streams.
  int64_t held_back = 0;       // Streams trimmed less far: a group has not read or acknowledged an older entry.
};

// Moves unpublished outbox rows to their streams, oldest first. Safe on every replica
// (rows are claimed with SKIP LOCKED); a row published twice after a crash is deduped by
// consumers through its id. With an EventRetention it also prunes, every `every`.
class Relay {
 public:
  Relay(db::Pool& pool, redis::Client& redis, std::string source,
        std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  Relay(db::Pool& pool, redis::Client& redis, std::string source, EventRetention retention,
        std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  void Start() { job_.Start(); }
  void Stop() { job_.Stop(); }
  // One batch; returns how many events were published.
  absl::StatusOr<int> RelayOnce(int limit = 100);
  // The outbox's unpublished events: how many, and the age of the oldest in seconds (0
  // when none), also set as stadtportal_events_outbox_backlog{kind="pending" |
  // "oldest_pending_seconds"} (the job measures every 5 s).
  struct Backlog {
    int64_t pending = 0;
    double oldest_seconds = 0;
  };
  absl::StatusOr<Backlog> MeasureBacklog();
  // Deletes the outbox rows published before the clock's now minus the retention's age
  // (SKIP LOCKED batches) and trims the streams of the outbox's topics to the same age with
  // XTRIM MINID — never past an entry a consumer group has not yet read (its
  // last-delivered id) or not acknowledged (its oldest pending entry): such a stream is
  // trimmed only up to that entry and counted as held back, so no consumer loses an event;
  // it is remembered in Redis (sp:events:held-back:<source>) and trimmed again by later
  // prunes, also after a restart, when its outbox rows are long gone.
  absl::StatusOr<Pruned> PruneOnce(const EventRetention& retention);

 private:
  db::Pool& pool_;
  redis::Client& redis_;
  std::string source_;
  std::optional<EventRetention> retention_;
  std::chrono::steady_clock::time_point last_prune_{};
  std::chrono::steady_clock::time_point last_measure_{};
  app::Periodic job_;
};

// Runs `handler` for each event of `topics` in a transaction of `pool` that also records
// the event in `inbox`: an event seen before is acknowledged without running the handler
// again. A failing handler leaves the event pending; it is claimed again after
// `retry_after` (by this or another replica). An event refused as INVALID_ARGUMENT (an id
// that is not the relay's "<source>-<outbox id>", checked before the inbox; not its topic's
// message; a value its handler or the database refuses) can never succeed: it is logged as
// an error, counted (stadtportal_events_rejected_total) and acknowledged; it stays in the
// publisher's outbox.
class Consumer {
 public:
  using Handler = std::function<absl::Status(pqxx::work&, const Event&)>;
  Consumer(db::Pool& pool, redis::Options redis, std::string group, std::vector<std::string> topics, Handler handler,
           std::chrono::milliseconds retry_after = std::chrono::seconds(30));
  Consumer(db::Pool& pool, redis::Options redis, std::string group, Handlers handlers,
           std::chrono::milliseconds retry_after = std::chrono::seconds(30))
      : Consumer(pool, std::move(redis), std::move(group), handlers.Topics(), Handler(handlers), retry_after) {}
  void Start() { job_.Start(); }
  void Stop() { job_.Stop(); }
  // Reads and handles one batch (waiting up to `block` for new events); returns how
  // many events were handled.
  absl::StatusOr<int> PollOnce(std::chrono::milliseconds block = std::chrono::milliseconds(500));

 private:
  absl::Status EnsureGroups();
  absl::Status Handle(const std::string& stream, const redisReply* message);

  db::Pool& pool_;
  std::unique_ptr<redis::Client> redis_;  // Its own connection: reads block.
  std::string group_;
  std::string consumer_;
  std::vector<std::string> topics_;
  Handler handler_;
  std::chrono::milliseconds retry_after_;
  bool groups_ready_ = false;
  app::Periodic job_;
};

// Every event of `topics`, on every replica that listens: a reader without a consumer
// group, inbox or acknowledgement, for caches that drop what an event makes stale (the
// gateway's catalogue). It starts at the streams' ends; `on_reset` runs before the
// first read and again after a lost connection, also one the client re-established
// within a call (events may have been missed: drop everything). `live()` holds while the reader heard from Redis within
// three read timeouts: a cache serves only then.
class Broadcast {
 public:
  using OnEvent = std::function<void(const Event&)>;
  Broadcast(redis::Options redis, std::vector<std::string> topics, OnEvent on_event, std::function<void()> on_reset,
            std::chrono::milliseconds block = std::chrono::milliseconds(1000));
  void Start() { job_.Start(); }
  void Stop() { job_.Stop(); }
  bool live() const;
  // Reads once (waiting up to the read timeout); returns how many events it passed on.
  absl::StatusOr<int> PollOnce();

 private:
  std::unique_ptr<redis::Client> redis_;  // Its own connection: reads block.
  std::vector<std::string> topics_;
  OnEvent on_event_;
  std::function<void()> on_reset_;
  std::chrono::milliseconds block_;
  std::vector<std::string> last_ids_;  // Per topic; empty until positioned.
  std::atomic<int64_t> heard_ns_{0};   // steady_clock of the last answer from Redis.
  app::Periodic job_;
};

}  // namespace stadtportal::events

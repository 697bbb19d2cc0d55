#include "libs/events/events.h"

#include <unistd.h>

#include <algorithm>
#include <regex>
#include <set>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/app/retention.h"
#include "libs/auth/tokens.h"
#include "libs/db/row.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::events {
namespace {

std::string Field(const redisReply* fields, const std::string& name) {
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (std::string(fields->element[i]->str, fields->element[i]->len) == name) {
      return std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
    }
  }
  return "";
}

// A reader's own connection (its reads block): one, with a command timeout beyond the
// longest read; connects() then counts its reconnects.
std::unique_ptr<redis::Client> ReaderClient(redis::Options redis, std::chrono::milliseconds block) {
  redis.command_timeout = std::max(redis.command_timeout, block + std::chrono::milliseconds(1000));
  redis.connections = 1;
  return std::make_unique<redis::Client>(redis);
}

// A stream entry id "<ms>-<seq>".
struct StreamId {
  int64_t ms = 0;
  int64_t seq = 0;
  static std::optional<StreamId> Parse(const std::string& text) {
    StreamId id;
    const auto dash = text.find('-');
    if (dash == std::string::npos || !absl::SimpleAtoi(text.substr(0, dash), &id.ms) ||
        !absl::SimpleAtoi(text.substr(dash + 1), &id.seq)) {
      return std::nullopt;
    }
    return id;
  }
  std::string Text() const { return absl::StrCat(ms, "-", seq); }
  bool operator<(const StreamId& o) const { return std::tie(ms, seq) < std::tie(o.ms, o.seq); }
};

std::string Str(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? std::string(r->str, r->len)
                                                                                          : "";
}

// How far `stream` may be trimmed: `limit`, or less far when a consumer group has not
// read (after its last-delivered id) or not acknowledged (its oldest pending id) an older
// entry; the second member says whether such an entry exists (the group held it back).
absl::StatusOr<std::pair<StreamId, bool>> SafeMinId(redis::Client& redis, const std::string& stream, StreamId limit) {
  auto groups = redis.Command({"XINFO", "GROUPS", stream});
  if (!groups.ok() && absl::StrContains(groups.status().message(), "no such key")) {
    return std::make_pair(StreamId{}, false);  // No stream (yet, or any more): nothing to trim.
  }
  if (!groups.ok()) return groups.status();
  StreamId minid = limit;
  bool held = false;
  const redisReply* list = groups->raw();
  for (size_t g = 0; list->type == REDIS_REPLY_ARRAY && g < list->elements; ++g) {
    const redisReply* info = list->element[g];
    std::string name, last_delivered;
    long long pending = 0;
    for (size_t i = 0; info->type == REDIS_REPLY_ARRAY && i + 1 < info->elements; i += 2) {
      const std::string key = Str(info->element[i]);
      if (key == "name") name = Str(info->element[i + 1]);
      if (key == "last-delivered-id") last_delivered = Str(info->element[i + 1]);
      if (key == "pending" && info->element[i + 1]->type == REDIS_REPLY_INTEGER)
        pending = info->element[i + 1]->integer;
    }
    std::vector<StreamId> bounds;
    // Entries after the last delivered one are unread by the group.
    if (auto id = StreamId::Parse(last_delivered)) bounds.push_back({id->ms, id->seq + 1});
    if (pending > 0) {
      auto summary = redis.Command({"XPENDING", stream, name});
      if (!summary.ok()) return summary.status();
      const redisReply* s = summary->raw();
      if (s->type == REDIS_REPLY_ARRAY && s->elements >= 2) {
        if (auto id = StreamId::Parse(Str(s->element[1]))) bounds.push_back(*id);
      }
    }
    for (const auto& b : bounds) minid = std::min(minid, b);
  }
  if (minid < limit) {
    // Held back only if an entry older than the limit stays.
    auto older = redis.Command({"XRANGE", stream, minid.Text(), "(" + limit.Text(), "COUNT", "1"});
    if (!older.ok()) return older.status();
    held = older->type() == REDIS_REPLY_ARRAY && older->size() > 0;
  }
  return std::make_pair(minid, held);
}

prometheus::Family<prometheus::Counter>& Rejected() {
  static auto& family =
      metrics::CounterFamily("stadtportal_events_rejected_total",
                             "Events a consumer refused: a malformed id, or a payload it can never apply.");
  return family;
}

}  // namespace

nlohmann::json ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, o);
  return nlohmann::json::parse(out);
}

absl::Status FromJson(const nlohmann::json& json, google::protobuf::Message* message) {
  if (!json.is_object()) return absl::InvalidArgumentError("event payload is not a JSON object");
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  auto s = google::protobuf::util::JsonStringToMessage(json.dump(), message, o);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("event payload is not a ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

absl::Status Handlers::operator()(pqxx::work& tx, const Event& e) const {
  auto it = by_topic_.find(e.topic);
  if (it == by_topic_.end()) return absl::InvalidArgumentError("no handler for the event's topic");
  return it->second(tx, e);
}

std::string StreamOf(const std::string& topic) { return "sp:events:" + topic; }

void PublishJson(pqxx::work& tx, const std::string& topic, const std::string& key, const nlohmann::json& payload) {
  tx.exec_params("INSERT INTO outbox (topic, key, payload, traceparent) VALUES ($1, $2, $3::jsonb, NULLIF($4, ''))",
                 topic, key, payload.dump(), log::NormalizeTraceparent(log::CurrentTraceparent()));
}

int64_t ErasePublished(pqxx::work& tx, const std::vector<std::string>& values) {
  int64_t erased = 0;
  for (const auto& value : values) {
    if (value.empty()) continue;
    erased += tx.exec_params(
                    "DELETE FROM outbox WHERE published_at IS NOT NULL AND (key = $1 OR "
                    "jsonb_path_exists(payload, '$.** ? (@ == $v)', jsonb_build_object('v', $1::text)))",
                    value)
                  .affected_rows();
  }
  return erased;
}

google::protobuf::Timestamp TransactionTime(pqxx::work& tx) {
  return db::Micros(tx.exec1("SELECT (extract(epoch FROM now()) * 1000000)::bigint AS now_us")["now_us"]);
}

Relay::Relay(db::Pool& pool, redis::Client& redis, std::string source, std::chrono::milliseconds interval)
    : pool_(pool), redis_(redis), source_(std::move(source)), job_("event-relay", interval, [this] {
        auto n = RelayOnce();
        if (!n.ok()) log::Warn("event relay failed", {{"error", std::string(n.status().message())}});
        if (std::chrono::steady_clock::now() - last_measure_ >= std::chrono::seconds(5)) {
          last_measure_ = std::chrono::steady_clock::now();
          if (auto b = MeasureBacklog(); !b.ok()) {
            log::Warn("event backlog not measured", {{"error", std::string(b.status().message())}});
          }
        }
        if (!retention_.has_value() || std::chrono::steady_clock::now() - last_prune_ < retention_->every) return;
        last_prune_ = std::chrono::steady_clock::now();
        auto pruned = PruneOnce(*retention_);
        if (!pruned.ok()) {
          app::CountRetention("event", "failed");
          log::Warn("event pruning failed", {{"error", std::string(pruned.status().message())}});
        }
      }) {}

Relay::Relay(db::Pool& pool, redis::Client& redis, std::string source, EventRetention retention,
             std::chrono::milliseconds interval)
    : Relay(pool, redis, std::move(source), interval) {
  retention_ = std::move(retention);
}

EventRetention EventRetention::FromEnv(const config::Env& env) {
  EventRetention r;
  r.age = std::chrono::hours(24 * env.Int("STADTPORTAL_EVENT_RETENTION_DAYS", 30, 1, 3650));
  r.every = app::RetentionInterval(env);
  r.clock = app::ClockFromEnv(env);
  return r;
}

absl::StatusOr<Pruned> Relay::PruneOnce(const EventRetention& retention) {
  auto now = retention.clock();
  if (!now.ok()) return now.status();
  const absl::Time cutoff = *now - absl::FromChrono(retention.age);
  Pruned out;
  // The streams of this service's topics: those in its outbox, those it prunes now, and
  // those held back last time.
  // The streams held back by earlier prunes (of this or another replica, before a
  // restart too): kept in Redis beside the streams, whose outbox rows may be gone.
  const std::string held_key = "sp:events:held-back:" + source_;
  std::set<std::string> topics;
  auto held = redis_.Command({"SMEMBERS", held_key});
  if (!held.ok()) return held.status();
  for (size_t i = 0; i < held->size(); ++i) {
    const auto* member = held->raw()->element[i];
    topics.insert(std::string(member->str, member->len));
  }
  auto listed = pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::set<std::string>> {
    std::set<std::string> found;
    for (const auto& row : tx.exec("SELECT DISTINCT topic FROM outbox")) found.insert(row[0].as<std::string>());
    return found;
  });
  if (!listed.ok()) return listed.status();
  topics.insert(listed->begin(), listed->end());
  // The outbox, in batches (each its own short transaction).
  const std::string at = absl::FormatTime(absl::RFC3339_full, cutoff, absl::UTCTimeZone());
  for (int batch = 0; batch < 100; ++batch) {
    auto deleted = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
      auto rows = tx.exec_params(
          "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at < $1::timestamptz"
          " ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING topic",
          at);
      for (const auto& row : rows) topics.insert(row[0].as<std::string>());
      return static_cast<int64_t>(rows.size());
    });
    if (!deleted.ok()) return deleted.status();
    app::CountRetention("event", "deleted", *deleted);
    out.outbox_rows += *deleted;
    if (*deleted < 1000) break;
  }
  const StreamId limit{absl::ToUnixMillis(cutoff), 0};
  for (const auto& topic : topics) {
    const std::string stream = StreamOf(topic);
    auto minid = SafeMinId(redis_, stream, limit);
    if (!minid.ok()) return minid.status();
    if (minid->second) {
      ++out.held_back;
      app::CountRetention("event_stream", "held_back");
      log::Warn("event stream kept past its retention: a consumer group has older unread or pending entries",
                {{"stream", stream}});
      if (auto s = redis_.Command({"SADD", held_key, topic}); !s.ok()) return s.status();
    } else if (auto s = redis_.Command({"SREM", held_key, topic}); !s.ok()) {
      return s.status();
    }
    if (minid->first.ms <= 0) continue;
    auto trimmed = redis_.Command({"XTRIM", stream, "MINID", minid->first.Text()});
    if (!trimmed.ok()) return trimmed.status();
    app::CountRetention("event_stream", "deleted", trimmed->integer());
    out.stream_entries += trimmed->integer();
  }
  return out;
}

namespace {

prometheus::Family<prometheus::Gauge>& OutboxBacklog() {
  static auto& family = metrics::GaugeFamily(
      "stadtportal_events_outbox_backlog",
      "Events not yet moved from this service's outbox to their streams: kind pending (how many) and "
      "oldest_pending_seconds.");
  return family;
}

}  // namespace

absl::StatusOr<Relay::Backlog> Relay::MeasureBacklog() {
  auto b = pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<Backlog> {
    const auto row = tx.exec1(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
        " FROM outbox WHERE published_at IS NULL");
    return Backlog{row["pending"].as<int64_t>(), row["oldest"].as<double>()};
  });
  if (!b.ok()) return b.status();
  OutboxBacklog().Add({{"kind", "pending"}}).Set(static_cast<double>(b->pending));
  OutboxBacklog().Add({{"kind", "oldest_pending_seconds"}}).Set(b->oldest_seconds);
  return b;
}

absl::StatusOr<int> Relay::RelayOnce(int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    auto rows = tx.exec_params(
        "SELECT id, topic, key, payload::text AS payload, coalesce(traceparent, '') AS traceparent FROM outbox"
        " WHERE published_at IS NULL ORDER BY id LIMIT $1"
        " FOR UPDATE SKIP LOCKED",
        limit);
    int published = 0;
    for (const auto& r : rows) {
      const auto outbox_id = r["id"].as<int64_t>();
      const std::string topic = r["topic"].as<std::string>();
      std::vector<std::string> entry = {"XADD",
                                        StreamOf(topic),
                                        "*",
                                        "id",
                                        absl::StrCat(source_, "-", outbox_id),
                                        "topic",
                                        topic,
                                        "key",
                                        r["key"].as<std::string>(),
                                        "payload",
                                        r["payload"].as<std::string>()};
      if (const std::string tp = r["traceparent"].as<std::string>(); !tp.empty()) {
        entry.push_back("traceparent");
        entry.push_back(tp);
      }
      auto added = redis_.Command(entry);
      if (!added.ok()) return added.status();  // Rolls back: the rest goes next time.
      tx.exec_params("UPDATE outbox SET published_at = now() WHERE id = $1", outbox_id);
      ++published;
    }
    return published;
  });
}

Consumer::Consumer(db::Pool& pool, redis::Options redis, std::string group, std::vector<std::string> topics,
                   Handler handler, std::chrono::milliseconds retry_after)
    : pool_(pool),
      redis_(ReaderClient(std::move(redis), std::chrono::milliseconds(1000))),
      group_(std::move(group)),
      consumer_(absl::StrCat(group_, "-", getpid(), "-", auth::RandomToken(4))),
      topics_(std::move(topics)),
      handler_(std::move(handler)),
      retry_after_(retry_after),
      job_("event-consumer", std::chrono::milliseconds(20), [this] {
        auto n = PollOnce();
        if (!n.ok()) {
          log::Warn("event consumer failed", {{"group", group_}, {"error", std::string(n.status().message())}});
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
      }) {
  Rejected().Add({{"group", group_}});
}

absl::Status Consumer::EnsureGroups() {
  if (groups_ready_) return absl::OkStatus();
  for (const auto& t : topics_) {
    auto r = redis_->Command({"XGROUP", "CREATE", StreamOf(t), group_, "0", "MKSTREAM"});
    if (!r.ok() && r.status().message().find("BUSYGROUP") == absl::string_view::npos) return r.status();
  }
  groups_ready_ = true;
  return absl::OkStatus();
}

absl::Status Consumer::Handle(const std::string& stream, const redisReply* message) {
  const std::string entry(message->element[0]->str, message->element[0]->len);
  const redisReply* fields = message->element[1];
  if (fields == nullptr || fields->type != REDIS_REPLY_ARRAY) {
    // Deleted from the stream while pending: nothing left to handle.
    return redis_->Command({"XACK", stream, group_, entry}).status();
  }
  Event e{Field(fields, "id"), Field(fields, "topic"), Field(fields, "key"),
          nlohmann::json::parse(Field(fields, "payload"), nullptr, false),
          log::NormalizeTraceparent(Field(fields, "traceparent"))};
  // The handler continues the trace of the change that published the event (a fresh one
  // for an event without any), so its log lines, calls and events carry the same trace id.
  log::RequestScope scope(log::IsValidRequestId(e.id) ? e.id : log::NewRequestId(),
                          e.traceparent.empty() ? log::NewTraceparent() : e.traceparent);
  // The id is the relay's "<source>-<outbox id>": any other (an empty one…) would stand in
  // the inbox for every later event with the same id, which would then never be handled.
  static const std::regex kId("^[a-z]+-[0-9]+$");
  absl::Status s = absl::InvalidArgumentError("event id is not \"<source>-<outbox id>\"");
  if (std::regex_match(e.id, kId)) {
    s = pool_.Transact([&](pqxx::work& tx) -> absl::Status {
      auto fresh = tx.exec_params(
          "INSERT INTO inbox (event_id, topic) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id", e.id,
          e.topic);
      if (fresh.empty()) return absl::OkStatus();  // Seen before: the effect is there.
      return handler_(tx, e);
    });
  }
  if (absl::IsInvalidArgument(s)) {
    // Can never succeed: kept in the publisher's outbox for an operator, not retried.
    log::Error("event refused",
               {{"group", group_}, {"event", e.id}, {"topic", e.topic}, {"error", std::string(s.message())}});
    Rejected().Add({{"group", group_}}).Increment();
    return redis_->Command({"XACK", stream, group_, entry}).status();
  }
  if (!s.ok()) {
    log::Warn("event not handled; it will be retried",
              {{"group", group_}, {"event", e.id}, {"topic", e.topic}, {"error", std::string(s.message())}});
    return s;
  }
  log::Debug("event handled", {{"group", group_}, {"event", e.id}, {"topic", e.topic}});
  return redis_->Command({"XACK", stream, group_, entry}).status();
}

absl::StatusOr<int> Consumer::PollOnce(std::chrono::milliseconds block) {
  if (auto s = EnsureGroups(); !s.ok()) return s;
  int handled = 0;
  // First events another consumer took but did not acknowledge in time (crash, error).
  for (const auto& t : topics_) {
    auto claimed = redis_->Command(
        {"XAUTOCLAIM", StreamOf(t), group_, consumer_, std::to_string(retry_after_.count()), "0", "COUNT", "32"});
    if (!claimed.ok()) return claimed.status();
    const redisReply* messages = claimed->raw()->element[1];
    for (size_t i = 0; i < messages->elements; ++i) {
      if (Handle(StreamOf(t), messages->element[i]).ok()) ++handled;
    }
  }
  std::vector<std::string> args = {
      "XREADGROUP", "GROUP", group_, consumer_, "COUNT", "32", "BLOCK", std::to_string(block.count()), "STREAMS"};
  for (const auto& t : topics_) args.push_back(StreamOf(t));
  for (size_t i = 0; i < topics_.size(); ++i) args.push_back(">");
  auto read = redis_->Command(args);
  if (!read.ok()) return read.status();
  if (read->is_nil()) return handled;
  for (size_t s = 0; s < read->size(); ++s) {
    const redisReply* stream = read->raw()->element[s];
    const std::string name(stream->element[0]->str, stream->element[0]->len);
    for (size_t i = 0; i < stream->element[1]->elements; ++i) {
      if (Handle(name, stream->element[1]->element[i]).ok()) ++handled;
    }
  }
  return handled;
}

Broadcast::Broadcast(redis::Options redis, std::vector<std::string> topics, OnEvent on_event,
                     std::function<void()> on_reset, std::chrono::milliseconds block)
    : redis_(ReaderClient(std::move(redis), block)),
      topics_(std::move(topics)),
      on_event_(std::move(on_event)),
      on_reset_(std::move(on_reset)),
      block_(block),
      job_("event-broadcast", std::chrono::milliseconds(1), [this] {
        if (auto n = PollOnce(); !n.ok()) {
          log::Warn("event broadcast failed", {{"error", std::string(n.status().message())}});
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
      }) {}

bool Broadcast::live() const {
  const int64_t heard = heard_ns_.load();
  return heard != 0 && std::chrono::steady_clock::now().time_since_epoch().count() - heard <
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(3 * block_).count();
}

absl::StatusOr<int> Broadcast::PollOnce() {
  const auto fail = [this](absl::Status s) {
    last_ids_.clear();  // Positioned anew (and reset) once Redis answers again.
    heard_ns_ = 0;
    return s;
  };
  if (last_ids_.empty()) {
    // The newest entry of each stream now: events after it are read, none before is missed.
    std::vector<std::string> ids;
    for (const auto& t : topics_) {
      auto newest = redis_->Command({"XREVRANGE", StreamOf(t), "+", "-", "COUNT", "1"});
      if (!newest.ok()) return fail(newest.status());
      const redisReply* r = newest->raw();
      ids.push_back(r->type == REDIS_REPLY_ARRAY && r->elements == 1
                        ? std::string(r->element[0]->element[0]->str, r->element[0]->element[0]->len)
                        : "0-0");
    }
    on_reset_();
    last_ids_ = std::move(ids);
  }
  const uint64_t connects = redis_->connects();
  std::vector<std::string> args = {"XREAD", "COUNT", "100", "BLOCK", std::to_string(block_.count()), "STREAMS"};
  for (const auto& t : topics_) args.push_back(StreamOf(t));
  for (const auto& id : last_ids_) args.push_back(id);
  auto read = redis_->Command(args);
  if (!read.ok()) return fail(read.status());
  if (redis_->connects() != connects) {
    // Reconnected within the call: the server may have lost entries (a restart without
    // persistence, a failover). Drop everything now and position anew.
    on_reset_();
    last_ids_.clear();
    return 0;
  }
  heard_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
  int passed = 0;
  if (read->is_nil()) return passed;
  for (size_t s = 0; s < read->size(); ++s) {
    const redisReply* stream = read->raw()->element[s];
    const std::string name(stream->element[0]->str, stream->element[0]->len);
    const auto topic = std::find_if(topics_.begin(), topics_.end(), [&](const auto& t) { return StreamOf(t) == name; });
    if (topic == topics_.end()) continue;
    for (size_t i = 0; i < stream->element[1]->elements; ++i) {
      const redisReply* message = stream->element[1]->element[i];
      last_ids_[topic - topics_.begin()] = std::string(message->element[0]->str, message->element[0]->len);
      const redisReply* fields = message->element[1];
      if (fields == nullptr || fields->type != REDIS_REPLY_ARRAY) continue;
      on_event_(Event{Field(fields, "id"), Field(fields, "topic"), Field(fields, "key"),
                      nlohmann::json::parse(Field(fields, "payload"), nullptr, false)});
      ++passed;
    }
  }
  return passed;
}

}  // namespace stadtportal::events

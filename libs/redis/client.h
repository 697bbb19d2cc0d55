#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

#include "absl/status/statusor.h"
#include "libs/config/config.h"

namespace stadtportal::redis {

struct Options {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // Empty: no AUTH.
  int db = 0;
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds command_timeout{1000};
  // Reconnect attempts per command, with exponential backoff between them.
  int max_attempts = 4;
  std::chrono::milliseconds initial_backoff{50};
  std::chrono::milliseconds max_backoff{1000};
  // Connections opened (when first needed) for commands from many threads at once.
  int connections = 4;

  // Parses redis://[:password@]host[:port][/db].
  static absl::StatusOr<Options> FromUrl(const std::string& url);
  // STADTPORTAL_REDIS_URL (or _FILE).
  static Options FromEnv(const config::Env& env);
};

// One reply, owned (freed with freeReplyObject).
class Reply {
 public:
  explicit Reply(redisReply* r) : r_(r) {}
  int type() const { return r_->type; }
  bool is_nil() const { return r_->type == REDIS_REPLY_NIL; }
  long long integer() const { return r_->integer; }
  std::string str() const { return std::string(r_->str, r_->len); }
  size_t size() const { return r_->elements; }
  const redisReply* raw() const { return r_.get(); }

 private:
  struct Free {
    void operator()(redisReply* r) const { freeReplyObject(r); }
  };
  std::unique_ptr<redisReply, Free> r_;
};

// Redis connections (up to Options::connections, opened when first needed) that
// reconnect with exponential backoff when the server went away (restart, failover).
// Thread-safe: a command takes a free connection, or waits for one; one command never
// depends on another having run on the same connection (no MULTI across calls).
// A command whose connection broke is sent again on the new connection, so commands
// must be safe to repeat (SET, EXPIRE, XADD with explicit ids, Lua scripts guarded by
// keys) — callers of INCR-like commands accept at-least-once.
class Client {
 public:
  explicit Client(Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs one command. Redis error replies become FAILED_PRECONDITION; an unreachable
  // server UNAVAILABLE after the last attempt.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& args);
  absl::Status Ping();
  // Connections made so far (reconnects included): a reader that keeps a position in a
  // stream across calls learns that the server may have been replaced in between.
  uint64_t connects() const { return connects_.load(); }

 private:
  struct Connection {
    std::mutex mu;
    redisContext* ctx = nullptr;
  };
  absl::Status ConnectLocked(Connection& c);
  Options options_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> connects_{0};
};

}  // namespace stadtportal::redis

#include "libs/redis/client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"

namespace stadtportal::redis {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Sends one command with binary-safe arguments; nullptr when the connection broke.
redisReply* Send(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
}

}  // namespace

absl::StatusOr<Options> Options::FromUrl(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) return absl::InvalidArgumentError("expected redis://[:password@]host[:port][/db]");
  Options o;
  std::string rest = url.substr(scheme.size());
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    std::string auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = auth.find(':');
    o.password = colon == std::string::npos ? auth : auth.substr(colon + 1);
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty() && (!absl::SimpleAtoi(db, &o.db) || o.db < 0 || o.db > 15)) {
      return absl::InvalidArgumentError("database number must be 0-15");
    }
  }
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &o.port) || o.port <= 0 || o.port > 65535) {
      return absl::InvalidArgumentError("port must be 1-65535");
    }
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return absl::InvalidArgumentError("host missing");
  o.host = rest;
  return o;
}

Options Options::FromEnv(const config::Env& env) {
  auto o = FromUrl(env.Secret("STADTPORTAL_REDIS_URL"));
  if (!o.ok()) throw config::Error(absl::StrCat("STADTPORTAL_REDIS_URL: ", o.status().message()));
  return *o;
}

Client::Client(Options options) : options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.connections); ++i) connections_.push_back(std::make_unique<Connection>());
}

Client::~Client() {
  for (auto& c : connections_) {
    if (c->ctx != nullptr) redisFree(c->ctx);
  }
}

absl::Status Client::ConnectLocked(Connection& conn) {
  if (conn.ctx != nullptr) {
    redisFree(conn.ctx);
    conn.ctx = nullptr;
  }
  redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port, ToTimeval(options_.connect_timeout));
  if (c == nullptr) return absl::UnavailableError("redis: out of memory");
  if (c->err != 0) {
    std::string err = c->errstr;
    redisFree(c);
    return absl::UnavailableError(
        absl::StrCat("redis: cannot connect to ", options_.host, ":", options_.port, ": ", err));
  }
  redisSetTimeout(c, ToTimeval(options_.command_timeout));
  redisEnableKeepAlive(c);
  auto run = [&](const std::vector<std::string>& args) -> absl::Status {
    auto* r = Send(c, args);
    if (r == nullptr) return absl::UnavailableError("redis: connection lost during handshake");
    Reply reply(r);
    if (reply.type() == REDIS_REPLY_ERROR) return absl::PermissionDeniedError("redis: handshake refused");
    return absl::OkStatus();
  };
  if (!options_.password.empty()) {
    if (auto s = run({"AUTH", options_.password}); !s.ok()) {
      redisFree(c);
      return s;
    }
  }
  if (options_.db != 0) {
    if (auto s = run({"SELECT", std::to_string(options_.db)}); !s.ok()) {
      redisFree(c);
      return s;
    }
  }
  conn.ctx = c;
  ++connects_;
  return absl::OkStatus();
}

absl::StatusOr<Reply> Client::Command(const std::vector<std::string>& args) {
  // A free connection, starting at the next in turn; if all are busy, wait for that one.
  const size_t n = connections_.size();
  const size_t first = next_.fetch_add(1, std::memory_order_relaxed) % n;
  std::unique_lock<std::mutex> lock;
  Connection* conn = nullptr;
  for (size_t i = 0; i < n && conn == nullptr; ++i) {
    Connection& candidate = *connections_[(first + i) % n];
    std::unique_lock<std::mutex> attempt(candidate.mu, std::try_to_lock);
    if (attempt.owns_lock()) {
      lock = std::move(attempt);
      conn = &candidate;
    }
  }
  if (conn == nullptr) {
    conn = connections_[first].get();
    lock = std::unique_lock<std::mutex>(conn->mu);
  }
  redisContext*& ctx = conn->ctx;
  absl::Status last = absl::UnavailableError("redis: not connected");
  auto backoff = options_.initial_backoff;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    if (ctx == nullptr || ctx->err != 0) {
      last = ConnectLocked(*conn);
      if (!last.ok()) continue;
      if (attempt > 0) log::Info("redis reconnected", {{"host", options_.host}, {"port", options_.port}});
    }
    auto* r = Send(ctx, args);
    if (r == nullptr) {
      last = absl::UnavailableError(absl::StrCat("redis: ", ctx->errstr));
      redisFree(ctx);
      ctx = nullptr;
      continue;
    }
    Reply reply(r);
    if (reply.type() == REDIS_REPLY_ERROR) return absl::FailedPreconditionError(absl::StrCat("redis: ", reply.str()));
    return reply;
  }
  log::Warn("redis unavailable",
            {{"host", options_.host}, {"port", options_.port}, {"error", std::string(last.message())}});
  return last;
}

absl::Status Client::Ping() {
  auto r = Command({"PING"});
  return r.ok() ? absl::OkStatus() : r.status();
}

}  // namespace stadtportal::redis

#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/config/config.h"

namespace stadtportal::db {

struct PoolOptions {
  // libpq connection URI, e.g. postgresql://stadtportal@127.0.0.1:5432/stadtportal
  std::string url;
  // The service's own schema; set as search_path on every connection.
  std::string schema;
  int size = 8;
  std::chrono::milliseconds acquire_timeout{2000};

  // STADTPORTAL_DATABASE_URL (or _FILE), STADTPORTAL_DB_POOL_SIZE, STADTPORTAL_DB_ACQUIRE_TIMEOUT_MS.
  static PoolOptions FromEnv(const config::Env& env, std::string schema);
};

// How many connections are lent out and how many wait idle (tests, gauges).
struct PoolStats {
  int in_use = 0;
  int idle = 0;
};

// Prepares the named statements a store uses; runs once on every new connection.
using Prepare = std::function<void(pqxx::connection&)>;

// A small pool of PostgreSQL connections handed out as RAII leases, one thread per
// connection at a time. Connections open lazily and are replaced when broken.
class Pool {
 public:
  Pool(PoolOptions options, Prepare prepare);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<pqxx::connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() { return *conn_; }
    pqxx::connection* operator->() { return conn_.get(); }
    // Drops the connection instead of returning it (after a connection error).
    void Discard() { conn_.reset(); }

   private:
    Pool* pool_;
    std::unique_ptr<pqxx::connection> conn_;
  };

  absl::StatusOr<Lease> Acquire();

  // Runs `fn` in one transaction and commits if it returns OK. libpqxx exceptions are
  // mapped here, once for every store: unique violation → ALREADY_EXISTS, foreign-key
  // violation → FAILED_PRECONDITION, check violation → INVALID_ARGUMENT, serialization
  // failure → ABORTED, lost connection → UNAVAILABLE, anything else → INTERNAL. `fn` makes
  // no call across the network (libs/db/network_guard.h).
  absl::Status Transact(const std::function<absl::Status(pqxx::work&)>& fn);

  // The same for a transaction that produces a value: `fn` returns absl::StatusOr<T>,
  // and so does Transact. The one idiom for every store method that writes, or reads
  // with more than one statement (they see one snapshot):
  //   return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<Submission> { ... });
  template <typename Fn, typename R = std::invoke_result_t<Fn&, pqxx::work&>,
            typename = std::enable_if_t<!std::is_same_v<R, absl::Status>>>
  R Transact(Fn&& fn) {
    return Produce<pqxx::work, R>(fn, [this](const auto& f) { return Transact(f); });
  }

  // A store method that reads with ONE statement runs it without a transaction block
  // (PostgreSQL runs a lone statement as its own transaction, so it sees one snapshot
  // too): no BEGIN and COMMIT round trips. Errors are mapped as in Transact. `fn` only
  // reads and runs exactly one statement; anything else uses Transact:
  //   return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<Submission> { ... });
  absl::Status Read(const std::function<absl::Status(pqxx::nontransaction&)>& fn);
  template <typename Fn, typename R = std::invoke_result_t<Fn&, pqxx::nontransaction&>,
            typename = std::enable_if_t<!std::is_same_v<R, absl::Status>>>
  R Read(Fn&& fn) {
    return Produce<pqxx::nontransaction, R>(fn, [this](const auto& f) { return Read(f); });
  }

  // SELECT 1 on a pooled connection.
  absl::Status Ping();

  const PoolOptions& options() const { return options_; }
  PoolStats stats() const;

 private:
  // Runs `fn` (returning absl::StatusOr<T>) through `run` (Transact or Read on an
  // absl::Status function) and hands its value out.
  template <typename Tx, typename R, typename Fn, typename Run>
  static R Produce(Fn& fn, Run run) {
    std::optional<typename R::value_type> out;
    absl::Status s = run(std::function<absl::Status(Tx&)>([&](Tx& tx) -> absl::Status {
      R r = fn(tx);
      if (!r.ok()) return r.status();
      out.emplace(*std::move(r));
      return absl::OkStatus();
    }));
    if (!s.ok()) return s;
    return *std::move(out);
  }
  // Transact and Read: `fn` on a leased connection, libpqxx exceptions mapped.
  template <typename Tx>
  absl::Status Run(const std::function<absl::Status(Tx&)>& fn);
  void Return(std::unique_ptr<pqxx::connection> conn);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Open();

  PoolOptions options_;
  Prepare prepare_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  int outstanding_ = 0;  // Leases handed out plus connections being opened; idle ones not counted.
};

}  // namespace stadtportal::db

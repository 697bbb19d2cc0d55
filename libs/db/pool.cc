#include "libs/db/pool.h"

#include "absl/strings/str_cat.h"
#include "libs/db/network_guard.h"
#include "libs/log/log.h"

namespace stadtportal::db {

PoolOptions PoolOptions::FromEnv(const config::Env& env, std::string schema) {
  PoolOptions o;
  o.url = env.Secret("STADTPORTAL_DATABASE_URL");
  o.schema = std::move(schema);
  o.size = static_cast<int>(env.Int("STADTPORTAL_DB_POOL_SIZE", o.size, 1, 256));
  o.acquire_timeout = env.Millis("STADTPORTAL_DB_ACQUIRE_TIMEOUT_MS", o.acquire_timeout);
  return o;
}

Pool::Pool(PoolOptions options, Prepare prepare) : options_(std::move(options)), prepare_(std::move(prepare)) {}

Pool::~Pool() = default;

Pool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Return(std::move(conn_));
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> Pool::Open() {
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.url);
    {
      pqxx::nontransaction tx(*conn);
      tx.exec("SET search_path TO " + tx.quote_name(options_.schema));
    }
    if (prepare_) prepare_(*conn);
    return conn;
  } catch (const std::exception& e) {
    // The message may contain the host but never the password (libpq omits it).
    return absl::UnavailableError(absl::StrCat("database connection failed: ", e.what()));
  }
}

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  const bool got =
      cv_.wait_for(lock, options_.acquire_timeout, [&] { return !idle_.empty() || outstanding_ < options_.size; });
  if (!got) return absl::UnavailableError("database pool exhausted");
  ++outstanding_;
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  lock.unlock();
  auto conn = Open();
  if (!conn.ok()) {
    Return(nullptr);
    return conn.status();
  }
  return Lease(this, std::move(*conn));
}

void Pool::Return(std::unique_ptr<pqxx::connection> conn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --outstanding_;
    if (conn != nullptr && conn->is_open()) idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

absl::Status Pool::Transact(const std::function<absl::Status(pqxx::work&)>& fn) { return Run<pqxx::work>(fn); }

absl::Status Pool::Read(const std::function<absl::Status(pqxx::nontransaction&)>& fn) {
  return Run<pqxx::nontransaction>(fn);
}

template <typename Tx>
absl::Status Pool::Run(const std::function<absl::Status(Tx&)>& fn) {
  auto lease = Acquire();
  if (!lease.ok()) return lease.status();
  TransactionScope scope;
  try {
    Tx tx(**lease);
    absl::Status s = fn(tx);
    if (s.ok()) tx.commit();
    return s;
  } catch (const pqxx::unique_violation& e) {
    return absl::AlreadyExistsError("already exists");
  } catch (const pqxx::foreign_key_violation& e) {
    return absl::FailedPreconditionError("refers to a record that does not exist");
  } catch (const pqxx::check_violation& e) {
    return absl::InvalidArgumentError("violates a constraint");
  } catch (const pqxx::data_exception& e) {
    // A value the database cannot take (bad encoding, a NUL character, out of range, not of
    // its type): the caller's, and no retry makes it succeed.
    return absl::InvalidArgumentError("a value the database cannot take");
  } catch (const pqxx::serialization_failure& e) {
    return absl::AbortedError("concurrent update, retry");
  } catch (const pqxx::broken_connection& e) {
    lease->Discard();
    return absl::UnavailableError("database connection lost");
  } catch (const pqxx::in_doubt_error& e) {
    lease->Discard();
    return absl::UnavailableError("database connection lost during commit; outcome unknown");
  } catch (const std::exception& e) {
    if (!(*lease)->is_open()) lease->Discard();
    return absl::InternalError(absl::StrCat("database error: ", e.what()));
  }
}

PoolStats Pool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return PoolStats{outstanding_, static_cast<int>(idle_.size())};
}

absl::Status Pool::Ping() {
  return Read([](pqxx::nontransaction& tx) {
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

}  // namespace stadtportal::db

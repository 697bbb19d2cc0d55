#include "libs/db/network_guard.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "libs/log/log.h"
#include "libs/metrics/metrics.h"

namespace stadtportal::db {
namespace {

thread_local int depth = 0;
std::atomic<bool> strict{false};

prometheus::Family<prometheus::Counter>& Violations() {
  static auto& family =
      metrics::CounterFamily("stadtportal_network_calls_in_transaction_total",
                             "Calls across the network made while a database transaction was open, by kind.");
  return family;
}

}  // namespace

bool InTransaction() { return depth > 0; }

void SetStrictTransactions(bool on) { strict.store(on); }

void ExportGuardMetrics() {
  for (const char* call : {"grpc", "http", "smtp"}) Violations().Add({{"call", call}});
}

void ExpectNoTransaction(std::string_view call) {
  if (depth == 0) return;
  log::Error("network call inside a database transaction", {{"call", std::string(call)}});
  Violations().Add({{"call", std::string(call)}}).Increment();
  if (strict.load()) std::abort();
}

TransactionScope::TransactionScope() { ++depth; }
TransactionScope::~TransactionScope() { --depth; }

}  // namespace stadtportal::db

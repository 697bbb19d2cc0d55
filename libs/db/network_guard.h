#pragma once

#include <string_view>

// Calls across the network (gRPC, HTTP, SMTP) are never made inside a database
// transaction: a slow peer would hold a pooled connection and the transaction's row locks
// for as long as it takes to answer (docs/adr/0018-event-contracts-and-delivery.md).
// Pool::Transact marks the thread that runs a transaction; every client that goes out
// calls ExpectNoTransaction first. A violation is logged and counted
// (stadtportal_network_calls_in_transaction_total); in strict mode — tests, and
// STADTPORTAL_STRICT_TRANSACTIONS=true — it ends the process, so no test passes with one.
namespace stadtportal::db {

// Whether the calling thread runs inside Pool::Transact.
bool InTransaction();

// `call` names the outgoing call for the log ("grpc", "http", "smtp").
void ExpectNoTransaction(std::string_view call);

void SetStrictTransactions(bool strict);

// Exports the violations counter at 0 for every kind of call, so that the alert on it
// sees the series from the start (app::Main calls it).
void ExportGuardMetrics();

// Marks the calling thread as inside a transaction for its lifetime (Pool::Transact).
class TransactionScope {
 public:
  TransactionScope();
  ~TransactionScope();
  TransactionScope(const TransactionScope&) = delete;
  TransactionScope& operator=(const TransactionScope&) = delete;
};

}  // namespace stadtportal::db

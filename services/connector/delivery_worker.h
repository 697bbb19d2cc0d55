#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/app/periodic.h"
#include "services/connector/options.h"
#include "services/connector/store.h"
#include "stadtportal/submission/v1/submission.pb.h"

// Push deliveries to the departments' systems. A worker claims one due delivery with a
// lease in a short transaction, sends it with no transaction and no pooled connection
// held, and records the outcome in another short transaction, once per claim (a request
// that could outlast the lease is not started). A worker that dies between the two leaves
// a lease that ends, and the delivery is sent again under the same Idempotency-Key (the
// submission id), so the department applies it once. The snapshot is fetched from
// submission once and kept with the delivery for every retry.
namespace stadtportal::connector {

// The submission's snapshot with its files (submission.GetDeliverySnapshot).
using SnapshotSource = std::function<absl::StatusOr<submission::v1::DeliverySnapshot>(
    const std::string& tenant, const std::string& submission_id)>;

class DeliveryWorker {
 public:
  DeliveryWorker(std::shared_ptr<Store> store, Options options, SnapshotSource snapshots);
  ~DeliveryWorker() { Stop(); }

  // Starts options.parallel threads, each delivering one claimed delivery at a time.
  void Start();
  // Waits for the deliveries in flight.
  void Stop();

  // Claims up to `limit` due deliveries and delivers them one after another on the calling
  // thread; returns how many were tried.
  int DeliverDue(int limit);
  // Refreshes the gauges (dead letters, oldest undelivered).
  void UpdateGauges();

 private:
  // `claimed_at`: when the claim of its lease began.
  void Deliver(const Due& due, std::chrono::steady_clock::time_point claimed_at);
  absl::StatusOr<submission::v1::DeliverySnapshot> Snapshot(const Due& due);

  std::shared_ptr<Store> store_;
  Options options_;
  SnapshotSource snapshots_;
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<app::Periodic>> threads_;
};

}  // namespace stadtportal::connector

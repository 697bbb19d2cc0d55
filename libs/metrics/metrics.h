#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace stadtportal::metrics {

// The process-wide registry every component registers its metrics with.
std::shared_ptr<prometheus::Registry> Registry();

// Text exposition format (version 0.0.4) of the registry.
std::string Serialize();

// Sets stadtportal_build_info{service,version} 1; called once from main.
void RegisterBuildInfo(const std::string& service, const std::string& version);

// Serves /metrics of the registry on host:port (the admin port).
class AdminServer {
 public:
  AdminServer(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_ = 0;
};

// A counter, gauge or histogram family in the process registry, registered once per name (keep it
// in a function-local static). Label values must come from a bounded set, never ids.
prometheus::Family<prometheus::Counter>& CounterFamily(const std::string& name, const std::string& help);
prometheus::Family<prometheus::Gauge>& GaugeFamily(const std::string& name, const std::string& help);
prometheus::Family<prometheus::Histogram>& HistogramFamily(const std::string& name, const std::string& help);

// Latency buckets in seconds, shared by gRPC and HTTP request histograms.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// RED metrics of one request-serving surface (gRPC server or HTTP gateway):
// <prefix>_started_total, <prefix>_handled_total{…,code}, <prefix>_handling_seconds,
// <prefix>_in_flight. Label values must come from a bounded set (route templates,
// method names, status codes) — never ids.
class Red {
 public:
  explicit Red(const std::string& prefix, const std::string& help_subject);
  // `operation` identifies the method or route template.
  void Started(const std::string& operation);
  void Handled(const std::string& operation, const std::string& code, std::chrono::duration<double> elapsed);

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  prometheus::Gauge& in_flight_;
};

}  // namespace stadtportal::metrics

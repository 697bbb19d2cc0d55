#include "libs/metrics/metrics.h"

#include <sstream>

#include <prometheus/text_serializer.h>

namespace stadtportal::metrics {

std::shared_ptr<prometheus::Registry> Registry() {
  static auto registry = std::make_shared<prometheus::Registry>();
  return registry;
}

std::string Serialize() {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  serializer.Serialize(out, Registry()->Collect());
  return out.str();
}

void RegisterBuildInfo(const std::string& service, const std::string& version) {
  prometheus::BuildGauge()
      .Name("stadtportal_build_info")
      .Help("Constant 1, labelled with the running service and its version.")
      .Register(*Registry())
      .Add({{"service", service}, {"version", version}})
      .Set(1);
}

AdminServer::AdminServer(const std::string& host, uint16_t port) {
  exposer_ = std::make_unique<prometheus::Exposer>(host + ":" + std::to_string(port));
  exposer_->RegisterCollectable(Registry());
  auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? port : static_cast<uint16_t>(ports.front());
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                   0.25,  0.5,    1,     2.5,  5,     10};
  return kBuckets;
}

prometheus::Family<prometheus::Counter>& CounterFamily(const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*Registry());
}

prometheus::Family<prometheus::Gauge>& GaugeFamily(const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(*Registry());
}

prometheus::Family<prometheus::Histogram>& HistogramFamily(const std::string& name, const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(*Registry());
}

Red::Red(const std::string& prefix, const std::string& help_subject)
    : started_(prometheus::BuildCounter()
                   .Name(prefix + "_started_total")
                   .Help(help_subject + " started.")
                   .Register(*Registry())),
      handled_(prometheus::BuildCounter()
                   .Name(prefix + "_handled_total")
                   .Help(help_subject + " completed, by result code.")
                   .Register(*Registry())),
      seconds_(prometheus::BuildHistogram()
                   .Name(prefix + "_handling_seconds")
                   .Help("Time to handle " + help_subject + ", in seconds.")
                   .Register(*Registry())),
      in_flight_(prometheus::BuildGauge()
                     .Name(prefix + "_in_flight")
                     .Help(help_subject + " being handled right now.")
                     .Register(*Registry())
                     .Add({})) {}

void Red::Started(const std::string& operation) {
  started_.Add({{"operation", operation}}).Increment();
  in_flight_.Increment();
}

void Red::Handled(const std::string& operation, const std::string& code, std::chrono::duration<double> elapsed) {
  in_flight_.Decrement();
  handled_.Add({{"operation", operation}, {"code", code}}).Increment();
  seconds_.Add({{"operation", operation}}, LatencyBuckets()).Observe(elapsed.count());
}

}  // namespace stadtportal::metrics

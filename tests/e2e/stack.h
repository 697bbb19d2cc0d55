#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

#include "libs/testing/testing.h"

namespace stadtportal::e2e {

inline const std::vector<std::string> kServices = {"identity", "accounts",  "submission",
                                                   "payment",  "messaging", "connector"};

// One running process of a service, on its own gRPC and admin ports.
struct Instance {
  std::string service;
  uint16_t grpc_port;
  uint16_t admin_port;
  std::unique_ptr<testing::Process> process;
};

// The whole platform as processes on loopback: six services (some with several
// replicas) against the test PostgreSQL and Redis, and the gateway in front.
class Stack {
 public:
  explicit Stack(std::map<std::string, int> replicas = {});
  ~Stack();

  // Starts (again) the given instance on its ports.
  void Start(Instance& i);
  std::vector<Instance>& instances() { return instances_; }
  Instance& instance(const std::string& service, int replica = 0);
  uint16_t gateway_port() const { return gateway_port_; }
  testing::Process& gateway() { return *gateway_; }
  httplib::Client Http() const;
  // Waits until GET /readyz answers 200.
  bool WaitReady(std::chrono::milliseconds timeout);
  std::map<std::string, std::string> BaseEnv() const;

 private:
  std::string dir_;
  std::vector<Instance> instances_;
  uint16_t gateway_port_ = 0;
  std::unique_ptr<testing::Process> gateway_;
};

std::string BinaryPath(const std::string& service);

}  // namespace stadtportal::e2e

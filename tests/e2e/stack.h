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
  // `gateway_env` overrides the gateway's environment (e.g. rate limits).
  explicit Stack(std::map<std::string, int> replicas = {}, std::map<std::string, std::string> gateway_env = {});
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
  // The Maildir the stack's SMTP server (aiosmtpd) delivers into.
  const std::string& maildir() const { return maildir_; }
  // The bodies of all mails to `to` delivered so far.
  std::vector<std::string> MailsTo(const std::string& to) const;
  // All log output of all processes so far.
  std::string AllLogs() const;

 private:
  std::string dir_;
  std::string maildir_;
  std::string signing_key_;
  std::string public_keys_;
  uint16_t smtp_port_ = 0;
  std::unique_ptr<testing::Process> smtp_;
  std::vector<Instance> instances_;
  uint16_t gateway_port_ = 0;
  std::unique_ptr<testing::Process> gateway_;
};

std::string BinaryPath(const std::string& service);

}  // namespace stadtportal::e2e

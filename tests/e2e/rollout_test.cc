// Zero-downtime rollouts: every service runs as two replicas (local processes) behind
// the gateway; each replica is stopped with SIGTERM and started again, one at a time,
// while a steady load of reads and writes runs through the gateway.
#include <atomic>
#include <csignal>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "libs/grpc/client.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Tally {
  std::mutex mu;
  int64_t total = 0, ok = 0, client_errors = 0, server_errors = 0, no_answer = 0;
  std::vector<std::string> failures;  // the first few, for the report

  void Add(const std::string& what, const httplib::Result& r) {
    std::lock_guard<std::mutex> lock(mu);
    ++total;
    const int status = Status(r);
    if (status >= 200 && status < 300) {
      ++ok;
      return;
    }
    if (status == 0) {
      ++no_answer;
    } else if (status >= 500) {
      ++server_errors;
    } else {
      ++client_errors;
    }
    if (failures.size() < 10) failures.push_back(what + " → " + std::to_string(status) + " " + (r ? r->body : ""));
  }
};

}  // namespace

TEST_CASE("rolling restart of every service, one replica at a time, under steady load: no 5xx", "[e2e]") {
  std::map<std::string, int> replicas;
  for (const auto& s : kServices) replicas[s] = 2;
  Stack stack(replicas, {{"STADTPORTAL_RATE_LIMIT_DEFAULT", "1000000/60"}});
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();

  // Something of everything to read: a session, a payment, a back-office client.
  const json anna = Onboard(stack, c, UniqueEmail());
  const json admin = Admin(stack, c);
  const json submission = SubmitCertificate(c, anna);
  const std::string payment =
      StartPayment(c, anna, submission["id"], "rollout-" + submission["id"].get<std::string>())["id"];
  const httplib::Headers backoffice = BearerToken(BackofficeToken(c, admin, "stadtkaemmerei", "Stadtkämmerei"));

  // The steady load: four clients, each going round every service's routes.
  Tally tally;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      auto http = stack.Http();
      http.set_read_timeout(10s);
      for (int n = 0; !stop; ++n) {
        switch (n % 6) {
          case 0: tally.Add("GET /services", http.Get("/api/v1/services")); break;
          case 1: tally.Add("GET /me", http.Get("/api/v1/me", Bearer(anna))); break;
          case 2: tally.Add("GET /mailbox/threads", http.Get("/api/v1/mailbox/threads", Bearer(anna))); break;
          case 3:
            tally.Add("GET /payments/{id}", http.Get(("/api/v1/payments/" + payment).c_str(), Bearer(anna)));
            break;
          case 4:
            tally.Add("GET /backoffice/submissions", http.Get("/api/v1/backoffice/submissions", backoffice));
            break;
          case 5:
            tally.Add("POST /services/{id}/drafts", http.Post("/api/v1/services/civil-registry-certificate/drafts",
                                                              Bearer(anna), "{}", "application/json"));
            break;
        }
      }
    });
  }

  std::this_thread::sleep_for(1s);
  for (const auto& service : kServices) {
    for (int r = 0; r < 2; ++r) {
      auto& replica = stack.instance(service, r);
      replica.process->Signal(SIGTERM);
      INFO(service << " replica " << r << "\n" << replica.process->Output());
      REQUIRE(replica.process->Wait(20s) == 0);
      stack.Start(replica);
      const std::string target = "ipv4:127.0.0.1:" + std::to_string(replica.grpc_port);
      REQUIRE(testing::Eventually([&] { return grpcx::CheckHealth(grpcx::MakeChannel(target), "", 500ms).ok(); }, 20s));
      // As a readiness probe with minReadySeconds: the gateway reconnects within 1 s.
      std::this_thread::sleep_for(1500ms);
    }
  }
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : clients) t.join();

  std::ostringstream summary;
  summary << "rolling restart of 12 replicas under load: " << tally.total << " requests, " << tally.ok << " 2xx, "
          << tally.client_errors << " 4xx, " << tally.server_errors << " 5xx, " << tally.no_answer << " without answer";
  std::cout << summary.str() << std::endl;
  testing::Report(summary.str());
  for (const auto& f : tally.failures) std::cout << "  " << f << std::endl;
  CHECK(tally.total > 1000);
  CHECK(tally.server_errors == 0);
  CHECK(tally.no_answer == 0);
  CHECK(tally.ok == tally.total);
}

}  // namespace stadtportal::e2e

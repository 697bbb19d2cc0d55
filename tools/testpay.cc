// stadtportal-testpay: a simulated payment provider with a hosted checkout, for local
// runs and tests (docs/providers/testpay.md). State is in memory.
//
// Environment: STADTPORTAL_TESTPAY_PORT (7070), STADTPORTAL_TESTPAY_API_KEY,
// STADTPORTAL_TESTPAY_WEBHOOK_SECRET, STADTPORTAL_TESTPAY_PUBLIC_URL (base of checkout
// pages; default http://127.0.0.1:<port>), STADTPORTAL_LISTEN_HOST (127.0.0.1).
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "libs/app/app.h"
#include "libs/auth/tokens.h"
#include "libs/grpc/server.h"
#include "libs/http/server.h"
#include "libs/log/log.h"
#include "services/payment/testpay.h"

namespace {

using namespace stadtportal;
using nlohmann::json;

struct Checkout {
  std::string id;
  int64_t amount_minor = 0;
  std::string currency, reference, description, return_url, webhook_url;
  std::string state = "open";  // open, succeeded, declined, cancelled
  int64_t refunded_minor = 0;
};

struct Webhooks {
  std::string mode = "deliver";  // deliver, drop, delay
  int64_t delay_ms = 0;
};

class Testpay {
 public:
  Testpay(std::string api_key, std::string secret, std::string public_url)
      : api_key_(std::move(api_key)), secret_(std::move(secret)), public_url_(std::move(public_url)) {}

  void Install(httplib::Server& s) {
    s.Post("/v1/checkouts", [this](const httplib::Request& req, httplib::Response& res) { Create(req, res); });
    s.Get(R"(/v1/checkouts/([A-Za-z0-9_]+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = checkouts_.find(req.matches[1]);
      if (it == checkouts_.end()) return Error(res, 404, "no such checkout");
      res.set_content(View(it->second).dump(), "application/json");
    });
    s.Post(R"(/v1/checkouts/([A-Za-z0-9_]+)/refunds)",
           [this](const httplib::Request& req, httplib::Response& res) { Refund(req, res); });
    s.Post("/control/webhooks", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      auto j = json::parse(req.body, nullptr, false);
      if (j.is_discarded() || !j.contains("mode")) return Error(res, 400, "mode required");
      std::lock_guard<std::mutex> lock(mu_);
      webhooks_.mode = j["mode"];
      webhooks_.delay_ms = j.value("delay_ms", 0);
      res.set_content(json{{"mode", webhooks_.mode}, {"delay_ms", webhooks_.delay_ms}}.dump(), "application/json");
    });
    s.Get(R"(/pay/([A-Za-z0-9_]+))", [this](const httplib::Request& req, httplib::Response& res) { Page(req, res); });
    s.Post(R"(/pay/([A-Za-z0-9_]+)/(success|decline|cancel))",
           [this](const httplib::Request& req, httplib::Response& res) { Complete(req, res); });
  }

 private:
  static void Error(httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(json{{"error", message}}.dump(), "application/json");
  }

  bool Authorized(const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") == "Bearer " + api_key_) return true;
    Error(res, 401, "invalid api key");
    return false;
  }

  json View(const Checkout& c) {
    return {{"id", c.id},
            {"state", c.state},
            {"amount_minor", c.amount_minor},
            {"currency", c.currency},
            {"reference", c.reference},
            {"refunded_minor", c.refunded_minor},
            {"checkout_url", public_url_ + "/pay/" + c.id}};
  }

  void Create(const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    auto j = json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.contains("amount_minor") || !j["amount_minor"].is_number_integer() ||
        j["amount_minor"].get<int64_t>() <= 0 || !j.contains("currency") || !j.contains("return_url") ||
        !j.contains("webhook_url")) {
      return Error(res, 400, "amount_minor, currency, return_url and webhook_url are required");
    }
    std::lock_guard<std::mutex> lock(mu_);
    // Idempotent by the merchant's order id, like real providers' idempotency keys.
    const std::string order = j.value("merchant_order_id", "");
    if (!order.empty() && by_order_.count(order)) {
      res.status = 201;
      res.set_content(View(checkouts_.at(by_order_.at(order))).dump(), "application/json");
      return;
    }
    Checkout c;
    c.id = "chk_" + auth::RandomToken(12);
    for (char& ch : c.id) {
      if (ch == '-') ch = '_';
    }
    c.amount_minor = j["amount_minor"];
    c.currency = j["currency"];
    c.reference = j.value("reference", "");
    c.description = j.value("description", "");
    c.return_url = j["return_url"];
    c.webhook_url = j["webhook_url"];
    checkouts_[c.id] = c;
    if (!order.empty()) by_order_[order] = c.id;
    res.status = 201;
    res.set_content(View(c).dump(), "application/json");
  }

  void Page(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = checkouts_.find(req.matches[1]);
    if (it == checkouts_.end()) return Error(res, 404, "no such checkout");
    const auto& c = it->second;
    std::string buttons;
    for (const char* outcome : {"success", "decline", "cancel"}) {
      buttons += absl::StrCat("<form method=\"post\" action=\"/pay/", c.id, "/", outcome, "\"><button>", outcome,
                              "</button></form>");
    }
    res.set_content(absl::StrCat("<!doctype html><title>testpay</title><h1>testpay</h1><p>", c.amount_minor / 100, ".",
                                 c.amount_minor % 100 < 10 ? "0" : "", c.amount_minor % 100, " ", c.currency, " · ",
                                 c.state, "</p>", c.state == "open" ? buttons : ""),
                    "text/html; charset=utf-8");
  }

  void Complete(const httplib::Request& req, httplib::Response& res) {
    const std::string outcome = req.matches[2];
    std::string return_url, webhook_url, body;
    Webhooks mode;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = checkouts_.find(req.matches[1]);
      if (it == checkouts_.end()) return Error(res, 404, "no such checkout");
      auto& c = it->second;
      if (c.state != "open") return Error(res, 409, "checkout already " + c.state);
      c.state = outcome == "success" ? "succeeded" : outcome == "decline" ? "declined" : "cancelled";
      return_url = c.return_url;
      webhook_url = c.webhook_url;
      body =
          json{{"id", "evt_" + auth::RandomToken(12)}, {"type", "checkout." + c.state}, {"checkout_id", c.id}}.dump();
      mode = webhooks_;
    }
    if (mode.mode != "drop") {
      std::thread([this, webhook_url, body, mode] { Notify(webhook_url, body, mode.delay_ms); }).detach();
    }
    res.status = 303;
    res.set_header("Location", return_url);
  }

  void Notify(const std::string& url, const std::string& body, int64_t delay_ms) {
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    const auto scheme_end = url.find("://");
    const auto path_start = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    httplib::Client c(url.substr(0, path_start));
    c.set_connection_timeout(std::chrono::seconds(5));
    const int64_t t =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    httplib::Headers h = {
        {"Testpay-Signature", absl::StrCat("t=", t, ",v1=", payment::TestpaySignature(secret_, t, body))}};
    auto r = c.Post(url.substr(path_start).c_str(), h, body, "application/json");
    log::Info("webhook sent", {{"url", url}, {"status", r ? r->status : 0}});
  }

  void Refund(const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    auto j = json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.contains("amount_minor") || !j["amount_minor"].is_number_integer()) {
      return Error(res, 400, "amount_minor required");
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = checkouts_.find(req.matches[1]);
    if (it == checkouts_.end()) return Error(res, 404, "no such checkout");
    auto& c = it->second;
    const int64_t amount = j["amount_minor"];
    // Idempotency: the same refund_id answers the refund made for it, and makes no other.
    const std::string key =
        j.contains("refund_id") && j["refund_id"].is_string() ? j["refund_id"].get<std::string>() : "";
    if (!key.empty()) {
      auto done = refunds_.find(it->first + "/" + key);
      if (done != refunds_.end()) {
        res.status = 201;
        return res.set_content(done->second, "application/json");
      }
    }
    if (c.state != "succeeded") return Error(res, 409, "not paid");
    if (amount <= 0 || c.refunded_minor + amount > c.amount_minor) return Error(res, 422, "amount exceeds the payment");
    c.refunded_minor += amount;
    res.status = 201;
    const std::string answer = json{{"id", "rfd_" + auth::RandomToken(12)}, {"state", "succeeded"}}.dump();
    if (!key.empty()) refunds_[it->first + "/" + key] = answer;
    res.set_content(answer, "application/json");
  }

  std::string api_key_, secret_, public_url_;
  std::mutex mu_;
  std::map<std::string, Checkout> checkouts_;
  std::map<std::string, std::string> by_order_;
  std::map<std::string, std::string> refunds_;  // "<checkout>/<refund_id>" → the answer.
  Webhooks webhooks_;
};

}  // namespace

int main() {
  return app::Main("testpay", [](const config::Env& env) -> int {
    const uint16_t port = env.Port("STADTPORTAL_TESTPAY_PORT", 7070);
    const std::string host = env.String("STADTPORTAL_LISTEN_HOST", "127.0.0.1");
    Testpay testpay(env.Required("STADTPORTAL_TESTPAY_API_KEY"), env.Required("STADTPORTAL_TESTPAY_WEBHOOK_SECRET"),
                    env.String("STADTPORTAL_TESTPAY_PUBLIC_URL", absl::StrCat("http://127.0.0.1:", port)));
    httplib::Server server;
    server.set_tcp_nodelay(true);
    testpay.Install(server);
    if (!server.bind_to_port(host, port)) {
      log::Error("cannot listen", {{"port", port}});
      return 1;
    }
    std::thread loop([&] { server.listen_after_bind(); });
    log::Info("testpay listening", {{"port", port}});
    grpcx::WaitForTerminationSignal();
    server.stop();
    loop.join();
    return 0;
  });
}

// Delivery to back offices and the back-office API, against the real binaries and a
// real HTTP receiver that verifies signatures and dedupes by the submission id.
#include <csignal>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "libs/auth/tokens.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kSecret = "receiver-secret-0123456789abcdefghijkl";

// A department's system: verifies each delivery's signature and timestamp, answers as
// told, and keeps one record per submission (the Idempotency-Key).
class Receiver {
 public:
  Receiver() {
    server_.Post("/inbox", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string ts = req.get_header_value("X-Stadtportal-Timestamp");
      const std::string expected = "v1=" + auth::HmacSha256Hex(kSecret, ts + "." + req.body);
      const int64_t age = absl::ToUnixSeconds(absl::Now()) - std::stoll(ts.empty() ? "0" : ts);
      int fail, delay_ms;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++posts_;
        if (req.get_header_value("X-Stadtportal-Signature") != expected || std::llabs(age) > 300) {
          ++bad_signatures_;
          res.status = 401;
          return;
        }
        fail = fail_next_ > 0 ? fail_next_-- : (down_ ? 1 : 0);
        delay_ms = delay_ms_;
      }
      if (delay_ms > 0) {
        arrived_ = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      }
      if (fail > 0) {
        res.status = 500;
        return;
      }
      const auto doc = json::parse(req.body);
      std::lock_guard<std::mutex> lock(mu_);
      received_.insert(req.get_header_value("Idempotency-Key"));
      documents_[doc["delivery_id"]] = doc;
      traceparents_[req.get_header_value("Idempotency-Key")] = req.get_header_value("traceparent");
      res.status = 200;
    });
    port_ = static_cast<uint16_t>(server_.bind_to_any_port("127.0.0.1"));
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/inbox"; }
  void FailNext(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_next_ = n;
  }
  void Down(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  void Delay(int ms) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ms_ = ms;
  }
  bool Has(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return received_.count(id) > 0;
  }
  size_t Distinct() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_.size();
  }
  int posts() {
    std::lock_guard<std::mutex> lock(mu_);
    return posts_;
  }
  int bad_signatures() {
    std::lock_guard<std::mutex> lock(mu_);
    return bad_signatures_;
  }
  json Document(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return documents_[id];
  }
  // The traceparent header the delivery of `id` came with.
  std::string Traceparent(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return traceparents_[id];
  }
  std::atomic<bool> arrived_{false};

 private:
  httplib::Server server_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::mutex mu_;
  int fail_next_ = 0, posts_ = 0, bad_signatures_ = 0, delay_ms_ = 0;
  bool down_ = false;
  std::set<std::string> received_;
  std::map<std::string, json> documents_;
  std::map<std::string, std::string> traceparents_;
};

httplib::Result Put(httplib::Client& c, const std::string& path, const json& body, const json& login) {
  return c.Put(path.c_str(), Bearer(login), body.dump(), "application/json");
}

const json kContactReport = {{"contact_name", "Ben Beispiel"}, {"contact_phone", "+49 911 123456"},
                             {"contact_date", "2026-11-20"},   {"infection", "measles"},
                             {"reporter_name", "Anna"},        {"reporter_phone", "0911 654321"}};

json Submission(httplib::Client& c, const json& login, const std::string& id) {
  auto r = c.Get(("/api/v1/submissions/" + id).c_str(), Bearer(login));
  return r && r->status == 200 ? json::parse(r->body) : json::object();
}

}  // namespace

TEST_CASE("push delivery: signed, retried with backoff, dead letter and replay, survives a killed connector", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  json anna = Onboard(stack, c, UniqueEmail());
  Receiver receiver;
  REQUIRE(
      Status(Put(c, "/api/v1/admin/destinations/gesundheitsamt",
                 {{"name", "Gesundheitsamt"}, {"mode", "push"}, {"endpoint_url", receiver.url()}, {"secret", kSecret}},
                 admin)) == 200);
  CHECK(Status(Put(c, "/api/v1/admin/destinations/gesundheitsamt", {{"name", "x"}, {"mode", "push"}}, anna)) == 403);

  // 500 three times, then 200: delivered once, every attempt visible.
  receiver.FailNext(3);
  const std::string first = Apply(c, anna, "contact-person-report", kContactReport);
  REQUIRE(testing::Eventually([&] { return Submission(c, anna, first)["status"] == "delivered"; }, 20s));
  CHECK(receiver.Has(first));
  CHECK(receiver.Distinct() == 1);
  CHECK(receiver.bad_signatures() == 0);
  CHECK(receiver.Document(first)["submission"]["reference"] == Submission(c, anna, first)["reference"]);
  CHECK(Submission(c, anna, first)["delivery_delayed"] == false);
  auto attempts = c.Get(("/api/v1/admin/deliveries/" + first + "/attempts").c_str(), Bearer(admin));
  REQUIRE(Status(attempts) == 200);
  CHECK(json::parse(attempts->body)["items"].size() == 4);

  // Receiver down past the limit: a dead letter, "delivery delayed" for the citizen; replay delivers.
  receiver.Down(true);
  const std::string second = Apply(c, anna, "contact-person-report", kContactReport);
  REQUIRE(testing::Eventually(
      [&] {
        auto dead = c.Get("/api/v1/admin/dead-letters?destination=gesundheitsamt", Bearer(admin));
        return dead && dead->status == 200 && dead->body.find(second) != std::string::npos;
      },
      20s));
  CHECK(testing::Eventually([&] { return Submission(c, anna, second)["delivery_delayed"] == true; }, 10s));
  CHECK(Submission(c, anna, second)["status"] == "submitted");
  receiver.Down(false);
  auto replay = PostJson(c, "/api/v1/admin/dead-letters/replay", {{"submission_id", second}}, Bearer(admin));
  REQUIRE(Status(replay) == 200);
  REQUIRE(testing::Eventually([&] { return Submission(c, anna, second)["status"] == "delivered"; }, 20s));
  CHECK(receiver.Has(second));

  // The connector killed mid-delivery and restarted: nothing lost, one effect at the receiver.
  receiver.Delay(2000);
  receiver.arrived_ = false;
  const std::string third = Apply(c, anna, "contact-person-report", kContactReport);
  REQUIRE(testing::Eventually([&] { return receiver.arrived_.load(); }, 20s));
  auto& connector = stack.instance("connector");
  connector.process->Signal(SIGKILL);
  connector.process->Wait(5s);
  receiver.Delay(0);
  stack.Start(connector);
  REQUIRE(testing::Eventually([&] { return Submission(c, anna, third)["status"] == "delivered"; }, 30s));
  CHECK(receiver.Has(third));
  CHECK(receiver.Distinct() == 3);
}

TEST_CASE("pull and the back-office API: client credentials, scope per destination, acknowledge, status, notice",
          "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  json anna = Onboard(stack, c, UniqueEmail());
  REQUIRE(Status(Put(c, "/api/v1/admin/destinations/stadtkaemmerei", {{"name", "Stadtkämmerei"}, {"mode", "pull"}},
                     admin)) == 200);
  auto made = PostJson(c, "/api/v1/admin/backoffice-clients",
                       {{"destination", "stadtkaemmerei"}, {"department", "Stadtkämmerei"}}, Bearer(admin));
  REQUIRE(Status(made) == 201);
  const json kaemmerei = json::parse(made->body);
  // Another department's client authenticates with private_key_jwt.
  auto key = auth::Signer::FromKey(auth::NewSigningKey("ga"), std::chrono::seconds(60));
  auto made_ga = PostJson(c, "/api/v1/admin/backoffice-clients",
                          {{"destination", "gesundheitsamt"},
                           {"department", "Gesundheitsamt"},
                           {"public_key", absl::Base64Escape(auth::PublicKeyBytes(*key))}},
                          Bearer(admin));
  REQUIRE(Status(made_ga) == 201);
  const std::string ga_id = json::parse(made_ga->body)["client_id"];
  CHECK_FALSE(json::parse(made_ga->body).contains("client_secret"));

  auto token_with = [&](const httplib::Headers& h, const std::string& form) {
    return c.Post("/api/v1/oauth/token", h, form, "application/x-www-form-urlencoded");
  };
  const std::string basic = "Basic " + absl::Base64Escape(kaemmerei["client_id"].get<std::string>() + ":" +
                                                          kaemmerei["client_secret"].get<std::string>());
  auto issued = token_with({{"Authorization", basic}}, "grant_type=client_credentials");
  REQUIRE(Status(issued) == 200);
  const std::string token = json::parse(issued->body)["access_token"];
  CHECK(json::parse(issued->body)["scope"] == "destination:stadtkaemmerei");
  CHECK(Status(token_with({{"Authorization", basic + "x"}}, "grant_type=client_credentials")) == 401);
  CHECK(Status(token_with({}, "grant_type=password&username=a&password=b")) == 400);

  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const std::string assertion =
      key->SignClaims({{"iss", ga_id},
                       {"sub", ga_id},
                       {"aud", "http://127.0.0.1:" + std::to_string(stack.gateway_port()) + "/api/v1/oauth/token"},
                       {"exp", now + 120},
                       {"jti", auth::RandomToken(8)}});
  const std::string form = "grant_type=client_credentials&client_id=" + ga_id +
                           "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                           "&client_assertion=" +
                           assertion;
  auto ga_issued = token_with({}, form);
  REQUIRE(Status(ga_issued) == 200);
  const std::string ga_token = json::parse(ga_issued->body)["access_token"];
  CHECK(Status(token_with({}, form)) == 401);  // The same assertion again: replay.

  const std::string id = Apply(c, anna, "dog-tax-registration", kDogTax);
  REQUIRE(testing::Eventually(
      [&] {
        auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(token));
        return r && r->status == 200 && r->body.find(id) != std::string::npos;
      },
      15s));
  auto fetched = c.Get(("/api/v1/backoffice/submissions/" + id).c_str(), BearerToken(token));
  REQUIRE(Status(fetched) == 200);
  CHECK(json::parse(fetched->body)["submission"]["data"]["dog_name"] == "Rex");
  CHECK(Submission(c, anna, id)["status"] == "submitted");  // Not before the acknowledgement.

  // Another destination's client, citizens' sessions and made-up tokens see nothing.
  CHECK(Status(c.Get(("/api/v1/backoffice/submissions/" + id).c_str(), BearerToken(ga_token))) == 404);
  CHECK(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/acknowledge", json::object(),
                        BearerToken(ga_token))) == 404);
  CHECK(c.Get("/api/v1/backoffice/submissions", BearerToken(ga_token))->body.find(id) == std::string::npos);
  CHECK(Status(c.Get("/api/v1/backoffice/submissions", Bearer(anna))) == 401);
  CHECK(Status(c.Get("/api/v1/backoffice/submissions", BearerToken("forged-token"))) == 401);
  CHECK(Status(c.Get("/api/v1/backoffice/submissions")) == 401);

  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/acknowledge", json::object(),
                          BearerToken(token))) == 200);
  REQUIRE(testing::Eventually([&] { return Submission(c, anna, id)["status"] == "received_by_department"; }, 15s));

  auto progress = PostJson(c, "/api/v1/backoffice/submissions/" + id + "/status",
                           {{"status", "in_progress"}, {"message", "Wir prüfen Ihre Anmeldung."}}, BearerToken(token));
  REQUIRE(Status(progress) == 200);
  const std::string pdf = "%PDF-1.4\n1 0 obj\n<< >>\nendobj\n";
  auto notice =
      PostJson(c, "/api/v1/backoffice/submissions/" + id + "/messages",
               {{"body", "Ihr Hundesteuerbescheid liegt bei."},
                {"message_key", "bescheid-1"},
                {"notice", true},
                {"attachments", {{{"filename", "Bescheid.pdf"}, {"content_base64", absl::Base64Escape(pdf)}}}}},
               BearerToken(token));
  REQUIRE(Status(notice) == 201);
  REQUIRE(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/status", {{"status", "approved"}},
                          BearerToken(token))) == 200);
  // Illegal transitions, unknown statuses and oversized messages change nothing.
  CHECK(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/status", {{"status", "in_progress"}},
                        BearerToken(token))) == 409);
  CHECK(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/status", {{"status", "lost"}},
                        BearerToken(token))) == 422);
  CHECK(Status(PostJson(c, "/api/v1/backoffice/submissions/" + id + "/status",
                        {{"status", "closed"}, {"message", std::string(25000, 'x')}}, BearerToken(token))) == 422);

  json s = Submission(c, anna, id);
  CHECK(s["status"] == "approved");
  std::vector<std::string> statuses;
  for (const auto& h : s["history"]) statuses.push_back(h["status"]);
  CHECK(statuses == std::vector<std::string>{"submitted", "received_by_department", "in_progress", "approved"});
  auto threads = json::parse(c.Get("/api/v1/mailbox/threads", Bearer(anna))->body)["items"];
  REQUIRE(threads.size() == 1);  // One thread for the case.
  CHECK(threads[0]["has_notice"] == true);
  auto thread = json::parse(
      c.Get(("/api/v1/mailbox/threads/" + threads[0]["id"].get<std::string>()).c_str(), Bearer(anna))->body);
  CHECK(thread["messages"].size() == 2);
  // The department sees when the citizen first read its messages.
  const std::string notice_id = thread["messages"][1]["id"];
  REQUIRE(Status(PostJson(c, "/api/v1/mailbox/messages/" + notice_id + "/read", json::object(), Bearer(anna))) == 200);
  auto case_messages = c.Get(("/api/v1/backoffice/submissions/" + id + "/messages").c_str(), BearerToken(token));
  REQUIRE(Status(case_messages) == 200);
  CHECK_FALSE(json::parse(case_messages->body)["items"][1]["first_read_at"].is_null());
  CHECK(json::parse(case_messages->body)["items"][0]["first_read_at"].is_null());
  CHECK(Status(c.Get(("/api/v1/backoffice/submissions/" + id + "/messages").c_str(), BearerToken(ga_token))) == 404);
  // The citizen's reply reaches the department.
  REQUIRE(Status(PostJson(c, "/api/v1/mailbox/threads/" + threads[0]["id"].get<std::string>() + "/messages",
                          {{"body", "Vielen Dank!"}}, Bearer(anna))) == 201);
  auto replies = c.Get("/api/v1/backoffice/replies", BearerToken(token));
  REQUIRE(Status(replies) == 200);
  CHECK(json::parse(replies->body)["items"].back()["body"] == "Vielen Dank!");
  // Another destination's client whose department has the same name sees none of it.
  auto namesake = PostJson(c, "/api/v1/admin/backoffice-clients",
                           {{"destination", "gesundheitsamt"}, {"department", "Stadtkämmerei"}}, Bearer(admin));
  REQUIRE(Status(namesake) == 201);
  const json other = json::parse(namesake->body);
  auto other_issued =
      token_with({{"Authorization", "Basic " + absl::Base64Escape(other["client_id"].get<std::string>() + ":" +
                                                                  other["client_secret"].get<std::string>())}},
                 "grant_type=client_credentials");
  REQUIRE(Status(other_issued) == 200);
  const std::string other_token = json::parse(other_issued->body)["access_token"];
  auto other_replies = c.Get("/api/v1/backoffice/replies", BearerToken(other_token));
  REQUIRE(Status(other_replies) == 200);
  CHECK(other_replies->body.find("Vielen Dank!") == std::string::npos);
  CHECK(Status(c.Get(("/api/v1/backoffice/submissions/" + id + "/messages").c_str(), BearerToken(other_token))) == 404);
  CHECK(stack.AllLogs().find("\"level\":\"error\"") == std::string::npos);
}

TEST_CASE("push: a destination whose name resolves inward is refused at send time, nothing leaves", "[e2e]") {
  Stack stack;
  // As in production: no allow-list (http stays allowed, so only the address decides).
  stack.SetEnv("connector", "STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS", "");
  auto& connector = stack.instance("connector");
  REQUIRE(stack.Restart(connector));
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  json anna = Onboard(stack, c, UniqueEmail());
  Receiver receiver;  // Listens on 127.0.0.1 and would accept every delivery.
  const std::string port = receiver.url().substr(receiver.url().rfind(':'));
  // Registered while its name still pointed at a public address; now it resolves to loopback.
  for (const std::string host : {"localhost", "2130706433", "127.1", "0x7f.1", "[::ffff:127.0.0.1]"}) {
    INFO(host);
    {
      pqxx::connection conn(testing::DatabaseUrl());
      pqxx::work tx(conn);
      tx.exec_params(
          "INSERT INTO connector.destinations (tenant, id, name, mode, endpoint_url, secret)"
          " VALUES ('09564000', 'gesundheitsamt', 'Gesundheitsamt', 'push', $1, $2)"
          " ON CONFLICT (tenant, id) DO UPDATE SET mode = 'push', endpoint_url = $1, secret = $2",
          "http://" + host + port, kSecret);
      tx.commit();
    }
    const std::string id = Apply(c, anna, "contact-person-report", kContactReport);
    std::string attempts;
    const bool refused = testing::Eventually(
        [&] {
          auto r = c.Get(("/api/v1/admin/deliveries/" + id + "/attempts").c_str(), Bearer(admin));
          attempts = r ? r->body : "no answer";
          return r && r->status == 200 && r->body.find("not allowed") != std::string::npos;
        },
        20s);
    INFO(attempts);
    REQUIRE(refused);
    CHECK(Submission(c, anna, id)["status"] == "submitted");
  }
  CHECK(receiver.posts() == 0);
  // Registering such an address is refused outright.
  CHECK(
      Status(Put(c, "/api/v1/admin/destinations/gesundheitsamt",
                 {{"name", "Gesundheitsamt"}, {"mode", "push"}, {"endpoint_url", receiver.url()}, {"secret", kSecret}},
                 admin)) == 422);
  REQUIRE(Status(Put(c, "/api/v1/admin/destinations/gesundheitsamt", {{"name", "Gesundheitsamt"}, {"mode", "pull"}},
                     admin)) == 200);
}

TEST_CASE("one trace from the citizen's request to the department's webhook", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json admin = Admin(stack, c);
  json anna = Onboard(stack, c, UniqueEmail());
  Receiver receiver;
  REQUIRE(
      Status(Put(c, "/api/v1/admin/destinations/gesundheitsamt",
                 {{"name", "Gesundheitsamt"}, {"mode", "push"}, {"endpoint_url", receiver.url()}, {"secret", kSecret}},
                 admin)) == 200);

  auto created = PostJson(c, "/api/v1/services/contact-person-report/drafts", json::object(), Bearer(anna));
  REQUIRE(Status(created) == 201);
  const std::string draft = json::parse(created->body)["id"];
  auto headers = Bearer(anna);
  headers.emplace("If-Match", "\"1\"");
  REQUIRE(Status(c.Patch(("/api/v1/drafts/" + draft).c_str(), headers, json{{"data", kContactReport}}.dump(),
                         "application/json")) == 200);
  // The submit comes with the trace of the citizen's browser.
  const std::string trace_id = "5a1e0c3b7d9f4e2a8c6b1d3f5e7a9c0b";
  auto submit = Bearer(anna);
  submit.emplace("Idempotency-Key", "trace-" + draft);
  submit.emplace("traceparent", "00-" + trace_id + "-1f2e3d4c5b6a7980-01");
  auto submitted = c.Post(("/api/v1/drafts/" + draft + "/submit").c_str(), submit, "", "application/json");
  REQUIRE(Status(submitted) == 201);
  const std::string id = json::parse(submitted->body)["id"];
  REQUIRE(testing::Eventually([&] { return Submission(c, anna, id)["status"] == "delivered"; }, 20s));

  // The department's webhook received it in the same trace (a span of its own).
  const std::string header = receiver.Traceparent(id);
  INFO(header);
  REQUIRE(header.size() == 55);
  CHECK(header.substr(3, 32) == trace_id);
  CHECK(header.substr(36, 16) != "1f2e3d4c5b6a7980");
  // The gateway's, the submission service's and the connector's log lines carry it.
  const std::string needle = "\"trace_id\":\"" + trace_id + "\"";
  CHECK(stack.gateway().Output().find(needle) != std::string::npos);
  CHECK(stack.instance("submission").process->Output().find(needle) != std::string::npos);
  CHECK(stack.instance("connector").process->Output().find(needle) != std::string::npos);
}

}  // namespace stadtportal::e2e

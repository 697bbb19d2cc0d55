#include "libs/http/server.h"

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::http {
namespace {

// A real server on a free port with two routes.
struct Fixture {
  Router router{"test_http"};
  httplib::Server server;
  std::thread thread;
  uint16_t port = 0;

  Fixture() {
    router.Add("GET", "/items/{id}", [](const httplib::Request&, httplib::Response& res, const Params& p) {
      WriteJson(res, 200, {{"id", p.at("id")}});
    });
    router.Add("POST", "/items", [](const httplib::Request& req, httplib::Response& res, const Params&) {
      WriteJson(res, 201, {{"size", req.body.size()}});
    });
    ServerOptions o;
    o.threads = 2;
    o.queue = 2;
    o.max_body_bytes = 1024;
    Configure(server, o);
    router.Install(server);
    port = static_cast<uint16_t>(server.bind_to_any_port("127.0.0.1"));
    thread = std::thread([this] { server.listen_after_bind(); });
    REQUIRE(testing::Eventually([this] { return server.is_running(); }, std::chrono::seconds(5)));
  }
  ~Fixture() {
    server.stop();
    thread.join();
  }
};

}  // namespace

TEST_CASE("routes match templates and capture parameters", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Get("/items/abc");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(nlohmann::json::parse(r->body)["id"] == "abc");
  CHECK(r->get_header_value("X-Request-Id").size() == 32);
}

TEST_CASE("unknown paths are 404 and wrong methods 405, as problems", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Get("/nothing/here");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  auto p = nlohmann::json::parse(r->body);
  CHECK(p["status"] == 404);
  CHECK(p["request_id"] == r->get_header_value("X-Request-Id"));

  auto d = c.Delete("/items/abc");
  REQUIRE(d);
  CHECK(d->status == 405);
  CHECK(d->get_header_value("Allow") == "GET");
  CHECK(nlohmann::json::parse(d->body)["status"] == 405);
  CHECK(nlohmann::json::parse(d->body)["title"] == "Method not allowed");
}

TEST_CASE("a caller's request id is kept, a malformed one replaced", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Get("/items/1", {{"X-Request-Id", "caller-id-123"}});
  REQUIRE(r);
  CHECK(r->get_header_value("X-Request-Id") == "caller-id-123");
  auto bad = c.Get("/items/1", {{"X-Request-Id", "bad id with spaces"}});
  REQUIRE(bad);
  CHECK(bad->get_header_value("X-Request-Id") != "bad id with spaces");
}

TEST_CASE("bodies over the limit are refused with 413 problem", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto ok = c.Post("/items", std::string(100, 'x'), "text/plain");
  REQUIRE(ok);
  CHECK(ok->status == 201);
  auto big = c.Post("/items", std::string(4096, 'x'), "text/plain");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(big->get_header_value("Content-Type") == "application/problem+json");
}

TEST_CASE("more connections than workers queue instead of failing", "[unit]") {
  Fixture f;  // Two workers, queue of two.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", f.port);
      c.set_keep_alive(false);
      auto r = c.Get("/items/x");
      if (r && r->status == 200) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == 12);
}

}  // namespace stadtportal::http

#include "libs/grpc/server.h"

#include <future>

#include <catch2/catch.hpp>

#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/testing/testing.h"
#include "stadtportal/testing/v1/echo.grpc.pb.h"

namespace stadtportal::grpcx {
namespace {

using stadtportal::testing::v1::EchoRequest;
using stadtportal::testing::v1::EchoResponse;
using stadtportal::testing::v1::EchoService;

class EchoImpl final : public EchoService::Service {
 public:
  std::atomic<int> started{0};
  grpc::Status Echo(grpc::ServerContext* ctx, const EchoRequest* req, EchoResponse* resp) override {
    return Handle(ctx, "Echo", [&]() -> absl::Status {
      ++started;
      // Long handlers watch for cancellation, as after the shutdown grace period.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(req->delay_ms());
      while (std::chrono::steady_clock::now() < until) {
        if (ctx->IsCancelled()) return absl::CancelledError("cancelled");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (req->text() == "fail") return absl::InvalidArgumentError("text: fail requested");
      if (req->text() == "trace") {
        resp->set_text(log::CurrentRequestId() + " " + log::CurrentTraceparent());
        return absl::OkStatus();
      }
      resp->set_text(req->text());
      return absl::OkStatus();
    });
  }
};

struct Fixture {
  EchoImpl* echo = nullptr;
  std::unique_ptr<Server> server;
  std::shared_ptr<grpc::Channel> channel;

  explicit Fixture(std::chrono::milliseconds grace) {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.shutdown_grace = grace;
    server = std::make_unique<Server>(o);
    auto impl = std::make_unique<EchoImpl>();
    echo = impl.get();
    server->AddService(std::move(impl), EchoService::service_full_name());
    REQUIRE(server->Start().ok());
    channel = MakeChannel("ipv4:127.0.0.1:" + std::to_string(server->port()));
  }

  grpc::Status Call(const std::string& text, int delay_ms, EchoResponse* resp) {
    EchoRequest req;
    req.set_text(text);
    req.set_delay_ms(delay_ms);
    auto ctx = NewClientContext(std::chrono::seconds(10));
    return EchoService::NewStub(channel)->Echo(ctx.get(), req, resp);
  }
};

}  // namespace

TEST_CASE("server reflection is off unless STADTPORTAL_GRPC_REFLECTION enables it", "[unit]") {
  // Served or not: tests/e2e/stack_test.cc (a process of its own, as reflection's
  // generated messages would clash with the test's own copy of them here).
  CHECK_FALSE(ServerOptions::FromEnv(config::Env(std::map<std::string, std::string>{}), 50051).reflection);
  CHECK(ServerOptions::FromEnv(config::Env(std::map<std::string, std::string>{{"STADTPORTAL_GRPC_REFLECTION", "true"}}),
                               50051)
            .reflection);
}

TEST_CASE("a started server reports SERVING overall and per service", "[integration]") {
  Fixture f(std::chrono::seconds(5));
  CHECK(CheckHealth(f.channel, "", std::chrono::seconds(2)).ok());
  CHECK(CheckHealth(f.channel, EchoService::service_full_name(), std::chrono::seconds(2)).ok());
  CHECK_FALSE(CheckHealth(f.channel, "no.such.Service", std::chrono::seconds(2)).ok());
  EchoResponse resp;
  CHECK(f.Call("hallo", 0, &resp).ok());
  CHECK(resp.text() == "hallo");
  CHECK(f.Call("fail", 0, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("shutdown lets an in-flight call finish and refuses new ones", "[integration]") {
  Fixture f(std::chrono::seconds(5));
  auto in_flight = std::async(std::launch::async, [&] {
    EchoResponse resp;
    auto s = f.Call("slow", 1500, &resp);
    return std::make_pair(s.error_code(), resp.text());
  });
  REQUIRE(testing::Eventually([&] { return f.echo->started.load() == 1; }, std::chrono::seconds(5)));

  const auto t0 = std::chrono::steady_clock::now();
  auto shutdown = std::async(std::launch::async, [&] { f.server->Shutdown(); });
  // While draining: new calls are refused (calls racing the start of the shutdown may
  // still be accepted, but once one is refused, none reaches the handler any more).
  REQUIRE(testing::Eventually(
      [&] {
        EchoResponse r;
        return !f.Call("new", 0, &r).ok();
      },
      std::chrono::seconds(2)));
  const int started_at_refusal = f.echo->started.load();
  EchoResponse refused;
  CHECK_FALSE(f.Call("new", 0, &refused).ok());
  CHECK_FALSE(CheckHealth(f.channel, "", std::chrono::milliseconds(500)).ok());

  auto [code, text] = in_flight.get();
  CHECK(code == grpc::StatusCode::OK);
  CHECK(text == "slow");
  shutdown.get();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK(f.echo->started.load() == started_at_refusal);  // Refused calls never reached the handler.
}

TEST_CASE("calls outliving the grace period are cancelled", "[integration]") {
  Fixture f(std::chrono::milliseconds(300));
  auto in_flight = std::async(std::launch::async, [&] {
    EchoResponse resp;
    return f.Call("too slow", 3000, &resp).error_code();
  });
  REQUIRE(testing::Eventually([&] { return f.echo->started.load() == 1; }, std::chrono::seconds(5)));
  const auto t0 = std::chrono::steady_clock::now();
  f.server->Shutdown();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2500));
  CHECK(in_flight.get() != grpc::StatusCode::OK);
}

TEST_CASE("illegal metadata values are left out instead of aborting the process", "[integration]") {
  Fixture f(std::chrono::seconds(5));
  // Whatever a caller bound to the thread (a request id, a traceparent), the call goes out.
  for (const std::string& hostile :
       {std::string("\x7f"), std::string("\xc3\xbc\xe2\x82\xac"), std::string("a\r\nb"), std::string("nul\0byte", 8)}) {
    log::RequestScope scope(hostile, hostile);
    EchoResponse resp;
    auto s = f.Call("still here", 0, &resp);
    CHECK(s.ok());
    CHECK(resp.text() == "still here");
  }
  // What the server binds to its log lines: a valid traceparent and request id as sent,
  // anything else replaced by fresh ones.
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  {
    log::RequestScope scope("req-7", valid);
    EchoResponse resp;
    REQUIRE(f.Call("trace", 0, &resp).ok());
    CHECK(resp.text() == "req-7 " + valid);
  }
  for (const std::string& forged : {std::string(55, 'a'), std::string("00-zz"), std::string("ff-") + valid.substr(3)}) {
    log::RequestScope scope("req 8 with spaces", forged);
    EchoResponse resp;
    REQUIRE(f.Call("trace", 0, &resp).ok());
    const std::string bound = resp.text().substr(resp.text().find(' ') + 1);
    INFO(forged << " -> " << resp.text());
    CHECK(log::NormalizeTraceparent(bound) == bound);
    CHECK(bound != forged);
    CHECK(log::IsValidRequestId(resp.text().substr(0, resp.text().find(' '))));
  }
  CHECK(IsLegalMetadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK(IsLegalMetadata("x-request-id", "abc DEF ~"));
  CHECK(IsLegalMetadata("x-blob-bin", std::string("\0\xff", 2)));
  CHECK_FALSE(IsLegalMetadata("x-request-id", "\x7f"));
  CHECK_FALSE(IsLegalMetadata("x-request-id", "\xc3\xbc"));
  CHECK_FALSE(IsLegalMetadata("x-request-id", "a\nb"));
  CHECK_FALSE(IsLegalMetadata("X-Request-Id", "a"));
  CHECK_FALSE(IsLegalMetadata("", "a"));
  CHECK_FALSE(IsLegalMetadata("grpc-status", "0"));
}

TEST_CASE("RED metrics count calls by method and code", "[integration]") {
  Fixture f(std::chrono::seconds(5));
  EchoResponse resp;
  REQUIRE(f.Call("x", 0, &resp).ok());
  REQUIRE_FALSE(f.Call("fail", 0, &resp).ok());
  const std::string text = metrics::Serialize();
  CHECK(text.find("grpc_server_handled_total{code=\"OK\",operation=\"/stadtportal.testing.v1.EchoService/Echo\"}") !=
        std::string::npos);
  CHECK(text.find("code=\"INVALID_ARGUMENT\",operation=\"/stadtportal.testing.v1.EchoService/Echo\"") !=
        std::string::npos);
  CHECK(text.find("grpc_server_handling_seconds_bucket") != std::string::npos);
}

}  // namespace stadtportal::grpcx

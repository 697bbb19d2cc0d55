#include "libs/redis/client.h"

#include <csignal>

#include <catch2/catch.hpp>

#include "libs/testing/testing.h"

namespace stadtportal::redis {
namespace {

std::unique_ptr<testing::Process> StartRedis(uint16_t port, const std::string& dir) {
  auto p = std::make_unique<testing::Process>(
      "/usr/bin/redis-server",
      std::vector<std::string>{"--bind", "127.0.0.1", "--port", std::to_string(port), "--save", "", "--appendonly",
                               "no", "--dir", dir},
      std::map<std::string, std::string>{}, dir + "/redis-" + std::to_string(port) + ".log");
  Client probe(*Options::FromUrl("redis://127.0.0.1:" + std::to_string(port)));
  REQUIRE(testing::Eventually([&] { return probe.Ping().ok(); }, std::chrono::seconds(10)));
  return p;
}

}  // namespace

TEST_CASE("redis URLs are parsed", "[unit]") {
  auto o = Options::FromUrl("redis://:pw@cache.example:6380/2");
  REQUIRE(o.ok());
  CHECK(o->host == "cache.example");
  CHECK(o->port == 6380);
  CHECK(o->password == "pw");
  CHECK(o->db == 2);
  CHECK_FALSE(Options::FromUrl("http://x").ok());
  CHECK_FALSE(Options::FromUrl("redis://host:99999").ok());
  CHECK_FALSE(Options::FromUrl("redis://host/99").ok());
}

TEST_CASE("commands run against the test Redis, binary-safe", "[integration]") {
  Client c(*Options::FromUrl(testing::RedisUrl()));
  const std::string key = "test:client:" + std::to_string(::getpid());
  const std::string value("a\0b\r\n", 5);
  REQUIRE(c.Command({"SET", key, value, "EX", "60"}).ok());
  auto got = c.Command({"GET", key});
  REQUIRE(got.ok());
  CHECK(got->str() == value);
  auto err = c.Command({"INCR", key});
  CHECK(err.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(c.Command({"DEL", key})->integer() == 1);
}

TEST_CASE("the client reconnects after a Redis restart", "[integration]") {
  const uint16_t port = testing::FreePort();
  const std::string dir = testing::TempDir();
  auto server = StartRedis(port, dir);
  Options o = *Options::FromUrl("redis://127.0.0.1:" + std::to_string(port));
  o.max_attempts = 3;
  o.initial_backoff = std::chrono::milliseconds(20);
  Client c(o);
  REQUIRE(c.Command({"SET", "k", "before"}).ok());

  server->Signal(SIGKILL);
  REQUIRE(server->Wait(std::chrono::seconds(5)) == -2);
  CHECK(c.Command({"GET", "k"}).status().code() == absl::StatusCode::kUnavailable);

  server = StartRedis(port, dir);
  auto after = c.Command({"SET", "k", "after"});
  REQUIRE(after.ok());
  CHECK(c.Command({"GET", "k"})->str() == "after");
}

}  // namespace stadtportal::redis

#include "libs/log/log.h"

#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

namespace stadtportal::log {
namespace {

// Captures what Write() puts on stdout.
std::string Capture(const std::function<void()>& fn) {
  std::fflush(stdout);
  char path[] = "/tmp/stadtportal_log_test_XXXXXX";
  int fd = mkstemp(path);
  int saved = dup(1);
  dup2(fd, 1);
  fn();
  std::fflush(stdout);
  dup2(saved, 1);
  close(saved);
  close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(path);
  return ss.str();
}

}  // namespace

TEST_CASE("log lines are single JSON objects carrying the request id", "[unit]") {
  Init("test", Level::kInfo);
  std::string out = Capture([] {
    RequestScope scope("req-42", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    Info("hello", {{"answer", 42}});
    Debug("not shown");
  });
  REQUIRE(std::count(out.begin(), out.end(), '\n') == 1);
  auto line = nlohmann::json::parse(out);
  CHECK(line["msg"] == "hello");
  CHECK(line["level"] == "info");
  CHECK(line["service"] == "test");
  CHECK(line["request_id"] == "req-42");
  CHECK(line["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(line["answer"] == 42);
  CHECK(line["ts"].get<std::string>().size() == 24);
}

TEST_CASE("invalid UTF-8 in a field does not break the line", "[unit]") {
  Init("test", Level::kInfo);
  std::string out = Capture([] { Warn("odd input", {{"value", std::string("\xff\xfe")}}); });
  CHECK_NOTHROW(nlohmann::json::parse(out));
}

TEST_CASE("request ids are generated and validated", "[unit]") {
  auto id = NewRequestId();
  CHECK(id.size() == 32);
  CHECK(IsValidRequestId(id));
  CHECK(NewRequestId() != id);
  CHECK_FALSE(IsValidRequestId(""));
  CHECK_FALSE(IsValidRequestId("has space"));
  CHECK_FALSE(IsValidRequestId(std::string(65, 'a')));
  CHECK_FALSE(IsValidRequestId("a\nb"));
}

}  // namespace stadtportal::log

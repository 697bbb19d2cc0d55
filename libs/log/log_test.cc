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
  CHECK(line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(line["answer"] == 42);
  CHECK(line["ts"].get<std::string>().size() == 24);
}

TEST_CASE("invalid UTF-8 in a field does not break the line", "[unit]") {
  Init("test", Level::kInfo);
  std::string out = Capture([] { Warn("odd input", {{"value", std::string("\xff\xfe")}}); });
  CHECK_NOTHROW(nlohmann::json::parse(out));
}

TEST_CASE("no raw control character from a field reaches the log line", "[unit]") {
  Init("test", Level::kInfo);
  // C0 (JSON escapes those), DEL, C1 (NEL), the line and paragraph separators, invalid UTF-8.
  const std::string hostile =
      std::string("a\r\nb\x1b[31m\x7f") + "\xc2\x85" + "\xe2\x80\xa8\xe2\x80\xa9\xff" + "\xc3\xbc";
  std::string out = Capture([&] { Warn("odd input", {{"value", hostile}, {hostile, 1}}); });
  REQUIRE(!out.empty());
  REQUIRE(out.back() == '\n');
  out.pop_back();
  for (size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    INFO("byte " << i << ": " << static_cast<int>(c));
    CHECK(c >= 0x20);
    CHECK(c != 0x7F);
    if (c == 0xC2 && i + 1 < out.size()) CHECK((static_cast<unsigned char>(out[i + 1]) >= 0xA0));
    if (c == 0xE2 && i + 2 < out.size() && static_cast<unsigned char>(out[i + 1]) == 0x80) {
      CHECK(static_cast<unsigned char>(out[i + 2]) != 0xA8);
      CHECK(static_cast<unsigned char>(out[i + 2]) != 0xA9);
    }
  }
  // Still one JSON object, and the escapes read back as the (valid) characters.
  auto line = nlohmann::json::parse(out);
  const std::string value = line["value"];
  CHECK(value.find("\x7f") != std::string::npos);
  CHECK(value.find("\xc2\x85") != std::string::npos);
  CHECK(value.find("\xe2\x80\xa8") != std::string::npos);
  CHECK(value.find("\xc3\xbc") != std::string::npos);  // Printable non-ASCII stays as it is.
  CHECK(out.find("\xc3\xbc") != std::string::npos);
}

TEST_CASE("traceparent: only the W3C form is accepted, later versions are read as 00", "[unit]") {
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  CHECK(NormalizeTraceparent(valid) == valid);
  // A later version: the first four fields, anything after a "-" ignored.
  CHECK(NormalizeTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == valid);
  CHECK(NormalizeTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds") == valid);
  for (const std::string& bad : std::vector<std::string>{
           std::string(""),
           std::string("\x7f"),
           std::string("%7F"),
           std::string("\xc3\xbc\xe2\x82\xac"),
           valid + "-",                                                // Version 00 has nothing after the flags.
           valid + "x",                                                // Longer without a "-".
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // Version ff is invalid.
           "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // Version not hex.
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // Upper case.
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // All-zero trace id.
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // All-zero parent id.
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  // Flags not hex.
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",  // Separators.
           "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  // Misplaced separator.
           std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0") + '\0',
       }) {
    INFO(bad);
    CHECK(NormalizeTraceparent(bad).empty());
  }
  const std::string fresh = NewTraceparent();
  CHECK(NormalizeTraceparent(fresh) == fresh);
  CHECK(NewTraceparent() != fresh);
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

namespace stadtportal::log {

TEST_CASE("a child span keeps the trace id and flags with a fresh parent id", "[unit]") {
  const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const std::string a = ChildTraceparent(parent), b = ChildTraceparent(parent);
  CHECK(NormalizeTraceparent(a) == a);
  CHECK(a.substr(0, 36) == parent.substr(0, 36));
  CHECK(a.substr(52) == "-01");
  CHECK(a.substr(36, 16) != parent.substr(36, 16));
  CHECK(a != b);
  // Not a traceparent: a trace of its own, never the input.
  for (const std::string bad : {"", "00-zz", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a\nb"}) {
    const std::string fresh = ChildTraceparent(bad);
    CHECK(NormalizeTraceparent(fresh) == fresh);
    CHECK(fresh.find('\n') == std::string::npos);
  }
}

}  // namespace stadtportal::log

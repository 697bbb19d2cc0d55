#include "libs/http/client_address.h"

#include <catch2/catch.hpp>

namespace stadtportal::http {
namespace {

TrustedProxies Trusted(const std::string& list) {
  auto t = TrustedProxies::Parse(list);
  REQUIRE(t.ok());
  return *t;
}

httplib::Headers Xff(std::initializer_list<std::string> values) {
  httplib::Headers h;
  for (const auto& v : values) h.emplace("X-Forwarded-For", v);
  return h;
}

}  // namespace

TEST_CASE("trusted proxies are CIDR ranges of IPv4 and IPv6; bad entries are refused", "[unit]") {
  auto t = Trusted("10.0.0.0/8, 192.168.1.7 ,fd00::/8,2001:db8:1::/48, 172.16.5.5/12");
  for (const char* inside : {"10.1.2.3", "10.255.255.255", "192.168.1.7", "fd12:3456::1", "2001:db8:1:ffff::9",
                             "172.31.0.1", "::ffff:10.0.0.1"}) {
    INFO(inside);
    auto a = net::ParseAddress(inside);
    REQUIRE(a);
    CHECK(t.Contains(*a));
  }
  for (const char* outside : {"11.0.0.1", "9.255.255.255", "192.168.1.8", "fe00::1", "2001:db8:2::1", "172.32.0.1",
                              "::a00:1" /* 10.0.0.1 as IPv4-compatible, not mapped */}) {
    INFO(outside);
    auto a = net::ParseAddress(outside);
    REQUIRE(a);
    CHECK_FALSE(t.Contains(*a));
  }
  CHECK(Trusted("").empty());
  // All of IPv4 is not all of IPv6.
  const auto v4 = *net::ParseAddress("1.2.3.4");
  const auto v6 = *net::ParseAddress("2001:db8::1");
  CHECK(Trusted("0.0.0.0/0").Contains(v4));
  CHECK_FALSE(Trusted("0.0.0.0/0").Contains(v6));
  CHECK(Trusted("::/0").Contains(v6));
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8/8",
                          "10.0.0.0/ 8", "ingress", "10.0.0.0/8;rm", "*"}) {
    INFO(bad);
    CHECK_FALSE(TrustedProxies::Parse(bad).ok());
  }
}

TEST_CASE("the client is found right to left through trusted hops only", "[unit]") {
  const auto t = Trusted("10.0.0.0/8,fd00::/8");

  SECTION("an untrusted peer is the client, whatever it forwards") {
    CHECK(t.ClientAddress("198.51.100.20", Xff({"1.1.1.1"})) == "198.51.100.20");
    CHECK(t.ClientAddress("198.51.100.20", Xff({"10.0.0.5"})) == "198.51.100.20");
    CHECK(t.ClientAddress("2001:db8::7", Xff({"1.1.1.1"})) == "2001:db8::7");
    CHECK(Trusted("").ClientAddress("10.0.0.1", Xff({"1.1.1.1"})) == "10.0.0.1");
  }
  SECTION("a trusted peer: the rightmost untrusted entry, not what the client wrote before it") {
    // The client wrote "6.6.6.6" itself; the ingress appended the real address.
    CHECK(t.ClientAddress("10.1.1.1", Xff({"6.6.6.6, 203.0.113.9"})) == "203.0.113.9");
    CHECK(t.ClientAddress("10.1.1.1", Xff({"6.6.6.6, 203.0.113.9, 10.2.2.2"})) == "203.0.113.9");
    CHECK(t.ClientAddress("10.1.1.1", Xff({"6.6.6.6", "203.0.113.9"})) == "203.0.113.9");  // Two headers, one list.
    CHECK(t.ClientAddress("10.1.1.1", Xff({"203.0.113.9,10.2.2.2", "10.3.3.3"})) == "203.0.113.9");
  }
  SECTION("IPv6 peers and entries") {
    CHECK(t.ClientAddress("fd00::1", Xff({"2001:DB8::0:5"})) == "2001:db8::5");
    CHECK(t.ClientAddress("fd00::1", Xff({"[2001:db8::5]", "fd00::2"})) == "2001:db8::5");
    CHECK(t.ClientAddress("fd00::1", Xff({"[2001:db8::5", "fd00::2"})) == "fd00::2");  // Unbalanced: garbage.
    CHECK(t.ClientAddress("::ffff:10.0.0.1", Xff({"203.0.113.9"})) == "203.0.113.9");
  }
  SECTION("no or only trusted entries: the furthest trusted hop") {
    CHECK(t.ClientAddress("10.1.1.1", {}) == "10.1.1.1");
    CHECK(t.ClientAddress("10.1.1.1", Xff({"10.9.9.9, 10.2.2.2"})) == "10.9.9.9");
  }
  SECTION("garbage stops the walk at the last trusted hop") {
    for (const char* garbage : {"", " ", "unknown", "1.2.3.4:5678", "evil\r\nX-Injected: 1", "%00", "\xff\xfe",
                                "1.2.3.4 5.6.7.8", ",,,", std::string(5000, '9').c_str()}) {
      INFO(garbage);
      CHECK(t.ClientAddress("10.1.1.1", Xff({std::string("203.0.113.9, ") + garbage})) == "10.1.1.1");
      CHECK(t.ClientAddress("10.1.1.1", Xff({std::string(garbage) + ", 10.2.2.2"})) == "10.2.2.2");
      // Garbage left of the client's own address changes nothing.
      CHECK(t.ClientAddress("10.1.1.1", Xff({std::string(garbage) + ", 203.0.113.9"})) == "203.0.113.9");
    }
  }
  SECTION("an overlong chain of trusted hops stops the walk") {
    std::string chain = "203.0.113.9";
    for (int i = 0; i < 100; ++i) chain += ", 10.0.0." + std::to_string(i % 250);
    CHECK(t.ClientAddress("10.1.1.1", Xff({chain})) != "203.0.113.9");
  }
  SECTION("limits count per IPv4 address and per IPv6 /64") {
    CHECK(ClientKey("203.0.113.9") == "203.0.113.9");
    CHECK(ClientKey("::ffff:203.0.113.9") == "203.0.113.9");
    CHECK(ClientKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
    CHECK(ClientKey("2001:db8:1:2::1") == ClientKey("2001:db8:1:2:ffff::7"));
    CHECK(ClientKey("2001:db8:1:3::1") != ClientKey("2001:db8:1:2::1"));
    CHECK(ClientKey("unknown") == "unknown");
  }
  SECTION("the request form uses the TCP peer") {
    httplib::Request req;
    req.remote_addr = "10.1.1.1";
    req.headers = Xff({"203.0.113.9"});
    CHECK(ClientAddress(req, t) == "203.0.113.9");
    req.remote_addr = "198.51.100.1";
    CHECK(ClientAddress(req, t) == "198.51.100.1");
  }
}

}  // namespace stadtportal::http

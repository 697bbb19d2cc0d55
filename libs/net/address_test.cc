#include "libs/net/address.h"

#include <catch2/catch.hpp>

namespace stadtportal::net {

TEST_CASE("addresses: numeric forms only; IPv4-mapped IPv6 is the IPv4 address", "[unit]") {
  REQUIRE(ParseAddress("192.0.2.1"));
  CHECK(ParseAddress("192.0.2.1")->ToString() == "192.0.2.1");
  CHECK(ParseAddress("::ffff:127.0.0.1") == ParseAddress("127.0.0.1"));
  CHECK(ParseAddress("::ffff:7f00:1") == ParseAddress("127.0.0.1"));
  CHECK(ParseAddress("2001:DB8::1")->ToString() == "2001:db8::1");
  CHECK(ParseAddress("2001:DB8:0:0::1")->ToString() == "2001:db8::1");
  CHECK_FALSE(ParseAddress("2001:db8::1")->IsV4());
  for (const char* bad : {"",
                          " ",
                          "127.1",
                          "0x7f.1",
                          "2130706433",
                          "localhost",
                          "1.2.3.4.5",
                          "[::1]",
                          "::1/128",
                          "1.2.3",
                          "256.1.1.1",
                          "01.2.3.4x",
                          "1.2.3.4:80",
                          "[1.2.3.4]:80",
                          "fe80::1%eth0",
                          "2001:db8::1::2",
                          "::g",
                          "1.2.3.4\r\nX: y",
                          "\xc3\xbc",
                          "::ffff:1.2.3.256",
                          "unknown"}) {
    INFO(bad);
    CHECK_FALSE(ParseAddress(bad));
  }
}

TEST_CASE("networks: CIDR lists for allow-lists", "[unit]") {
  auto nets = ParseNetworks(" 127.0.0.1, 10.0.0.0/8 ,fd00::/8");
  REQUIRE(nets.ok());
  REQUIRE(nets->size() == 3);
  CHECK((*nets)[0].ToString() == "127.0.0.1/32");
  CHECK(AnyContains(*nets, *ParseAddress("127.0.0.1")));
  CHECK(AnyContains(*nets, *ParseAddress("::ffff:127.0.0.1")));
  CHECK_FALSE(AnyContains(*nets, *ParseAddress("127.0.0.2")));
  CHECK(AnyContains(*nets, *ParseAddress("10.255.1.2")));
  CHECK(AnyContains(*nets, *ParseAddress("fd12::1")));
  CHECK_FALSE(AnyContains(*nets, *ParseAddress("fe80::1")));
  CHECK(ParseNetwork("10.1.2.3/8")->ToString() == "10.0.0.0/8");
  CHECK(ParseNetworks("")->empty());
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "::/129", "example.org/24", "127.1/8",
                          "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8/8", "10.0.0.0/0008", "10.0.0.0/8;rm", "*"}) {
    INFO(bad);
    CHECK_FALSE(ParseNetwork(bad).ok());
  }
  CHECK_FALSE(ParseNetworks("10.0.0.0/8,nope").ok());
}

TEST_CASE("public addresses: every special-purpose block is refused", "[unit]") {
  const std::pair<const char*, const char*> non_public[] = {
      {"0.0.0.0", "this-network"},
      {"0.1.2.3", "this-network"},
      {"127.0.0.1", "loopback"},
      {"127.255.255.254", "loopback"},
      {"10.0.0.1", "private"},
      {"172.16.0.1", "private"},
      {"172.31.255.255", "private"},
      {"192.168.1.1", "private"},
      {"100.64.0.1", "shared"},
      {"100.127.255.255", "shared"},
      {"169.254.169.254", "link-local"},
      {"192.0.0.8", "reserved"},
      {"192.0.2.10", "documentation"},
      {"198.51.100.1", "documentation"},
      {"203.0.113.7", "documentation"},
      {"198.18.0.1", "benchmarking"},
      {"224.0.0.1", "multicast"},
      {"239.255.255.250", "multicast"},
      {"240.0.0.1", "reserved"},
      {"255.255.255.255", "reserved"},
      {"::", "unspecified"},
      {"::1", "loopback"},
      {"::ffff:127.0.0.1", "loopback"},
      {"::ffff:169.254.169.254", "link-local"},
      {"::127.0.0.1", "reserved"},
      {"fe80::1", "link-local"},
      {"fc00::1", "unique-local"},
      {"fd00:ec2::254", "unique-local"},
      {"ff02::1", "multicast"},
      {"64:ff9b::7f00:1", "translation"},
      {"2002:7f00:1::", "translation"},
      {"2001:db8::1", "documentation"},
      {"2001::1", "reserved"},
      {"100::1", "reserved"},
      {"fec0::1", "reserved"},
  };
  for (const auto& [text, reason] : non_public) {
    INFO(text);
    auto a = ParseAddress(text);
    REQUIRE(a);
    CHECK(NonPublicReason(*a) == reason);
  }
  for (const char* text : {"8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2a00:1450:4001::1",
                           "2606:4700::1111", "::ffff:8.8.8.8"}) {
    INFO(text);
    CHECK(NonPublicReason(*ParseAddress(text)).empty());
  }
}

}  // namespace stadtportal::net

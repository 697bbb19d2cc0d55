#include "libs/mail/mail.h"

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"

namespace stadtportal::mail {
namespace {

const absl::Time kDate = absl::FromUnixSeconds(1800000000);

struct Parsed {
  std::vector<std::string> lines;                            // Header lines as sent (folded lines separate).
  std::vector<std::pair<std::string, std::string>> headers;  // Unfolded.
  std::string body;
};

Parsed Parse(const std::string& message) {
  Parsed p;
  const size_t end = message.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  p.body = message.substr(end + 4);
  for (absl::string_view line : absl::StrSplit(message.substr(0, end), "\r\n")) {
    p.lines.emplace_back(line);
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      REQUIRE(!p.headers.empty());
      p.headers.back().second += std::string(line);
      continue;
    }
    const size_t colon = line.find(": ");
    REQUIRE(colon != absl::string_view::npos);
    p.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 2)));
  }
  return p;
}

std::vector<std::string> Names(const Parsed& p) {
  std::vector<std::string> out;
  for (const auto& [name, value] : p.headers) out.push_back(name);
  return out;
}

std::string Header(const Parsed& p, const std::string& name) {
  for (const auto& [n, v] : p.headers) {
    if (n == name) return v;
  }
  return "";
}

// The text of a header value made of "=?UTF-8?B?…?=" words (or plain text).
std::string Decode(const std::string& value) {
  if (value.rfind("=?", 0) != 0) return value;
  std::string out;
  for (absl::string_view word : absl::StrSplit(value, ' ', absl::SkipEmpty())) {
    REQUIRE(word.size() <= 75);
    REQUIRE(word.substr(0, 10) == "=?UTF-8?B?");
    REQUIRE(word.substr(word.size() - 2) == "?=");
    std::string text;
    REQUIRE(absl::Base64Unescape(word.substr(10, word.size() - 12), &text));
    out += text;
  }
  return out;
}

const std::vector<std::string> kHeaders = {
    "Date", "From", "To", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};

}  // namespace

TEST_CASE("mail: a subject cannot add headers or a body, whatever the caller passes", "[unit]") {
  for (const std::string& subject : std::vector<std::string>{
           "Invitation to act for X\r\nX-Injected: yes\r\n\r\n<b>phish</b> on stadtportal", "X\nBcc: evil@example.org",
           "X\rBcc: evil@example.org", "X\r\n Bcc: folded@example.org", std::string("nul\0\r\nBcc: x@example.org", 24),
           "NEL \xc2\x85"
           "Bcc: x@example.org",
           "LS \xe2\x80\xa8"
           "Bcc: x@example.org",
           "Ünïcödé\r\nX-Injected: yes", "bad utf8 \xff\r\nX-Injected: yes"}) {
    INFO(subject);
    auto message = Compose("no-reply@stadtportal.example", {"anna@example.de", subject, "Hallo"}, kDate);
    REQUIRE(message.ok());
    const Parsed p = Parse(*message);
    CHECK(Names(p) == kHeaders);
    CHECK(p.body == "Hallo");
    const std::string decoded = Decode(Header(p, "Subject"));
    CHECK(decoded.find('\r') == std::string::npos);
    CHECK(decoded.find('\n') == std::string::npos);
    CHECK(decoded.find('\0') == std::string::npos);
    for (const auto& line : p.lines) CHECK(line.size() <= 78);
  }
  auto attack =
      Compose("no-reply@stadtportal.example",
              {"anna@example.de", "Invitation to act for X\r\nX-Injected: yes\r\n\r\n<b>phish</b>", "Text"}, kDate);
  REQUIRE(attack.ok());
  CHECK(Header(Parse(*attack), "Subject") == "Invitation to act for X X-Injected: yes <b>phish</b>");
  CHECK(attack->find("\r\nX-Injected") == std::string::npos);
}

TEST_CASE("mail: non-ASCII and encoded-word-like subjects become RFC 2047 words of at most 75 characters", "[unit]") {
  const std::string long_subject =
      "Einladung: für Bäckerei Schmidt GmbH & Co. KG – Großhandel mit Brötchen 🥨 "
      "und Lebkuchen aus Nürnberg, seit 1888 auf dem Hauptmarkt";
  auto message = Compose("no-reply@stadtportal.example", {"anna@example.de", long_subject, "x"}, kDate);
  REQUIRE(message.ok());
  const Parsed p = Parse(*message);
  CHECK(Decode(Header(p, "Subject")) == long_subject);
  for (const auto& line : p.lines) CHECK(line.size() <= 78);

  auto word = Compose("no-reply@stadtportal.example", {"anna@example.de", "=?UTF-8?B?SGFsbG8=?=", "x"}, kDate);
  REQUIRE(word.ok());
  CHECK(Header(Parse(*word), "Subject").rfind("=?UTF-8?B?", 0) == 0);
  CHECK(Decode(Header(Parse(*word), "Subject")) == "=?UTF-8?B?SGFsbG8=?=");

  auto plain = Compose("no-reply@stadtportal.example", {"anna@example.de", "Reset your password", "x"}, kDate);
  REQUIRE(plain.ok());
  CHECK(Header(Parse(*plain), "Subject") == "Reset your password");
}

TEST_CASE("mail: addresses are validated, never encoded or trusted", "[unit]") {
  for (const std::string& to : std::vector<std::string>{
           "anna@example.de\r\nBcc: evil@example.org", "anna@example.de>\r\nRCPT TO:<evil@x.org",
           "Anna <anna@example.de>", "anna@example.de, evil@example.org", "", "jörg@example.de", "anna@example.de\n"}) {
    INFO(to);
    auto message = Compose("no-reply@stadtportal.example", {to, "Hallo", "Text"}, kDate);
    CHECK(message.status().code() == absl::StatusCode::kInvalidArgument);
    // Send refuses it before talking to any server (nothing listens on port 9).
    SmtpOptions nowhere;
    nowhere.url = "smtp://127.0.0.1:9";
    CHECK(Send(nowhere, {to, "Hallo", "Text"}).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(Compose("x\r\nBcc: evil@example.org", {"anna@example.de", "Hallo", "Text"}, kDate).status().code() ==
        absl::StatusCode::kInvalidArgument);
  config::Env env(
      std::map<std::string, std::string>{{"STADTPORTAL_MAIL_FROM", "no-reply@example.org\r\nBcc: evil@example.org"}});
  CHECK_THROWS_AS(SmtpOptions::FromEnv(env), config::Error);
}

TEST_CASE("mail: the body gets CRLF line endings and no control characters but TAB", "[unit]") {
  auto message =
      Compose("no-reply@stadtportal.example",
              {"anna@example.de", "Hallo", "Zeile 1\nZeile 2\rZeile 3\r\n\tEingerückt\x1b[2J\x07 Ende"}, kDate);
  REQUIRE(message.ok());
  CHECK(Parse(*message).body == "Zeile 1\r\nZeile 2\r\nZeile 3\r\n\tEingerückt[2J Ende");
}

}  // namespace stadtportal::mail

#include "libs/api/text.h"

#include <catch2/catch.hpp>

namespace stadtportal::api {
namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

}  // namespace

TEST_CASE("ValidateText: a line refuses every control, separator and bidi override", "[unit]") {
  CHECK(ValidateText("Bäckerei Schmidt GmbH", "name", 200).ok());
  CHECK(ValidateText("東京 🏙 Straße", "name", 200).ok());
  const std::vector<std::string> hostile = {
      "X\r\nX-Injected: yes\r\n\r\n<b>phish</b>",
      "X\nBcc: evil@example.org",
      "X\rBcc: evil@example.org",
      "tab\there",
      std::string("nul\0byte", 8),
      "escape\x1b[31m",
      "del\x7f",
      "c1 next line \xc2\x85 here",         // U+0085 NEL
      "c1 csi \xc2\x9b",                    // U+009B
      "line \xe2\x80\xa8 separator",        // U+2028
      "paragraph \xe2\x80\xa9 separator",   // U+2029
      "evil\xe2\x80\xaegpj.exe",            // U+202E RIGHT-TO-LEFT OVERRIDE
      "isolate \xe2\x81\xa6x\xe2\x81\xa9",  // U+2066 … U+2069
  };
  for (const auto& text : hostile) {
    INFO(text);
    CHECK(Message(ValidateText(text, "name", 200)) == "name: control_characters");
  }
  CHECK(Message(ValidateText("\xc3\x28", "name", 200)) == "name: not valid UTF-8");
  CHECK(Message(ValidateText("\xc0\x8a", "name", 200)) == "name: not valid UTF-8");      // Overlong LF.
  CHECK(Message(ValidateText("\xed\xa0\x80", "name", 200)) == "name: not valid UTF-8");  // Surrogate.
  CHECK(Message(ValidateText("  ", "name", 200)) == "name: required");
  CHECK(Message(ValidateText("\r\n", "name", 200)) == "name: required");
  CHECK(Message(ValidateText(std::string(201, 'x'), "name", 200)) == "name: at most 200 characters");
  CHECK(ValidateText(std::string(200, 'x'), "name", 200).ok());
  CHECK(ValidateText("ääää", "name", 4).ok());  // Code points, not bytes.
  CHECK(!ValidateText("äääää", "name", 4).ok());
}

TEST_CASE("ValidateText: a multi-line text allows LF, CRLF and TAB only", "[unit]") {
  CHECK(ValidateText("Guten Tag,\r\n\r\nanbei\tder Bescheid.\nGrüße", "body", 1000, TextKind::kMultiline).ok());
  CHECK(Message(ValidateText("bare\rCR", "body", 1000, TextKind::kMultiline)) == "body: control_characters");
  CHECK(Message(ValidateText("bell\x07", "body", 1000, TextKind::kMultiline)) == "body: control_characters");
  CHECK(Message(ValidateText("nel \xc2\x85", "body", 1000, TextKind::kMultiline)) == "body: control_characters");
  CHECK(Message(ValidateText("ls \xe2\x80\xa8", "body", 1000, TextKind::kMultiline)) == "body: control_characters");
  CHECK(Message(ValidateText("rlo \xe2\x80\xae", "body", 1000, TextKind::kMultiline)) == "body: control_characters");
}

TEST_CASE("PlainLine and PlainLines make any bytes safe for a line or for lines", "[unit]") {
  CHECK(PlainLine("X\r\nX-Injected: yes\r\n\r\n<b>phish</b>") == "X X-Injected: yes <b>phish</b>");
  CHECK(PlainLine("a\tb\x7f"
                  "c\xc2\x85"
                  "d\xe2\x80\xa8"
                  "e") == "a b c d e");
  CHECK(PlainLine("bad \xff utf") == "bad \xef\xbf\xbd utf");
  CHECK(PlainLine("Straße", 4) == "Stra");
  CHECK(Utf8Length(PlainLine(std::string(2000, 'x'))) == 998);
  CHECK(PlainLines("a\rb\nc\r\nd\x01\te\xe2\x80\xae") == "a\r\nb\r\nc\r\nd\te");
  CHECK(PlainLines("\r\n\r\n") == "\r\n\r\n");
}

TEST_CASE("IsMailAddress accepts what can be written into a header as it is", "[unit]") {
  CHECK(IsMailAddress("anna.muster@example.de"));
  CHECK(IsMailAddress("a+tag@mail.stadt-nuernberg.de"));
  CHECK(IsMailAddress("no-reply@stadtportal.invalid"));
  for (const std::string& bad : std::vector<std::string>{"",
                                                         "anna",
                                                         "@example.de",
                                                         "anna@",
                                                         "anna@example",
                                                         "anna@@example.de",
                                                         "an na@example.de",
                                                         "anna@example.de\r\nBcc: evil@example.org",
                                                         "anna@example.de>",
                                                         "<anna@example.de>",
                                                         "Anna <anna@example.de>",
                                                         "anna@example.de,evil@example.org",
                                                         "anna\"@example.de",
                                                         "anna@exa_mple.de",
                                                         "anna@-example.de",
                                                         ".anna@example.de",
                                                         "anna..m@example.de",
                                                         "jörg@example.de",
                                                         "anna@bücher.de",
                                                         std::string(65, 'a') + "@example.de",
                                                         "a@" + std::string(250, 'b') + ".de"}) {
    INFO(bad);
    CHECK_FALSE(IsMailAddress(bad));
  }
}

}  // namespace stadtportal::api

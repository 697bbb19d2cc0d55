#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// Text from outside: the one check every service applies to the text it stores, and
// the one way to make a value safe to put into a line (a mail subject or header, a
// template filled into a mail). A line break in a name must never become a new header,
// a new paragraph of a mail, or a forged log line.
namespace stadtportal::api {

enum class TextKind {
  // Names, display names, subjects, titles, references, departments, reasons…: no
  // control characters at all.
  kLine,
  // Message bodies and comments: line breaks (LF or CRLF) and TAB allowed; no other
  // control characters.
  kMultiline,
};

// Number of code points if `s` is valid UTF-8 (no overlongs, no surrogates), else -1.
long Utf8Length(absl::string_view s);

// Whether the code point may not appear in a line of text: C0 controls (including CR,
// LF and TAB), DEL, C1 controls, the line and paragraph separators U+2028/U+2029, and
// the bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069),
// which make a text display differently from what it is.
bool IsForbiddenInLine(uint32_t cp);

// The check for a text field: valid UTF-8, not blank, at most `max_chars` code points,
// and no forbidden characters for its kind. INVALID_ARGUMENT naming the field:
// "<field>: not valid UTF-8", "<field>: required", "<field>: at most N characters",
// "<field>: control_characters". Check an optional field only when it is not empty.
absl::Status ValidateText(absl::string_view text, const std::string& field, size_t max_chars,
                          TextKind kind = TextKind::kLine);

// Whether `text` has a character its kind forbids (for checks that report their own
// error codes, such as form answers). Invalid UTF-8 is not looked at here.
bool HasControlCharacters(absl::string_view text, TextKind kind);

// Valid UTF-8 with no character its kind forbids: for values from outside (paths,
// queries, headers, file names) that go on into gRPC messages (proto3 strings must be
// valid UTF-8), log lines or headers.
bool IsPlainText(absl::string_view text, TextKind kind = TextKind::kLine);

// `s` made safe to put into a line: every forbidden character (IsForbiddenInLine) and
// every run of CR/LF becomes one space, invalid UTF-8 becomes U+FFFD, and the result is
// cut to at most `max_chars` code points. For values that were validated on input but
// are inserted where a line break would change the meaning (mail subjects, headers,
// template values): a second line of defence that never relies on the first.
std::string PlainLine(absl::string_view s, size_t max_chars = 998);

// `s` as lines of text ending in CRLF: every CR, LF and CRLF becomes CRLF, and
// every other forbidden character except TAB is removed; invalid UTF-8 becomes U+FFFD.
std::string PlainLines(absl::string_view s);

// An e-mail address that may be written into a mail header and an SMTP command as it
// is: ASCII local part of atext and dots (1-64), a domain of letters, digits and
// hyphens with at least one dot, at most 254 characters in all.
bool IsMailAddress(absl::string_view address);

}  // namespace stadtportal::api

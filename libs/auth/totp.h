#pragma once

#include <cstdint>
#include <optional>
#include <string>

// Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP) as authenticator apps
// use them: HMAC-SHA1, 30-second steps, 6 digits.
namespace stadtportal::auth {

inline constexpr int64_t kTotpStepSeconds = 30;
inline constexpr int kTotpDigits = 6;

// The code for time step `step` (unix time / 30) of the raw `secret`, `digits` long
// with leading zeros (RFC 4226 dynamic truncation).
std::string TotpCode(const std::string& secret, int64_t step, int digits = kTotpDigits);
// The step of a unix time.
inline int64_t TotpStep(int64_t unix_seconds) { return unix_seconds / kTotpStepSeconds; }
// The step in [now_step - window, now_step + window] whose code equals `code`, compared
// in constant time; nullopt when none does or `code` is not `kTotpDigits` digits.
std::optional<int64_t> TotpMatch(const std::string& secret, const std::string& code, int64_t now_step, int window = 1);

// A new random secret (20 bytes, the size of an HMAC-SHA1 key).
std::string NewTotpSecret();
// RFC 4648 base32 without padding, as otpauth:// URIs carry secrets.
std::string Base32(const std::string& bytes);
// The bytes of base32 text (upper or lower case, padding optional); nullopt if malformed.
std::optional<std::string> FromBase32(const std::string& text);
// otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
std::string OtpauthUri(const std::string& issuer, const std::string& account, const std::string& secret);

}  // namespace stadtportal::auth

#pragma once

#include <string>

// Secrets handed to users (session ids, e-mail and invitation tokens): random, and
// stored only as their SHA-256.
namespace stadtportal::auth {

// base64url of `bytes` random bytes from the operating system's CSPRNG.
std::string RandomToken(size_t bytes = 32);
// Raw SHA-256 of `data`.
std::string Sha256(const std::string& data);
// Hex HMAC-SHA256 of `message` under `key` (webhook and delivery signatures).
std::string HmacSha256Hex(const std::string& key, const std::string& message);
// Whether two secrets (tokens, digests, codes) are equal, in time independent of where
// they differ.
bool ConstantTimeEqual(const std::string& a, const std::string& b);

}  // namespace stadtportal::auth

#pragma once

#include <string>

// Secrets handed to users (session ids, e-mail and invitation tokens): random, and
// stored only as their SHA-256.
namespace stadtportal::auth {

// base64url of `bytes` random bytes from the operating system's CSPRNG.
std::string RandomToken(size_t bytes = 32);
// Raw SHA-256 of `data`.
std::string Sha256(const std::string& data);

}  // namespace stadtportal::auth

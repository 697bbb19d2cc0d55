#include "libs/auth/tokens.h"

#include <sodium.h>

#include <stdexcept>

#include "absl/strings/escaping.h"

namespace stadtportal::auth {

std::string RandomToken(size_t bytes) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  return absl::WebSafeBase64Escape(raw);
}

std::string Sha256(const std::string& data) {
  std::string out(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(data.data()),
                     data.size());
  return out;
}

}  // namespace stadtportal::auth

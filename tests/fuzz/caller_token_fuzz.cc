// Caller tokens (libs/auth Verify): a token as sent (any bytes), and tokens whose header
// and claims are any bytes but correctly signed, so that the claims are read too.
// Verify answers a caller or UNAUTHENTICATED; it never throws, nor hits undefined
// behaviour on numbers (exp, iat) at the edges.
#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "libs/auth/caller.h"

namespace {

struct Keys {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  std::unique_ptr<stadtportal::auth::Verifier> verifier;
  Keys() {
    if (sodium_init() < 0) std::abort();
    unsigned char seed[crypto_sign_SEEDBYTES] = {7};
    crypto_sign_seed_keypair(pk, sk, seed);
    auto v = stadtportal::auth::Verifier::FromKeys(
        "fuzz:" + absl::Base64Escape(std::string(reinterpret_cast<char*>(pk), sizeof(pk))), "submission");
    if (!v.ok()) std::abort();
    verifier = std::make_unique<stadtportal::auth::Verifier>(*v);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Keys keys;
  const std::string input(reinterpret_cast<const char*>(data), size);
  // As sent by anyone who can reach a service.
  (void)keys.verifier->Verify(input);
  (void)stadtportal::auth::VerifyEdDsa(input, std::string(reinterpret_cast<char*>(keys.pk), sizeof(keys.pk)));
  // Signed: "<header>\n<claims>" (no newline: the default header).
  const size_t nl = input.find('\n');
  const std::string header =
      nl == std::string::npos ? R"({"alg":"EdDSA","typ":"JWT","kid":"fuzz"})" : input.substr(0, nl);
  const std::string claims = nl == std::string::npos ? input : input.substr(nl + 1);
  const std::string signing_input = absl::WebSafeBase64Escape(header) + "." + absl::WebSafeBase64Escape(claims);
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
                       keys.sk);
  const std::string token =
      signing_input + "." + absl::WebSafeBase64Escape(std::string(reinterpret_cast<char*>(sig), sizeof(sig)));
  auto caller = keys.verifier->Verify(token);
  if (!caller.ok() && caller.status().code() != absl::StatusCode::kUnauthenticated) std::abort();
  (void)stadtportal::auth::VerifyEdDsa(token, std::string(reinterpret_cast<char*>(keys.pk), sizeof(keys.pk)));
  return 0;
}

// stadtportal-keygen KID: prints a new caller-token key pair as two lines,
//   STADTPORTAL_CALLER_SIGNING_KEY=KID:… (secret, for the gateway)
//   STADTPORTAL_CALLER_PUBLIC_KEYS=KID:… (for every service)
// See docs/operations.md for rotating keys.
#include <cstdio>
#include <string>

#include "libs/auth/caller.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  if (argc != 2) {
    std::fprintf(stderr, "usage: stadtportal-keygen KID\n");
    return 2;
  }
  const std::string key = auth::NewSigningKey(argv[1]);
  auto signer = auth::Signer::FromKey(key, std::chrono::seconds(60));
  if (!signer.ok()) {
    std::fprintf(stderr, "stadtportal-keygen: %s\n", std::string(signer.status().message()).c_str());
    return 2;
  }
  std::printf("STADTPORTAL_CALLER_SIGNING_KEY=%s\nSTADTPORTAL_CALLER_PUBLIC_KEYS=%s\n", key.c_str(),
              signer->PublicKey().c_str());
  return 0;
}

// stadtportal-keygen KID [PART]: prints a new caller-token key pair of the signing PART
// ("gateway", "connector", "payment" or "accounts") as two lines,
//   STADTPORTAL_CALLER_SIGNING_KEY=KID:…     (secret, for the gateway only)
//   STADTPORTAL_CALLER_PUBLIC_KEYS=KID:…     (for every service)
// or, for another part, STADTPORTAL_<PART>_SIGNING_KEY / STADTPORTAL_<PART>_PUBLIC_KEYS.
// Without PART, one pair per signing part (kids KID and KID-<part>), as a development
// run needs them. See docs/operations.md for rotating keys.
#include <cstdio>
#include <string>
#include <vector>

#include "libs/auth/caller.h"

namespace {

int Print(const std::string& kid, const std::string& part) {
  using namespace stadtportal;
  const std::string key = auth::NewSigningKey(kid);
  auto signer = auth::Signer::FromKey(key, std::chrono::seconds(60), part);
  if (!signer.ok()) {
    std::fprintf(stderr, "stadtportal-keygen: %s\n", std::string(signer.status().message()).c_str());
    return 2;
  }
  std::printf("%s=%s\n%s=%s\n", auth::Signer::SigningKeySetting(part).c_str(), key.c_str(),
              auth::Signer::PublicKeysSetting(part).c_str(), signer->PublicKey().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace stadtportal;
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: stadtportal-keygen KID [gateway|connector|payment|accounts]\n");
    return 2;
  }
  const std::string kid = argv[1];
  if (argc == 3) return Print(kid, argv[2]);
  if (int rc = Print(kid, auth::kGateway); rc != 0) return rc;
  for (const auto& part : auth::ServiceIssuers()) {
    if (int rc = Print(kid + "-" + part, part); rc != 0) return rc;
  }
  return 0;
}

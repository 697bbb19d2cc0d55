// Form definitions as tenant admins publish them (services/submission CheckDefinition:
// catalogue.schema.json, then the form rules): any bytes are a definition or an
// INVALID_ARGUMENT, never an exception (which a service answers with 500); an accepted
// definition's form then checks answers without throwing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "services/submission/catalogue.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  auto d = stadtportal::submission::CheckDefinition(input);
  if (!d.ok()) {
    if (d.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const auto form = stadtportal::submission::FormOf(*d);
  const auto empty = nlohmann::json::object();
  (void)form.CheckPatch(empty, {});
  (void)form.Validate(empty, {}, "", absl::CivilDay(2026, 11, 29));
  std::vector<std::string> read_only;
  (void)form.Prefill({{"given_name", {"Anna", true}}, {"email", {"anna@example.de", false}}}, &read_only);
  return 0;
}

// Answers to the catalogue's forms (services/submission form.cc), as drafts are saved,
// validated and submitted: the first byte picks a form and a step, the rest is the
// answers' JSON. Checking them never throws, whatever the values (numbers at the edges,
// wrong types, deep nesting).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "services/submission/catalogue.h"

namespace {

const std::vector<stadtportal::submission::Form>& Forms() {
  static const auto* forms = [] {
    auto definitions = stadtportal::submission::LoadCatalogue();
    if (!definitions.ok() || definitions->empty()) std::abort();
    auto* out = new std::vector<stadtportal::submission::Form>();
    for (const auto& d : *definitions) out->push_back(stadtportal::submission::FormOf(d));
    return out;
  }();
  return *forms;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& forms = Forms();
  const auto& form = forms[data[0] % forms.size()];
  const auto answers = nlohmann::json::parse(data + 1, data + size, nullptr, false);
  if (answers.is_discarded()) return 0;
  // Saving: the shape of a patch; a patch that passes is merged into the draft.
  std::set<std::string> read_only;
  if (data[0] & 0x80) read_only.insert(form.fields().front().id);
  if (!form.CheckPatch(answers, read_only).empty() || !answers.is_object()) return 0;
  std::map<std::string, int> files;
  for (const auto& f : form.fields()) {
    if (f.type == "file") files[f.id] = data[0] & 3;
  }
  // Validating a step, everything, and what a submission keeps.
  const std::string step = form.fields()[data[0] % form.fields().size()].step;
  (void)form.Validate(answers, files, (data[0] & 0x40) ? step : "", absl::CivilDay(2026, 11, 29));
  (void)form.VisibleData(answers);
  return 0;
}

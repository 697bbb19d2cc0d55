// JSON request bodies (libs/http/json_body): whatever the bytes, ParseJsonBody answers
// with a body or an INVALID_ARGUMENT with field errors — it never throws — and what a
// handler then does with an accepted body (typed reads, dumping it on) does not throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "libs/http/json_body.h"

using stadtportal::http::FieldSpec;
using stadtportal::http::FieldType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::map<std::string, FieldSpec> kFields = {
      {"email", {FieldType::kString}},       {"amount_minor", {FieldType::kInteger, false}},
      {"ok", {FieldType::kBoolean, false}},  {"data", {FieldType::kObject, false}},
      {"items", {FieldType::kArray, false}},
  };
  const std::string input(reinterpret_cast<const char*>(data), size);
  httplib::Request req;
  req.set_header("Content-Type", "application/json");
  req.body = input;
  auto body = stadtportal::http::ParseJsonBody(req, kFields);
  if (body.ok()) {
    const std::string email = (*body)["email"];
    if (body->contains("amount_minor")) (void)(*body)["amount_minor"].get<int64_t>();
    (void)body->value("amount_minor", int64_t{0});
    if (body->contains("ok")) (void)(*body)["ok"].get<bool>();
    if (body->contains("data")) (void)(*body)["data"].dump();
    (void)body->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else if (stadtportal::status::FieldViolations(body.status()).empty()) {
    std::abort();  // A refusal always says why.
  }
  // The other readers of outside text in the same file.
  req.set_header("Accept-Language", input);
  const std::string lang = stadtportal::http::Language(req);
  if (lang != "de" && lang != "en") std::abort();
  return 0;
}

// The ids the edge takes from outside: W3C traceparent, X-Request-Id, and the checks
// that guard gRPC metadata and every value going on to a service. Whatever the bytes,
// what passes a check is what the next step accepts (gRPC would abort the process on an
// illegal metadata value).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "libs/api/api.h"
#include "libs/grpc/client.h"
#include "libs/log/log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string traceparent = stadtportal::log::NormalizeTraceparent(input);
  if (!traceparent.empty()) {
    if (traceparent.size() != 55 || traceparent.compare(0, 3, "00-") != 0) std::abort();
    if (stadtportal::log::NormalizeTraceparent(traceparent) != traceparent) std::abort();
    if (!stadtportal::grpcx::IsLegalMetadata("traceparent", traceparent)) std::abort();
  }
  if (stadtportal::log::IsValidRequestId(input) && !stadtportal::grpcx::IsLegalMetadata("x-request-id", input)) {
    std::abort();
  }
  const bool plain = stadtportal::api::IsPlainText(input);
  const bool multi_line = stadtportal::api::IsPlainText(input, stadtportal::api::TextKind::kMultiline);
  const bool utf8 = stadtportal::api::Utf8Length(input) >= 0;
  if ((plain && !multi_line) || (multi_line && !utf8)) std::abort();
  if (plain && input.find_first_of(std::string("\0\r\n\x7f", 4)) != std::string::npos) std::abort();
  (void)stadtportal::grpcx::IsLegalMetadata(input, input);
  return 0;
}

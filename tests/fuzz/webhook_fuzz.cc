// Provider notifications (services/payment): testpay's signed webhooks — any bytes as
// headers and body, and any body correctly signed, so that the payload is read too —
// and the event of a PayPal notification PayPal confirmed. Each is an event or
// UNAUTHENTICATED / INVALID_ARGUMENT, never an exception (which the service answers
// with 500).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "services/payment/paypal.h"
#include "services/payment/testpay.h"

using stadtportal::payment::TestpayProvider;

namespace {

constexpr char kSecret[] = "fuzz-webhook-secret";

void Expect(const absl::Status& s) {
  if (!s.ok() && s.code() != absl::StatusCode::kUnauthenticated && s.code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TestpayProvider testpay({"http://127.0.0.1:1", "key", kSecret});
  const std::string input(reinterpret_cast<const char*>(data), size);
  // "<signature header>\n<body>" as sent.
  const size_t nl = input.find('\n');
  if (nl != std::string::npos) {
    Expect(testpay.VerifyWebhook({{"testpay-signature", input.substr(0, nl)}}, input.substr(nl + 1)).status());
  }
  // The whole input as a correctly signed body.
  const int64_t t = 1764403200;
  const std::string signature =
      absl::StrCat("t=", t, ",v1=", stadtportal::payment::TestpaySignature(kSecret, t, input));
  Expect(testpay.VerifyWebhook({{"testpay-signature", signature}}, input).status());
  // PayPal: what VerifyWebhook reads from the event once PayPal confirmed the signature.
  const auto event = nlohmann::json::parse(input, nullptr, false);
  if (!event.is_discarded() && event.is_object() && event.contains("id") && event.contains("event_type")) {
    Expect(stadtportal::payment::PaypalEvent(event, absl::FromUnixSeconds(t)).status());
  }
  return 0;
}

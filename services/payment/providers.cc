#include "absl/strings/str_split.h"
#include "services/payment/paypal.h"
#include "services/payment/provider.h"
#include "services/payment/testpay.h"

namespace stadtportal::payment {

std::vector<std::shared_ptr<Provider>> ProvidersFromEnv(const config::Env& env) {
  std::vector<std::shared_ptr<Provider>> providers;
  const bool allow_test = env.Bool("STADTPORTAL_ALLOW_TEST_PROVIDERS", false);
  for (absl::string_view name : absl::StrSplit(env.String("STADTPORTAL_PAYMENT_PROVIDERS", "testpay"), ',')) {
    if (name == "testpay") {
      if (!allow_test) {
        throw config::Error(
            "STADTPORTAL_PAYMENT_PROVIDERS: testpay is a simulated provider for development and tests; "
            "set STADTPORTAL_ALLOW_TEST_PROVIDERS=true to use it");
      }
      providers.push_back(std::make_shared<TestpayProvider>(
          TestpayOptions{env.Required("STADTPORTAL_TESTPAY_URL"), env.Secret("STADTPORTAL_TESTPAY_API_KEY"),
                         env.Secret("STADTPORTAL_TESTPAY_WEBHOOK_SECRET")}));
    } else if (name == "paypal") {
      PaypalOptions o;
      o.base_url = env.String("STADTPORTAL_PAYPAL_BASE_URL", o.base_url);
      o.client_id = env.Required("STADTPORTAL_PAYPAL_CLIENT_ID");
      o.client_secret = env.Secret("STADTPORTAL_PAYPAL_CLIENT_SECRET");
      o.webhook_id = env.Required("STADTPORTAL_PAYPAL_WEBHOOK_ID");
      providers.push_back(std::make_shared<PaypalProvider>(o));
    } else {
      throw config::Error("STADTPORTAL_PAYMENT_PROVIDERS: unknown provider " + std::string(name));
    }
  }
  return providers;
}

}  // namespace stadtportal::payment

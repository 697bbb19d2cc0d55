// stadtportal-payment: fees paid online. Wiring only; the logic is in service.cc and store.cc.
#include "absl/strings/str_split.h"
#include "libs/app/app.h"
#include "libs/app/periodic.h"
#include "libs/events/events.h"
#include "services/payment/paypal.h"
#include "services/payment/service.h"
#include "services/payment/testpay.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"payment", 50054, 9104}, [](app::ServiceContext& ctx) {
    const auto& env = ctx.env();
    auto options = payment::Options::FromEnv(env, ctx.tenant());
    std::vector<std::shared_ptr<payment::Provider>> providers;
    for (absl::string_view name : absl::StrSplit(env.String("STADTPORTAL_PAYMENT_PROVIDERS", "testpay"), ',')) {
      if (name == "testpay") {
        providers.push_back(std::make_shared<payment::TestpayProvider>(
            payment::TestpayOptions{env.Required("STADTPORTAL_TESTPAY_URL"), env.Secret("STADTPORTAL_TESTPAY_API_KEY"),
                                    env.Secret("STADTPORTAL_TESTPAY_WEBHOOK_SECRET")}));
      } else if (name == "paypal") {
        payment::PaypalOptions o;
        o.base_url = env.String("STADTPORTAL_PAYPAL_BASE_URL", o.base_url);
        o.client_id = env.Required("STADTPORTAL_PAYPAL_CLIENT_ID");
        o.client_secret = env.Secret("STADTPORTAL_PAYPAL_CLIENT_SECRET");
        o.webhook_id = env.Required("STADTPORTAL_PAYPAL_WEBHOOK_ID");
        providers.push_back(std::make_shared<payment::PaypalProvider>(o));
      } else {
        throw config::Error("STADTPORTAL_PAYMENT_PROVIDERS: unknown provider " + std::string(name));
      }
    }
    const auto reconcile_every = env.Millis("STADTPORTAL_PAYMENT_RECONCILE_INTERVAL_MS", std::chrono::minutes(1));
    const auto reconcile_after = std::chrono::seconds(env.Int("STADTPORTAL_PAYMENT_RECONCILE_AFTER_S", 300, 0, 86400));

    auto& db = ctx.Database(payment::Store::Prepare);
    auto service = std::make_unique<payment::Service>(std::make_shared<payment::Store>(db), providers, options);
    auto* core = service.get();  // Owned by the server, which outlives the jobs.
    auto relay = std::make_shared<events::Relay>(db, ctx.Redis(), "payment");
    auto reconcile = std::make_shared<app::Periodic>("payment-reconciliation", reconcile_every,
                                                     [core, reconcile_after] { core->ReconcileNow(reconcile_after); });
    ctx.OnServing([relay, reconcile] {
      relay->Start();
      reconcile->Start();
    });
    ctx.OnStopping([relay, reconcile] {
      reconcile->Stop();
      relay->Stop();
    });
    ctx.AddService<payment::v1::PaymentService>(std::move(service));
  });
}

// stadtportal-submission: catalogue, drafts and submissions. Wiring only; the logic is in service.cc and store.cc.
#include "libs/app/app.h"
#include "services/submission/service.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  return app::RunService(argc, argv, {"submission", 50053, 9103}, [](app::ServiceContext& ctx) {
    auto store = std::make_shared<submission::Store>(ctx.Database(submission::Store::Prepare));
    ctx.AddService<submission::v1::SubmissionService>(std::make_unique<submission::Service>(store, ctx.tenant()));
  });
}

// The gateway's catalogue cache against the real binaries: ETag and 304, a new form
// version served at once by the replica that published it and after its event by the
// others, and views answered from the cache counted in the funnel; finding a service by
// its federal service key (LeiKa), each key its own cached answer, and by the words of
// the choices its form offers.
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "libs/auth/caller.h"
#include "libs/grpc/client.h"
#include "libs/testing/testing.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kPath[] = "/api/v1/services/library-fee-payment";

json Definition(int version, int64_t fee) {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) +
                   "/services/submission/catalogue/09564000/library-fee-payment.v1.json");
  std::stringstream text;
  text << in.rdbuf();
  json d = json::parse(text.str());
  d["version"] = version;
  d["fee"]["amount_minor"] = fee;
  return d;
}

int CacheHits(Stack& stack) {
  httplib::Client metrics("127.0.0.1", stack.gateway_admin_port());
  auto r = metrics.Get("/metrics");
  REQUIRE(Status(r) == 200);
  const std::string line = "stadtportal_gateway_catalogue_cache_total{result=\"hit\"} ";
  const auto pos = r->body.find(line);
  return pos == std::string::npos ? 0 : std::stoi(r->body.substr(pos + line.size()));
}

}  // namespace

TEST_CASE("catalogue answers are cached with an ETag, and a new form version is served at once", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  auto first = c.Get(kPath);
  REQUIRE(Status(first) == 200);
  const std::string etag = first->get_header_value("ETag");
  CHECK(etag.size() == 34);
  CHECK(first->get_header_value("Cache-Control") == "public, no-cache");
  CHECK(first->get_header_value_count("Cache-Control") == 1);
  // Nothing of this client's kept for others: no rate-limit budget; CORS varies by Origin.
  CHECK_FALSE(first->has_header("RateLimit-Remaining"));
  CHECK(first->get_header_value("Vary") == "Origin");
  const int version = json::parse(first->body)["form_version"];

  // The reader of catalogue events is live within a moment; then answers come from the cache.
  REQUIRE(testing::Eventually(
      [&] {
        auto again = c.Get(kPath);
        return Status(again) == 200 && again->body == first->body && CacheHits(stack) > 0;
      },
      5s));
  const int hits = CacheHits(stack);
  auto not_modified = c.Get(kPath, {{"If-None-Match", "\"x\", " + etag}});
  REQUIRE(Status(not_modified) == 304);
  CHECK(not_modified->body.empty());
  CHECK(not_modified->get_header_value("ETag") == etag);
  CHECK(CacheHits(stack) == hits + 1);
  auto list = c.Get("/api/v1/services?q=bibliothek");
  REQUIRE(Status(list) == 200);
  CHECK(json::parse(list->body)["items"][0]["form_version"] == version);

  // Published through this gateway: the very next answer has the new version.
  auto admin = Admin(stack, c);
  auto published = PostJson(c, "/api/v1/admin/services/library-fee-payment/versions",
                            {{"definition", Definition(version + 1, 1800)}}, Bearer(admin));
  INFO((published ? published->body : "no answer"));
  REQUIRE(Status(published) == 201);
  auto after = c.Get(kPath, {{"If-None-Match", etag}});
  REQUIRE(Status(after) == 200);
  CHECK(json::parse(after->body)["form_version"] == version + 1);
  CHECK(json::parse(after->body)["fee"]["amount_minor"] == 1800);
  CHECK(after->get_header_value("ETag") != etag);
  auto listed = c.Get("/api/v1/services?q=bibliothek");
  CHECK(json::parse(listed->body)["items"][0]["form_version"] == version + 1);

  // Published elsewhere (another gateway replica, straight to the submission service):
  // this gateway learns of it from the catalogue.changed event, and once it served the
  // new version it never serves the old one again.
  auth::Caller publisher;
  publisher.account_id = "e2e-catalogue-admin";
  publisher.tenant = "09564000";
  publisher.assurance = "low";
  publisher.roles = {"tenant-admin"};
  auto ctx = grpcx::NewClientContext(5s, stack.SignCaller(publisher, "submission"));
  submission::v1::PublishOnlineServiceRequest in;
  in.set_service_id("library-fee-payment");
  in.set_definition_json(Definition(version + 2, 2100).dump());
  submission::v1::OnlineService out;
  auto channel = grpcx::MakeChannel("ipv4:127.0.0.1:" + std::to_string(stack.instance("submission").grpc_port));
  REQUIRE(submission::v1::SubmissionService::NewStub(channel)->PublishOnlineService(ctx.get(), in, &out).ok());
  REQUIRE(testing::Eventually([&] { return json::parse(c.Get(kPath)->body)["form_version"] == version + 2; }, 5s));
  for (int i = 0; i < 20; ++i) CHECK(json::parse(c.Get(kPath)->body)["fee"]["amount_minor"] == 2100);
}

TEST_CASE("a partner finds an online service by its federal service key", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  auto ids = [&](const std::string& query) {
    auto r = c.Get("/api/v1/services?" + query);
    INFO(query << ": " << (r ? r->body : "no answer"));
    REQUIRE(Status(r) == 200);
    const json body = json::parse(r->body);
    std::vector<std::string> out;
    for (const auto& item : body["items"]) out.push_back(item["id"]);
    return out;
  };
  using Ids = std::vector<std::string>;

  auto all = c.Get("/api/v1/services");
  REQUIRE(Status(all) == 200);
  const json listed_all = json::parse(all->body);
  REQUIRE(listed_all["items"].size() == 6);
  for (const auto& item : listed_all["items"]) {
    INFO(item.dump());
    CHECK(item["leika"].get<std::string>().size() == 14);
  }
  auto detail = c.Get("/api/v1/services/dog-tax-registration");
  REQUIRE(Status(detail) == 200);
  CHECK(json::parse(detail->body)["leika"] == "99102013104000");

  // Two keys in a row, each answered from the cache once it is live: each its own answer.
  REQUIRE(testing::Eventually(
      [&] {
        const int hits = CacheHits(stack);
        return ids("leika=99102013104000") == Ids{"dog-tax-registration"} && CacheHits(stack) > hits;
      },
      5s));
  for (int i = 0; i < 3; ++i) {
    CHECK(ids("leika=99108001001000") == Ids{"residential-parking-permit"});
    CHECK(ids("leika=99102013104000") == Ids{"dog-tax-registration"});
    CHECK(ids("leika=99027002012000") == Ids{"civil-registry-certificate"});
  }
  auto listed = c.Get("/api/v1/services?leika=99108001001000");
  REQUIRE(Status(listed) == 200);
  CHECK(json::parse(listed->body)["items"][0]["leika"] == "99108001001000");

  // Combined with the other filters; a key nobody has is an empty list.
  CHECK(ids("leika=99102013104000&category=taxes&q=hund") == Ids{"dog-tax-registration"});
  CHECK(ids("category=traffic&leika=99102013104000").empty());
  CHECK(ids("leika=99102013104000&q=urkunde").empty());
  CHECK(ids("leika=99999999999999").empty());
  CHECK(ids("leika=99102013104000&page_size=1") == Ids{"dog-tax-registration"});

  // The text is found in names and descriptions, and in the choices a form offers: the
  // certificate service says "Geburts-, Ehe- oder Sterbeurkunde" and offers "Geburtsurkunde".
  CHECK(ids("q=Geburtsurkunde") == Ids{"civil-registry-certificate"});
  CHECK(ids("q=sterbeurkunde") == Ids{"civil-registry-certificate"});
  CHECK(ids("q=Death%20certificate") == Ids{"civil-registry-certificate"});
  CHECK(ids("q=Personenstandsregister") == Ids{"civil-registry-certificate"});
  CHECK(ids("q=Geburtsurkunde&category=taxes").empty());
  CHECK(ids("q=required").empty());  // Not the definition's own words.

  // A malformed key is refused naming the parameter, and never cached.
  for (const std::string bad :
       {"123", "9910201310400", "991020131040000", "9910201310400a", "99102013104000%20",
        "%D9%A1%D9%A2%D9%A3%D9%A4%D9%A5%D9%A6%D9%A7", "99102013104000%27--", "-9910201310400"}) {
    INFO(bad);
    auto r = c.Get("/api/v1/services?leika=" + bad);
    REQUIRE(r);
    CHECK(r->status == 422);
    CHECK(r->get_header_value("Content-Type") == "application/problem+json");
    auto problem = json::parse(r->body);
    REQUIRE(problem["errors"].size() == 1);
    CHECK(problem["errors"][0]["field"] == "leika");
    CHECK(Status(c.Get("/api/v1/services?leika=" + bad)) == 422);
  }
}

}  // namespace stadtportal::e2e

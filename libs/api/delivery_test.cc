#include "libs/api/delivery.h"

#include <catch2/catch.hpp>

namespace api = stadtportal::api;
namespace sv1 = stadtportal::submission::v1;

namespace {

sv1::DeliverySnapshot Snapshot() {
  sv1::DeliverySnapshot s;
  s.set_destination("standesamt");
  s.set_party_id("6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f");
  auto* sub = s.mutable_submission();
  sub->set_id("3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b");
  sub->set_reference("NUE-2026-000001");
  sub->set_service_id("civil-registry-certificate");
  sub->mutable_service_name()->set_de("Geburtsurkunde");
  sub->set_status("paid");
  sub->set_data_json(R"({"name":"Anna Muster","copies":2,"nested":{"a":[1,2]}})");
  auto* f = s.add_files();
  f->mutable_attachment()->set_id("a1");
  f->mutable_attachment()->set_field("id_card");
  f->mutable_attachment()->set_filename("ausweis.pdf");
  f->mutable_attachment()->set_media_type("application/pdf");
  f->mutable_attachment()->set_size(5);
  f->mutable_attachment()->set_sha256("ab12");
  f->set_content(std::string("%PDF\0", 5));
  return s;
}

}  // namespace

TEST_CASE("the delivery document: ids, the submission with its data as an object, files in base64", "[unit]") {
  auto doc = api::DeliveryDocument(Snapshot());
  REQUIRE(doc.ok());
  const auto& d = *doc;
  CHECK(d["delivery_id"] == "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b");
  CHECK(d["destination"] == "standesamt");
  const auto& sub = d["submission"];
  CHECK(sub["reference"] == "NUE-2026-000001");
  CHECK(sub["service_id"] == "civil-registry-certificate");  // Proto field names.
  CHECK(sub["service_name"]["de"] == "Geburtsurkunde");
  CHECK(sub["data"]["name"] == "Anna Muster");
  CHECK(sub["data"]["copies"] == 2);
  CHECK(sub["data"]["nested"]["a"][1] == 2);
  CHECK_FALSE(sub.contains("data_json"));
  CHECK(sub["withdrawable"] == false);  // Every field, also at its default value.
  REQUIRE(d["files"].size() == 1);
  const auto& f = d["files"][0];
  CHECK(f["id"] == "a1");
  CHECK(f["field"] == "id_card");
  CHECK(f["filename"] == "ausweis.pdf");
  CHECK(f["media_type"] == "application/pdf");
  CHECK(f["size"] == 5);
  CHECK(f["sha256"] == "ab12");
  CHECK(f["content_base64"] == "JVBERgA=");
  // Exactly these members, at both levels.
  CHECK(d.size() == 4);
  CHECK(f.size() == 7);
}

TEST_CASE("a snapshot whose data is not a JSON object gives no document", "[unit]") {
  for (const std::string& data : {std::string("not json"), std::string("[1,2]"), std::string("")}) {
    auto s = Snapshot();
    s.mutable_submission()->set_data_json(data);
    CHECK(api::DeliveryDocument(s).status().code() == absl::StatusCode::kInternal);
  }
  auto empty = Snapshot();
  empty.clear_files();
  auto doc = api::DeliveryDocument(empty);
  REQUIRE(doc.ok());
  CHECK((*doc)["files"].is_array());
  CHECK((*doc)["files"].empty());
}

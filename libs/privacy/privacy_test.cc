#include "libs/privacy/privacy.h"

#include <catch2/catch.hpp>

namespace stadtportal::privacy {
namespace {

auth::Caller Person() {
  auth::Caller c;
  c.account_id = "0b6c1f0e-1111-4222-8333-944455556666";
  c.tenant = "09564000";
  return c;
}

TEST_CASE("only the person acting as themself reaches their own data", "[privacy]") {
  CHECK(*OwnPerson(Person()) == Person().account_id);
  auto self = Person();
  self.acting_party = self.account_id;
  CHECK(OwnPerson(self).ok());

  CHECK(OwnPerson(auth::Caller{}).status().code() == absl::StatusCode::kUnauthenticated);
  auto org = Person();
  org.acting_party = "7d1e2f3a-0000-4000-8000-000000000001";
  CHECK(OwnPerson(org).status().code() == absl::StatusCode::kPermissionDenied);
  auto partner = Person();
  partner.partner_id = "portal-1";
  CHECK(OwnPerson(partner).status().code() == absl::StatusCode::kPermissionDenied);
  auto backoffice = Person();
  backoffice.roles = {"department"};
  CHECK(OwnPerson(backoffice).status().code() == absl::StatusCode::kPermissionDenied);
}

TEST_CASE("export paths are safe and read back", "[privacy]") {
  const auto path = ExportPath("submission", "attachment", "5f0c", "Geburts urkunde.pdf");
  CHECK(path == "submission/attachment/5f0c/Geburts_urkunde.pdf");
  auto parts = ParseExportPath(path);
  REQUIRE(parts.ok());
  CHECK(parts->service == "submission");
  CHECK(parts->kind == "attachment");
  CHECK(parts->id == "5f0c");
  CHECK(parts->filename == "Geburts_urkunde.pdf");

  // Names from outside cannot climb out of their folder or hide characters.
  CHECK(ExportPath("messaging", "attachment", "1", "../../etc/passwd") == "messaging/attachment/1/.._.._etc_passwd");
  CHECK(ExportPath("messaging", "attachment", "1", "..") == "messaging/attachment/1/file");
  CHECK(ExportPath("messaging", "attachment", "1", "") == "messaging/attachment/1/file");
  CHECK(ExportPath("messaging", "attachment", "1", "a\r\nb\xc3\xa4.pdf") == "messaging/attachment/1/a__b__.pdf");
  CHECK(ExportPath("messaging", "attachment", "1", std::string(500, 'x')).size() == 23 + 100);

  for (const char* bad : {"", "submission/attachment/1", "submission/attachment/1/a/b", "../attachment/1/a.pdf",
                          "submission/attachment/1/..", "Submission/attachment/1/a.pdf", "submission/attachment/1/a b",
                          "submission/attachment//a.pdf", "submission/attachment/1/a%2f.pdf"}) {
    INFO(bad);
    CHECK(ParseExportPath(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(ParseExportPath(std::string(301, 'a')).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a tombstone keeps no id and differs per tenant", "[privacy]") {
  const auto t = Tombstone("09564000", "0b6c1f0e");
  CHECK(t.size() == 64);
  CHECK(t.find("0b6c1f0e") == std::string::npos);
  CHECK(t == Tombstone("09564000", "0b6c1f0e"));
  CHECK(t != Tombstone("09162000", "0b6c1f0e"));
  CHECK(t != Tombstone("09564000", "0b6c1f0f"));
}

}  // namespace
}  // namespace stadtportal::privacy

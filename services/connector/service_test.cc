#include "services/connector/service.h"
#include "services/connector/delivery_worker.h"

#include <httplib.h>
#include <catch2/catch.hpp>

#include "libs/auth/tokens.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/status/status.h"
#include "libs/testing/testing.h"
#include "services/connector/test_schema.h"

namespace stadtportal::connector {
namespace {

auth::Caller Admin() {
  auth::Caller c;
  c.account_id = "5a5a5a5a-1b1b-4c4c-8d8d-9e9e9e9e9e9e";
  c.tenant = "09564000";
  c.roles = {"tenant-admin"};
  return c;
}

// A public address (never contacted by these tests): registrations need one that resolves.
constexpr char kPublicUrl[] = "https://93.184.215.14/inbox";

struct Fixture : ConnectorSchema {
  explicit Fixture(Options options = {}) : service(MakeService(options)) {}
  std::unique_ptr<Service> MakeService(Options options) {
    // Submission and messaging are not called by these tests: channels to nowhere.
    return std::make_unique<Service>(
        store, options, grpcx::MakeChannel("127.0.0.1:1"), grpcx::MakeChannel("127.0.0.1:1"),
        *auth::Signer::FromKey(auth::NewSigningKey("t"), std::chrono::seconds(60), "connector"));
  }
  std::unique_ptr<Service> service;
  grpc::ServerContext ctx;
};

Options AllowLoopback() {
  Options o;
  o.egress.allowed = *net::ParseNetworks("127.0.0.1/32");
  o.egress.allow_http = true;
  return o;
}

v1::PutDestinationRequest Push(const std::string& id, const std::string& url) {
  v1::PutDestinationRequest req;
  req.set_id(id);
  req.set_name("Standesamt Nürnberg");
  req.set_mode(v1::DELIVERY_MODE_PUSH);
  req.set_endpoint_url(url);
  req.set_secret(std::string(40, 's'));
  return req;
}

}  // namespace

TEST_CASE("destinations are created by admins, with secrets rotated and never shown", "[integration]") {
  Fixture f;
  v1::Destination d;
  auto req = Push("standesamt", kPublicUrl);
  CHECK(f.service->PutDestination(&f.ctx, &req, &d).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'audit.recorded'") == 0);
  grpcx::TestCaller admin(Admin());
  REQUIRE(f.service->PutDestination(&f.ctx, &req, &d).ok());
  CHECK(d.has_secret());
  // On the audit log (an event for identity, written with the change), without the secret.
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'audit.recorded' AND payload->>'action' = "
                "'destination.put' AND payload->'targets'->>'destination' = 'standesamt'") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE payload::text LIKE '%" + std::string(40, 's') + "%'") == 0);
  req.set_secret(std::string(40, 't'));
  REQUIRE(f.service->PutDestination(&f.ctx, &req, &d).ok());
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                auto r = tx.exec1("SELECT secret, previous_secret FROM destinations WHERE id = 'standesamt'");
                CHECK(r[0].as<std::string>() == std::string(40, 't'));
                CHECK(r[1].as<std::string>() == std::string(40, 's'));
                return absl::OkStatus();
              })
              .ok());
  auto http = Push("gesundheitsamt", "http://93.184.215.14/inbox");
  CHECK(f.service->PutDestination(&f.ctx, &http, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto weak = Push("gesundheitsamt", kPublicUrl);
  weak.set_secret("short");
  CHECK(f.service->PutDestination(&f.ctx, &weak, &d).error_message() == "secret: 32 to 200 characters");
  v1::PutDestinationRequest pull;
  pull.set_id("bibliothek");
  pull.set_name("Stadtbibliothek");
  pull.set_mode(v1::DELIVERY_MODE_PULL);
  REQUIRE(f.service->PutDestination(&f.ctx, &pull, &d).ok());
  v1::ListDestinationsRequest list;
  v1::ListDestinationsResponse all;
  REQUIRE(f.service->ListDestinations(&f.ctx, &list, &all).ok());
  CHECK(all.destinations_size() == 2);
}

TEST_CASE("push destinations: every non-public address class and a missing or short secret are refused",
          "[integration]") {
  Fixture f;
  grpcx::TestCaller admin(Admin());
  v1::Destination d;
  const char* forbidden[] = {
      // Loopback, also in the spellings resolvers accept for it.
      "https://127.0.0.1/inbox", "https://localhost/inbox", "https://127.1/inbox", "https://0x7f.1/inbox",
      "https://2130706433/inbox", "https://0177.0.0.1/inbox", "https://[::1]/inbox", "https://[::ffff:127.0.0.1]/inbox",
      // RFC 1918, CGNAT, link-local and the cloud metadata addresses, "this network".
      "https://10.1.2.3/inbox", "https://172.16.0.1/inbox", "https://192.168.178.1/inbox", "https://100.64.0.1/inbox",
      "https://169.254.169.254/latest/meta-data", "https://[fd00:ec2::254]/inbox", "https://0.0.0.0/inbox",
      "https://[::ffff:10.0.0.1]/inbox", "https://[::ffff:169.254.169.254]/inbox",
      // IPv6 unique-local and link-local, multicast, documentation, reserved.
      "https://[fc00::1]/inbox", "https://[fe80::1]/inbox", "https://224.0.0.1/inbox", "https://[ff02::1]/inbox",
      "https://192.0.2.10/inbox", "https://198.51.100.7/inbox", "https://203.0.113.9/inbox",
      "https://[2001:db8::1]/inbox", "https://240.0.0.1/inbox", "https://[64:ff9b::7f00:1]/inbox",
      // Not https, user information, no host that resolves.
      "http://93.184.215.14/inbox", "ftp://93.184.215.14/inbox", "https://user:pw@93.184.215.14/inbox",
      "https://nothing.invalid/inbox", "https:///inbox", "https://93.184.215.14:99999/inbox"};
  for (const char* url : forbidden) {
    INFO(url);
    auto req = Push("gesundheitsamt", url);
    auto status = f.service->PutDestination(&f.ctx, &req, &d);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().rfind("endpoint_url: ", 0) == 0);
  }
  // Pushes are always signed with a secret of at least 32 bytes.
  auto unsigned_push = Push("gesundheitsamt", kPublicUrl);
  unsigned_push.set_secret("");
  CHECK(f.service->PutDestination(&f.ctx, &unsigned_push, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto short_secret = Push("gesundheitsamt", kPublicUrl);
  short_secret.set_secret(std::string(31, 's'));
  CHECK(f.service->PutDestination(&f.ctx, &short_secret, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(f.Count("SELECT count(*) FROM destinations") == 0);  // Nothing stored.

  // A public address passes; later changes may keep the stored secret.
  auto good = Push("gesundheitsamt", kPublicUrl);
  REQUIRE(f.service->PutDestination(&f.ctx, &good, &d).ok());
  good.set_secret("");
  CHECK(f.service->PutDestination(&f.ctx, &good, &d).ok());
  // An existing destination without a secret (from before secrets were required) must get one.
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                tx.exec("UPDATE destinations SET secret = ''");
                return absl::OkStatus();
              })
              .ok());
  CHECK(f.service->PutDestination(&f.ctx, &good, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  // Operators may allow networks: local runs and tests allow 127.0.0.1, also over http.
  Fixture local(AllowLoopback());
  auto loopback = Push("gesundheitsamt", "http://127.0.0.1:8081/inbox");
  CHECK(local.service->PutDestination(&local.ctx, &loopback, &d).ok());
  auto other = Push("gesundheitsamt", "http://127.0.0.2:8081/inbox");
  CHECK(local.service->PutDestination(&local.ctx, &other, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auto public_http = Push("gesundheitsamt", "http://93.184.215.14/inbox");
  CHECK(local.service->PutDestination(&local.ctx, &public_http, &d).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("push at send time: a name that resolves to loopback now is refused; requests go to the pinned address",
          "[integration]") {
  // A department's system on loopback that would take any delivery.
  httplib::Server receiver;
  std::atomic<int> posts{0};
  receiver.Post("/inbox", [&](const httplib::Request&, httplib::Response& res) {
    ++posts;
    res.status = 200;
  });
  const int port = receiver.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { receiver.listen_after_bind(); });
  const std::string p = ":" + std::to_string(port);

  Options production;  // No allow-list, as in production; http allowed so that only the address decides.
  production.egress.allow_http = true;
  Fixture f(production);
  const std::vector<std::string> hosts = {"localhost", "127.1", "0x7f.1", "[::ffff:127.0.0.1]", "2130706433"};
  std::vector<std::string> ids;
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                // Registered while their names pointed elsewhere (or before addresses were checked).
                for (size_t i = 0; i < hosts.size(); ++i) {
                  const std::string dest = "amt-" + std::to_string(i);
                  tx.exec_params(
                      "INSERT INTO destinations (tenant, id, name, mode, endpoint_url, secret)"
                      " VALUES ('09564000', $1, 'Amt', 'push', $2, $3)",
                      dest, "http://" + hosts[i] + p + "/inbox", std::string(40, 's'));
                  const std::string id = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6" + std::to_string(i);
                  Store::AddDelivery(tx, "09564000", id, dest, "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f",
                                     "NUE-2026-00000" + std::to_string(i), "contact-person-report");
                  ids.push_back(id);
                }
                return absl::OkStatus();
              })
              .ok());
  // Refused before the snapshot is asked for.
  DeliveryWorker worker(f.store, production, [](const std::string&, const std::string&) {
    return absl::StatusOr<submission::v1::DeliverySnapshot>(absl::InternalError("not asked for"));
  });
  CHECK(worker.DeliverDue(10) == static_cast<int>(hosts.size()));
  for (size_t i = 0; i < hosts.size(); ++i) {
    INFO(hosts[i]);
    v1::ListAttemptsRequest req;
    req.set_submission_id(ids[i]);
    v1::ListAttemptsResponse attempts;
    grpcx::TestCaller admin(Admin());
    REQUIRE(f.service->ListAttempts(&f.ctx, &req, &attempts).ok());
    REQUIRE(attempts.attempts_size() == 1);
    CHECK(attempts.attempts(0).error().find("not allowed") != std::string::npos);
    CHECK(attempts.attempts(0).http_status() == 0);
  }
  CHECK(posts == 0);

  // The request goes to the address that was checked, whatever the name resolves to at
  // connect time: pinned to 127.0.0.2 (nobody listens), "localhost" is not asked again.
  Endpoint e{"http://localhost" + p + "/inbox", "localhost", port, {*net::ParseAddress("127.0.0.2")}};
  auto r = Post(e, {}, "{}", std::chrono::seconds(2));
  CHECK(r.http_status == 0);
  CHECK_FALSE(r.error.empty());
  CHECK(posts == 0);
  e.addresses = {*net::ParseAddress("127.0.0.1")};
  r = Post(e, {}, "{}", std::chrono::seconds(2));
  CHECK(r.http_status == 200);
  CHECK(r.error.empty());
  CHECK(posts == 1);
  // Redirects are not followed.
  receiver.Post("/moved", [](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("http://169.254.169.254/latest/meta-data", 307);
  });
  e.url = "http://localhost" + p + "/moved";
  r = Post(e, {}, "{}", std::chrono::seconds(2));
  CHECK(r.http_status == 307);
  CHECK(r.error == "HTTP 307");
  receiver.stop();
  serving.join();
}

TEST_CASE("a back office neither reads nor changes a delivery the applicant withdrew", "[integration]") {
  Fixture f;
  const std::string pending = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a71";
  const std::string withdrawn = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a72";
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                for (const auto& id : {pending, withdrawn}) {
                  Store::AddDelivery(tx, "09564000", id, "standesamt", "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f",
                                     "NUE-2026-000001", "civil-registry-certificate");
                }
                Store::Withdraw(tx, "09564000", withdrawn);
                return absl::OkStatus();
              })
              .ok());
  auth::Caller c;
  c.account_id = "standesamt-client";
  c.tenant = "09564000";
  c.roles = {"department", "destination:standesamt"};
  c.acting_party = "Standesamt";
  grpcx::TestCaller department(c);
  // Each call as the department makes it; submission and messaging are not reachable here,
  // so a call that passes the check ends UNAVAILABLE.
  auto calls = [&](const std::string& id) {
    std::vector<grpc::Status> out;
    v1::FetchRequest fetch;
    fetch.set_submission_id(id);
    submission::v1::DeliverySnapshot snapshot;
    out.push_back(f.service->Fetch(&f.ctx, &fetch, &snapshot));
    v1::BackofficeStatusRequest set;
    set.set_submission_id(id);
    set.set_status("in_review");
    submission::v1::Submission submission;
    out.push_back(f.service->SetStatus(&f.ctx, &set, &submission));
    v1::BackofficeMessageRequest send;
    send.set_submission_id(id);
    send.set_message_key("question-1");
    send.set_body("Bitte reichen Sie die Geburtsurkunde nach.");
    v1::BackofficeMessageResponse sent;
    out.push_back(f.service->SendMessage(&f.ctx, &send, &sent));
    messaging::v1::ListRepliesResponse replies;
    out.push_back(f.service->ListMessages(&f.ctx, &fetch, &replies));
    return out;
  };
  for (const auto& s : calls(withdrawn)) {
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(s.error_message() == "state: withdrawn by the applicant");
  }
  for (const auto& s : calls(pending)) CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(f.Count("SELECT count(*) FROM access_log") == 0);
}

TEST_CASE("back-office callers are bound to their destination; signatures are HMAC over time and body", "[unit]") {
  auth::Caller c;
  c.roles = {"department", "destination:standesamt"};
  c.acting_party = "Standesamt";
  auto bo = BackofficeOf(c);
  REQUIRE(bo.ok());
  CHECK(bo->destination == "standesamt");
  c.roles = {"destination:standesamt"};
  CHECK(BackofficeOf(c).status().code() == absl::StatusCode::kPermissionDenied);
  // RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?") split as "<t>.<body>".
  CHECK(DeliverySignature("Jefe", 0, "what do ya want for nothing?") != DeliverySignature("Jefe", 1, "x"));
  CHECK(auth::HmacSha256Hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("a back office's issued document is checked before anything is set or recorded", "[integration]") {
  Fixture f;
  const std::string id = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a73";
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                Store::AddDelivery(tx, "09564000", id, "stadtkaemmerei", "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f",
                                   "NUE-2026-000002", "dog-tax-registration");
                return absl::OkStatus();
              })
              .ok());
  auth::Caller c;
  c.account_id = "kaemmerei-client";
  c.tenant = "09564000";
  c.roles = {"department", "destination:stadtkaemmerei"};
  c.acting_party = "Stadtkämmerei";
  grpcx::TestCaller department(c);
  auto set = [&](const std::string& status, const std::string& type, const std::string& expires_on,
                 const std::string& label) {
    v1::BackofficeStatusRequest req;
    req.set_submission_id(id);
    req.set_status(status);
    req.mutable_document()->set_type(type);
    req.mutable_document()->set_expires_on(expires_on);
    req.mutable_document()->set_label(label);
    submission::v1::Submission out;
    return f.service->SetStatus(&f.ctx, &req, &out);
  };
  auto field = [](const grpc::Status& s) {
    auto v = status::FieldViolations(status::FromGrpc(s));
    return v.empty() ? std::string() : v[0].field + ":" + v[0].code;
  };
  CHECK(field(set("in_progress", "dog_tax_tag", "2030-01-31", "")) == "document:invalid");
  CHECK(field(set("approved", "", "2030-01-31", "")) == "document.type:required");
  CHECK(field(set("approved", "Dog Tax Tag", "2030-01-31", "")) == "document.type:invalid_option");
  CHECK(field(set("approved", "dog_tax_tag", "31.01.2030", "")) == "document.expires_on:invalid_date");
  CHECK(field(set("approved", "dog_tax_tag", "2030-13-01", "")) == "document.expires_on:invalid_date");
  CHECK(field(set("approved", "dog_tax_tag", "2030-01-31", "Marke\n4711")) == "document.label:control_characters");
  CHECK(field(set("approved", "dog_tax_tag", "2030-01-31", std::string(81, 'x'))) == "document.label:invalid");
  // Well-formed, it goes on to the submission service (not reachable here).
  CHECK(set("approved", "dog_tax_tag", "2030-01-31", "Marke 4711").error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'document.recorded'") == 0);
}

TEST_CASE("a back office's read is on the access log with its purpose and published for the applicant",
          "[integration]") {
  Fixture f;
  const std::string id = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a73";
  const std::string party = "6f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f";
  REQUIRE(f.pool
              .Transact([&](pqxx::work& tx) {
                Store::AddDelivery(tx, "09564000", id, "standesamt", party, "NUE-2026-000003",
                                   "civil-registry-certificate");
                return absl::OkStatus();
              })
              .ok());
  audit::Access read;
  read.tenant = "09564000";
  read.accessor_kind = "back_office";
  read.accessor_id = "standesamt-client";
  read.accessor_name = "Standesamt";
  read.resource = "submission";
  read.resource_id = id;
  read.reference = "NUE-2026-000003";
  read.action = "read";
  read.purpose = "procedure: civil-registry-certificate";
  REQUIRE(f.store->LogAccess(read, id, "fetch").ok());
  CHECK(f.Count("SELECT count(*) FROM access_log WHERE party_id = '" + party +
                "' AND client_id = 'standesamt-client' AND action = 'fetch'"
                " AND purpose = 'procedure: civil-registry-certificate'") == 1);
  // One data.accessed for the applicant's party (keyed by it), with who, what and why.
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'data.accessed' AND key = '" + party +
                "' AND payload->>'party_id' = '" + party +
                "' AND payload->>'accessor_kind' = 'back_office' AND payload->>'accessor_name' = 'Standesamt'"
                " AND payload->>'resource_id' = '" +
                id +
                "' AND payload->>'purpose' = 'procedure: civil-registry-certificate'"
                " AND payload ? 'occurred_at'") == 1);
  // Another tenant's delivery (or none) is no read: nothing recorded, nothing published.
  read.tenant = "09162000";
  CHECK(f.store->LogAccess(read, id, "fetch").code() == absl::StatusCode::kNotFound);
  CHECK(f.Count("SELECT count(*) FROM access_log") == 1);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'data.accessed'") == 1);
}

}  // namespace stadtportal::connector

// Caller tokens between the real binaries: the connector's key cannot act as a citizen, an
// administrator or for an organisation at any service, and a token made for one service
// is refused by every other.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "libs/auth/caller.h"
#include "libs/grpc/client.h"
#include "stadtportal/accounts/v1/accounts.grpc.pb.h"
#include "stadtportal/connector/v1/connector.grpc.pb.h"
#include "stadtportal/identity/v1/identity.grpc.pb.h"
#include "stadtportal/messaging/v1/messaging.grpc.pb.h"
#include "stadtportal/payment/v1/payment.grpc.pb.h"
#include "stadtportal/submission/v1/submission.grpc.pb.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::shared_ptr<grpc::Channel> ChannelTo(Stack& stack, const std::string& service) {
  return grpcx::MakeChannel("ipv4:127.0.0.1:" + std::to_string(stack.instance(service).grpc_port));
}

// One call to `service` that a caller needs to be logged in (or an administrator) for,
// made with `token`; returns the gRPC status code.
grpc::StatusCode CallAs(Stack& stack, const std::string& service, const std::string& token) {
  auto ctx = grpcx::NewClientContext(5s, token);
  auto channel = ChannelTo(stack, service);
  if (service == "identity") {
    identity::v1::FindAccountsRequest in;
    in.set_query("example.de");
    in.set_reason("ticket 4711");
    identity::v1::FindAccountsResponse out;
    return identity::v1::IdentityService::NewStub(channel)->FindAccounts(ctx.get(), in, &out).error_code();
  }
  if (service == "accounts") {
    accounts::v1::Profile out;
    return accounts::v1::AccountsService::NewStub(channel)->GetProfile(ctx.get(), {}, &out).error_code();
  }
  if (service == "submission") {
    submission::v1::ListDraftsResponse out;
    return submission::v1::SubmissionService::NewStub(channel)->ListDrafts(ctx.get(), {}, &out).error_code();
  }
  if (service == "payment") {
    payment::v1::GetPaymentRequest in;
    in.set_id("3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b");
    payment::v1::Payment out;
    return payment::v1::PaymentService::NewStub(channel)->GetPayment(ctx.get(), in, &out).error_code();
  }
  if (service == "messaging") {
    messaging::v1::ListThreadsResponse out;
    return messaging::v1::MessagingService::NewStub(channel)->ListThreads(ctx.get(), {}, &out).error_code();
  }
  connector::v1::ListDeliveriesResponse out;
  return connector::v1::ConnectorService::NewStub(channel)->ListDeadLetters(ctx.get(), {}, &out).error_code();
}

}  // namespace

TEST_CASE("the connector's key cannot act as a citizen, an administrator or an organisation at any service", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto c = stack.Http();
  json anna = Onboard(stack, c, UniqueEmail());
  auth::Caller citizen;
  citizen.account_id = json::parse(c.Get("/api/v1/me", Bearer(anna))->body)["account_id"];
  citizen.tenant = "09564000";
  citizen.assurance = "low";
  citizen.roles = {"tenant-admin"};  // As an administrator, to reach admin-only calls too.
  auto connector = auth::Signer::FromKey(stack.connector_key(), 60s, "connector");
  REQUIRE(connector.ok());

  for (const auto& service : kServices) {
    INFO(service);
    // The gateway's key: the caller passes verification at every service.
    CHECK(CallAs(stack, service, stack.SignCaller(citizen, service)) != grpc::StatusCode::UNAUTHENTICATED);
    // The connector's key: a citizen (an administrator), with or without an organisation
    // acted for, is never accepted.
    CHECK(CallAs(stack, service, connector->Sign(citizen, service)) == grpc::StatusCode::UNAUTHENTICATED);
    auth::Caller plain = citizen;
    plain.roles = {};
    CHECK(CallAs(stack, service, connector->Sign(plain, service)) == grpc::StatusCode::UNAUTHENTICATED);
    auth::Caller as_service = citizen;
    as_service.roles = {"service"};
    CHECK(CallAs(stack, service, connector->Sign(as_service, service)) == grpc::StatusCode::UNAUTHENTICATED);
    auth::Caller for_org;
    for_org.account_id = "connector";
    for_org.tenant = "09564000";
    for_org.roles = {"service"};
    for_org.acting_party = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b";
    CHECK(CallAs(stack, service, connector->Sign(for_org, service)) == grpc::StatusCode::UNAUTHENTICATED);
    // And the gateway's key cannot pose as the connector.
    for_org.acting_party = "";
    CHECK(CallAs(stack, service, stack.SignCaller(for_org, service)) == grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_CASE("a platform service's key reaches only the calls meant for it", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auto connector = auth::Signer::FromKey(stack.connector_key(), 60s, "connector");
  auto payment = auth::Signer::FromKey(stack.payment_key(), 60s, "payment");
  REQUIRE(connector.ok());
  REQUIRE(payment.ok());
  const std::string tenant = "09564000";
  const std::string unknown = "3f0c9a52-7a61-4d8e-9f1b-0c2d3e4f5a6b";
  auto submission = submission::v1::SubmissionService::NewStub(ChannelTo(stack, "submission"));
  auto snapshot = [&](const auth::Signer& as) {
    auto ctx = grpcx::NewClientContext(5s, as.SignSelf(tenant, "submission"));
    submission::v1::GetDeliverySnapshotRequest in;
    in.set_id(unknown);
    submission::v1::DeliverySnapshot out;
    return submission->GetDeliverySnapshot(ctx.get(), in, &out).error_code();
  };
  auto set_status = [&](const auth::Signer& as) {
    auto ctx = grpcx::NewClientContext(5s, as.SignSelf(tenant, "submission"));
    submission::v1::SetStatusRequest in;
    in.set_submission_id(unknown);
    in.set_status("in_progress");
    submission::v1::Submission out;
    return submission->SetStatus(ctx.get(), in, &out).error_code();
  };
  auto terms = [&](const auth::Signer& as) {
    auto ctx = grpcx::NewClientContext(5s, as.SignSelf(tenant, "submission"));
    submission::v1::GetPaymentTermsRequest in;
    in.set_submission_id(unknown);
    in.set_party_id(unknown);
    submission::v1::PaymentTerms out;
    return submission->GetPaymentTerms(ctx.get(), in, &out).error_code();
  };
  auto post_as_system = [&](const auth::Signer& as) {
    auto ctx = grpcx::NewClientContext(5s, as.SignSelf(tenant, "messaging"));
    messaging::v1::PostMessageRequest in;
    in.mutable_party()->set_id(unknown);
    in.set_sender_kind(messaging::v1::SENDER_KIND_SYSTEM);
    in.set_subject("Ihr Antrag");
    in.set_body("Ihr Antrag ist eingegangen.");
    in.set_message_key("e2e-system-message");
    in.set_destination("ordnungsamt");
    messaging::v1::Message out;
    return messaging::v1::MessagingService::NewStub(ChannelTo(stack, "messaging"))
        ->PostMessage(ctx.get(), in, &out)
        .error_code();
  };
  // The connector reads snapshots and sets statuses; payment reads payment terms. Each is
  // refused the other's calls (an unknown submission is otherwise simply not found).
  CHECK(snapshot(*connector) == grpc::StatusCode::NOT_FOUND);
  CHECK(snapshot(*payment) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(set_status(*connector) == grpc::StatusCode::NOT_FOUND);
  CHECK(set_status(*payment) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(terms(*payment) == grpc::StatusCode::NOT_FOUND);
  CHECK(terms(*connector) == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(post_as_system(*payment) == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("a caller token made for one service is refused by every other", "[e2e]") {
  Stack stack;
  REQUIRE(stack.WaitReady(60s));
  auth::Caller admin;
  admin.account_id = "11111111-1111-4111-8111-111111111111";
  admin.tenant = "09564000";
  admin.assurance = "low";
  admin.roles = {"tenant-admin"};
  for (const auto& target : kServices) {
    const std::string token = stack.SignCaller(admin, target);
    for (const auto& service : kServices) {
      INFO(target << " token at " << service);
      const auto code = CallAs(stack, service, token);
      if (service == target) {
        CHECK(code != grpc::StatusCode::UNAUTHENTICATED);
      } else {
        CHECK(code == grpc::StatusCode::UNAUTHENTICATED);
      }
    }
  }
}

}  // namespace stadtportal::e2e

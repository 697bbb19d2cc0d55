#include "services/connector/service.h"

#include <random>

#include <google/protobuf/util/json_util.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/api/delivery.h"
#include "libs/auth/tokens.h"
#include "libs/events/events.h"
#include "libs/grpc/client.h"
#include "libs/grpc/handler.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/status/status.h"

namespace stadtportal::connector {
namespace {

namespace sv1 = submission::v1;
namespace mv1 = messaging::v1;

prometheus::Family<prometheus::Counter>& Deliveries() {
  static auto& f = prometheus::BuildCounter()
                       .Name("stadtportal_deliveries_total")
                       .Help("Delivery attempts to back offices, by outcome (delivered, failed, dead).")
                       .Register(*metrics::Registry());
  return f;
}

prometheus::Family<prometheus::Gauge>& BacklogGauge() {
  static auto& f = prometheus::BuildGauge()
                       .Name("stadtportal_delivery_backlog")
                       .Help(
                           "dead_letters: deliveries given up; oldest_undelivered_seconds: age of the oldest "
                           "submission not yet delivered.")
                       .Register(*metrics::Registry());
  return f;
}

absl::Status RequireAdmin(const auth::Caller& c) { return auth::RequireRole(c, "tenant-admin"); }

absl::Status CheckId(const std::string& id) { return api::CheckId(id, "submission"); }

}  // namespace

std::string DeliverySignature(const std::string& secret, int64_t timestamp, const std::string& body) {
  return "v1=" + auth::HmacSha256Hex(secret, absl::StrCat(timestamp, ".", body));
}

absl::StatusOr<BackofficeCaller> BackofficeOf(const auth::Caller& caller) {
  if (!auth::HasRole(caller, "department")) return absl::PermissionDeniedError("back-office clients only");
  const std::string destination = auth::DestinationOf(caller);
  if (destination.empty()) return absl::PermissionDeniedError("the token names no destination");
  return BackofficeCaller{destination, caller.acting_party, caller.account_id};
}

Options Options::FromEnv(const config::Env& env, const std::string& tenant) {
  Options o;
  o.default_tenant = tenant;
  o.egress.allow_http = env.Bool("STADTPORTAL_CONNECTOR_ALLOW_HTTP", false);
  auto allowed = net::ParseNetworks(env.String("STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS", ""));
  if (!allowed.ok()) {
    throw config::Error("STADTPORTAL_CONNECTOR_ALLOWED_NETWORKS: " + std::string(allowed.status().message()));
  }
  o.egress.allowed = *std::move(allowed);
  o.max_attempts = static_cast<int>(env.Int("STADTPORTAL_CONNECTOR_MAX_ATTEMPTS", o.max_attempts, 1, 1000));
  o.max_age = std::chrono::seconds(env.Int("STADTPORTAL_CONNECTOR_MAX_AGE_S", o.max_age.count(), 1, 30 * 86400));
  o.backoff_base = env.Millis("STADTPORTAL_CONNECTOR_BACKOFF_BASE_MS", o.backoff_base);
  o.backoff_max = env.Millis("STADTPORTAL_CONNECTOR_BACKOFF_MAX_MS", o.backoff_max);
  o.breaker_threshold =
      static_cast<int>(env.Int("STADTPORTAL_CONNECTOR_BREAKER_THRESHOLD", o.breaker_threshold, 1, 1000));
  o.breaker_open =
      std::chrono::seconds(env.Int("STADTPORTAL_CONNECTOR_BREAKER_OPEN_S", o.breaker_open.count(), 1, 3600));
  o.http_timeout = env.Millis("STADTPORTAL_CONNECTOR_HTTP_TIMEOUT_MS", o.http_timeout);
  return o;
}

Service::Service(std::shared_ptr<Store> store, Options options, std::shared_ptr<grpc::Channel> submission,
                 std::shared_ptr<grpc::Channel> messaging, auth::Signer signer)
    : store_(std::move(store)),
      options_(std::move(options)),
      submission_(sv1::SubmissionService::NewStub(submission)),
      messaging_(mv1::MessagingService::NewStub(messaging)),
      signer_(std::move(signer)) {
  for (const char* o : {"delivered", "failed", "dead"}) Deliveries().Add({{"outcome", o}});
}

std::string Service::ServiceToken(const std::string& tenant, const std::string& service) const {
  // The only caller the connector's key may assert: itself, as a platform service.
  auth::Caller c;
  c.account_id = signer_.issuer();
  c.tenant = tenant;
  c.roles = {"service"};
  return signer_.Sign(c, service);
}

grpc::Status Service::PutDestination(grpc::ServerContext* ctx, const v1::PutDestinationRequest* req,
                                     v1::Destination* resp) {
  return grpcx::Handle(ctx, "PutDestination", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (auto s = api::ValidateSlug(req->id(), "id"); !s.ok()) return s;
    if (auto s = api::ValidateText(req->name(), "name", 200); !s.ok()) return s;
    DestinationRow d{caller.tenant, req->id(), req->name(), "", req->endpoint_url(), req->secret()};
    if (!d.secret.empty() && (d.secret.size() < kMinSecretBytes || d.secret.size() > 200)) {
      return status::FieldError("secret", "invalid", "32 to 200 characters");
    }
    switch (req->mode()) {
      case v1::DELIVERY_MODE_PUSH: {
        d.mode = "push";
        // Resolved now and again at every send: only public addresses, or allowed ones.
        if (auto e = ResolveEndpoint(d.endpoint_url, options_.egress); !e.ok()) return e.status();
        if (d.secret.empty()) {
          // Pushes are always signed: without a new secret, the stored one must do.
          std::optional<DestinationRow> stored;
          auto found = store_->Transact([&](pqxx::work& tx) {
            stored = Store::FindDestination(tx, caller.tenant, d.id);
            return absl::OkStatus();
          });
          if (!found.ok()) return found;
          if (!stored || stored->secret.size() < kMinSecretBytes) {
            return status::FieldError("secret", "invalid", "required for push destinations (32 to 200 characters)");
          }
        }
        break;
      }
      case v1::DELIVERY_MODE_PULL:
        d.mode = "pull";
        if (!d.endpoint_url.empty()) return status::FieldError("endpoint_url", "invalid", "must be empty for pull");
        break;
      default: return status::FieldError("mode", "invalid", "PUSH or PULL required");
    }
    return grpcx::Respond(resp, store_->PutDestination(d, audit::Of(caller, "destination.put",
                                                                    {{"destination", d.id}, {"mode", d.mode}})));
  });
}

grpc::Status Service::ListDestinations(grpc::ServerContext* ctx, const v1::ListDestinationsRequest* req,
                                       v1::ListDestinationsResponse* resp) {
  return grpcx::Handle(ctx, "ListDestinations", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    auto page = api::ParsePage(req->page());
    if (!page.ok()) return page.status();
    return grpcx::Respond(resp, store_->ListDestinations(caller.tenant, *page));
  });
}

grpc::Status Service::ListDeadLetters(grpc::ServerContext* ctx, const v1::ListDeadLettersRequest* req,
                                      v1::ListDeliveriesResponse* resp) {
  return grpcx::Handle(ctx, "ListDeadLetters", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (!req->destination().empty()) {
      if (auto s = api::ValidateSlug(req->destination(), "destination"); !s.ok()) return s;
    }
    return grpcx::Respond(resp, store_->ListDeliveries(caller.tenant, req->destination(), "dead", 500));
  });
}

grpc::Status Service::ListAttempts(grpc::ServerContext* ctx, const v1::ListAttemptsRequest* req,
                                   v1::ListAttemptsResponse* resp) {
  return grpcx::Handle(ctx, "ListAttempts", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (auto s = CheckId(req->submission_id()); !s.ok()) return s;
    return grpcx::Respond(resp, store_->ListAttempts(caller.tenant, req->submission_id()));
  });
}

grpc::Status Service::Replay(grpc::ServerContext* ctx, const v1::ReplayRequest* req, v1::ReplayResponse* resp) {
  return grpcx::Handle(ctx, "Replay", [&](const auth::Caller& caller) -> absl::Status {
    if (auto s = RequireAdmin(caller); !s.ok()) return s;
    if (req->submission_id().empty() == req->destination().empty()) {
      return status::FieldError("submission_id", "invalid", "give a submission or a destination");
    }
    if (!req->submission_id().empty()) {
      if (auto s = CheckId(req->submission_id()); !s.ok()) return s;
    } else if (auto s = api::ValidateSlug(req->destination(), "destination"); !s.ok()) {
      return s;
    }
    auto n = store_->Replay(caller.tenant, req->submission_id(), req->destination(),
                            audit::Of(caller, "dead_letter.replay",
                                      {{"submission_id", req->submission_id()}, {"destination", req->destination()}}));
    if (!n.ok()) return n.status();
    if (*n == 0 && !req->submission_id().empty()) return absl::NotFoundError("no such dead letter");
    resp->set_replayed(*n);
    log::Info("dead letters replayed", {{"count", *n}, {"by", caller.account_id}});
    return absl::OkStatus();
  });
}

int Service::DeliverDue() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int tried = 0;
  absl::Status s = store_->Transact([&](pqxx::work& tx) -> absl::Status {
    for (const auto& due : Store::ClaimDue(tx, 10)) {
      ++tried;
      const auto start = std::chrono::steady_clock::now();
      int http_status = 0;
      std::string error;
      // The destination is checked again before anything is fetched or sent: its name
      // may resolve elsewhere now, and the request goes to the address checked here.
      auto endpoint = ResolveEndpoint(due.endpoint_url, options_.egress);
      sv1::DeliverySnapshot snap;
      if (!endpoint.ok()) {
        error = std::string(endpoint.status().message());
      } else if (due.secret.size() < kMinSecretBytes) {
        error = "secret: the destination has no signing secret of 32 bytes or more";
      } else {
        sv1::GetDeliverySnapshotRequest get;
        get.mutable_tenant()->set_key(due.tenant);
        get.set_id(due.submission_id);
        auto ctx = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(due.tenant, "submission"));
        if (auto got = status::FromGrpc(submission_->GetDeliverySnapshot(ctx.get(), get, &snap)); !got.ok()) {
          error = "snapshot: " + std::string(got.message());
        }
      }
      std::string body;
      if (error.empty()) {
        auto doc = api::DeliveryDocument(snap);
        if (doc.ok()) {
          body = doc->dump();
        } else {
          error = std::string(doc.status().message());
        }
      }
      if (error.empty()) {
        const int64_t ts = absl::ToUnixSeconds(absl::Now());
        auto r = Post(*endpoint,
                      {{"X-Stadtportal-Delivery", due.submission_id},
                       {"X-Stadtportal-Timestamp", std::to_string(ts)},
                       {"X-Stadtportal-Signature", DeliverySignature(due.secret, ts, body)},
                       {"Idempotency-Key", due.submission_id}},
                      body, options_.http_timeout);
        http_status = r.http_status;
        error = r.error;
      }
      const int ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
      Store::RecordAttempt(tx, due.submission_id, http_status, error, ms);
      if (error.empty()) {
        Store::MarkDelivered(tx, due.submission_id);
        Store::BreakerResult(tx, due.tenant, due.destination, true, options_.breaker_threshold,
                             static_cast<int>(options_.breaker_open.count()));
        events::v1::DeliveryDelivered e;
        e.set_tenant(due.tenant);
        e.set_submission_id(due.submission_id);
        e.set_destination(due.destination);
        events::Publish(tx, due.submission_id, e);
        Deliveries().Add({{"outcome", "delivered"}}).Increment();
        continue;
      }
      const bool dead = due.attempts + 1 >= options_.max_attempts || due.age_seconds >= options_.max_age.count();
      // Exponential backoff with full jitter.
      const int64_t cap =
          std::min<int64_t>(options_.backoff_max.count(), options_.backoff_base.count() << std::min(due.attempts, 20));
      const int64_t delay = std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(cap, 1))(rng);
      Store::Reschedule(tx, due.submission_id, delay, error, dead);
      Store::BreakerResult(tx, due.tenant, due.destination, false, options_.breaker_threshold,
                           static_cast<int>(options_.breaker_open.count()));
      if (!due.delayed_reported) {
        Store::MarkDelayedReported(tx, due.submission_id);
        events::v1::DeliveryDelayed e;
        e.set_tenant(due.tenant);
        e.set_submission_id(due.submission_id);
        e.set_destination(due.destination);
        events::Publish(tx, due.submission_id, e);
      }
      Deliveries().Add({{"outcome", dead ? "dead" : "failed"}}).Increment();
      log::Warn(dead ? "delivery given up: dead letter" : "delivery failed; will retry",
                {{"submission", due.submission_id},
                 {"destination", due.destination},
                 {"error", error},
                 {"attempt", due.attempts + 1},
                 {"retry_in_ms", delay}});
    }
    return absl::OkStatus();
  });
  if (!s.ok()) log::Warn("delivery round failed", {{"error", std::string(s.message())}});
  return tried;
}

void Service::UpdateGauges() {
  (void)store_->Transact([&](pqxx::work& tx) {
    const auto b = Store::ReadBacklog(tx);
    BacklogGauge().Add({{"kind", "dead_letters"}}).Set(static_cast<double>(b.dead_letters));
    BacklogGauge().Add({{"kind", "oldest_undelivered_seconds"}}).Set(static_cast<double>(b.oldest_undelivered_seconds));
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Delivery> Service::OwnDelivery(pqxx::work& tx, const auth::Caller& caller, const std::string& id) {
  auto bo = BackofficeOf(caller);
  if (!bo.ok()) return bo.status();
  if (auto s = CheckId(id); !s.ok()) return s;
  auto d = Store::LockDelivery(tx, caller.tenant, bo->destination, id);
  if (!d) return absl::NotFoundError("submission not found");
  return *d;
}

grpc::Status Service::ListNew(grpc::ServerContext* ctx, const v1::ListNewRequest* req,
                              v1::ListDeliveriesResponse* resp) {
  return grpcx::Handle(ctx, "ListNew", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    const int limit = req->limit() <= 0 ? 50 : std::min(req->limit(), 200);
    auto pending = store_->ListDeliveries(caller.tenant, bo->destination, "pending", limit);
    if (!pending.ok()) return pending.status();
    // Pushed ones not acknowledged yet are new to the department too.
    auto delivered = store_->ListDeliveries(caller.tenant, bo->destination, "delivered", limit);
    if (!delivered.ok()) return delivered.status();
    *resp = *std::move(pending);
    for (auto& d : *delivered->mutable_deliveries()) *resp->add_deliveries() = std::move(d);
    return absl::OkStatus();
  });
}

grpc::Status Service::Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req, sv1::DeliverySnapshot* resp) {
  return grpcx::Handle(ctx, "Fetch", [&](const auth::Caller& caller) -> absl::Status {
    return store_->Transact([&](pqxx::work& tx) -> absl::Status {
      auto d = OwnDelivery(tx, caller, req->submission_id());
      if (!d.ok()) return d.status();
      sv1::GetDeliverySnapshotRequest get;
      get.mutable_tenant()->set_key(caller.tenant);
      get.set_id(req->submission_id());
      auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "submission"));
      if (auto s = status::FromGrpc(submission_->GetDeliverySnapshot(c.get(), get, resp)); !s.ok()) return s;
      // Every read of personal data is on the citizen's access log.
      Store::LogAccess(tx, caller.tenant, Store::PartyOf(tx, req->submission_id()), req->submission_id(),
                       caller.account_id, "fetch");
      return absl::OkStatus();
    });
  });
}

grpc::Status Service::Acknowledge(grpc::ServerContext* ctx, const v1::AcknowledgeRequest* req, v1::Delivery* resp) {
  return grpcx::Handle(ctx, "Acknowledge", [&](const auth::Caller& caller) -> absl::Status {
    return store_->Transact([&](pqxx::work& tx) -> absl::Status {
      auto d = OwnDelivery(tx, caller, req->submission_id());
      if (!d.ok()) return d.status();
      if (d->state() == "dead") return status::FieldConflict("state", "invalid", "dead letter; replay it first");
      Store::MarkAcknowledged(tx, req->submission_id());
      if (d->state() != "acknowledged") {
        events::v1::DeliveryAcknowledged e;
        e.set_tenant(caller.tenant);
        e.set_submission_id(req->submission_id());
        e.set_destination(d->destination());
        events::Publish(tx, req->submission_id(), e);
      }
      auto again = Store::LockDelivery(tx, caller.tenant, d->destination(), req->submission_id());
      *resp = *again;
      return absl::OkStatus();
    });
  });
}

absl::Status Service::PostToMailbox(const std::string& tenant, const sv1::DeliverySnapshot& snapshot,
                                    const BackofficeCaller& bo, const std::string& key, const std::string& body,
                                    bool notice,
                                    const google::protobuf::RepeatedPtrField<v1::BackofficeAttachment>& files,
                                    v1::BackofficeMessageResponse* out) {
  mv1::PostMessageRequest m;
  m.mutable_tenant()->set_key(tenant);
  m.mutable_party()->set_id(snapshot.party_id());
  m.mutable_party()->set_kind(snapshot.party_kind() == "organisation" ? common::v1::PARTY_KIND_ORGANISATION
                                                                      : common::v1::PARTY_KIND_PERSON);
  m.set_sender_kind(mv1::SENDER_KIND_DEPARTMENT);
  m.set_department(bo.department);
  m.set_destination(bo.destination);
  m.set_subject(absl::StrCat(snapshot.submission().service_name().de(), " – ", snapshot.submission().reference()));
  m.set_body(body);
  m.set_message_key(key);
  m.set_submission_id(snapshot.submission().id());
  m.set_notice(notice);
  for (const auto& f : files) {
    auto* a = m.add_attachments();
    a->set_filename(f.filename());
    a->set_content(f.content());
  }
  mv1::Message posted;
  auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(tenant, "messaging"));
  if (auto s = status::FromGrpc(messaging_->PostMessage(c.get(), m, &posted)); !s.ok()) return s;
  if (out != nullptr) {
    out->set_message_id(posted.id());
    out->set_thread_id(posted.thread_id());
  }
  return absl::OkStatus();
}

grpc::Status Service::SetStatus(grpc::ServerContext* ctx, const v1::BackofficeStatusRequest* req,
                                sv1::Submission* resp) {
  return grpcx::Handle(ctx, "SetStatus", [&](const auth::Caller& caller) -> absl::Status {
    if (req->message().size() > 20000) return status::FieldError("message", "too_long");
    if (!req->message().empty()) {
      if (auto s = api::ValidateText(req->message(), "message", 20000, api::TextKind::kMultiline); !s.ok()) return s;
    }
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    absl::Status s = store_->Transact([&](pqxx::work& tx) -> absl::Status {
      auto d = OwnDelivery(tx, caller, req->submission_id());
      if (!d.ok()) return d.status();
      sv1::SetStatusRequest set;
      set.mutable_tenant()->set_key(caller.tenant);
      set.set_submission_id(req->submission_id());
      set.set_status(req->status());
      auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "submission"));
      return status::FromGrpc(submission_->SetStatus(c.get(), set, resp));
    });
    if (!s.ok()) return s;
    if (req->message().empty()) return absl::OkStatus();
    sv1::GetDeliverySnapshotRequest get;
    get.mutable_tenant()->set_key(caller.tenant);
    get.set_id(req->submission_id());
    sv1::DeliverySnapshot snap;
    auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "submission"));
    if (auto g = status::FromGrpc(submission_->GetDeliverySnapshot(c.get(), get, &snap)); !g.ok()) return g;
    return PostToMailbox(caller.tenant, snap, *bo, absl::StrCat("status-", req->submission_id(), "-", req->status()),
                         req->message(), false, {}, nullptr);
  });
}

grpc::Status Service::SendMessage(grpc::ServerContext* ctx, const v1::BackofficeMessageRequest* req,
                                  v1::BackofficeMessageResponse* resp) {
  return grpcx::Handle(ctx, "SendMessage", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    if (req->message_key().empty() || req->message_key().size() > 150) {
      return status::FieldError("message_key", "required");
    }
    if (auto s = api::ValidateText(req->message_key(), "message_key", 150); !s.ok()) return s;
    sv1::DeliverySnapshot snap;
    absl::Status s = store_->Transact([&](pqxx::work& tx) -> absl::Status {
      auto d = OwnDelivery(tx, caller, req->submission_id());
      if (!d.ok()) return d.status();
      sv1::GetDeliverySnapshotRequest get;
      get.mutable_tenant()->set_key(caller.tenant);
      get.set_id(req->submission_id());
      auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "submission"));
      return status::FromGrpc(submission_->GetDeliverySnapshot(c.get(), get, &snap));
    });
    if (!s.ok()) return s;
    return PostToMailbox(caller.tenant, snap, *bo,
                         absl::StrCat(bo->destination, "-", req->submission_id(), "-", req->message_key()), req->body(),
                         req->notice(), req->attachments(), resp);
  });
}

grpc::Status Service::ListMessages(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                                   mv1::ListRepliesResponse* resp) {
  return grpcx::Handle(ctx, "ListMessages", [&](const auth::Caller& caller) -> absl::Status {
    auto bo = BackofficeOf(caller);
    if (!bo.ok()) return bo.status();
    absl::Status own =
        store_->Transact([&](pqxx::work& tx) { return OwnDelivery(tx, caller, req->submission_id()).status(); });
    if (!own.ok()) return own;
    mv1::ListSubmissionMessagesRequest in;
    in.mutable_tenant()->set_key(caller.tenant);
    in.set_submission_id(req->submission_id());
    in.set_destination(bo->destination);
    auto c = grpcx::NewClientContext(std::chrono::seconds(10), ServiceToken(caller.tenant, "messaging"));
    return status::FromGrpc(messaging_->ListSubmissionMessages(c.get(), in, resp));
  });
}

}  // namespace stadtportal::connector

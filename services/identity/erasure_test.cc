// The person's own data in identity: the export's section, the records kept, and the
// erasure of the account (against PostgreSQL and Redis).
#include <random>
#include <regex>

#include <google/protobuf/util/time_util.h>
#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "libs/grpc/handler.h"
#include "libs/privacy/privacy.h"
#include "libs/testing/testing.h"
#include "services/identity/service.h"

namespace stadtportal::identity {
namespace {

constexpr char kPassword[] = "Lebkuchen-am-Hauptmarkt";
constexpr char kTenant[] = "09564000";

struct Person {
  std::string email;
  std::string name;
  std::string id;
  v1::LoginResponse login;
};

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  Options options = [] {
    Options o;
    o.hash = {1, 8 * 1024 * 1024};
    o.public_url = "https://portal.example";
    o.event_retention = std::chrono::hours(24 * 30);
    return o;
  }();
  Service service{store, redis, options};
  SessionStore sessions{redis, options.sessions};
  mail::Outbox outbox{schema.pool()};
  grpc::ServerContext ctx;

  // A verified, logged-in person with a name and address of their own (Redis is shared).
  Person Register(const std::string& first) {
    const std::string n = std::to_string(std::random_device{}());
    Person p{absl::AsciiStrToLower(first) + "." + n + "@example.de", first + " Erasmus" + n, "", {}};
    v1::RegisterRequest reg;
    reg.set_email(p.email);
    reg.set_password(kPassword);
    reg.set_display_name(p.name);
    v1::RegisterResponse registered;
    REQUIRE(service.Register(&ctx, &reg, &registered).ok());
    auto found = store->FindByEmail(kTenant, p.email);
    REQUIRE(found.ok());
    p.id = found->account.id();
    REQUIRE(schema.pool().Transact([&](pqxx::work& tx) { return store->MarkVerified(tx, p.id); }).ok());
    v1::LoginRequest login;
    login.set_email(p.email);
    login.set_password(kPassword);
    login.set_client_ip("198.51.100." + std::to_string(std::random_device{}() % 250));
    REQUIRE(service.Login(&ctx, &login, &p.login).ok());
    return p;
  }

  static auth::Caller CallerOf(const Person& p) {
    auth::Caller c;
    c.account_id = p.id;
    c.tenant = kTenant;
    c.assurance = "low";
    c.session_ref = p.login.session().session_ref();
    return c;
  }

  grpc::Status Erase(const auth::Caller& caller, const std::string& confirm, v1::RequestErasureResponse* out) {
    grpcx::TestCaller as(caller);
    v1::RequestErasureRequest req;
    req.set_confirm(confirm);
    return service.RequestErasure(&ctx, &req, out);
  }

  grpc::Status Export(const auth::Caller& caller, common::v1::PersonalData* out) {
    grpcx::TestCaller as(caller);
    common::v1::PersonalDataRequest req;
    return service.ExportPersonalData(&ctx, &req, out);
  }

  std::string Query(const std::string& sql) { return testing::QueryValue(schema.pool(), sql); }
  int64_t Count(const std::string& sql) { return std::stoll(Query(sql)); }

  // Rows of every table of the schema whose text holds one of `needles` (case-insensitive),
  // by table; the erasure event's own outbox rows are left out when `but_erasure_event`.
  std::map<std::string, int64_t> RowsNaming(const std::vector<std::string>& needles, bool but_erasure_event = false) {
    std::map<std::string, int64_t> out;
    std::vector<std::string> tables;
    const absl::Status read = schema.pool().Read([&](pqxx::nontransaction& tx) -> absl::Status {
      for (const auto& r :
           tx.exec_params("SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema.name())) {
        tables.push_back(r[0].as<std::string>());
      }
      for (const auto& table : tables) {
        std::string where;
        for (const auto& n : needles) {
          where +=
              (where.empty() ? "" : " OR ") + std::string("strpos(lower(x::text), lower(") + tx.quote(n) + ")) > 0";
        }
        std::string sql = "SELECT count(*) FROM " + tx.quote_name(table) + " x WHERE (" + where + ")";
        if (but_erasure_event && table == "outbox") sql += " AND x.topic <> 'party.erasure_requested'";
        const auto n = tx.exec(sql)[0][0].as<int64_t>();
        if (n > 0) out[table] = n;
      }
      return absl::OkStatus();
    });
    REQUIRE(read.ok());
    REQUIRE(!tables.empty());
    return out;
  }

  // What an administrator's look-up and the person's own administrative action leave.
  void LookUpAndAudit(const Person& p) {
    auth::Caller admin;
    admin.account_id = "77777777-7777-4777-8777-777777777777";
    admin.tenant = kTenant;
    admin.roles = {"tenant-admin"};
    admin.session_ref = "admin-ref";
    grpcx::TestCaller as(admin);
    v1::FindAccountsRequest find;
    find.set_query(p.name);
    find.set_reason("Rückfrage des Bürgerbüros");
    v1::FindAccountsResponse found;
    REQUIRE(service.FindAccounts(&ctx, &find, &found).ok());
    REQUIRE(found.accounts_size() == 1);
    REQUIRE(schema.pool()
                .Transact([&](pqxx::work& tx) {
                  auth::Caller own = CallerOf(p);
                  Store::InsertAudit(tx, "accounts", audit::Of(own, "organisation.create", {{"party_id", p.id}}));
                  Store::InsertAudit(tx, "identity", audit::Of(admin, "account.lock", {{"account_id", p.id}}));
                  return absl::OkStatus();
                })
                .ok());
  }
};

v1::Session Resolved(Fixture& f, const std::string& session_id, grpc::Status* status) {
  v1::ResolveSessionRequest req;
  req.set_session_id(session_id);
  v1::Session out;
  *status = f.service.ResolveSession(&f.ctx, &req, &out);
  return out;
}

}  // namespace

TEST_CASE("export: identity's section holds the person's own account, never secrets or another's", "[integration]") {
  Fixture f;
  auto anna = f.Register("Anna");
  auto ben = f.Register("Ben");
  f.LookUpAndAudit(anna);
  common::v1::PersonalData out;
  REQUIRE(f.Export(Fixture::CallerOf(anna), &out).ok());
  CHECK(out.service() == "identity");
  CHECK(out.files_size() == 0);
  const auto j = nlohmann::json::parse(out.json());
  CHECK(j["account"]["id"] == anna.id);
  CHECK(j["account"]["email"] == anna.email);
  CHECK(j["account"]["display_name"] == anna.name);
  CHECK(j["account"]["password"]["set"] == true);
  CHECK(j["account"]["locked"] == false);
  CHECK(j["account"]["email_verified_at"].is_string());
  CHECK(j["second_factor"]["enrolled"] == false);
  REQUIRE(j["sessions"].size() == 1);
  CHECK(j["sessions"][0]["method"] == "password");
  CHECK(j["sessions"][0]["created_at"].is_string());
  REQUIRE(j["administrator_lookups"].size() == 1);
  CHECK(j["administrator_lookups"][0]["reason"] == "Rückfrage des Bürgerbüros");
  CHECK(j["administrator_lookups"][0]["action"] == "find");
  REQUIRE(j["audit_log"].size() == 1);  // Her own action, not the administrator's.
  CHECK(j["audit_log"][0]["action"] == "organisation.create");
  for (const auto& key : {"account", "linked_providers", "sessions", "second_factor", "connected_portals", "audit_log",
                          "administrator_lookups"}) {
    CHECK(j.contains(key));
  }
  // No secret, no session id or reference, nothing of Ben.
  const std::string text = out.json();
  CHECK(text.find("$argon2") == std::string::npos);
  CHECK(text.find(anna.login.session_id()) == std::string::npos);
  CHECK(text.find(anna.login.session().session_ref()) == std::string::npos);
  CHECK(text.find(anna.login.session().csrf_token()) == std::string::npos);
  CHECK(text.find(ben.id) == std::string::npos);
  CHECK(text.find(ben.email) == std::string::npos);

  // The person acting as themself only.
  auto org = Fixture::CallerOf(anna);
  org.acting_party = "7d1e2f3a-0000-4000-8000-000000000001";
  CHECK(f.Export(org, &out).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto partner = Fixture::CallerOf(anna);
  partner.partner_id = "portal-1";
  CHECK(f.Export(partner, &out).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto role = Fixture::CallerOf(anna);
  role.roles = {"tenant-admin"};
  CHECK(f.Export(role, &out).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Export(auth::Caller{}, &out).error_code() == grpc::StatusCode::UNAUTHENTICATED);

  // Identity keeps nothing by a retention rule; the same caller rule.
  common::v1::RetainedRecords kept;
  {
    grpcx::TestCaller as(Fixture::CallerOf(anna));
    REQUIRE(f.service.ListRetainedRecords(&f.ctx, nullptr, &kept).ok());
    CHECK(kept.records_size() == 0);
  }
  {
    grpcx::TestCaller as(partner);
    CHECK(f.service.ListRetainedRecords(&f.ctx, nullptr, &kept).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_CASE("erasure: refused requests change nothing", "[integration]") {
  Fixture f;
  auto anna = f.Register("Anna");
  auto ben = f.Register("Ben");
  f.LookUpAndAudit(anna);
  const auto before = f.RowsNaming({anna.id, anna.email, anna.name});
  REQUIRE(before.count("accounts") == 1);
  v1::RequestErasureResponse out;

  auto s = f.Erase(Fixture::CallerOf(anna), "someone.else@example.de", &out);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "confirm: type your e-mail address");
  CHECK(f.Erase(Fixture::CallerOf(anna), "", &out).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(f.Erase(Fixture::CallerOf(anna), anna.email + "x", &out).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  // A log-in older than ten minutes.
  auto old = f.sessions.Create(anna.id, kTenant, {}, v1::ASSURANCE_LEVEL_LOW, "password", "", 0, "",
                               absl::ToUnixSeconds(absl::Now()) - 11 * 60);
  REQUIRE(old.ok());
  auto stale = Fixture::CallerOf(anna);
  stale.session_ref = old->session().session_ref();
  s = f.Erase(stale, anna.email, &out);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(s.error_message().rfind("log in again", 0) == 0);

  // Ben's session under Anna's name, an organisation, a partner portal, a role, nobody.
  auto borrowed = Fixture::CallerOf(anna);
  borrowed.session_ref = ben.login.session().session_ref();
  CHECK(f.Erase(borrowed, anna.email, &out).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auto org = Fixture::CallerOf(anna);
  org.acting_party = "7d1e2f3a-0000-4000-8000-000000000001";
  CHECK(f.Erase(org, anna.email, &out).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto partner = Fixture::CallerOf(anna);
  partner.partner_id = "portal-1";
  CHECK(f.Erase(partner, anna.email, &out).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto role = Fixture::CallerOf(anna);
  role.roles = {"tenant-admin"};
  CHECK(f.Erase(role, anna.email, &out).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.Erase(auth::Caller{}, anna.email, &out).error_code() == grpc::StatusCode::UNAUTHENTICATED);

  CHECK(f.RowsNaming({anna.id, anna.email, anna.name}) == before);
  grpc::Status resolved;
  Resolved(f, anna.login.session_id(), &resolved);
  CHECK(resolved.ok());
  Resolved(f, old->session_id(), &resolved);
  CHECK(resolved.ok());
}

TEST_CASE("erasure: an account with a second factor needs it passed in the session", "[integration]") {
  Fixture f;
  auto anna = f.Register("Anna");
  REQUIRE(f.schema.pool()
              .Transact([&](pqxx::work& tx) {
                tx.exec_params(
                    "INSERT INTO totp_factors (account_id, tenant, secret, confirmed_at) "
                    "VALUES ($1::uuid, $2, decode(repeat('ab', 20), 'hex'), now())",
                    anna.id, kTenant);
                return absl::OkStatus();
              })
              .ok());
  v1::RequestErasureResponse out;
  auto s = f.Erase(Fixture::CallerOf(anna), anna.email, &out);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(f.Count("SELECT count(*) FROM accounts WHERE id = '" + anna.id + "'") == 1);
  REQUIRE(f.sessions.SetSecondFactor(anna.login.session_id(), v1::SECOND_FACTOR_PASSED).ok());
  CHECK(f.Erase(Fixture::CallerOf(anna), anna.email, &out).ok());
  CHECK(f.Count("SELECT count(*) FROM totp_factors") == 0);
}

TEST_CASE("erasure: no row of the schema names the person afterwards; Ben untouched; the event published",
          "[integration]") {
  Fixture f;
  auto anna = f.Register("Anna");
  auto ben = f.Register("Ben");
  f.LookUpAndAudit(anna);
  f.LookUpAndAudit(ben);
  auto second = f.sessions.Create(anna.id, kTenant, {}, v1::ASSURANCE_LEVEL_LOW, "password");
  REQUIRE(second.ok());
  // Mails to her address: one sent (the registration's), one waiting.
  REQUIRE(f.store->QueueMail(kTenant, {anna.email, "Hinweis", "Guten Tag"}).ok());
  // The relay published what was written so far (published rows naming her go).
  REQUIRE(f.schema.pool()
              .Transact([&](pqxx::work& tx) {
                tx.exec("UPDATE outbox SET published_at = now()");
                return absl::OkStatus();
              })
              .ok());
  const auto ben_before = f.RowsNaming({ben.id, ben.email, ben.name});
  REQUIRE(ben_before.count("accounts") == 1);
  REQUIRE(f.RowsNaming({anna.id}).count("admin_access_log") == 1);

  v1::RequestErasureResponse out;
  const auto s = f.Erase(Fixture::CallerOf(anna), "  " + absl::AsciiStrToUpper(anna.email) + " ", &out);
  REQUIRE(s.error_message() == "");
  CHECK(out.account_id() == anna.id);
  const absl::Time requested = absl::FromUnixSeconds(out.requested_at().seconds());
  CHECK(absl::Now() - requested < absl::Seconds(30));
  REQUIRE(out.retained_size() == 1);
  CHECK(out.retained(0).service() == "identity");
  CHECK(out.retained(0).kind() == "erasure_request");
  CHECK(out.retained(0).id() == anna.id);
  CHECK(out.retained(0).rule() == "kept until every service applied the erasure (event window)");
  CHECK(out.retained(0).legal_basis() == "Art. 17 (1), 19 GDPR");
  CHECK(out.retained(0).until() == absl::FormatTime("%Y-%m-%d", requested + absl::Hours(24 * 30), absl::UTCTimeZone()));

  // The event for every other service, once.
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'party.erasure_requested' AND key = '" + anna.id +
                "' AND payload->>'party_id' = '" + anna.id + "' AND published_at IS NULL") == 1);
  // The notice to her address is the only mail to it; once sent, the address is gone too.
  auto claimed = f.outbox.Claim(100);
  REQUIRE(claimed.ok());
  int notices = 0;
  for (const auto& m : *claimed) {
    if (m.mail.to != anna.email) continue;
    ++notices;
    CHECK(m.mail.subject == "Ihr stadtportal-Konto wurde gelöscht");
    CHECK(m.mail.body.find(anna.name) == std::string::npos);
    CHECK(m.mail.body.find(anna.id) == std::string::npos);
    REQUIRE(f.outbox.MarkSent(m.id).ok());
  }
  CHECK(notices == 1);

  // Identity remembers the erasure by its tombstone only (for the operator's publish-erasure).
  CHECK(f.Count("SELECT count(*) FROM erased_accounts WHERE tombstone = '" + privacy::Tombstone(kTenant, anna.id) +
                "'") == 1);
  CHECK(f.Count("SELECT count(*) FROM erased_accounts WHERE tombstone = '" + privacy::Tombstone(kTenant, ben.id) +
                "'") == 0);
  // Nothing names her but the erasure event itself.
  CHECK(f.RowsNaming({anna.id, anna.email, anna.name}, /*but_erasure_event=*/true).empty());
  // The administrator's look-up stays on record without her; so does the lock in the audit log.
  CHECK(f.Count("SELECT count(*) FROM admin_access_log WHERE target_account_id IS NULL AND "
                "reason = 'Rückfrage des Bürgerbüros'") == 1);
  CHECK(f.Count("SELECT count(*) FROM audit_log WHERE action = 'account.lock' AND targets = '{\"erased\": true}'") ==
        1);
  // Ben as before.
  CHECK(f.RowsNaming({ben.id, ben.email, ben.name}) == ben_before);
  grpc::Status resolved;
  Resolved(f, ben.login.session_id(), &resolved);
  CHECK(resolved.ok());

  // Her sessions resolve no more; asking again cannot authenticate.
  Resolved(f, anna.login.session_id(), &resolved);
  CHECK(resolved.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  Resolved(f, second->session_id(), &resolved);
  CHECK(resolved.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.Erase(Fixture::CallerOf(anna), anna.email, &out).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.Count("SELECT count(*) FROM outbox WHERE topic = 'party.erasure_requested'") == 1);
  // Nor can she log in.
  v1::LoginRequest login;
  login.set_email(anna.email);
  login.set_password(kPassword);
  login.set_client_ip("203.0.113.7");
  v1::LoginResponse again;
  CHECK(f.service.Login(&f.ctx, &login, &again).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace stadtportal::identity

#include "services/identity/service.h"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "libs/api/api.h"
#include "libs/grpc/handler.h"
#include "libs/testing/testing.h"

namespace stadtportal::identity {
namespace {

constexpr char kPassword[] = "Lebkuchen-am-Hauptmarkt";

struct Fixture {
  testing::TestSchema schema{db::EmbeddedMigrations(), "identity"};
  std::shared_ptr<Store> store = std::make_shared<Store>(schema.pool(Store::Prepare));
  redis::Client redis{*redis::Options::FromUrl(testing::RedisUrl())};
  Options options = [] {
    Options o;
    o.hash = {1, 8 * 1024 * 1024};  // Cheap hashing keeps the tests fast.
    o.public_url = "https://portal.example";
    // Short log-in delays keep the throttle tests short: 200, 400, 800, 800 … ms.
    o.throttle.base_delay = std::chrono::milliseconds(200);
    o.throttle.max_delay = std::chrono::milliseconds(800);
    return o;
  }();
  Service service{store, redis, options};
  grpc::ServerContext ctx;
  // Unique per fixture: Redis is shared by all tests.
  std::string email = "anna." + std::to_string(std::random_device{}()) + "@example.de";
  std::string ip = "198.51.100." + std::to_string(std::random_device{}() % 250);

  grpc::Status Register(const std::string& mail, const std::string& password) {
    v1::RegisterRequest req;
    req.set_email(mail);
    req.set_password(password);
    req.set_display_name("Anna Muster");
    req.set_language(v1::LANGUAGE_DE);
    v1::RegisterResponse resp;
    return service.Register(&ctx, &req, &resp);
  }

  grpc::Status Login(const std::string& password, v1::LoginResponse* resp) {
    v1::LoginRequest req;
    req.set_email(email);
    req.set_password(password);
    req.set_client_ip(ip);
    return service.Login(&ctx, &req, resp);
  }

  std::shared_ptr<mail::Outbox> outbox = std::make_shared<mail::Outbox>(schema.pool());
  // The mails queued so far (claimed, so a second call returns only newer ones).
  std::vector<mail::Mail> Mails() {
    auto claimed = outbox->Claim(100);
    REQUIRE(claimed.ok());
    std::vector<mail::Mail> out;
    for (const auto& p : *claimed) out.push_back(p.mail);
    return out;
  }

  static std::string TokenIn(const std::string& body) {
    std::smatch m;
    REQUIRE(std::regex_search(body, m, std::regex("token=([A-Za-z0-9_-]+)")));
    return m[1].str();
  }

  grpc::Status Verify(const std::string& token) {
    v1::VerifyEmailRequest req;
    req.set_token(token);
    v1::VerifyEmailResponse resp;
    return service.VerifyEmail(&ctx, &req, &resp);
  }

  v1::LoginResponse RegisterVerifyLogin() {
    REQUIRE(Register(email, kPassword).ok());
    auto mails = Mails();
    REQUIRE(mails.size() == 1);
    REQUIRE(Verify(TokenIn(mails[0].body)).ok());
    v1::LoginResponse session;
    REQUIRE(Login(kPassword, &session).ok());
    return session;
  }

  grpc::Status Resolve(const std::string& id, v1::Session* out) {
    v1::ResolveSessionRequest req;
    req.set_session_id(id);
    return service.ResolveSession(&ctx, &req, out);
  }

  // As accounts switches the acting party of `account`'s session after the membership check.
  grpc::Status SwitchActingParty(const std::string& session_id, const std::string& account, const std::string& party,
                                 v1::LoginResponse* out) {
    auth::Caller accounts;
    accounts.account_id = "accounts";
    accounts.tenant = "09564000";
    accounts.roles = {"service"};
    grpcx::TestCaller as_accounts(accounts);
    v1::SetActingPartyRequest req;
    req.set_session_id(session_id);
    req.set_account_id(account);
    req.set_acting_party_id(party);
    return service.SetActingParty(&ctx, &req, out);
  }
};

}  // namespace

TEST_CASE("password rules follow NIST 800-63B", "[unit]") {
  PasswordPolicy policy;
  CHECK(policy.Check("kurz", "a@b.de").message() == "password: too_short");
  CHECK(policy.Check(std::string(129, 'x'), "a@b.de").message() == "password: too_long");
  CHECK(policy.Check("Passwort123", "a@b.de").message() == "password: common_password");
  CHECK(policy.Check("anna@example.de", "anna@example.de").message() == "password: common_password");
  CHECK(policy.Check("\xff\xfe invalid utf-8", "a@b.de").message() == "password: invalid");
  CHECK(policy.Check("correct horse battery staple", "a@b.de").ok());
  CHECK(policy.Check("ääääääääää", "a@b.de").ok());                          // Ten characters, twenty bytes.
  CHECK(policy.Check("nur kleine buchstaben ohne ziffern", "a@b.de").ok());  // No composition rules.
}

TEST_CASE("Argon2id hashes carry their parameters and are upgraded", "[unit]") {
  PasswordHasher weak({1, 8 * 1024 * 1024});
  PasswordHasher strong({2, 16 * 1024 * 1024});
  auto hash = weak.Hash(kPassword);
  REQUIRE(hash.ok());
  CHECK(hash->rfind("$argon2id$", 0) == 0);
  CHECK(*weak.Verify(*hash, kPassword));
  CHECK(*strong.Verify(*hash, kPassword));  // Old hashes still verify…
  CHECK(strong.NeedsRehash(*hash));         // …and are marked for upgrade.
  CHECK_FALSE(weak.NeedsRehash(*hash));
  CHECK_FALSE(*weak.Verify(*hash, "wrong password"));
}

TEST_CASE("Argon2id runs at most `concurrency` at once; a full queue or a long wait is UNAVAILABLE", "[unit]") {
  HashGate gate(2, 1, std::chrono::milliseconds(200));
  REQUIRE(gate.Acquire().ok());
  REQUIRE(gate.Acquire().ok());
  // Both slots taken: one caller may wait, and gives up after the bound.
  const auto t0 = std::chrono::steady_clock::now();
  auto waited = gate.Acquire();
  CHECK(waited.code() == absl::StatusCode::kUnavailable);
  CHECK(waited.message() == "password hashing busy; retry after 1 s");
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(190));
  // While one waits, the queue (1) is full: the next is refused at once.
  auto waiter = std::async(std::launch::async, [&] { return gate.Acquire(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(gate.Acquire().code() == absl::StatusCode::kUnavailable);
  gate.Release();  // The waiter gets the slot.
  CHECK(waiter.get().ok());
  gate.Release();
  gate.Release();

  // A caller whose deadline leaves no time for a typical run is refused at once, not
  // after waiting: with runs of 150 ms, a deadline 100 ms away.
  HashGate timed(1, 4, std::chrono::milliseconds(2000));
  REQUIRE(timed.Acquire().ok());
  timed.Release(std::chrono::milliseconds(150));
  REQUIRE(timed.Acquire().ok());
  const auto t1 = std::chrono::steady_clock::now();
  CHECK(timed.Acquire(t1 + std::chrono::milliseconds(100)).code() == absl::StatusCode::kUnavailable);
  CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::milliseconds(50));
  // With time for a run it waits, but only until its deadline less the run.
  CHECK(timed.Acquire(t1 + std::chrono::milliseconds(400)).code() == absl::StatusCode::kUnavailable);
  const auto waited_for = std::chrono::steady_clock::now() - t1;
  CHECK(waited_for >= std::chrono::milliseconds(200));
  CHECK(waited_for < std::chrono::milliseconds(1000));
  timed.Release();

  // Through the hasher: with one slot and no queue, parallel verifications are refused,
  // never run side by side (each would take its memlimit).
  PasswordHasher hasher({1, 8 * 1024 * 1024, 1, 0, std::chrono::milliseconds(0)});
  auto hash = hasher.Hash(kPassword);
  REQUIRE(hash.ok());
  std::vector<std::future<absl::StatusOr<bool>>> runs;
  for (int i = 0; i < 8; ++i) {
    runs.push_back(std::async(std::launch::async, [&] { return hasher.Verify(*hash, kPassword); }));
  }
  int ok = 0, busy = 0;
  for (auto& r : runs) {
    auto v = r.get();
    if (v.ok() && *v) ++ok;
    if (v.status().code() == absl::StatusCode::kUnavailable) ++busy;
  }
  CHECK(ok >= 1);
  CHECK(busy >= 1);
  CHECK(ok + busy == 8);
}

TEST_CASE("register, verify by mailed token, log in, resolve, log out", "[integration]") {
  Fixture f;
  auto session = f.RegisterVerifyLogin();
  CHECK(session.session_id().size() >= 43);  // 256 random bits, base64url.
  CHECK(session.session().assurance_level() == v1::ASSURANCE_LEVEL_LOW);
  CHECK(session.session().auth_method() == "password");

  v1::Session resolved;
  REQUIRE(f.Resolve(session.session_id(), &resolved).ok());
  CHECK(resolved.account_id() == session.session().account_id());
  CHECK(resolved.csrf_token() == session.session().csrf_token());

  v1::LogoutRequest out;
  out.set_session_id(session.session_id());
  v1::LogoutResponse done;
  REQUIRE(f.service.Logout(&f.ctx, &out, &done).ok());
  CHECK(f.Resolve(session.session_id(), &resolved).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("a verification token works once", "[integration]") {
  Fixture f;
  REQUIRE(f.Register(f.email, kPassword).ok());
  auto mails = f.Mails();
  REQUIRE(mails.size() == 1);
  CHECK(mails[0].subject.find("E-Mail-Adresse") != std::string::npos);  // German, as registered.
  const auto token = Fixture::TokenIn(mails[0].body);
  REQUIRE(f.Verify(token).ok());
  CHECK(f.Verify(token).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(f.Verify("forged-token").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("an unverified account cannot log in, even with the right password", "[integration]") {
  Fixture f;
  REQUIRE(f.Register(f.email, kPassword).ok());
  v1::LoginResponse s;
  CHECK(f.Login(kPassword, &s).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("registering a taken address answers the same and mails the owner", "[integration]") {
  Fixture f;
  REQUIRE(f.Register(f.email, kPassword).ok());
  REQUIRE(f.Mails().size() == 1);
  auto again = f.Register(f.email, "ein ganz anderes Passwort");
  CHECK(again.ok());
  auto mails = f.Mails();
  REQUIRE(mails.size() == 1);
  CHECK(mails[0].body.find("token=") == std::string::npos);  // No account is created or verified.
  CHECK(mails[0].body.find("password-reset") != std::string::npos);
}

TEST_CASE("unknown e-mail and wrong password are indistinguishable; failures delay further attempts", "[integration]") {
  Fixture f;
  f.RegisterVerifyLogin();
  v1::LoginResponse s;
  auto wrong = f.Login("wrong password!", &s);
  v1::LoginRequest unknown;
  unknown.set_email("nobody." + f.email);
  unknown.set_password("wrong password!");
  unknown.set_client_ip(f.ip);
  auto missing = f.service.Login(&f.ctx, &unknown, &s);
  CHECK(wrong.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(missing.error_code() == wrong.error_code());
  CHECK(missing.error_message() == wrong.error_message());

  // Two failures are free; the third starts a delay in which even the right password waits.
  REQUIRE(f.Login("wrong password!", &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(f.Login("wrong password!", &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auto throttled = f.Login(kPassword, &s);
  CHECK(throttled.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(throttled.error_message() == "too many failed log-ins; retry after 1 s");
}

TEST_CASE("the per-account delay grows, is capped and never locks the owner out", "[integration]") {
  Fixture f;
  f.RegisterVerifyLogin();
  v1::LoginResponse s;
  using Clock = std::chrono::steady_clock;
  // Waits out the delay (as a client would) and measures it: from the first try to the
  // start of the try that was let through (hashing time is not part of it).
  auto wrong_after_delay = [&] {
    const auto t0 = Clock::now();
    auto started = t0;
    grpc::Status st;
    while ((st = f.Login("wrong password!", &s)).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      started = Clock::now();
    }
    REQUIRE(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
    return std::chrono::duration_cast<std::chrono::milliseconds>(started - t0);
  };
  CHECK(wrong_after_delay() < std::chrono::milliseconds(150));  // 1st: free
  CHECK(wrong_after_delay() < std::chrono::milliseconds(150));  // 2nd: free
  CHECK(wrong_after_delay() < std::chrono::milliseconds(150));  // 3rd: free, starts 200 ms
  std::vector<std::chrono::milliseconds> waits;
  for (int i = 0; i < 5; ++i) waits.push_back(wrong_after_delay());
  // 200, 400, 800 ms from the failure on; measured from its answer, so a little less.
  CHECK(waits[0] >= std::chrono::milliseconds(100));
  CHECK(waits[1] >= std::chrono::milliseconds(250));
  CHECK(waits[2] >= std::chrono::milliseconds(600));
  CHECK(waits[1] > waits[0]);
  CHECK(waits[2] > waits[1]);
  for (const auto w : waits) CHECK(w < std::chrono::milliseconds(1000));  // Capped at 800 ms.

  // Attempts refused during a delay are not failures: hammering does not extend it.
  const auto t0 = Clock::now();
  for (int i = 0; i < 20; ++i)
    CHECK(f.Login("wrong password!", &s).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::Status ok;
  while ((ok = f.Login(kPassword, &s)).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(ok.ok());
  CHECK(Clock::now() - t0 < std::chrono::milliseconds(2000));  // The cap, plus one hashing under load.
  // A success forgets the failures: the next wrong password is free again.
  CHECK(f.Login("wrong password!", &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.Login(kPassword, &s).ok());
}

TEST_CASE("a client over its failure limit is refused for any account; other clients are not", "[integration]") {
  Fixture f;
  f.options.throttle.max_failures_per_ip = 5;
  Service service{f.store, f.redis, f.options};
  f.RegisterVerifyLogin();
  auto login = [&](const std::string& email, const std::string& password, const std::string& ip) {
    v1::LoginRequest req;
    req.set_email(email);
    req.set_password(password);
    req.set_client_ip(ip);
    v1::LoginResponse resp;
    return service.Login(&f.ctx, &req, &resp).error_code();
  };
  // Five failures on five different (unknown) accounts, so no account delay applies.
  for (int i = 0; i < 5; ++i) {
    CHECK(login(std::to_string(i) + "." + f.email, "wrong password!", f.ip) == grpc::StatusCode::UNAUTHENTICATED);
  }
  CHECK(login(f.email, kPassword, f.ip) == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(login(f.email, kPassword, "2001:db8::" + std::to_string(std::random_device{}() % 9999)) ==
        grpc::StatusCode::OK);
}

TEST_CASE("log-out everywhere ends every session; sessions rotate at log-in", "[integration]") {
  Fixture f;
  auto first = f.RegisterVerifyLogin();
  v1::LoginResponse second;
  REQUIRE(f.Login(kPassword, &second).ok());
  CHECK(second.session_id() != first.session_id());
  v1::LogoutRequest req;
  req.set_session_id(second.session_id());
  v1::LogoutResponse resp;
  REQUIRE(f.service.LogoutAll(&f.ctx, &req, &resp).ok());
  v1::Session s;
  CHECK(f.Resolve(first.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.Resolve(second.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("password change rotates the session; reset by mailed token ends all sessions", "[integration]") {
  Fixture f;
  auto session = f.RegisterVerifyLogin();
  v1::ChangePasswordRequest change;
  change.set_session_id(session.session_id());
  change.set_current_password("not the current one");
  change.set_new_password("Ein neues langes Passwort");
  v1::LoginResponse rotated;
  CHECK(f.service.ChangePassword(&f.ctx, &change, &rotated).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  change.set_current_password(kPassword);
  REQUIRE(f.service.ChangePassword(&f.ctx, &change, &rotated).ok());
  CHECK(rotated.session_id() != session.session_id());
  v1::Session s;
  CHECK(f.Resolve(session.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.Resolve(rotated.session_id(), &s).ok());

  v1::RequestPasswordResetRequest reset;
  reset.set_email(f.email);
  v1::RequestPasswordResetResponse ack;
  REQUIRE(f.service.RequestPasswordReset(&f.ctx, &reset, &ack).ok());
  auto mails = f.Mails();
  REQUIRE(mails.size() == 1);
  v1::ConfirmPasswordResetRequest confirm;
  confirm.set_token(Fixture::TokenIn(mails[0].body));
  confirm.set_new_password("Drittes Passwort, auch lang");
  v1::ConfirmPasswordResetResponse confirmed;
  REQUIRE(f.service.ConfirmPasswordReset(&f.ctx, &confirm, &confirmed).ok());
  CHECK(f.Resolve(rotated.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(f.service.ConfirmPasswordReset(&f.ctx, &confirm, &confirmed).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);  // Single use.
  v1::LoginResponse fresh;
  CHECK(f.Login("Drittes Passwort, auch lang", &fresh).ok());

  reset.set_email("nobody." + f.email);  // Unknown address: same answer, no mail.
  REQUIRE(f.service.RequestPasswordReset(&f.ctx, &reset, &ack).ok());
  CHECK(f.Mails().empty());
}

TEST_CASE("a reset or a password change ends every outstanding reset link", "[integration]") {
  Fixture f;
  auto session = f.RegisterVerifyLogin();
  auto request_reset = [&] {
    v1::RequestPasswordResetRequest reset;
    reset.set_email(f.email);
    v1::RequestPasswordResetResponse ack;
    REQUIRE(f.service.RequestPasswordReset(&f.ctx, &reset, &ack).ok());
    auto mails = f.Mails();
    REQUIRE(mails.size() == 1);
    return Fixture::TokenIn(mails[0].body);
  };
  auto confirm = [&](const std::string& token, const std::string& password) {
    v1::ConfirmPasswordResetRequest req;
    req.set_token(token);
    req.set_new_password(password);
    v1::ConfirmPasswordResetResponse resp;
    return f.service.ConfirmPasswordReset(&f.ctx, &req, &resp);
  };
  auto unused_reset_tokens = [&] {
    pqxx::connection conn(testing::DatabaseUrl());
    pqxx::work tx(conn);
    return tx
        .exec1("SELECT count(*) FROM " + tx.quote_name(f.schema.name()) +
               ".email_tokens WHERE purpose = 'reset_password' AND used_at IS NULL")[0]
        .as<int>();
  };

  // Two links were mailed (say, the owner asked twice); using one ends the other.
  const std::string first = request_reset();
  const std::string second = request_reset();
  CHECK(unused_reset_tokens() == 2);
  REQUIRE(confirm(second, "Zweites langes Passwort").ok());
  CHECK(unused_reset_tokens() == 0);
  CHECK(confirm(first, "Ein Angreifer-Passwort").error_message() == "token: invalid_token");
  v1::LoginResponse login;
  CHECK(f.Login("Zweites langes Passwort", &login).ok());

  // A link mailed before the holder changed the password while logged in ends too.
  const std::string stale = request_reset();
  v1::ChangePasswordRequest change;
  change.set_session_id(login.session_id());
  change.set_current_password("Zweites langes Passwort");
  change.set_new_password("Drittes langes Passwort");
  v1::LoginResponse rotated;
  REQUIRE(f.service.ChangePassword(&f.ctx, &change, &rotated).ok());
  CHECK(unused_reset_tokens() == 0);
  CHECK(confirm(stale, "Ein Angreifer-Passwort").error_message() == "token: invalid_token");
  CHECK(f.Login("Drittes langes Passwort", &login).ok());
  (void)session;
}

TEST_CASE("register and reset mails are limited per address, with the usual answer", "[integration]") {
  Fixture f;
  f.options.mail_per_address = {3, std::chrono::seconds(3600)};
  Service service{f.store, f.redis, f.options};
  auto reg = [&](const std::string& mail) {
    v1::RegisterRequest req;
    req.set_email(mail);
    req.set_password(kPassword);
    req.set_display_name("Anna Muster");
    v1::RegisterResponse resp;
    return service.Register(&f.ctx, &req, &resp);
  };
  auto reset = [&](const std::string& mail) {
    v1::RequestPasswordResetRequest req;
    req.set_email(mail);
    v1::RequestPasswordResetResponse resp;
    return service.RequestPasswordReset(&f.ctx, &req, &resp);
  };
  // Registering (verification mail), again (the "already registered" mail), and a reset:
  // three mails. Everything after answers the same and sends nothing.
  REQUIRE(reg(f.email).ok());
  REQUIRE(reg(f.email).ok());
  REQUIRE(reset(f.email).ok());
  CHECK(f.Mails().size() == 3);
  for (int i = 0; i < 5; ++i) {
    CHECK(reg(f.email).ok());
    CHECK(reset(f.email).ok());
    CHECK(reg("  " + absl::AsciiStrToUpper(f.email)).ok());  // The same address, written otherwise.
  }
  CHECK(f.Mails().empty());
  // An unknown address answers as a known one does, also when its budget is spent.
  const std::string unknown = "nobody." + f.email;
  for (int i = 0; i < 5; ++i) CHECK(reset(unknown).ok());
  // Other addresses are not affected.
  const std::string other = "other." + f.email;
  REQUIRE(reg(other).ok());
  CHECK(f.Mails().size() == 1);
}

TEST_CASE("bad registrations are refused and store nothing", "[integration]") {
  Fixture f;
  CHECK(f.Register("not-an-address", kPassword).error_message() == "email: invalid_email");
  CHECK(f.Register(f.email, "short").error_message() == "password: too_short");
  CHECK(f.Register(f.email, "password123").error_message() == "password: common_password");
  CHECK(f.Mails().empty());
  REQUIRE(f.Register(f.email, kPassword).ok());
  CHECK(f.Mails().size() == 1);
}

TEST_CASE("queued mails reach a real SMTP server, also after it was down", "[integration]") {
  Fixture f;
  const std::string dir = testing::TempDir() + "/maildir-" + std::to_string(std::random_device{}());
  const uint16_t port = testing::FreePort();
  mail::SmtpOptions smtp;
  smtp.url = "smtp://127.0.0.1:" + std::to_string(port);
  smtp.timeout = std::chrono::seconds(3);
  mail::Relay relay(f.outbox, smtp);

  REQUIRE(f.Register(f.email, kPassword).ok());
  CHECK(relay.RunOnce() == 0);  // No SMTP server yet: the mail waits for a retry.

  testing::Process server(
      "/usr/bin/python3",
      {"-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port), "-c", "aiosmtpd.handlers.Mailbox", dir}, {},
      dir + ".log");
  REQUIRE(testing::Eventually(
      [&] {
        return mail::Send(smtp, {"probe@example.de", "probe", "probe"}).ok();
      },
      std::chrono::seconds(10)));
  // Make the failed mail due now instead of after its backoff.
  {
    pqxx::connection conn(testing::DatabaseUrl());
    pqxx::work tx(conn);
    tx.exec("UPDATE " + tx.quote_name(f.schema.name()) + ".mail_outbox SET next_attempt_at = now()");
    tx.commit();
  }
  CHECK(relay.RunOnce() == 1);
  CHECK(relay.RunOnce() == 0);  // Sent once, never again.

  int found = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find("To: " + f.email) != std::string::npos) {
      ++found;
      CHECK(ss.str().find("verify-email?token=") != std::string::npos);
    }
  }
  CHECK(found == 1);
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {

TEST_CASE("switching the acting party rotates the session id and records the party", "[integration]") {
  Fixture f;
  auto session = f.RegisterVerifyLogin();
  const std::string account = session.session().account_id();
  const std::string org = "44444444-4444-4444-8444-444444444444";
  v1::LoginResponse rotated;
  REQUIRE(f.SwitchActingParty(session.session_id(), account, org, &rotated).ok());
  CHECK(rotated.session_id() != session.session_id());
  CHECK(rotated.session().acting_party_id() == "44444444-4444-4444-8444-444444444444");
  v1::Session s;
  CHECK(f.Resolve(session.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(f.Resolve(rotated.session_id(), &s).ok());
  CHECK(s.acting_party_id() == "44444444-4444-4444-8444-444444444444");

  // Another account's session is not switched, nor by the person directly (only accounts
  // checks memberships).
  const std::string current = rotated.session_id();
  CHECK(f.SwitchActingParty(current, "55555555-5555-4555-8555-555555555555", org, &rotated).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  auth::Caller person;
  person.account_id = account;
  person.tenant = "09564000";
  grpcx::TestCaller as_person(person);
  v1::SetActingPartyRequest req;
  req.set_session_id(current);
  req.set_account_id(account);
  req.set_acting_party_id(org);
  CHECK(f.service.SetActingParty(&f.ctx, &req, &rotated).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(f.SwitchActingParty(current, account, "not-a-uuid", &rotated).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(f.Resolve(current, &s).ok());
}

}  // namespace stadtportal::identity

namespace stadtportal::identity {

TEST_CASE("sessions carry the account's current roles and state; rotating never extends them", "[integration]") {
  Fixture f;
  auto session = f.RegisterVerifyLogin();
  const std::string account = session.session().account_id();
  auto sql = [&](const std::string& statement) {
    REQUIRE(f.schema.pool()
                .Transact([&](pqxx::work& tx) {
                  tx.exec(statement);
                  return absl::OkStatus();
                })
                .ok());
  };
  auth::Caller caller;
  caller.account_id = account;
  caller.tenant = "09564000";
  grpcx::TestCaller scope(caller);

  // A role granted or revoked after log-in shows at the next resolution.
  sql("UPDATE accounts SET roles = '{tenant-admin}' WHERE id = '" + account + "'");
  v1::Session s;
  REQUIRE(f.Resolve(session.session_id(), &s).ok());
  CHECK(std::vector<std::string>(s.roles().begin(), s.roles().end()) == std::vector<std::string>{"tenant-admin"});

  // Rotation keeps the absolute expiry, however often and however late.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  v1::LoginResponse rotated;
  REQUIRE(f.SwitchActingParty(session.session_id(), account, "", &rotated).ok());
  CHECK(rotated.session().expires_at().seconds() == session.session().expires_at().seconds());
  CHECK(std::vector<std::string>(rotated.session().roles().begin(), rotated.session().roles().end()) ==
        std::vector<std::string>{"tenant-admin"});
  sql("UPDATE accounts SET roles = '{}' WHERE id = '" + account + "'");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  v1::LoginResponse again;
  REQUIRE(f.SwitchActingParty(rotated.session_id(), account, "", &again).ok());
  CHECK(again.session().expires_at().seconds() == session.session().expires_at().seconds());
  CHECK(again.session().roles().empty());

  // A lock in the database ends the session at its next resolution, for good.
  sql("UPDATE accounts SET state = 'locked' WHERE id = '" + account + "'");
  CHECK(f.Resolve(again.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  sql("UPDATE accounts SET state = 'active' WHERE id = '" + account + "'");
  CHECK(f.Resolve(again.session_id(), &s).error_code() == grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace stadtportal::identity

#include "absl/time/clock.h"
#include "libs/auth/tokens.h"
#include "libs/auth/totp.h"

namespace stadtportal::identity {
namespace {

auth::Caller AdminCaller(const std::string& tenant = "09564000") {
  auth::Caller c;
  c.account_id = "66666666-6666-4666-8666-666666666666";
  c.tenant = tenant;
  c.roles = {"tenant-admin"};
  c.session_ref = "admin-session-ref";
  return c;
}

int64_t NowStep() { return auth::TotpStep(absl::ToUnixSeconds(absl::Now())); }

std::vector<v1::AuditEntry> AuditLog(Service& service, grpc::ServerContext& ctx, const std::string& action) {
  grpcx::TestCaller admin(AdminCaller());
  v1::ListAuditLogRequest req;
  req.set_action(action);
  v1::ListAuditLogResponse resp;
  REQUIRE(service.ListAuditLog(&ctx, &req, &resp).ok());
  return {resp.entries().begin(), resp.entries().end()};
}

}  // namespace

TEST_CASE("TOTP: a secret shown once, confirmed by a first code; each code passes once", "[integration]") {
  Fixture f;
  auto login = f.RegisterVerifyLogin();
  CHECK(login.session().second_factor() == v1::SECOND_FACTOR_NOT_ENROLLED);
  auth::Caller caller;
  caller.account_id = login.session().account_id();
  caller.tenant = "09564000";
  caller.session_ref = login.session().session_ref();
  grpcx::TestCaller scope(caller);

  v1::TotpCodeRequest code;
  code.set_session_id(login.session_id());
  code.set_code("123456");
  v1::Session passed;
  CHECK(f.service.VerifyTotp(&f.ctx, &code, &passed).error_message() == "totp: not_enrolled");

  v1::EnrolTotpRequest enrol;
  enrol.set_session_id(login.session_id());
  v1::EnrolTotpResponse shown;
  // The password alone enrols nothing: the operator's one-time code is needed.
  CHECK(f.service.EnrolTotp(&f.ctx, &enrol, &shown).error_message() == "enrolment_code: required");
  enrol.set_enrolment_code("not-the-code");
  CHECK(f.service.EnrolTotp(&f.ctx, &enrol, &shown).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(f.store->SetEnrolmentCode(caller.account_id, auth::Sha256("the-code"), std::chrono::hours(1)).ok());
  CHECK(f.service.EnrolTotp(&f.ctx, &enrol, &shown).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  enrol.set_enrolment_code("the-code");
  REQUIRE(f.service.EnrolTotp(&f.ctx, &enrol, &shown).ok());
  CHECK(shown.otpauth_uri().rfind("otpauth://totp/stadtportal:", 0) == 0);
  CHECK(shown.otpauth_uri().find("secret=" + shown.secret()) != std::string::npos);
  const auto secret = auth::FromBase32(shown.secret());
  REQUIRE(secret.has_value());
  REQUIRE(secret->size() == 20);

  // Not passed before the enrolment is confirmed, and not by a wrong code.
  CHECK(f.service.VerifyTotp(&f.ctx, &code, &passed).error_message() == "totp: not_enrolled");
  code.set_code(auth::TotpCode(*secret, NowStep() + 5));
  CHECK(f.service.ConfirmTotp(&f.ctx, &code, &passed).error_message() == "code: invalid_code");
  const int64_t step = NowStep();
  code.set_code(auth::TotpCode(*secret, step));
  REQUIRE(f.service.ConfirmTotp(&f.ctx, &code, &passed).ok());
  CHECK(passed.second_factor() == v1::SECOND_FACTOR_PASSED);
  v1::Session resolved;
  REQUIRE(f.Resolve(login.session_id(), &resolved).ok());
  CHECK(resolved.second_factor() == v1::SECOND_FACTOR_PASSED);

  // Confirmed: never enrolled (or shown) again; the enrolment code is used up, and a
  // fresh one from the operator does not change that.
  CHECK(f.service.EnrolTotp(&f.ctx, &enrol, &shown).error_message() == "enrolment_code: invalid_code");
  REQUIRE(f.store->SetEnrolmentCode(caller.account_id, auth::Sha256("the-code"), std::chrono::hours(1)).ok());
  CHECK(f.service.EnrolTotp(&f.ctx, &enrol, &shown).error_message() == "totp: already_enrolled");

  // A new log-in has to pass it; the code used for the confirmation does not count twice.
  v1::LoginResponse second;
  REQUIRE(f.Login(kPassword, &second).ok());
  CHECK(second.session().second_factor() == v1::SECOND_FACTOR_REQUIRED);
  code.set_session_id(second.session_id());
  CHECK(f.service.VerifyTotp(&f.ctx, &code, &passed).error_message() == "code: invalid_code");
  code.set_code(auth::TotpCode(*secret, step + 1));
  REQUIRE(f.service.VerifyTotp(&f.ctx, &code, &passed).ok());
  CHECK(passed.second_factor() == v1::SECOND_FACTOR_PASSED);
  REQUIRE(f.Resolve(second.session_id(), &resolved).ok());
  CHECK(resolved.second_factor() == v1::SECOND_FACTOR_PASSED);

  // Switching the acting party keeps the factor passed under the new session id.
  v1::LoginResponse rotated;
  REQUIRE(f.SwitchActingParty(second.session_id(), caller.account_id, "", &rotated).ok());
  CHECK(rotated.session().second_factor() == v1::SECOND_FACTOR_PASSED);

  // Someone else's session cannot be used.
  auth::Caller other;
  other.account_id = "55555555-5555-4555-8555-555555555555";
  grpcx::TestCaller as_other(other);
  code.set_session_id(rotated.session_id());
  CHECK(f.service.VerifyTotp(&f.ctx, &code, &passed).error_code() == grpc::StatusCode::PERMISSION_DENIED);

  auto confirmations = AuditLog(f.service, f.ctx, "totp.confirm");
  REQUIRE(confirmations.size() == 1);
  CHECK(confirmations[0].actor() == caller.account_id);
  CHECK(confirmations[0].session_ref() == caller.session_ref);
}

TEST_CASE("TOTP attempts are throttled per account, right codes included", "[integration]") {
  Fixture f;
  Options strict = f.options;
  strict.totp_rate = {3, std::chrono::seconds(300)};
  Service service{f.store, f.redis, strict};
  auto login = f.RegisterVerifyLogin();
  auth::Caller caller;
  caller.account_id = login.session().account_id();
  caller.tenant = "09564000";
  grpcx::TestCaller scope(caller);
  v1::EnrolTotpRequest enrol;
  enrol.set_session_id(login.session_id());
  enrol.set_enrolment_code("the-code");
  REQUIRE(f.store->SetEnrolmentCode(caller.account_id, auth::Sha256("the-code"), std::chrono::hours(1)).ok());
  v1::EnrolTotpResponse shown;
  REQUIRE(service.EnrolTotp(&f.ctx, &enrol, &shown).ok());
  const auto secret = auth::FromBase32(shown.secret());
  v1::TotpCodeRequest code;
  code.set_session_id(login.session_id());
  v1::Session passed;
  for (int i = 0; i < 3; ++i) {
    code.set_code(auth::TotpCode(*secret, NowStep() + 10 + i));
    CHECK(service.ConfirmTotp(&f.ctx, &code, &passed).error_message() == "code: invalid_code");
  }
  code.set_code(auth::TotpCode(*secret, NowStep()));
  auto throttled = service.ConfirmTotp(&f.ctx, &code, &passed);
  CHECK(throttled.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(throttled.error_message().find("retry after") != std::string::npos);
}

TEST_CASE("back-office clients: disabled ones and rotated secrets stop working at once", "[integration]") {
  Fixture f;
  auto clients = std::make_shared<Clients>(f.schema.pool(), f.redis, std::chrono::seconds(300));
  Service service{f.store, f.redis, f.options, nullptr, clients};
  grpcx::TestCaller admin(AdminCaller());

  v1::CreateClientRequest create;
  create.set_destination("standesamt");
  create.set_department("Standesamt");
  v1::CreateClientResponse created;
  REQUIRE(service.CreateClient(&f.ctx, &create, &created).ok());
  auto issue = [&](const std::string& secret, v1::ClientToken* token) {
    v1::IssueClientTokenRequest req;
    req.set_client_id(created.client_id());
    req.set_client_secret(secret);
    return service.IssueClientToken(&f.ctx, &req, token);
  };
  auto resolve = [&](const v1::ClientToken& token) {
    v1::ResolveClientTokenRequest req;
    req.set_access_token(token.access_token());
    v1::ClientInfo info;
    return service.ResolveClientToken(&f.ctx, &req, &info).error_code();
  };
  v1::ClientToken token;
  REQUIRE(issue(created.client_secret(), &token).ok());
  REQUIRE(resolve(token) == grpc::StatusCode::OK);

  v1::SetClientDisabledRequest disable;
  disable.set_client_id(created.client_id());
  disable.set_disabled(true);
  v1::BackofficeClient state;
  REQUIRE(service.SetClientDisabled(&f.ctx, &disable, &state).ok());
  CHECK(state.disabled());
  CHECK(state.destination() == "standesamt");
  CHECK(resolve(token) == grpc::StatusCode::UNAUTHENTICATED);  // The token issued before: dead now.
  v1::ClientToken refused;
  CHECK(issue(created.client_secret(), &refused).error_code() == grpc::StatusCode::UNAUTHENTICATED);

  disable.set_disabled(false);
  REQUIRE(service.SetClientDisabled(&f.ctx, &disable, &state).ok());
  REQUIRE(issue(created.client_secret(), &token).ok());
  REQUIRE(resolve(token) == grpc::StatusCode::OK);

  v1::RotateClientSecretRequest rotate;
  rotate.set_client_id(created.client_id());
  v1::CreateClientResponse rotated;
  REQUIRE(service.RotateClientSecret(&f.ctx, &rotate, &rotated).ok());
  CHECK(rotated.client_secret() != created.client_secret());
  CHECK(resolve(token) == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(issue(created.client_secret(), &refused).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  v1::ClientToken fresh;
  REQUIRE(issue(rotated.client_secret(), &fresh).ok());
  CHECK(resolve(fresh) == grpc::StatusCode::OK);

  // Only tenant admins of the client's own tenant.
  {
    grpcx::TestCaller other_tenant(AdminCaller("09162000"));
    CHECK(service.SetClientDisabled(&f.ctx, &disable, &state).error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(service.RotateClientSecret(&f.ctx, &rotate, &rotated).error_code() == grpc::StatusCode::NOT_FOUND);
  }
  {
    auth::Caller citizen = AdminCaller();
    citizen.roles.clear();
    grpcx::TestCaller as_citizen(citizen);
    CHECK(service.SetClientDisabled(&f.ctx, &disable, &state).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(service.RotateClientSecret(&f.ctx, &rotate, &rotated).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(resolve(fresh) == grpc::StatusCode::OK);

  // Every change is in the audit log, with who and which client.
  for (const char* action : {"backoffice_client.create", "backoffice_client.disable", "backoffice_client.enable",
                             "backoffice_client.rotate_secret"}) {
    INFO(action);
    auto entries = AuditLog(service, f.ctx, action);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].actor() == AdminCaller().account_id);
    CHECK(entries[0].service() == "identity");
    CHECK(nlohmann::json::parse(entries[0].targets_json())["client_id"] == created.client_id());
  }
}

TEST_CASE("an administrator's look-up needs a reason and is published for the person's access log", "[integration]") {
  Fixture f;
  auto login = f.RegisterVerifyLogin();
  const std::string anna = login.session().account_id();
  auto count = [&](const std::string& sql) {
    auto n = f.schema.pool().Transact(
        [&](pqxx::work& tx) -> absl::StatusOr<int64_t> { return tx.exec1(sql)[0].as<int64_t>(); });
    REQUIRE(n.ok());
    return *n;
  };
  grpcx::TestCaller admin(AdminCaller());
  v1::FindAccountsRequest req;
  req.set_query(f.email);
  v1::FindAccountsResponse resp;
  // No reason, only blanks, control characters or too long: refused, nothing recorded.
  for (const std::string& reason : {std::string(), std::string("   "), std::string("ticket\n4711"),
                                    std::string("a\x1b[2Jb"), std::string(501, 'r')}) {
    INFO(reason.size());
    req.set_reason(reason);
    CHECK(f.service.FindAccounts(&f.ctx, &req, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  CHECK(count("SELECT count(*) FROM outbox WHERE topic = 'data.accessed'") == 0);
  CHECK(count("SELECT count(*) FROM admin_access_log") == 0);

  req.set_reason("ticket 4711: password reset by phone");
  REQUIRE(f.service.FindAccounts(&f.ctx, &req, &resp).ok());
  REQUIRE(resp.accounts_size() == 1);
  CHECK(count("SELECT count(*) FROM outbox WHERE topic = 'data.accessed' AND key = '" + anna +
              "' AND payload->>'party_id' = '" + anna +
              "' AND payload->>'accessor_kind' = 'administrator' AND payload->>'accessor_id' = '" +
              AdminCaller().account_id +
              "' AND payload->>'resource' = 'account' AND payload->>'action' = 'lookup'"
              " AND payload->>'purpose' = 'ticket 4711: password reset by phone'") == 1);
  // A lock shows the account too, with its own reason.
  v1::SetAccountLockedRequest lock;
  lock.set_account_id(anna);
  lock.set_locked(true);
  lock.set_reason("ticket 4712: misuse");
  v1::Account locked;
  REQUIRE(f.service.SetAccountLocked(&f.ctx, &lock, &locked).ok());
  CHECK(count("SELECT count(*) FROM outbox WHERE topic = 'data.accessed' AND payload->>'party_id' = '" + anna +
              "' AND payload->>'action' = 'lock' AND payload->>'purpose' = 'ticket 4712: misuse'") == 1);
  CHECK(count("SELECT count(*) FROM outbox WHERE topic = 'data.accessed'") == 2);
}

TEST_CASE("the audit log is append-only, paginated and for tenant admins only", "[integration]") {
  Fixture f;
  for (int i = 0; i < 3; ++i) {
    audit::Entry e = audit::Of(AdminCaller(), "account.lock", {{"account_id", std::to_string(i)}});
    REQUIRE(f.schema.pool()
                .Transact([&](pqxx::work& tx) {
                  Store::InsertAudit(tx, "identity", e);
                  return absl::OkStatus();
                })
                .ok());
  }
  for (const char* change :
       {"UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log", "TRUNCATE audit_log"}) {
    INFO(change);
    auto s = f.schema.pool().Transact([&](pqxx::work& tx) {
      tx.exec(change);
      return absl::OkStatus();
    });
    CHECK_FALSE(s.ok());
  }
  grpcx::TestCaller admin(AdminCaller());
  v1::ListAuditLogRequest req;
  req.mutable_page()->set_page_size(2);
  v1::ListAuditLogResponse first, second;
  REQUIRE(f.service.ListAuditLog(&f.ctx, &req, &first).ok());
  REQUIRE(first.entries_size() == 2);
  CHECK(first.entries(0).targets_json() == R"({"account_id": "2"})");  // Newest first.
  REQUIRE_FALSE(first.page().next_page_token().empty());
  req.mutable_page()->set_page_token(first.page().next_page_token());
  REQUIRE(f.service.ListAuditLog(&f.ctx, &req, &second).ok());
  REQUIRE(second.entries_size() == 1);
  CHECK(second.entries(0).targets_json() == R"({"account_id": "0"})");
  CHECK(second.page().next_page_token().empty());

  req.set_action("'; DROP TABLE audit_log; --");
  CHECK(f.service.ListAuditLog(&f.ctx, &req, &second).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  auth::Caller citizen = AdminCaller();
  citizen.roles.clear();
  grpcx::TestCaller as_citizen(citizen);
  req.clear_action();
  CHECK(f.service.ListAuditLog(&f.ctx, &req, &second).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("linking and unlinking a provider is published with the account and its time; a refusal is not",
          "[integration]") {
  Fixture f;
  auto events = [&] {
    return testing::QueryValue(f.schema.pool(),
                               "SELECT coalesce(string_agg(payload->>'provider' || ':' || (payload->>'state') || ':' ||"
                               " (key = payload->>'account_id')::text || ':' ||"
                               " ((payload->>'occurred_at')::timestamptz <= now())::text, ',' ORDER BY id), '')"
                               " FROM outbox WHERE topic = 'provider.link_changed'");
  };
  federation::Identity person;
  person.provider = "bundid";
  person.subject = "bundid-subject-1";
  person.level = v1::ASSURANCE_LEVEL_SUBSTANTIAL;
  // A first log-in makes the account with the provider linked.
  auto created = f.store->RecordFederatedLogin("09564000", person, "");
  REQUIRE(created.ok());
  CHECK(created->outcome == "created");
  CHECK(events() == "bundid:linked:true:true");
  // Logging in again links nothing.
  REQUIRE(f.store->RecordFederatedLogin("09564000", person, "").ok());
  CHECK(events() == "bundid:linked:true:true");
  // A second provider linked to the account that proved itself.
  federation::Identity elster = person;
  elster.provider = "elster";
  elster.subject = "elster-subject-1";
  auto linked = f.store->RecordFederatedLogin("09564000", elster, created->account.id());
  REQUIRE(linked.ok());
  CHECK(linked->outcome == "linked");
  CHECK(events() == "bundid:linked:true:true,elster:linked:true:true");
  REQUIRE(f.store->UnlinkProvider("09564000", created->account.id(), "elster").ok());
  CHECK(events() == "bundid:linked:true:true,elster:linked:true:true,elster:unlinked:true:true");
  // The last way in stays (rolled back): nothing published.
  CHECK(f.store->UnlinkProvider("09564000", created->account.id(), "bundid").code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f.store->UnlinkProvider("09564000", created->account.id(), "elster").code() == absl::StatusCode::kNotFound);
  CHECK(events() == "bundid:linked:true:true,elster:linked:true:true,elster:unlinked:true:true");
  CHECK(testing::QueryValue(f.schema.pool(),
                            "SELECT count(*) FROM outbox WHERE topic = 'provider.link_changed' AND key = '" +
                                created->account.id() + "'") == "3");
}

}  // namespace stadtportal::identity

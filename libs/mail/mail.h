#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/config/config.h"
#include "libs/db/pool.h"

// Mail for every service that sends some: a transactional outbox table `mail_outbox`
// in the service's own schema (DDL in docs/adding-a-service.md), a background relay
// that delivers it over SMTP with retries, and the SMTP client.
namespace stadtportal::mail {

struct Mail {
  std::string to;
  std::string subject;
  std::string body;
};

struct SmtpOptions {
  std::string url = "smtp://127.0.0.1:2525";  // smtp:// or smtps://
  std::string from = "no-reply@stadtportal.invalid";
  std::string username;
  std::string password;
  std::chrono::milliseconds timeout{10000};
  // The longest wait between two attempts of a mail (backoff 2 s · 2^attempts, jittered).
  std::chrono::seconds retry_max{600};
  // STADTPORTAL_SMTP_URL, STADTPORTAL_MAIL_FROM, STADTPORTAL_SMTP_USERNAME, STADTPORTAL_SMTP_PASSWORD(_FILE),
  // STADTPORTAL_SMTP_TIMEOUT_MS, STADTPORTAL_MAIL_RETRY_MAX_S.
  static SmtpOptions FromEnv(const config::Env& env);
};

// The message as it goes over SMTP (RFC 5322), whatever the caller passed: the
// addresses must pass api::IsMailAddress (INVALID_ARGUMENT otherwise, and nothing is
// sent); the subject is made a plain line (controls and line breaks become spaces) and
// written as RFC 2047 encoded-words when it is not short plain ASCII; the body's line
// endings become CRLF and its other control characters (but TAB) are removed.
absl::StatusOr<std::string> Compose(const std::string& from, const Mail& mail, absl::Time date);

// Sends one mail over SMTP (libcurl). INVALID_ARGUMENT for a mail that can never be sent
// (see Compose), UNAVAILABLE when the server did not take it.
absl::Status Send(const SmtpOptions& options, const Mail& mail);

struct Pending {
  int64_t id;
  Mail mail;
  int attempts;
};

// The service's mail_outbox table: prepared statements "mail_outbox_*".
class Outbox {
 public:
  explicit Outbox(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);
  // Queues a mail inside the caller's transaction: sent only if it commits.
  static void Enqueue(pqxx::work& tx, const std::string& tenant, const Mail& mail);

  // Claims due mails for two minutes (an instance that dies releases them by expiry).
  absl::StatusOr<std::vector<Pending>> Claim(int limit);
  // Once sent, the row keeps neither body nor address (only subject and times).
  absl::Status MarkSent(int64_t id);
  absl::Status MarkFailed(int64_t id, const std::string& error, int64_t retry_in_seconds);
  // A mail that can never be sent (an invalid address): not tried again, body and
  // address cleared.
  absl::Status MarkRejected(int64_t id, const std::string& error);

 private:
  db::Pool& pool_;
};

// Delivers the outbox in the background: claims due mails, sends each, marks it sent
// (body and address cleared) or schedules a retry with exponential backoff and full jitter; a mail
// that can never be sent is marked rejected. Counts stadtportal_mails_total{result}.
class Relay {
 public:
  Relay(std::shared_ptr<Outbox> outbox, SmtpOptions options,
        std::chrono::milliseconds poll = std::chrono::milliseconds(1000));
  ~Relay();
  void Start();
  void Stop();
  // Wakes the relay (after a transaction that queued mails committed).
  void Notify();
  // One pass; returns the number of mails sent.
  int RunOnce();

 private:
  std::shared_ptr<Outbox> outbox_;
  SmtpOptions options_;
  std::chrono::milliseconds poll_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool pending_ = false;
  std::thread thread_;
};

}  // namespace stadtportal::mail

#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "libs/config/config.h"

namespace stadtportal::identity {

class Store;

struct Mail {
  std::string to;
  std::string subject;
  std::string body;
};

// The mails of the identity service, in German or English. Links point at the portal
// (STADTPORTAL_PUBLIC_URL); tokens appear only in links, never in logs.
Mail VerificationMail(const std::string& language, const std::string& to, const std::string& link);
Mail AlreadyRegisteredMail(const std::string& language, const std::string& to, const std::string& reset_link);
Mail PasswordResetMail(const std::string& language, const std::string& to, const std::string& link);

struct SmtpOptions {
  std::string url = "smtp://127.0.0.1:2525";  // smtp:// or smtps://
  std::string from = "no-reply@stadtportal.invalid";
  std::string username;
  std::string password;
  std::chrono::milliseconds timeout{10000};
  // STADTPORTAL_SMTP_URL, STADTPORTAL_MAIL_FROM, STADTPORTAL_SMTP_USERNAME, STADTPORTAL_SMTP_PASSWORD(_FILE).
  static SmtpOptions FromEnv(const config::Env& env);
};

// Sends one mail over SMTP (libcurl).
absl::Status SendMail(const SmtpOptions& options, const Mail& mail);

// Sends the mail outbox in the background: claims due mails, sends each, marks it
// sent (body cleared) or schedules a retry with exponential backoff and jitter.
class MailRelay {
 public:
  MailRelay(std::shared_ptr<Store> store, SmtpOptions options,
            std::chrono::milliseconds poll = std::chrono::milliseconds(1000));
  ~MailRelay();
  void Start();
  void Stop();
  // Wakes the relay (after a transaction that wrote mails committed).
  void Notify();
  // One pass; returns the number of mails sent.
  int RunOnce();

 private:
  std::shared_ptr<Store> store_;
  SmtpOptions options_;
  std::chrono::milliseconds poll_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool pending_ = false;
  std::thread thread_;
};

}  // namespace stadtportal::identity

#include "services/identity/mailer.h"

#include <curl/curl.h>

#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "services/identity/store.h"

namespace stadtportal::identity {

Mail VerificationMail(const std::string& language, const std::string& to, const std::string& link) {
  if (language == "en") {
    return {to, "Confirm your e-mail address for stadtportal",
            "Hello,\r\n\r\nplease confirm your e-mail address by opening this link within 24 hours:\r\n\r\n" + link +
                "\r\n\r\nIf you did not register, ignore this mail.\r\n"};
  }
  return {
      to, "Bitte bestätigen Sie Ihre E-Mail-Adresse für stadtportal",
      "Guten Tag,\r\n\r\nbitte bestätigen Sie Ihre E-Mail-Adresse innerhalb von 24 Stunden über diesen Link:\r\n\r\n" +
          link + "\r\n\r\nWenn Sie sich nicht registriert haben, ignorieren Sie diese Nachricht.\r\n"};
}

Mail AlreadyRegisteredMail(const std::string& language, const std::string& to, const std::string& reset_link) {
  if (language == "en") {
    return {to, "Someone tried to register with your e-mail address",
            "Hello,\r\n\r\nsomeone tried to register a new stadtportal account with this e-mail address, which "
            "already has one.\r\nIf that was you and you forgot your password, reset it here:\r\n\r\n" +
                reset_link + "\r\n\r\nOtherwise you can ignore this mail.\r\n"};
  }
  return {to, "Registrierungsversuch mit Ihrer E-Mail-Adresse",
          "Guten Tag,\r\n\r\njemand hat versucht, mit dieser E-Mail-Adresse ein neues stadtportal-Konto anzulegen; es "
          "gibt bereits eines.\r\nWaren Sie das und haben Ihr Passwort vergessen, setzen Sie es hier zurück:\r\n\r\n" +
              reset_link + "\r\n\r\nAndernfalls können Sie diese Nachricht ignorieren.\r\n"};
}

Mail PasswordResetMail(const std::string& language, const std::string& to, const std::string& link) {
  if (language == "en") {
    return {to, "Reset your stadtportal password",
            "Hello,\r\n\r\nto set a new password, open this link within one hour:\r\n\r\n" + link +
                "\r\n\r\nIf you did not ask for this, ignore this mail; your password stays as it is.\r\n"};
  }
  return {
      to, "Passwort für stadtportal zurücksetzen",
      "Guten Tag,\r\n\r\num ein neues Passwort festzulegen, öffnen Sie innerhalb einer Stunde diesen Link:\r\n\r\n" +
          link + "\r\n\r\nHaben Sie das nicht angefordert, ignorieren Sie diese Nachricht.\r\n"};
}

SmtpOptions SmtpOptions::FromEnv(const config::Env& env) {
  SmtpOptions o;
  o.url = env.String("STADTPORTAL_SMTP_URL", o.url);
  if (o.url.rfind("smtp://", 0) != 0 && o.url.rfind("smtps://", 0) != 0) {
    throw config::Error("STADTPORTAL_SMTP_URL: expected smtp://host:port or smtps://host:port");
  }
  o.from = env.String("STADTPORTAL_MAIL_FROM", o.from);
  o.username = env.String("STADTPORTAL_SMTP_USERNAME", "");
  if (!o.username.empty()) o.password = env.Secret("STADTPORTAL_SMTP_PASSWORD");
  o.timeout = env.Millis("STADTPORTAL_SMTP_TIMEOUT_MS", o.timeout);
  return o;
}

namespace {

struct Upload {
  std::string data;
  size_t offset = 0;
};

size_t ReadUpload(char* buf, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  const size_t len = std::min(size * n, u->data.size() - u->offset);
  std::memcpy(buf, u->data.data() + u->offset, len);
  u->offset += len;
  return len;
}

// RFC 2047 encoded-word for non-ASCII subjects.
std::string EncodeHeader(const std::string& s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return "=?UTF-8?B?" + absl::Base64Escape(s) + "?=";
  }
  return s;
}

}  // namespace

absl::Status SendMail(const SmtpOptions& options, const Mail& mail) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Upload upload;
  upload.data =
      absl::StrCat("Date: ", absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", absl::Now(), absl::UTCTimeZone()),
                   "\r\nFrom: ", options.from, "\r\nTo: ", mail.to, "\r\nSubject: ", EncodeHeader(mail.subject),
                   "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n",
                   mail.body);
  curl_slist* rcpt = curl_slist_append(nullptr, ("<" + mail.to + ">").c_str());
  const std::string from = "<" + options.from + ">";
  curl_easy_setopt(curl, CURLOPT_URL, options.url.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadUpload);
  curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
  curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (!options.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERNAME, options.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, options.password.c_str());
    curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  }
  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(rcpt);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return absl::UnavailableError(absl::StrCat("smtp: ", curl_easy_strerror(rc)));
  return absl::OkStatus();
}

namespace {

prometheus::Family<prometheus::Counter>& MailsTotal() {
  static auto& family = prometheus::BuildCounter()
                            .Name("stadtportal_identity_mails_total")
                            .Help("Mails handed to the SMTP server, by result (sent, failed).")
                            .Register(*metrics::Registry());
  return family;
}

}  // namespace

MailRelay::MailRelay(std::shared_ptr<Store> store, SmtpOptions options, std::chrono::milliseconds poll)
    : store_(std::move(store)), options_(std::move(options)), poll_(poll) {
  MailsTotal().Add({{"result", "sent"}});
  MailsTotal().Add({{"result", "failed"}});
}

MailRelay::~MailRelay() { Stop(); }

void MailRelay::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      pending_ = false;
      lock.unlock();
      RunOnce();
      lock.lock();
      cv_.wait_for(lock, poll_, [this] { return stop_ || pending_; });
    }
  });
}

void MailRelay::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MailRelay::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = true;
  }
  cv_.notify_all();
}

int MailRelay::RunOnce() {
  auto due = store_->ClaimMails(20);
  if (!due.ok()) {
    log::Warn("mail outbox unavailable", {{"error", std::string(due.status().message())}});
    return 0;
  }
  thread_local std::mt19937 rng{std::random_device{}()};
  int sent = 0;
  for (const auto& m : *due) {
    absl::Status s = SendMail(options_, {m.recipient, m.subject, m.body});
    if (s.ok()) {
      store_->MarkMailSent(m.id);
      MailsTotal().Add({{"result", "sent"}}).Increment();
      ++sent;
      continue;
    }
    // Exponential backoff (2 s · 2^attempts, at most 10 min) with full jitter.
    const int64_t cap = std::min<int64_t>(600, 2LL << std::min(m.attempts, 9));
    const int64_t delay = std::uniform_int_distribution<int64_t>(1, cap)(rng);
    store_->MarkMailFailed(m.id, std::string(s.message()), delay);
    MailsTotal().Add({{"result", "failed"}}).Increment();
    log::Warn(
        "mail not sent, will retry",
        {{"mail_id", m.id}, {"attempts", m.attempts}, {"retry_in_s", delay}, {"error", std::string(s.message())}});
  }
  return sent;
}

}  // namespace stadtportal::identity

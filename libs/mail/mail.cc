#include "libs/mail/mail.h"

#include <curl/curl.h>

#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/api/text.h"
#include "libs/db/network_guard.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/status/status.h"

namespace stadtportal::mail {

void Outbox::Prepare(pqxx::connection& conn) {
  conn.prepare("mail_outbox_enqueue",
               "INSERT INTO mail_outbox (tenant, recipient, subject, body) VALUES ($1, $2, $3, $4)");
  conn.prepare("mail_outbox_claim",
               "UPDATE mail_outbox SET claimed_until = now() + interval '2 minutes', attempts = attempts + 1 "
               "WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= now() "
               "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
               "RETURNING id, recipient, subject, body, attempts");
  conn.prepare(
      "mail_outbox_sent",
      "UPDATE mail_outbox SET sent_at = now(), recipient = '', body = NULL, claimed_until = NULL, last_error = NULL "
      "WHERE id = $1");
  conn.prepare("mail_outbox_rejected",
               "UPDATE mail_outbox SET claimed_until = NULL, recipient = '', body = NULL, last_error = $2, "
               "next_attempt_at = 'infinity' WHERE id = $1");
  conn.prepare("mail_outbox_failed",
               "UPDATE mail_outbox SET claimed_until = NULL, last_error = $2, "
               "next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1");
}

void Outbox::Enqueue(pqxx::work& tx, const std::string& tenant, const Mail& mail) {
  tx.exec_prepared("mail_outbox_enqueue", tenant, mail.to, mail.subject, mail.body);
}

absl::StatusOr<std::vector<Pending>> Outbox::Claim(int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::vector<Pending>> {
    std::vector<Pending> out;
    for (const auto& r : tx.exec_prepared("mail_outbox_claim", limit)) {
      out.push_back({r["id"].as<int64_t>(),
                     {r["recipient"].as<std::string>(), r["subject"].as<std::string>(),
                      r["body"].is_null() ? std::string() : r["body"].as<std::string>()},
                     r["attempts"].as<int>()});
    }
    return out;
  });
}

absl::Status Outbox::MarkSent(int64_t id) {
  return pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("mail_outbox_sent", id);
    return absl::OkStatus();
  });
}

absl::Status Outbox::MarkFailed(int64_t id, const std::string& error, int64_t retry_in_seconds) {
  return pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("mail_outbox_failed", id, error.substr(0, 500), static_cast<double>(retry_in_seconds));
    return absl::OkStatus();
  });
}

absl::Status Outbox::MarkRejected(int64_t id, const std::string& error) {
  return pool_.Transact([&](pqxx::work& tx) {
    tx.exec_prepared("mail_outbox_rejected", id, error.substr(0, 500));
    return absl::OkStatus();
  });
}

SmtpOptions SmtpOptions::FromEnv(const config::Env& env) {
  SmtpOptions o;
  o.url = env.String("STADTPORTAL_SMTP_URL", o.url);
  if (o.url.rfind("smtp://", 0) != 0 && o.url.rfind("smtps://", 0) != 0) {
    throw config::Error("STADTPORTAL_SMTP_URL: expected smtp://host:port or smtps://host:port");
  }
  o.from = env.String("STADTPORTAL_MAIL_FROM", o.from);
  if (!api::IsMailAddress(o.from))
    throw config::Error("STADTPORTAL_MAIL_FROM: expected an address such as no-reply@example.org");
  o.username = env.String("STADTPORTAL_SMTP_USERNAME", "");
  if (!o.username.empty()) o.password = env.Secret("STADTPORTAL_SMTP_PASSWORD");
  o.timeout = env.Millis("STADTPORTAL_SMTP_TIMEOUT_MS", o.timeout);
  o.retry_max = std::chrono::seconds(env.Int("STADTPORTAL_MAIL_RETRY_MAX_S", o.retry_max.count(), 1, 86400));
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

// An unstructured header value (RFC 5322 2.2.1) from any text: a plain line (no
// controls, no line breaks), written as RFC 2047 "B" encoded-words, each cut at a
// character boundary and on its own folded line so that no header line exceeds 78
// characters; short plain ASCII that cannot be mistaken for an encoded-word stays as
// it is.
std::string HeaderValue(const std::string& text) {
  const std::string plain = api::PlainLine(text, 500);
  // "Subject: " + 69 characters = 78.
  bool ascii = plain.size() <= 69 && plain.find("=?") == std::string::npos;
  for (unsigned char c : plain) ascii = ascii && c < 0x80;
  if (ascii) return plain;
  // 42 bytes are 56 base64 characters, a word of 68: "Subject: " + 68 < 78.
  constexpr size_t kChunk = 42;
  std::string out;
  for (size_t i = 0; i < plain.size();) {
    size_t end = std::min(plain.size(), i + kChunk);
    while (end < plain.size() && end > i && (static_cast<unsigned char>(plain[end]) & 0xC0) == 0x80) --end;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + absl::Base64Escape(plain.substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> Compose(const std::string& from, const Mail& mail, absl::Time date) {
  // Addresses are written as they are, so they must not need any encoding.
  if (!api::IsMailAddress(from)) return status::FieldError("from", "invalid", "not a mail address");
  if (!api::IsMailAddress(mail.to)) return status::FieldError("to", "invalid", "not a mail address");
  return absl::StrCat("Date: ", absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", date, absl::UTCTimeZone()),
                      "\r\nFrom: ", from, "\r\nTo: ", mail.to, "\r\nSubject: ", HeaderValue(mail.subject),
                      "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\n",
                      api::PlainLines(mail.body));
}

absl::Status Send(const SmtpOptions& options, const Mail& mail) {
  db::ExpectNoTransaction("smtp");
  auto message = Compose(options.from, mail, absl::Now());
  if (!message.ok()) return message.status();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Upload upload;
  upload.data = *std::move(message);
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
  static auto& family = metrics::CounterFamily("stadtportal_mails_total",
                                               "Mails handed to the SMTP server, by result (sent, failed, rejected).");
  return family;
}

}  // namespace

Relay::Relay(std::shared_ptr<Outbox> outbox, SmtpOptions options, std::chrono::milliseconds poll)
    : outbox_(std::move(outbox)), options_(std::move(options)), poll_(poll) {
  MailsTotal().Add({{"result", "sent"}});
  MailsTotal().Add({{"result", "failed"}});
  MailsTotal().Add({{"result", "rejected"}});
}

Relay::~Relay() { Stop(); }

void Relay::Start() {
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

void Relay::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Relay::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = true;
  }
  cv_.notify_all();
}

int Relay::RunOnce() {
  auto due = outbox_->Claim(20);
  if (!due.ok()) {
    log::Warn("mail outbox unavailable", {{"error", std::string(due.status().message())}});
    return 0;
  }
  thread_local std::mt19937 rng{std::random_device{}()};
  int sent = 0;
  for (const auto& m : *due) {
    absl::Status s = Send(options_, m.mail);
    if (s.ok()) {
      if (auto marked = outbox_->MarkSent(m.id); !marked.ok()) {
        // The claim expires and the mail goes out again: at-least-once, logged.
        log::Warn("cannot mark mail sent", {{"mail_id", m.id}, {"error", std::string(marked.message())}});
      }
      MailsTotal().Add({{"result", "sent"}}).Increment();
      ++sent;
      continue;
    }
    if (s.code() == absl::StatusCode::kInvalidArgument) {
      // Never sendable (an invalid address): retrying cannot help.
      if (auto marked = outbox_->MarkRejected(m.id, std::string(s.message())); !marked.ok()) {
        log::Warn("cannot mark mail rejected", {{"mail_id", m.id}, {"error", std::string(marked.message())}});
      }
      MailsTotal().Add({{"result", "rejected"}}).Increment();
      log::Warn("mail rejected", {{"mail_id", m.id}, {"error", std::string(s.message())}});
      continue;
    }
    // Exponential backoff (2 s · 2^attempts, at most retry_max) with full jitter.
    const int64_t cap = std::min<int64_t>(options_.retry_max.count(), 2LL << std::min(m.attempts, 9));
    const int64_t delay = std::uniform_int_distribution<int64_t>(1, cap)(rng);
    if (auto marked = outbox_->MarkFailed(m.id, std::string(s.message()), delay); !marked.ok()) {
      log::Warn("cannot reschedule mail", {{"mail_id", m.id}, {"error", std::string(marked.message())}});
    }
    MailsTotal().Add({{"result", "failed"}}).Increment();
    log::Warn(
        "mail not sent, will retry",
        {{"mail_id", m.id}, {"attempts", m.attempts}, {"retry_in_s", delay}, {"error", std::string(s.message())}});
  }
  return sent;
}

}  // namespace stadtportal::mail

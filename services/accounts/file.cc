#include "services/accounts/file.h"

#include <regex>
#include <set>

#include <google/protobuf/util/time_util.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/api/api.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/accounts/service.h"
#include "services/accounts/store.h"

namespace stadtportal::accounts {
namespace {

using google::protobuf::util::TimeUtil;
namespace ev = events::v1;

// 10000-01-01T00:00:00Z: occurred_at is before it (and after the epoch).
constexpr int64_t kYear10000 = 253402300800;

// "<source>-<outbox id>", as the relay names events.
const std::regex& EventIdPattern() {
  static const std::regex kId("^([a-z]+)-([0-9]{1,18})$");
  return kId;
}

// Checks collected for one event; the first failure is the answer.
class Checks {
 public:
  void Uuid(const std::string& v, const std::string& field) { Add(api::ValidateUuid(v, field)); }
  void OptionalUuid(const std::string& v, const std::string& field) {
    if (!v.empty()) Uuid(v, field);
  }
  void Text(const std::string& v, const std::string& field, int max) { Add(api::ValidateText(v, field, max)); }
  void OptionalText(const std::string& v, const std::string& field, int max) {
    if (!v.empty()) Text(v, field, max);
  }
  void Slug(const std::string& v, const std::string& field) { Add(api::ValidateSlug(v, field)); }
  void OptionalSlug(const std::string& v, const std::string& field) {
    if (!v.empty()) Slug(v, field);
  }
  void OneOf(const std::string& v, const std::string& field, const std::set<std::string>& allowed) {
    if (allowed.count(v) == 0) Add(status::FieldError(field, "invalid_option"));
  }
  void Add(absl::Status s) {
    if (status_.ok() && !s.ok()) status_ = std::move(s);
  }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

const std::set<std::string>& Statuses() {
  static const std::set<std::string> kStatuses = {
      "submitted",   "awaiting_payment",      "paid",     "delivered", "received_by_department",
      "in_progress", "information_requested", "approved", "rejected",  "withdrawn",
      "closed"};
  return kStatuses;
}

nlohmann::json Money(const common::v1::Money& m, Checks& c) {
  c.Add(api::ValidateMoney(m, "amount"));
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency()}};
}

// The item of each topic's message (the entry's party and time are set by the caller).
template <class M>
absl::StatusOr<M> Parse(const events::Event& e) {
  M m;
  if (auto s = events::FromJson(e.payload, &m); !s.ok()) return s;
  return m;
}

struct Derived {
  std::string tenant;
  std::string party_id;
  google::protobuf::Timestamp occurred_at;
  std::optional<FileItem> item;
};

absl::StatusOr<Derived> Derive(const events::Event& e) {
  Checks c;
  Derived d;
  FileItem item;
  if (e.topic == events::Topic<ev::SubmissionStatusChanged>::kName) {
    auto m = Parse<ev::SubmissionStatusChanged>(e);
    if (!m.ok()) return m.status();
    c.Uuid(m->submission_id(), "submission_id");
    c.Text(m->reference(), "reference", 40);
    c.Slug(m->service_id(), "service_id");
    c.OneOf(m->status(), "status", Statuses());
    if (!m->previous_status().empty()) c.OneOf(m->previous_status(), "previous_status", Statuses());
    d = {m->tenant(), m->party_id(), m->occurred_at(), std::nullopt};
    item.kind = "submission_status";
    item.service_id = m->service_id();
    item.submission_id = m->submission_id();
    item.summary = {{"submission_id", m->submission_id()},
                    {"reference", m->reference()},
                    {"status", m->status()},
                    {"previous_status", m->previous_status()}};
    item.link = "/api/v1/submissions/" + m->submission_id();
  } else if (e.topic == events::Topic<ev::PaymentSucceeded>::kName) {
    auto m = Parse<ev::PaymentSucceeded>(e);
    if (!m.ok()) return m.status();
    c.Uuid(m->payment_id(), "payment_id");
    c.Uuid(m->submission_id(), "submission_id");
    c.Add(api::ValidateText(m->provider(), "provider", 40));
    d = {m->tenant(), m->party_id(), m->occurred_at(), std::nullopt};
    item.kind = "payment";
    item.submission_id = m->submission_id();
    item.summary = {{"payment_id", m->payment_id()},
                    {"submission_id", m->submission_id()},
                    {"amount", Money(m->amount(), c)},
                    {"provider", m->provider()}};
    item.link = "/api/v1/payments/" + m->payment_id();
  } else if (e.topic == events::Topic<ev::PaymentRefunded>::kName) {
    auto m = Parse<ev::PaymentRefunded>(e);
    if (!m.ok()) return m.status();
    c.Uuid(m->payment_id(), "payment_id");
    c.Uuid(m->refund_id(), "refund_id");
    c.Uuid(m->submission_id(), "submission_id");
    d = {m->tenant(), m->party_id(), m->occurred_at(), std::nullopt};
    item.kind = "refund";
    item.submission_id = m->submission_id();
    item.summary = {{"payment_id", m->payment_id()},
                    {"refund_id", m->refund_id()},
                    {"submission_id", m->submission_id()},
                    {"amount", Money(m->amount(), c)}};
    item.link = "/api/v1/payments/" + m->payment_id();
  } else if (e.topic == events::Topic<ev::MessageReceived>::kName) {
    auto m = Parse<ev::MessageReceived>(e);
    if (!m.ok()) return m.status();
    c.Uuid(m->thread_id(), "thread_id");
    c.Uuid(m->message_id(), "message_id");
    c.OneOf(m->kind(), "kind", {"message", "notice", "reminder", "system", "reply"});
    c.Text(m->subject(), "subject", 200);
    c.OptionalUuid(m->submission_id(), "submission_id");
    d = {m->tenant(), m->party_id(), m->occurred_at(), std::nullopt};
    item.kind = m->kind() == "system" ? "system_message" : m->kind();
    item.submission_id = m->submission_id();
    item.summary = {{"thread_id", m->thread_id()},
                    {"message_id", m->message_id()},
                    {"subject", m->subject()},
                    {"submission_id", m->submission_id()}};
    item.link = "/api/v1/mailbox/threads/" + m->thread_id();
  } else if (e.topic == events::Topic<ev::ReminderDue>::kName) {
    auto m = Parse<ev::ReminderDue>(e);
    if (!m.ok()) return m.status();
    c.Uuid(m->reminder_id(), "reminder_id");
    c.Uuid(m->document_id(), "document_id");
    c.Text(m->document_type(), "document_type", 64);
    c.Text(m->document_name_de(), "document_name_de", 200);
    c.Text(m->document_name_en(), "document_name_en", 200);
    c.OptionalText(m->label(), "label", 80);
    if (!IsDate(m->expires_on())) c.Add(status::FieldError("expires_on", "invalid_date"));
    c.OptionalSlug(m->renewal_service_id(), "renewal_service_id");
    d = {m->tenant(), m->party_id(), m->occurred_at(), std::nullopt};
    item.kind = "reminder";
    item.summary = {{"document_id", m->document_id()},
                    {"document_type", m->document_type()},
                    {"document_name_de", m->document_name_de()},
                    {"document_name_en", m->document_name_en()},
                    {"label", m->label()},
                    {"expires_on", m->expires_on()},
                    {"renewal_service_id", m->renewal_service_id()}};
    item.link = "/api/v1/me/documents/" + m->document_id();
  } else if (e.topic == events::Topic<ev::ConsentChanged>::kName) {
    auto m = Parse<ev::ConsentChanged>(e);
    if (!m.ok()) return m.status();
    c.Uuid(m->consent_id(), "consent_id");
    c.Slug(m->purpose(), "purpose");
    c.Text(m->text_version(), "text_version", 40);
    c.OneOf(m->state(), "state", {"given", "withdrawn"});
    d = {m->tenant(), m->party_id(), m->occurred_at(), std::nullopt};
    item.kind = "consent";
    item.summary = {{"consent_id", m->consent_id()},
                    {"purpose", m->purpose()},
                    {"text_version", m->text_version()},
                    {"state", m->state()}};
    item.link = "/api/v1/me/consents";
  } else if (e.topic == events::Topic<ev::ProviderLinkChanged>::kName) {
    auto m = Parse<ev::ProviderLinkChanged>(e);
    if (!m.ok()) return m.status();
    static const std::regex kProvider("^[a-z0-9][a-z0-9-]{0,62}$");
    if (!std::regex_match(m->provider(), kProvider)) c.Add(status::FieldError("provider", "invalid"));
    c.OneOf(m->state(), "state", {"linked", "unlinked"});
    // A person's party id is the identity account's.
    d = {m->tenant(), m->account_id(), m->occurred_at(), std::nullopt};
    item.kind = "provider_link";
    item.summary = {{"provider", m->provider()}, {"state", m->state()}};
    item.link = "/api/v1/me/providers";
  } else {
    return status::FieldError("topic", "invalid_option");
  }
  if (!c.status().ok()) return c.status();
  // A reminder's message in the mailbox: the reminder itself is the item.
  if (item.kind != "reminder" || e.topic == events::Topic<ev::ReminderDue>::kName) d.item = std::move(item);
  return d;
}

}  // namespace

bool IsFileKind(const std::string& kind) {
  static const std::set<std::string> kKinds = {
      "submission_status", "payment",  "refund",  "message",      "notice", "reply",
      "system_message",    "reminder", "consent", "provider_link"};
  return kKinds.count(kind) != 0;
}

absl::StatusOr<FileEntry> FileEntryOf(const events::Event& e) {
  FileEntry out;
  std::smatch m;
  if (!std::regex_match(e.id, m, EventIdPattern()) || !absl::SimpleAtoi(m[2].str(), &out.sequence)) {
    return status::FieldError("event_id", "invalid");
  }
  out.event_id = e.id;
  out.source = m[1].str();
  out.topic = e.topic;
  auto d = Derive(e);
  if (!d.ok()) return d.status();
  if (!config::IsTenantKey(d->tenant)) return status::FieldError("tenant", "invalid");
  if (auto s = api::ValidateUuid(d->party_id, "party_id"); !s.ok()) return s;
  // A time the publisher set: never empty, never the epoch, within what PostgreSQL keeps.
  const auto& at = d->occurred_at;
  if (at.seconds() <= 0 || at.seconds() >= kYear10000 || at.nanos() < 0 || at.nanos() >= 1000000000) {
    return status::FieldError("occurred_at", "invalid");
  }
  out.tenant = d->tenant;
  out.party_id = d->party_id;
  out.occurred_us = TimeUtil::TimestampToMicroseconds(d->occurred_at);
  out.payload = e.payload;
  out.item = std::move(d->item);
  return out;
}

absl::Status RecordFileEvent(pqxx::work& tx, const events::Event& e) {
  auto entry = FileEntryOf(e);
  if (!entry.ok()) return entry.status();
  if (!Store::JournalFileEvent(tx, *entry)) return absl::OkStatus();  // Taken before.
  Store::WriteFileItem(tx, *entry);
  return absl::OkStatus();
}

absl::StatusOr<RebuildCounts> RebuildFile(db::Pool& pool, const std::string& tenant) {
  if (!tenant.empty() && !config::IsTenantKey(tenant)) return status::FieldError("tenant", "invalid");
  return pool.Transact([&](pqxx::work& tx) -> absl::StatusOr<RebuildCounts> {
    RebuildCounts counts;
    Store::DeleteFileItems(tx, tenant);
    // In pages by event id: the items do not depend on the order they are derived in.
    constexpr int kBatch = 500;
    std::string after;
    for (;;) {
      const auto batch = Store::FileJournal(tx, tenant, after, kBatch);
      for (const auto& e : batch) {
        ++counts.events;
        auto entry = FileEntryOf(e);
        if (!entry.ok()) {
          ++counts.refused;
          log::Warn("journal entry refused by the file's derivation",
                    {{"event", e.id}, {"error", std::string(entry.status().message())}});
          continue;
        }
        if (Store::WriteFileItem(tx, *entry)) ++counts.items;
      }
      if (static_cast<int>(batch.size()) < kBatch) return counts;
      after = batch.back().id;
    }
  });
}

std::string FileCursor(int64_t occurred_us, const std::string& event_id) {
  return api::NextPageToken(absl::StrCat(occurred_us, "|", event_id));
}

absl::StatusOr<std::pair<int64_t, std::string>> ParseFileCursor(const std::string& token) {
  common::v1::PageRequest req;
  req.set_page_token(token);
  auto page = api::ParsePage(req);
  const auto invalid = status::MalformedField("page_token", "invalid", "not a token this service issued");
  if (!page.ok()) return invalid;
  std::vector<std::string> parts = absl::StrSplit(page->after, absl::MaxSplits('|', 1));
  int64_t micros = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &micros) || micros <= 0 ||
      !std::regex_match(parts[1], EventIdPattern())) {
    return invalid;
  }
  return std::make_pair(micros, parts[1]);
}

}  // namespace stadtportal::accounts

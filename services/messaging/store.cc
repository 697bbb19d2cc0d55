#include "services/messaging/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::messaging {
namespace {

constexpr char kColumns[] =
    "id::text, tenant, party_id::text, party_kind, sender_kind, subject, body, message_key, "
    "(extract(epoch FROM created_at) * 1000000)::bigint, seq";

v1::Message ToMessage(const pqxx::row& r) {
  v1::Message m;
  m.set_id(r[0].as<std::string>());
  m.mutable_tenant()->set_key(r[1].as<std::string>());
  m.mutable_party()->set_id(r[2].as<std::string>());
  m.mutable_party()->set_kind(r[3].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON
                                                                 : common::v1::PARTY_KIND_ORGANISATION);
  const auto sender = r[4].as<std::string>();
  m.set_sender_kind(sender == "citizen"      ? v1::SENDER_KIND_CITIZEN
                    : sender == "department" ? v1::SENDER_KIND_DEPARTMENT
                                             : v1::SENDER_KIND_SYSTEM);
  m.set_subject(r[5].as<std::string>());
  m.set_body(r[6].as<std::string>());
  m.set_message_key(r[7].as<std::string>());
  *m.mutable_created_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[8].as<int64_t>());
  return m;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  conn.prepare(
      "messaging_post",
      std::string("INSERT INTO messages (tenant, party_id, party_kind, sender_kind, subject, body, message_key) "
                  "VALUES ($1, $2::uuid, $3, $4, $5, $6, $7) "
                  "ON CONFLICT (tenant, message_key) DO NOTHING RETURNING ") +
          kColumns);
  conn.prepare("messaging_by_key",
               std::string("SELECT ") + kColumns + " FROM messages WHERE tenant = $1 AND message_key = $2");
  // $3: keyset cursor (seq of the last message seen; 0 = from the newest).
  conn.prepare("messaging_list", std::string("SELECT ") + kColumns +
                                     " FROM messages WHERE tenant = $1 AND party_id = $2::uuid AND ($3 = 0 OR seq < $3)"
                                     " ORDER BY seq DESC LIMIT $4");
}

absl::StatusOr<v1::Message> Store::PostMessage(const NewMessage& m) {
  v1::Message out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("messaging_post", m.tenant, m.party_id, m.party_kind, m.sender_kind, m.subject, m.body,
                                m.message_key);
    if (res.empty()) res = tx.exec_prepared("messaging_by_key", m.tenant, m.message_key);
    if (res.empty()) return absl::AbortedError("concurrent post with the same message key, retry");
    out = ToMessage(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::ListMessagesResponse> Store::ListMessages(const std::string& tenant, const std::string& party_id,
                                                             const api::Page& page) {
  int64_t after = 0;
  if (!page.after.empty()) {
    try {
      after = std::stoll(page.after);
    } catch (const std::exception&) {
      return absl::InvalidArgumentError("page.page_token: not a token this service issued");
    }
  }
  v1::ListMessagesResponse out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("messaging_list", tenant, party_id, after, page.size + 1);
    for (pqxx::result::size_type i = 0; i < res.size(); ++i) {
      if (static_cast<int>(i) == page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(res[i - 1][9].as<std::string>()));
        break;
      }
      *out.add_messages() = ToMessage(res[i]);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace stadtportal::messaging

#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "libs/api/api.h"
#include "libs/db/pool.h"
#include "stadtportal/messaging/v1/messaging.pb.h"

namespace stadtportal::messaging {

struct NewMessage {
  std::string tenant;
  std::string party_id;
  std::string party_kind;   // "person" | "organisation"
  std::string sender_kind;  // "citizen" | "department" | "system"
  std::string subject;
  std::string body;
  std::string message_key;
};

// The messaging schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // Stores the message once per key; a repeat returns the stored message.
  absl::StatusOr<v1::Message> PostMessage(const NewMessage& m);
  // Newest first.
  absl::StatusOr<v1::ListMessagesResponse> ListMessages(const std::string& tenant, const std::string& party_id,
                                                        const api::Page& page);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::messaging

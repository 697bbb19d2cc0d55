#pragma once

#include <string>

#include <google/protobuf/repeated_ptr_field.h>
#include <google/protobuf/timestamp.pb.h>
#include <nlohmann/json.hpp>

#include "stadtportal/common/v1/common.pb.h"
#include "stadtportal/identity/v1/identity.pb.h"
#include "stadtportal/messaging/v1/messaging.pb.h"
#include "stadtportal/submission/v1/submission.pb.h"

// The JSON of the types the API's documents share: one rendering each.
namespace stadtportal::gateway::json {

// RFC 3339 in UTC, e.g. "2026-05-01T10:00:00Z".
nlohmann::json Time(const google::protobuf::Timestamp& t);
// Time(t) when the field is set (`has`), else null.
nlohmann::json TimeOrNull(bool has, const google::protobuf::Timestamp& t);
// {"amount_minor", "currency"}.
nlohmann::json Money(const common::v1::Money& m);
// {"de", "en"}.
nlohmann::json Text(const common::v1::LocalizedText& t);
// {"items": items}, with "next_page_token" when there is a next page.
nlohmann::json Page(nlohmann::json items, const common::v1::PageResponse& page);
// An application's attachment: id, field, filename, media_type, size, sha256, created_at.
nlohmann::json SubmissionAttachment(const submission::v1::Attachment& a);
// A mailbox message's attachment: id, filename, media_type, size, sha256.
nlohmann::json MessageAttachment(const messaging::v1::Attachment& a);
// "citizen", "department" or "system".
const char* SenderKind(messaging::v1::SenderKind k);

// "low", "substantial" or "high".
const char* AssuranceLevel(identity::v1::AssuranceLevel l);
const char* AssuranceLevel(submission::v1::AssuranceLevel l);

// An array of `render(element)` for each element.
template <typename T, typename Render>
nlohmann::json Array(const google::protobuf::RepeatedPtrField<T>& elements, Render render) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : elements) out.push_back(render(e));
  return out;
}

}  // namespace stadtportal::gateway::json

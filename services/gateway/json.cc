#include "services/gateway/json.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::gateway::json {

using google::protobuf::util::TimeUtil;

nlohmann::json Time(const google::protobuf::Timestamp& t) { return TimeUtil::ToString(t); }

nlohmann::json TimeOrNull(bool has, const google::protobuf::Timestamp& t) { return has ? Time(t) : nullptr; }

nlohmann::json Money(const common::v1::Money& m) {
  return {{"amount_minor", m.amount_minor()}, {"currency", m.currency()}};
}

nlohmann::json Text(const common::v1::LocalizedText& t) { return {{"de", t.de()}, {"en", t.en()}}; }

nlohmann::json Page(nlohmann::json items, const common::v1::PageResponse& page) {
  nlohmann::json body = {{"items", std::move(items)}};
  if (!page.next_page_token().empty()) body["next_page_token"] = page.next_page_token();
  return body;
}

nlohmann::json SubmissionAttachment(const submission::v1::Attachment& a) {
  return {
      {"id", a.id()},     {"field", a.field()},   {"filename", a.filename()},          {"media_type", a.media_type()},
      {"size", a.size()}, {"sha256", a.sha256()}, {"created_at", Time(a.created_at())}};
}

nlohmann::json MessageAttachment(const messaging::v1::Attachment& a) {
  return {{"id", a.id()},
          {"filename", a.filename()},
          {"media_type", a.media_type()},
          {"size", a.size()},
          {"sha256", a.sha256()}};
}

const char* SenderKind(messaging::v1::SenderKind k) {
  switch (k) {
    case messaging::v1::SENDER_KIND_CITIZEN: return "citizen";
    case messaging::v1::SENDER_KIND_DEPARTMENT: return "department";
    default: return "system";
  }
}

const char* AssuranceLevel(identity::v1::AssuranceLevel l) {
  switch (l) {
    case identity::v1::ASSURANCE_LEVEL_HIGH: return "high";
    case identity::v1::ASSURANCE_LEVEL_SUBSTANTIAL: return "substantial";
    default: return "low";
  }
}

const char* AssuranceLevel(submission::v1::AssuranceLevel l) {
  switch (l) {
    case submission::v1::ASSURANCE_LEVEL_HIGH: return "high";
    case submission::v1::ASSURANCE_LEVEL_SUBSTANTIAL: return "substantial";
    default: return "low";
  }
}

}  // namespace stadtportal::gateway::json

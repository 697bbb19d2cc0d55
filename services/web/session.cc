#include "services/web/session.h"

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"

namespace stadtportal::web {

namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

bool Sessions::IsWellFormedId(const std::string& id) {
  if (id.size() != 43) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

std::string Sessions::Key(const std::string& id) {
  return absl::StrCat("sp:web:session:", absl::BytesToHexString(auth::Sha256(id)));
}

absl::StatusOr<WebSession> Sessions::Create(const std::string& lang) {
  WebSession s;
  s.id = auth::RandomToken(32);
  s.csrf = auth::RandomToken(32);
  s.lang = lang;
  if (auto st = Save(s); !st.ok()) return st;
  return s;
}

absl::StatusOr<std::optional<WebSession>> Sessions::Load(const std::string& id) {
  if (!IsWellFormedId(id)) return std::nullopt;
  auto reply = redis_->Command({"GET", Key(id)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::nullopt;
  auto doc = nlohmann::json::parse(reply->str(), nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  WebSession s;
  s.id = id;
  s.api_token = doc.value("api_token", "");
  s.csrf = doc.value("csrf", "");
  s.lang = doc.value("lang", "");
  s.expires_at = doc.value("expires_at", int64_t{0});
  s.flash = doc.value("flash", "");
  s.paid_submission = doc.value("paid_submission", "");
  if (s.csrf.empty() || (s.expires_at != 0 && s.expires_at <= Now())) return std::nullopt;
  return s;
}

absl::Status Sessions::Save(WebSession& s) {
  int64_t ttl = anonymous_ttl_.count();
  if (s.logged_in()) {
    ttl = s.expires_at - Now();
    if (ttl <= 0) return Drop(s.id);
  } else {
    s.expires_at = 0;
  }
  nlohmann::json doc = {{"api_token", s.api_token}, {"csrf", s.csrf}, {"lang", s.lang},
                        {"expires_at", s.expires_at}, {"flash", s.flash},
                        {"paid_submission", s.paid_submission}};
  auto reply = redis_->Command({"SET", Key(s.id), doc.dump(), "EX", std::to_string(ttl)});
  return reply.ok() ? absl::OkStatus() : reply.status();
}

absl::Status Sessions::Drop(const std::string& id) {
  auto reply = redis_->Command({"DEL", Key(id)});
  return reply.ok() ? absl::OkStatus() : reply.status();
}

}  // namespace stadtportal::web

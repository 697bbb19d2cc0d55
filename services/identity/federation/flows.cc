#include "services/identity/federation/flows.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"
#include "libs/status/status.h"
#include "services/identity/federation/oidc.h"

namespace stadtportal::identity::federation {
namespace {

std::string FlowKey(const std::string& flow_id) {
  return "sp:fed-flow:" + absl::BytesToHexString(auth::Sha256(flow_id));
}

// Flow ids are ours: 43 URL-safe characters (32 random bytes).
bool IsFlowId(const std::string& id) {
  if (id.size() < 32 || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

Federation::Federation(std::vector<Provider> providers, std::map<std::string, std::unique_ptr<Upstream>> upstreams,
                       redis::Client& redis, FlowOptions options)
    : providers_(std::move(providers)), upstreams_(std::move(upstreams)), redis_(redis), options_(options) {
  for (const auto& p : providers_) RegisterRefusals(p.id);
}

const Provider* Federation::Find(const std::string& provider_id) const {
  for (const auto& p : providers_) {
    if (p.id == provider_id && upstreams_.count(p.id) != 0) return &p;
  }
  return nullptr;
}

bool Federation::IsReturnPath(const std::string& path) {
  if (path.empty() || path.size() > 512 || path[0] != '/') return false;
  if (path.size() > 1 && (path[1] == '/' || path[1] == '\\')) return false;
  for (unsigned char c : path) {
    // Printable ASCII only: it becomes a Location header (other characters percent-encoded).
    if (c < 0x21 || c > 0x7e || c == '\\') return false;
  }
  return true;
}

absl::StatusOr<std::string> Federation::Metadata(const std::string& provider_id) const {
  if (Find(provider_id) == nullptr) return absl::NotFoundError("provider not found");
  return upstreams_.at(provider_id)->Metadata();
}

absl::StatusOr<FlowStarted> Federation::Start(const std::string& provider_id, Level minimum,
                                              const FlowContext& context) {
  const Provider* provider = Find(provider_id);
  if (provider == nullptr) return absl::NotFoundError("provider not found");
  if (minimum == v1::ASSURANCE_LEVEL_UNSPECIFIED) minimum = v1::ASSURANCE_LEVEL_LOW;
  if (!Reaches(provider->Highest(), minimum)) {
    return status::FieldConflict("minimum_level", "provider_cannot_reach");
  }
  const std::string return_to = context.return_to.empty() ? "/" : context.return_to;
  if (!IsReturnPath(return_to)) return status::FieldError("return_to", "invalid");

  auto started = upstreams_.at(provider_id)->Start(minimum);
  if (!started.ok()) return started.status();
  const std::string flow_id = auth::RandomToken(32);
  const nlohmann::json record = {
      {"provider", provider_id},       {"relay", started->relay},          {"request", started->request},
      {"minimum", LevelName(minimum)}, {"account_id", context.account_id}, {"session_ref", context.session_ref},
      {"return_to", return_to}};
  auto set = redis_.Command({"SET", FlowKey(flow_id), record.dump(), "EX", std::to_string(options_.lifetime.count())});
  if (!set.ok()) return set.status();
  return FlowStarted{started->redirect_url, flow_id, absl::Now() + absl::FromChrono(options_.lifetime)};
}

absl::StatusOr<FlowFinished> Federation::Finish(const std::string& provider_id, const std::string& flow_id,
                                                const std::string& relay, const Upstream::Answer& answer,
                                                absl::Time now) {
  const Provider* provider = Find(provider_id);
  if (provider == nullptr) return absl::NotFoundError("provider not found");
  const std::string no_flow = provider->kind == Provider::Kind::kSaml ? "unsolicited" : "state";
  auto refuse = [&](const std::string& reason) {
    CountRefusal(provider_id, reason);
    return Refused(reason);
  };
  if (!IsFlowId(flow_id)) return refuse(no_flow);
  // Used up by this attempt, whatever comes of it.
  auto got = redis_.Command({"GETDEL", FlowKey(flow_id)});
  if (!got.ok()) return got.status();
  if (got->is_nil()) return refuse(no_flow);
  const auto record = nlohmann::json::parse(got->str(), nullptr, /*allow_exceptions=*/false);
  if (!record.is_object() || record.value("provider", "") != provider_id ||
      !SameState(record.value("relay", ""), relay)) {
    return refuse(no_flow);
  }
  const Level minimum = LevelOf(record.value("minimum", ""));
  auto identity =
      upstreams_.at(provider_id)->Finish(answer, record.value("request", nlohmann::json::object()), minimum, now);
  if (!identity.ok()) return identity.status();
  // Whatever the provider calls the person must fit where it is kept.
  if (identity->subject.empty() || identity->subject.size() > 1024 ||
      std::any_of(identity->subject.begin(), identity->subject.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return refuse("malformed");
  }
  identity->provider = provider_id;
  FlowFinished out;
  out.identity = std::move(*identity);
  out.context.account_id = record.value("account_id", "");
  out.context.session_ref = record.value("session_ref", "");
  out.context.return_to = record.value("return_to", "/");
  return out;
}

absl::StatusOr<std::string> Federation::LogoutUrl(const Identity& identity) {
  if (Find(identity.provider) == nullptr) return absl::NotFoundError("provider not configured");
  return upstreams_.at(identity.provider)->LogoutUrl(identity);
}

}  // namespace stadtportal::identity::federation

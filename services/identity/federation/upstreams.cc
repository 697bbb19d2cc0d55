#include "services/identity/federation/upstreams.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "libs/auth/tokens.h"
#include "services/identity/federation/oidc.h"
#include "services/identity/federation/saml.h"

namespace stadtportal::identity::federation {
namespace {

constexpr size_t kMaxProvidersFile = 1 << 20;

class SamlUpstream final : public Upstream {
 public:
  explicit SamlUpstream(std::unique_ptr<SamlServiceProvider> sp) : sp_(std::move(sp)) {}

  absl::StatusOr<Started> Start(Level minimum) override {
    const std::string relay = auth::RandomToken(32);
    auto request = sp_->Start(relay, minimum);
    if (!request.ok()) return request.status();
    return Started{request->redirect_url, relay, {{"request_id", request->request_id}}};
  }

  absl::StatusOr<Identity> Finish(const Answer& answer, const nlohmann::json& request, Level minimum,
                                  absl::Time now) override {
    return sp_->Consume(answer.saml_response, request.value("request_id", ""), minimum, now);
  }

  absl::StatusOr<std::string> Metadata() const override { return sp_->Metadata(); }

  absl::StatusOr<std::string> LogoutUrl(const Identity& identity) override {
    return sp_->LogoutUrl(identity, auth::RandomToken(16));
  }

 private:
  std::unique_ptr<SamlServiceProvider> sp_;
};

class OidcUpstream final : public Upstream {
 public:
  OidcUpstream(std::string provider, std::unique_ptr<OidcRelyingParty> rp, std::string post_logout_uri)
      : provider_(std::move(provider)), rp_(std::move(rp)), post_logout_uri_(std::move(post_logout_uri)) {}

  absl::StatusOr<Started> Start(Level minimum) override {
    auto request = rp_->Start(minimum);
    if (!request.ok()) return request.status();
    return Started{request->redirect_url,
                   request->state,
                   {{"state", request->state}, {"nonce", request->nonce}, {"code_verifier", request->code_verifier}}};
  }

  absl::StatusOr<Identity> Finish(const Answer& answer, const nlohmann::json& request, Level minimum,
                                  absl::Time now) override {
    // The provider said no (the person cancelled, or it failed): nothing to check.
    if (!answer.error.empty() || answer.code.empty()) {
      CountRefusal(provider_, "upstream");
      return Refused("upstream");
    }
    OidcRequest started;
    started.state = request.value("state", "");
    started.nonce = request.value("nonce", "");
    started.code_verifier = request.value("code_verifier", "");
    started.minimum = minimum;
    return rp_->Finish(answer.code, started, now);
  }

  absl::StatusOr<std::string> Metadata() const override { return absl::NotFoundError("no metadata"); }

  absl::StatusOr<std::string> LogoutUrl(const Identity& identity) override {
    return rp_->LogoutUrl(identity, post_logout_uri_);
  }

 private:
  std::string provider_;
  std::unique_ptr<OidcRelyingParty> rp_;
  std::string post_logout_uri_;
};

nlohmann::json ReadProviders(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config::Error("STADTPORTAL_FEDERATION_PROVIDERS: cannot read " + path);
  std::string text(kMaxProvidersFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxProvidersFile) throw config::Error("STADTPORTAL_FEDERATION_PROVIDERS: file over 1 MiB");
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) throw config::Error("STADTPORTAL_FEDERATION_PROVIDERS: not JSON");
  return json;
}

}  // namespace

std::shared_ptr<Federation> FederationFromEnv(const config::Env& env, const std::string& public_url,
                                              redis::Client& redis) {
  const std::string path = env.String("STADTPORTAL_FEDERATION_PROVIDERS", "");
  if (path.empty()) return nullptr;
  auto providers = ParseProviders(ReadProviders(path));
  if (!providers.ok()) {
    throw config::Error("STADTPORTAL_FEDERATION_PROVIDERS: " + std::string(providers.status().message()));
  }
  std::map<std::string, std::unique_ptr<Upstream>> upstreams;
  for (const auto& p : *providers) {
    if (p.kind == Provider::Kind::kSaml) {
      SamlKeys keys{env.Required("STADTPORTAL_SAML_KEY_FILE"), env.Required("STADTPORTAL_SAML_CERT_FILE")};
      auto sp = SamlServiceProvider::Create(p, SamlEndpoints::For(public_url, p.id), keys, redis);
      if (!sp.ok()) throw config::Error(absl::StrCat("provider ", p.id, ": ", sp.status().message()));
      upstreams[p.id] = std::make_unique<SamlUpstream>(std::move(*sp));
    } else {
      OidcRelyingParty::Options options;
      options.redirect_uri = absl::StrCat(public_url, "/api/v1/auth/oidc/", p.id, "/callback");
      options.private_key_file = env.String("STADTPORTAL_OIDC_PRIVATE_KEY_FILE", "");
      if (options.private_key_file.empty()) options.client_secret = env.Secret(p.oidc.client_secret_env);
      auto rp = OidcRelyingParty::Create(p, options);
      if (!rp.ok()) throw config::Error(absl::StrCat("provider ", p.id, ": ", rp.status().message()));
      upstreams[p.id] = std::make_unique<OidcUpstream>(p.id, std::move(*rp), public_url + "/");
    }
  }
  FlowOptions options;
  options.lifetime = std::chrono::seconds(env.Int("STADTPORTAL_FEDERATION_FLOW_S", 600, 60, 3600));
  return std::make_shared<Federation>(*std::move(providers), std::move(upstreams), redis, options);
}

}  // namespace stadtportal::identity::federation

#include "services/identity/federation/saml.h"

// Lasso's header wraps glib's in extern "C": the C headers come first (ADR 0023), and
// xmlsec's errors.h needs xmlsec.h before it.
// clang-format off
#include <glib.h>
#include <glib-object.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/errors.h>
#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_extensions.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <lasso/xml/saml-2.0/samlp2_requested_authn_context.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_authn_statement.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
// clang-format on
#include <sodium.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/log/log.h"

namespace stadtportal::identity::federation {
namespace {

constexpr char kSamlp[] = "urn:oasis:names:tc:SAML:2.0:protocol";
constexpr char kSaml[] = "urn:oasis:names:tc:SAML:2.0:assertion";
constexpr char kDs[] = "http://www.w3.org/2000/09/xmldsig#";
constexpr char kMd[] = "urn:oasis:names:tc:SAML:2.0:metadata";
constexpr char kAkdb[] = "https://www.akdb.de/request/2018/09";
constexpr char kBearer[] = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
constexpr char kPersistent[] = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
constexpr char kRedirect[] = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

constexpr size_t kMaxMetadata = 1 << 20;    // IdP metadata file.
constexpr size_t kMaxKeyFile = 64 << 10;    // PEM key or certificate.
constexpr size_t kMaxResponse = 512 << 10;  // The SAMLResponse form value (base64).
constexpr size_t kMaxRelayState = 80;       // SAML bindings, 3.4.3 and 3.5.3.
constexpr size_t kMaxValue = 1024;          // One NameID or attribute value.
constexpr absl::Duration kSkew = absl::Seconds(60);

// ---- Lasso, once per process; its own and xmlsec's messages are not ours to print: they
// may name parts of a message. A refusal is logged by us with its reason.

void Quiet(const gchar*, GLogLevelFlags, const gchar*, gpointer) {}
void QuietXmlsec(const char*, int, const char*, const char*, const char*, int, const char*) {}
void QuietXml(void*, const char*, ...) {}
void QuietStructured(void*, xmlErrorPtr) {}

absl::Status InitLasso() {
  static const int rc = [] {
    const int rc = lasso_init();
    g_log_set_handler("Lasso", static_cast<GLogLevelFlags>(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
                      Quiet, nullptr);
    xmlSecErrorsSetCallback(QuietXmlsec);
    return rc;
  }();
  if (rc != 0) return absl::InternalError(absl::StrCat("saml: lasso_init failed: ", lasso_strerror(rc)));
  return absl::OkStatus();
}

// libxml2's error handlers are per thread: silenced for each call that parses.
void SilenceXmlErrors() {
  xmlSetGenericErrorFunc(nullptr, QuietXml);
  xmlSetStructuredErrorFunc(nullptr, QuietStructured);
}

// ---- Owners of C objects.

struct GObjectUnref {
  void operator()(gpointer p) const {
    if (p) g_object_unref(p);
  }
};
template <typename T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct XmlDocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using XmlDoc = std::unique_ptr<xmlDoc, XmlDocFree>;

struct XmlNodeFree {
  void operator()(xmlNode* n) const { xmlFreeNode(n); }
};

struct XmlCharFree {
  void operator()(xmlChar* s) const { xmlFree(s); }
};

struct GFree {
  void operator()(gchar* s) const { g_free(s); }
};

// ---- XML reading: elements by namespace and local name, never by prefix.

bool Is(const xmlNode* n, const char* ns, const char* name) {
  return n != nullptr && n->type == XML_ELEMENT_NODE && n->ns != nullptr && n->ns->href != nullptr &&
         xmlStrEqual(n->ns->href, BAD_CAST ns) && xmlStrEqual(n->name, BAD_CAST name);
}

std::vector<xmlNode*> Children(const xmlNode* parent, const char* ns, const char* name) {
  std::vector<xmlNode*> out;
  if (parent == nullptr) return out;
  for (xmlNode* c = parent->children; c != nullptr; c = c->next) {
    if (Is(c, ns, name)) out.push_back(c);
  }
  return out;
}

xmlNode* Child(const xmlNode* parent, const char* ns, const char* name) {
  auto all = Children(parent, ns, name);
  return all.empty() ? nullptr : all.front();
}

// An attribute without namespace; nullopt when absent.
std::optional<std::string> Attr(const xmlNode* n, const char* name) {
  if (n == nullptr || xmlHasNsProp(n, BAD_CAST name, nullptr) == nullptr) return std::nullopt;
  std::unique_ptr<xmlChar, XmlCharFree> v(xmlGetNoNsProp(n, BAD_CAST name));
  return std::string(v ? reinterpret_cast<const char*>(v.get()) : "");
}

// The text of all text descendants: a comment (or any other node) inside does not cut
// it short.
std::string Text(const xmlNode* n) {
  std::string out;
  if (n == nullptr) return out;
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
      if (c->content) out += reinterpret_cast<const char*>(c->content);
    } else if (c->type == XML_ELEMENT_NODE) {
      out += Text(c);
    }
  }
  return out;
}

// Elements named `name` of namespace `ns` in the subtree below `n` (not `n` itself).
int CountBelow(const xmlNode* n, const char* ns, const char* name) {
  int count = 0;
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    if (Is(c, ns, name)) ++count;
    count += CountBelow(c, ns, name);
  }
  return count;
}

// Whether every signature transform below `n` is one a SAML signature needs: the
// enveloped signature and canonicalisation (exclusive or inclusive, with or without
// comments). XSLT, XPath and the rest are refused before any signature is checked.
bool OnlyKnownTransforms(const xmlNode* n) {
  static const std::set<std::string> kAllowed = {
      "http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#",
      "http://www.w3.org/2001/10/xml-exc-c14n#WithComments", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
      "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"};
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    if (Is(c, kDs, "Transform") && kAllowed.count(Attr(c, "Algorithm").value_or("")) == 0) return false;
    if (!OnlyKnownTransforms(c)) return false;
  }
  return true;
}

// A DTD, an entity declaration or an entity reference anywhere below `n`.
bool HasEntities(const xmlNode* n) {
  for (const xmlNode* c = n->children; c != nullptr; c = c->next) {
    if (c->type == XML_DTD_NODE || c->type == XML_ENTITY_REF_NODE || c->type == XML_ENTITY_DECL ||
        c->type == XML_ENTITY_NODE || c->type == XML_DOCUMENT_TYPE_NODE) {
      return true;
    }
    if (c->type == XML_ELEMENT_NODE && HasEntities(c)) return true;
  }
  return false;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A file of at most `limit` bytes.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t limit, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("saml: cannot read ", what, " ", path));
  std::string data(limit + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > limit) return absl::FailedPreconditionError(absl::StrCat("saml: ", what, " ", path, " too big"));
  return data;
}

// Anything that could declare entities or hide them behind another encoding: a DOCTYPE
// or ENTITY declaration, a NUL byte, an XML declaration naming an encoding other than
// UTF-8. Returns "" when none, else the reason.
std::string ScreenXml(const std::string& xml) {
  if (xml.find('\0') != std::string::npos) return "malformed";
  const std::string lower = absl::AsciiStrToLower(xml);
  if (lower.find("<!doctype") != std::string::npos || lower.find("<!entity") != std::string::npos) return "doctype";
  absl::string_view rest(lower);
  absl::ConsumePrefix(&rest, "\xef\xbb\xbf");
  if (absl::StartsWith(rest, "<?xml")) {
    const auto end = rest.find("?>");
    if (end == absl::string_view::npos) return "malformed";
    const absl::string_view decl = rest.substr(0, end);
    const auto enc = decl.find("encoding");
    if (enc != absl::string_view::npos) {
      absl::string_view value = absl::StripLeadingAsciiWhitespace(decl.substr(enc + 8));
      if (!absl::ConsumePrefix(&value, "=")) return "malformed";
      value = absl::StripLeadingAsciiWhitespace(value);
      if (!absl::StartsWith(value, "\"utf-8\"") && !absl::StartsWith(value, "'utf-8'")) return "malformed";
    }
  }
  return "";
}

XmlDoc ParseXml(const std::string& xml) {
  SilenceXmlErrors();
  return XmlDoc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "saml.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
}

absl::StatusOr<absl::Time> Instant(const std::optional<std::string>& value) {
  absl::Time t;
  std::string err;
  if (!value || !absl::ParseTime(absl::RFC3339_full, *value, &t, &err)) return Refused("malformed");
  return t;
}

// The base64 body of the first certificate in a PEM file.
absl::StatusOr<std::string> CertificateBody(const std::string& pem) {
  constexpr char kBegin[] = "-----BEGIN CERTIFICATE-----";
  constexpr char kEnd[] = "-----END CERTIFICATE-----";
  const auto begin = pem.find(kBegin);
  const auto end = pem.find(kEnd);
  if (begin == std::string::npos || end == std::string::npos || end < begin) {
    return absl::FailedPreconditionError("saml: the certificate file holds no PEM certificate");
  }
  std::string body;
  for (char c : pem.substr(begin + sizeof(kBegin) - 1, end - begin - (sizeof(kBegin) - 1))) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) body += c;
  }
  return body;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

bool IsSignatureError(int rc) {
  switch (rc) {
    case LASSO_DS_ERROR_SIGNATURE_NOT_FOUND:
    case LASSO_DS_ERROR_INVALID_SIGNATURE:
    case LASSO_DS_ERROR_SIGNATURE_VERIFICATION_FAILED:
    case LASSO_DS_ERROR_TOO_MUCH_REFERENCES:
    case LASSO_DS_ERROR_INVALID_REFERENCE_FOR_SAML:
    case LASSO_PROFILE_ERROR_CANNOT_VERIFY_SIGNATURE: return true;
    default: return false;
  }
}

// The context class to ask for: the provider's own when it reaches `minimum`, else the
// lowest STORK-QAA (then eIDAS, then any) value of its table that maps to `minimum`.
absl::StatusOr<std::string> RequestedContext(const Provider& p, Level minimum) {
  const auto own = p.levels.find(p.saml.requested_context);
  if (minimum == v1::ASSURANCE_LEVEL_UNSPECIFIED || (own != p.levels.end() && Reaches(own->second, minimum))) {
    return p.saml.requested_context;
  }
  for (const char* family : {"STORK-QAA-Level-", "http://eidas.europa.eu/LoA/", ""}) {
    std::vector<std::string> candidates;
    for (const auto& [asserted, level] : p.levels) {
      if (level == minimum && absl::StartsWith(asserted, family)) candidates.push_back(asserted);
    }
    if (candidates.empty()) continue;
    if (absl::string_view(family) == "http://eidas.europa.eu/LoA/") {
      // low < substantial < high is not the alphabet's order.
      for (const char* name : {"low", "substantial", "high"}) {
        const std::string uri = absl::StrCat(family, name);
        if (std::find(candidates.begin(), candidates.end(), uri) != candidates.end()) return uri;
      }
    }
    return *std::min_element(candidates.begin(), candidates.end());
  }
  return absl::FailedPreconditionError(absl::StrCat("saml: provider ", p.id, " cannot assert the requested level"));
}

}  // namespace

// Lasso's server: our SP (metadata, signing key) and the one IdP it trusts.
struct LassoState {
  GPtr<LassoServer> server;
};

SamlEndpoints SamlEndpoints::For(const std::string& public_url, const std::string& provider_id) {
  std::string base(absl::StripSuffix(public_url, "/"));
  const std::string prefix = absl::StrCat(base, "/api/v1/auth/saml/", provider_id);
  return SamlEndpoints{absl::StrCat(prefix, "/metadata"), absl::StrCat(prefix, "/acs"), absl::StrCat(prefix, "/slo")};
}

SamlServiceProvider::SamlServiceProvider(const Provider& provider, const SamlEndpoints& endpoints, redis::Client& redis)
    : provider_(provider), endpoints_(endpoints), redis_(redis), lasso_(std::make_unique<LassoState>()) {}

SamlServiceProvider::~SamlServiceProvider() = default;

absl::StatusOr<std::unique_ptr<SamlServiceProvider>> SamlServiceProvider::Create(const Provider& provider,
                                                                                 const SamlEndpoints& endpoints,
                                                                                 const SamlKeys& keys,
                                                                                 redis::Client& redis) {
  if (provider.kind != Provider::Kind::kSaml) {
    return absl::InvalidArgumentError(absl::StrCat("saml: provider ", provider.id, " is not a SAML provider"));
  }
  if (auto s = InitLasso(); !s.ok()) return s;
  auto idp_metadata = ReadFile(provider.saml.idp_metadata, kMaxMetadata, "IdP metadata");
  if (!idp_metadata.ok()) return idp_metadata.status();
  if (!ScreenXml(*idp_metadata).empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("saml: IdP metadata ", provider.saml.idp_metadata, " has a DOCTYPE or is not UTF-8 XML"));
  }
  auto key = ReadFile(keys.key_file, kMaxKeyFile, "key");
  if (!key.ok()) return key.status();
  auto cert = ReadFile(keys.cert_file, kMaxKeyFile, "certificate");
  if (!cert.ok()) return cert.status();
  auto cert_body = CertificateBody(*cert);
  if (!cert_body.ok()) return cert_body.status();

  std::unique_ptr<SamlServiceProvider> sp(new SamlServiceProvider(provider, endpoints, redis));

  // The IdP's metadata, read by us first: one EntityDescriptor with an IDPSSODescriptor.
  {
    XmlDoc doc = ParseXml(*idp_metadata);
    const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
    if (root == nullptr || doc->intSubset != nullptr || !Is(root, kMd, "EntityDescriptor")) {
      return absl::FailedPreconditionError(
          absl::StrCat("saml: IdP metadata ", provider.saml.idp_metadata, " is not one SAML EntityDescriptor"));
    }
    sp->idp_entity_id_ = Attr(root, "entityID").value_or("");
    const xmlNode* idp = Child(root, kMd, "IDPSSODescriptor");
    if (sp->idp_entity_id_.empty() || idp == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("saml: IdP metadata ", provider.saml.idp_metadata, " names no entityID or IDPSSODescriptor"));
    }
    for (const xmlNode* slo : Children(idp, kMd, "SingleLogoutService")) {
      if (Attr(slo, "Binding").value_or("") == kRedirect) sp->idp_has_slo_ = true;
    }
  }

  const std::string x509 = absl::StrCat("<ds:KeyInfo><ds:X509Data><ds:X509Certificate>", *cert_body,
                                        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>");
  sp->metadata_ = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<md:EntityDescriptor xmlns:md=\"",
      kMd, "\" xmlns:ds=\"", kDs, "\" entityID=\"", XmlEscape(endpoints.entity_id),
      "\">\n"
      "  <md:SPSSODescriptor AuthnRequestsSigned=\"true\" WantAssertionsSigned=\"true\" "
      "protocolSupportEnumeration=\"",
      kSamlp,
      "\">\n"
      "    <md:KeyDescriptor use=\"signing\">",
      x509,
      "</md:KeyDescriptor>\n"
      "    <md:KeyDescriptor use=\"encryption\">",
      x509,
      "</md:KeyDescriptor>\n"
      "    <md:SingleLogoutService Binding=\"",
      kRedirect, "\" Location=\"", XmlEscape(endpoints.slo_url),
      "\"/>\n"
      "    <md:NameIDFormat>",
      kPersistent,
      "</md:NameIDFormat>\n"
      "    <md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"",
      XmlEscape(endpoints.acs_url),
      "\" index=\"0\" isDefault=\"true\"/>\n"
      "  </md:SPSSODescriptor>\n"
      "</md:EntityDescriptor>\n");

  std::lock_guard<std::mutex> lock(sp->mu_);
  SilenceXmlErrors();
  sp->lasso_->server.reset(lasso_server_new_from_buffers(sp->metadata_.c_str(), key->c_str(), nullptr, cert->c_str()));
  if (!sp->lasso_->server) return absl::FailedPreconditionError("saml: Lasso refused our key pair or metadata");
  // RSA-SHA256 (Lasso's default is SHA-1; Debian's build does not export
  // lasso_set_default_signature_method, so the server's own setting is used).
  sp->lasso_->server->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;
  if (int rc = lasso_server_set_encryption_private_key(sp->lasso_->server.get(), key->c_str()); rc != 0) {
    return absl::FailedPreconditionError(absl::StrCat("saml: our decryption key: ", lasso_strerror(rc)));
  }
  if (int rc = lasso_server_add_provider_from_buffer(sp->lasso_->server.get(), LASSO_PROVIDER_ROLE_IDP,
                                                     idp_metadata->c_str(), nullptr, nullptr);
      rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("saml: IdP metadata ", provider.saml.idp_metadata, ": ", lasso_strerror(rc)));
  }
  return sp;
}

absl::StatusOr<SamlServiceProvider::Request> SamlServiceProvider::Start(const std::string& relay_state,
                                                                        Level minimum) const {
  if (relay_state.size() > kMaxRelayState) return absl::InvalidArgumentError("saml: relay state over 80 bytes");
  auto context = RequestedContext(provider_, minimum);
  if (!context.ok()) return context.status();

  std::lock_guard<std::mutex> lock(mu_);
  SilenceXmlErrors();
  GPtr<LassoLogin> login(lasso_login_new(lasso_->server.get()));
  if (!login) return absl::InternalError("saml: lasso_login_new failed");
  LassoProfile* profile = LASSO_PROFILE(login.get());
  if (int rc = lasso_login_init_authn_request(login.get(), idp_entity_id_.c_str(), LASSO_HTTP_METHOD_REDIRECT);
      rc != 0) {
    return absl::InternalError(absl::StrCat("saml: AuthnRequest: ", lasso_strerror(rc)));
  }
  LassoSamlp2AuthnRequest* request = LASSO_SAMLP2_AUTHN_REQUEST(profile->request);
  if (request->NameIDPolicy == nullptr) {
    request->NameIDPolicy = LASSO_SAMLP2_NAME_ID_POLICY(lasso_samlp2_name_id_policy_new());
  }
  g_free(request->NameIDPolicy->Format);
  request->NameIDPolicy->Format = g_strdup(kPersistent);
  request->NameIDPolicy->AllowCreate = TRUE;
  g_free(request->ProtocolBinding);
  request->ProtocolBinding = g_strdup(LASSO_SAML2_METADATA_BINDING_POST);
  g_free(request->AssertionConsumerServiceURL);
  request->AssertionConsumerServiceURL = g_strdup(endpoints_.acs_url.c_str());
  request->AssertionConsumerServiceIndex = -1;

  auto* requested = LASSO_SAMLP2_REQUESTED_AUTHN_CONTEXT(lasso_samlp2_requested_authn_context_new());
  requested->AuthnContextClassRef = g_list_append(nullptr, g_strdup(context->c_str()));
  requested->Comparison = g_strdup("minimum");
  if (request->RequestedAuthnContext) g_object_unref(request->RequestedAuthnContext);
  request->RequestedAuthnContext = requested;

  // AKDB's extension: the attributes asked for, by their urn:oid names.
  {
    std::unique_ptr<xmlNode, XmlNodeFree> extensions(xmlNewNode(nullptr, BAD_CAST "Extensions"));
    xmlSetNs(extensions.get(), xmlNewNs(extensions.get(), BAD_CAST kSamlp, BAD_CAST "samlp"));
    xmlNode* akdb = xmlNewChild(extensions.get(), nullptr, BAD_CAST "AuthenticationRequest", nullptr);
    xmlNs* akdb_ns = xmlNewNs(akdb, BAD_CAST kAkdb, BAD_CAST "akdb");
    xmlSetNs(akdb, akdb_ns);
    xmlNewProp(akdb, BAD_CAST "Version", BAD_CAST "2");
    xmlNode* attributes = xmlNewChild(akdb, akdb_ns, BAD_CAST "RequestedAttributes", nullptr);
    for (const auto& [name, field] : provider_.saml.attributes) {
      xmlNode* a = xmlNewChild(attributes, akdb_ns, BAD_CAST "RequestedAttribute", nullptr);
      xmlNewProp(a, BAD_CAST "Name", BAD_CAST name.c_str());
      xmlNewProp(a, BAD_CAST "RequiredAttribute", BAD_CAST "false");
    }
    LassoNode* node = lasso_node_new_from_xmlNode(extensions.get());
    if (!LASSO_IS_SAMLP2_EXTENSIONS(node)) {
      if (node) g_object_unref(node);
      return absl::InternalError("saml: Lasso did not take the request extension");
    }
    if (request->parent.Extensions) g_object_unref(request->parent.Extensions);
    request->parent.Extensions = LASSO_SAMLP2_EXTENSIONS(node);
  }

  g_free(profile->msg_relayState);
  profile->msg_relayState = relay_state.empty() ? nullptr : g_strdup(relay_state.c_str());
  lasso_profile_set_signature_hint(profile, LASSO_PROFILE_SIGNATURE_HINT_FORCE);
  if (int rc = lasso_login_build_authn_request_msg(login.get()); rc != 0) {
    return absl::InternalError(absl::StrCat("saml: AuthnRequest: ", lasso_strerror(rc)));
  }
  if (profile->msg_url == nullptr || request->parent.ID == nullptr) {
    return absl::InternalError("saml: Lasso built no AuthnRequest URL");
  }
  return Request{profile->msg_url, request->parent.ID};
}

absl::Status SamlServiceProvider::Refuse(const std::string& reason) const {
  CountRefusal(provider_.id, reason);
  log::Warn("saml response refused", {{"provider", provider_.id}, {"reason", reason}});
  return Refused(reason);
}

absl::StatusOr<Identity> SamlServiceProvider::Consume(const std::string& saml_response, const std::string& request_id,
                                                      Level minimum, absl::Time now) const {
  std::string assertion_id;
  absl::Time remember_until;
  auto identity = Check(saml_response, request_id, minimum, now, &assertion_id, &remember_until);
  if (!identity.ok()) {
    const std::string reason = RefusalReason(identity.status());
    if (!reason.empty()) return Refuse(reason);
    return identity.status();
  }
  // Each assertion once: its id (hashed: it comes from outside) until it could no longer
  // be accepted anyway.
  const int64_t ttl_ms = std::max<int64_t>(1000, absl::ToInt64Milliseconds(remember_until - now));
  auto reply = redis_.Command(
      {"SET", absl::StrCat("sp:saml-assertion:", Sha256Hex(absl::StrCat(provider_.id, "\n", assertion_id))), "1", "NX",
       "PX", std::to_string(ttl_ms)});
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return Refuse("replayed");
  return identity;
}

absl::StatusOr<Identity> SamlServiceProvider::Check(const std::string& saml_response, const std::string& request_id,
                                                    Level minimum, absl::Time now, std::string* assertion_id,
                                                    absl::Time* remember_until) const {
  // The input: its size, strict base64, no DOCTYPE, before any parser sees it.
  if (saml_response.size() > kMaxResponse) return Refused("malformed");
  std::string b64;
  b64.reserve(saml_response.size());
  for (char c : saml_response) {
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t') continue;
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      return Refused("malformed");
    }
    b64 += c;
  }
  std::string xml;
  if (b64.empty() || !absl::Base64Unescape(b64, &xml)) return Refused("malformed");
  if (const std::string reason = ScreenXml(xml); !reason.empty()) return Refused(reason);

  // Our own reading of the whole message: its shape, before Lasso checks signatures.
  XmlDoc doc = ParseXml(xml);
  if (!doc) return Refused("malformed");
  if (doc->intSubset != nullptr || doc->extSubset != nullptr) return Refused("doctype");
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!Is(root, kSamlp, "Response")) return Refused("malformed");
  const xmlNode* status_code = Child(Child(root, kSamlp, "Status"), kSamlp, "StatusCode");
  if (status_code == nullptr) return Refused("malformed");
  if (Attr(status_code, "Value").value_or("") != LASSO_SAML2_STATUS_CODE_SUCCESS) return Refused("status");
  // Exactly one assertion, wherever one could hide (Extensions, ds:Object, Advice …).
  const int assertions = CountBelow(root, kSaml, "Assertion") + CountBelow(root, kSaml, "EncryptedAssertion");
  if (assertions > 1) return Refused("wrapped");
  if (assertions == 0) return Refused("malformed");
  const bool encrypted = Child(root, kSaml, "EncryptedAssertion") != nullptr;
  if (!encrypted && Child(root, kSaml, "Assertion") == nullptr) return Refused("wrapped");
  if (!OnlyKnownTransforms(root)) return Refused("transform");

  std::lock_guard<std::mutex> lock(mu_);
  SilenceXmlErrors();
  GPtr<LassoLogin> login(lasso_login_new(lasso_->server.get()));
  if (!login) return absl::InternalError("saml: lasso_login_new failed");
  LassoProfile* profile = LASSO_PROFILE(login.get());
  lasso_profile_set_signature_verify_hint(profile, LASSO_PROFILE_SIGNATURE_VERIFY_HINT_FORCE);
  // Lasso gets the bytes we screened, encoded again.
  std::string canonical = absl::Base64Escape(xml);
  const int rc = lasso_login_process_authn_response_msg(login.get(), canonical.data());

  // The assertion Lasso took (decrypted if it was encrypted): exactly one.
  const xmlNode* assertion = nullptr;
  if (LASSO_IS_SAMLP2_RESPONSE(profile->response)) {
    GList* list = LASSO_SAMLP2_RESPONSE(profile->response)->Assertion;
    if (g_list_length(list) > 1) return Refused("wrapped");
    if (list != nullptr && LASSO_IS_NODE(list->data)) {
      assertion = lasso_node_get_original_xmlnode(LASSO_NODE(list->data));
    }
  }
  if (rc != 0) {
    log::Debug("saml: Lasso refused a response", {{"provider", provider_.id}, {"lasso", lasso_strerror(rc)}});
    if (IsSignatureError(rc)) {
      // Both the response and the assertion must be signed (the hint FORCE).
      if (Child(root, kDs, "Signature") == nullptr) return Refused("unsigned");
      if (assertion != nullptr) return Refused(Child(assertion, kDs, "Signature") ? "bad_signature" : "unsigned");
      return Refused(rc == LASSO_DS_ERROR_SIGNATURE_NOT_FOUND ? "unsigned" : "bad_signature");
    }
    if (rc == LASSO_PROFILE_ERROR_MISSING_ASSERTION) return Refused(encrypted ? "decrypt" : "malformed");
    if (rc == LASSO_SERVER_ERROR_PROVIDER_NOT_FOUND || rc == LASSO_PROFILE_ERROR_MISSING_ISSUER) {
      return Refused("bad_signature");
    }
    if (rc == LASSO_LOGIN_ERROR_STATUS_NOT_SUCCESS || rc == LASSO_LOGIN_ERROR_REQUEST_DENIED) return Refused("status");
    return Refused("malformed");
  }
  if (assertion == nullptr) return Refused(encrypted ? "decrypt" : "malformed");

  // Checked again by us, on the very element whose signature Lasso verified.
  if (!Is(assertion, kSaml, "Assertion")) return Refused("malformed");
  if (HasEntities(assertion)) return Refused("doctype");
  if (!OnlyKnownTransforms(assertion)) return Refused("transform");  // Decrypted only now.
  if (CountBelow(assertion, kSaml, "Assertion") + CountBelow(assertion, kSaml, "EncryptedAssertion") > 0) {
    return Refused("wrapped");
  }
  const std::string id = Attr(assertion, "ID").value_or("");
  if (id.empty() || id.size() > 256) return Refused("malformed");
  const xmlNode* signature = Child(assertion, kDs, "Signature");
  if (signature == nullptr) return Refused("unsigned");
  const auto references = Children(Child(signature, kDs, "SignedInfo"), kDs, "Reference");
  if (references.size() != 1 || Attr(references.front(), "URI").value_or("") != absl::StrCat("#", id)) {
    return Refused("wrapped");
  }
  if (Text(Child(assertion, kSaml, "Issuer")) != idp_entity_id_) return Refused("bad_signature");
  if (const xmlNode* issuer = Child(root, kSaml, "Issuer"); issuer != nullptr && Text(issuer) != idp_entity_id_) {
    return Refused("bad_signature");
  }

  // The response: to our ACS, answering our request.
  if (Attr(root, "Destination").value_or("") != endpoints_.acs_url) return Refused("destination");
  if (Attr(root, "InResponseTo").value_or("") != request_id || request_id.empty()) return Refused("unsolicited");

  // Conditions: our entity id in every AudienceRestriction (at least one), the time window.
  const xmlNode* conditions = Child(assertion, kSaml, "Conditions");
  const auto restrictions = Children(conditions, kSaml, "AudienceRestriction");
  if (restrictions.empty()) return Refused("audience");
  for (const xmlNode* r : restrictions) {
    bool ours = false;
    for (const xmlNode* audience : Children(r, kSaml, "Audience")) ours |= Text(audience) == endpoints_.entity_id;
    if (!ours) return Refused("audience");
  }
  std::vector<absl::Time> not_on_or_after;
  auto window = [&](const xmlNode* n) -> absl::Status {
    if (auto nb = Attr(n, "NotBefore")) {
      auto t = Instant(nb);
      if (!t.ok()) return t.status();
      if (now + kSkew < *t) return Refused("not_yet_valid");
    }
    if (auto na = Attr(n, "NotOnOrAfter")) {
      auto t = Instant(na);
      if (!t.ok()) return t.status();
      if (now - kSkew >= *t) return Refused("expired");
      not_on_or_after.push_back(*t);
    }
    return absl::OkStatus();
  };

  // The subject: one NameID, its whole text; bearer confirmation for our ACS and request.
  const xmlNode* subject = Child(assertion, kSaml, "Subject");
  const auto name_ids = Children(subject, kSaml, "NameID");
  if (name_ids.size() != 1) return Refused("malformed");
  const std::string name_id = Text(name_ids.front());
  if (name_id.empty() || name_id.size() > kMaxValue) return Refused("malformed");
  int bearers = 0;
  for (const xmlNode* sc : Children(subject, kSaml, "SubjectConfirmation")) {
    if (Attr(sc, "Method").value_or("") != kBearer) continue;
    ++bearers;
    const xmlNode* data = Child(sc, kSaml, "SubjectConfirmationData");
    if (data == nullptr) return Refused("malformed");
    if (Attr(data, "Recipient").value_or("") != endpoints_.acs_url) return Refused("recipient");
    if (Attr(data, "InResponseTo").value_or("") != request_id) return Refused("unsolicited");
    if (!Attr(data, "NotOnOrAfter")) return Refused("malformed");
    if (auto s = window(data); !s.ok()) return s;
  }
  if (bearers == 0) return Refused("malformed");
  if (conditions != nullptr) {
    if (auto s = window(conditions); !s.ok()) return s;
  }

  // The level actually asserted.
  const auto statements = Children(assertion, kSaml, "AuthnStatement");
  if (statements.size() != 1) return Refused("malformed");
  const xmlNode* statement = statements.front();
  absl::Time session_until = absl::InfiniteFuture();
  if (auto session_end = Attr(statement, "SessionNotOnOrAfter")) {
    auto t = Instant(session_end);
    if (!t.ok()) return t.status();
    if (now - kSkew >= *t) return Refused("expired");
    session_until = *t;
  }
  const std::string asserted = Text(Child(Child(statement, kSaml, "AuthnContext"), kSaml, "AuthnContextClassRef"));
  auto level = AssertedLevel(provider_, asserted);
  if (!level.ok()) return Refused("level_unknown");
  if (!Reaches(*level, minimum)) return Refused("level_below");

  Identity identity;
  identity.provider = provider_.id;
  identity.subject = name_id;
  identity.level = *level;
  identity.asserted = asserted;
  identity.logout_hint = Attr(statement, "SessionIndex").value_or("");
  identity.valid_until = *std::min_element(not_on_or_after.begin(), not_on_or_after.end());
  identity.session_until = session_until;
  for (const xmlNode* st : Children(assertion, kSaml, "AttributeStatement")) {
    for (const xmlNode* a : Children(st, kSaml, "Attribute")) {
      const auto field = provider_.saml.attributes.find(Attr(a, "Name").value_or(""));
      if (field == provider_.saml.attributes.end()) continue;
      const xmlNode* value = Child(a, kSaml, "AttributeValue");
      if (value == nullptr) continue;
      std::string text = Text(value);
      if (text.size() > kMaxValue) return Refused("malformed");
      identity.attributes.emplace(field->second, std::move(text));
    }
  }
  *assertion_id = id;
  *remember_until = *std::max_element(not_on_or_after.begin(), not_on_or_after.end()) + kSkew;
  return identity;
}

absl::StatusOr<std::string> SamlServiceProvider::LogoutUrl(const Identity& identity,
                                                           const std::string& relay_state) const {
  if (!idp_has_slo_) return absl::NotFoundError("saml: the IdP offers no single log-out (HTTP-Redirect)");
  if (relay_state.size() > kMaxRelayState) return absl::InvalidArgumentError("saml: relay state over 80 bytes");
  if (identity.subject.empty()) return absl::InvalidArgumentError("saml: log-out needs the NameID");

  std::lock_guard<std::mutex> lock(mu_);
  SilenceXmlErrors();
  // The session Lasso logs out: one assertion carrying the NameID and SessionIndex.
  GPtr<LassoSaml2Assertion> assertion(LASSO_SAML2_ASSERTION(lasso_saml2_assertion_new()));
  assertion->Subject = LASSO_SAML2_SUBJECT(lasso_saml2_subject_new());
  auto* name_id = LASSO_SAML2_NAME_ID(lasso_saml2_name_id_new_with_string(const_cast<char*>(identity.subject.c_str())));
  name_id->Format = g_strdup(kPersistent);
  assertion->Subject->NameID = name_id;
  if (!identity.logout_hint.empty()) {
    auto* statement = LASSO_SAML2_AUTHN_STATEMENT(lasso_saml2_authn_statement_new());
    statement->SessionIndex = g_strdup(identity.logout_hint.c_str());
    assertion->AuthnStatement = g_list_append(nullptr, statement);
  }
  GPtr<LassoLogout> logout(lasso_logout_new(lasso_->server.get()));
  if (!logout) return absl::InternalError("saml: lasso_logout_new failed");
  LassoProfile* profile = LASSO_PROFILE(logout.get());
  profile->session = lasso_session_new();
  if (int rc = lasso_session_add_assertion(profile->session, idp_entity_id_.c_str(), LASSO_NODE(assertion.get()));
      rc != 0) {
    return absl::InternalError(absl::StrCat("saml: LogoutRequest: ", lasso_strerror(rc)));
  }
  if (int rc = lasso_logout_init_request(logout.get(), const_cast<char*>(idp_entity_id_.c_str()),
                                         LASSO_HTTP_METHOD_REDIRECT);
      rc != 0) {
    return absl::InternalError(absl::StrCat("saml: LogoutRequest: ", lasso_strerror(rc)));
  }
  g_free(profile->msg_relayState);
  profile->msg_relayState = relay_state.empty() ? nullptr : g_strdup(relay_state.c_str());
  lasso_profile_set_signature_hint(profile, LASSO_PROFILE_SIGNATURE_HINT_FORCE);
  if (int rc = lasso_logout_build_request_msg(logout.get()); rc != 0) {
    return absl::InternalError(absl::StrCat("saml: LogoutRequest: ", lasso_strerror(rc)));
  }
  if (profile->msg_url == nullptr) return absl::InternalError("saml: Lasso built no LogoutRequest URL");
  return std::string(profile->msg_url);
}

}  // namespace stadtportal::identity::federation

// The authorization matrix: every REST operation of docs/api/openapi.yaml, called by
// every kind of party that must not reach a person's or an organisation's data, against
// the real binaries. Each call must answer 401/403/404 (or the normal answer where the
// route is public or the caller's own), no answer may carry the owners' data, and the
// owners' resources, read again by the owners after each caller, must be unchanged.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "tests/e2e/stack.h"

namespace stadtportal::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// One operation of the spec: "GET /api/v1/drafts/{id}" and the security schemes it names
// (none: public).
struct Documented {
  std::string op;
  std::set<std::string> schemes;
};

std::vector<Documented> DocumentedOperations() {
  std::ifstream in(std::string(STADTPORTAL_SOURCE_DIR) + "/docs/api/openapi.yaml");
  REQUIRE(in);
  std::vector<Documented> out;
  std::string line, path;
  bool in_paths = false, in_security = false;
  const std::regex path_line(R"(^  (/[^:]*):\s*$)");
  const std::regex method_line(R"(^    (get|post|put|patch|delete):\s*$)");
  const std::regex scheme_line(R"(^        - ([A-Za-z]+):.*$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (!line.empty() && line[0] != ' ') in_paths = false;
    if (!in_paths) continue;
    if (std::regex_match(line, m, path_line)) {
      path = m[1].str();
    } else if (std::regex_match(line, m, method_line)) {
      out.push_back({absl::AsciiStrToUpper(m[1].str()) + " " + path, {}});
      in_security = false;
    } else if (line == "      security:") {
      in_security = true;
    } else if (in_security && std::regex_match(line, m, scheme_line)) {
      out.back().schemes.insert(m[1].str());
    } else if (line.rfind("      ", 0) == 0 && line.size() > 6 && line[6] != ' ') {
      in_security = false;
    }
  }
  return out;
}

std::string Letters(size_t n) {
  static std::mt19937 rng{std::random_device{}()};
  std::string s;
  for (size_t i = 0; i < n; ++i) s += static_cast<char>('a' + rng() % 26);
  return s;
}

// A small, valid PDF.
const std::string kPdf =
    "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\n"
    "endobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

// The JSON of a successful answer; the failure names the calling line.
json Parse(const httplib::Result& r, int line = __builtin_LINE()) {
  INFO("line " << line << ": " << (r ? r->body : "no answer"));
  REQUIRE(r);
  REQUIRE(r->status < 300);
  return json::parse(r->body);
}

// Everything of one owner (a person, or an organisation acted for by its owner) that
// the matrix aims at, and the strings that must never reach anyone else.
struct Owner {
  std::string name;
  json session;  // The owner's own session (acting for the organisation for one).
  std::string party, draft, draft_etag, attachment, fee_submission, payment, delivered, thread, message,
      mailbox_attachment, document;
  std::vector<std::string> markers;
};

struct Caller {
  std::string name;
  httplib::Headers headers;
  bool backoffice = false;             // A back-office client (of another destination).
  bool citizen_at_backoffice = false;  // Only called at /api/v1/backoffice/….
};

// What a caller may get from an operation.
enum class Kind {
  kPublic,           // No session needed: any answer but 5xx, never an owner's data.
  kOwn,              // The caller's own (list mine, create mine): sessions get their normal answer.
  kOwned,            // An owner's resource: 401/403/404 only.
  kAdmin,            // Tenant administrators only: 401/403/404.
  kBackofficeOwn,    // A back-office client's own list: the client gets its own, others 401/403.
  kBackofficeOwned,  // A delivery of the owner's destination: 401/403/404 only.
  kPartner,          // A partner portal's access token only (userinfo): every other caller 401/403.
};

struct Request {
  std::string method, path, body, content_type;
  httplib::Headers headers;
};

struct Entry {
  std::string op;
  Kind kind;
  bool per_owner;  // Run against the person's and the organisation's resources.
  std::function<Request(const Owner&)> build;
  std::set<int> also_refused = {};  // Further statuses that count as a refusal here.
};

Request Get(const std::string& path) { return {"GET", path, "", "", {}}; }
Request Post(const std::string& path, const json& body = json::object()) {
  return {"POST", path, body.dump(), "application/json", {}};
}
Request WithHeader(Request r, const std::string& k, const std::string& v) {
  r.headers.emplace(k, v);
  return r;
}

// The whole cast, set up once for the file's test cases.
class Fixture {
 public:
  Fixture() : c_(stack.Http()) {
    REQUIRE(stack.WaitReady(60s));
    auto& c = c_;
    const std::string tag = Letters(8);
    admin = Admin(stack, c);

    // The department that receives the owners' applications pulls them; another
    // department has a client of its own.
    REQUIRE(Status(c.Put("/api/v1/admin/destinations/stadtkaemmerei", Bearer(admin),
                         json{{"name", "Stadtkämmerei"}, {"mode", "pull"}}.dump(), "application/json")) == 200);
    own_client = Parse(PostJson(c, "/api/v1/admin/backoffice-clients",
                                {{"destination", "stadtkaemmerei"}, {"department", "Stadtkämmerei"}}, Bearer(admin)));
    other_client =
        Parse(PostJson(c, "/api/v1/admin/backoffice-clients",
                       {{"destination", "gesundheitsamt"}, {"department", "Gesundheitsamt"}}, Bearer(admin)));
    own_partner = Parse(PostJson(c, "/api/v1/admin/partner-clients",
                                 {{"name", "Landesportal " + tag},
                                  {"redirect_uris", {"https://partner.example/callback"}},
                                  {"scopes", {"openid"}},
                                  {"token_endpoint_auth_method", "client_secret_basic"}},
                                 Bearer(admin)));

    // The owners: Anna, and her organisation (acted for in a second session of hers).
    person.name = "person";
    anna_mail = "anna." + tag + "@example.de";
    const std::string anna_display = "Anna Owner " + tag;
    person.session = Onboard(stack, c, anna_mail, anna_display);
    anna_id = Parse(c.Get("/api/v1/me", Bearer(person.session)))["account_id"].get<std::string>();
    person.party = anna_id;
    const std::string given = "Quellbrunn" + tag;
    REQUIRE(Status(c.Patch("/api/v1/me/profile", Bearer(person.session), json{{"given_name", given}}.dump(),
                           "application/json")) == 200);
    consent =
        Parse(PostJson(c, "/api/v1/me/consents", {{"purpose", "satisfaction-survey"}, {"text_version", "2026-01"}},
                       Bearer(person.session)))["id"]
            .get<std::string>();
    person.markers = {anna_mail, anna_display, anna_id, given, consent};

    org.name = "organisation";
    org_name = "Matrix Bäckerei " + tag + " GmbH";
    org.party = CreateOrganisation(c, person.session, org_name);
    org.markers = {org.party, org_name};
    const std::string org_path = "/api/v1/organisations/" + org.party;

    // Ben stays a member; Rita acts for the organisation and is removed afterwards; an
    // invitation to Ivy stays open.
    auto join = [&](const std::string& mail, const std::string& display) {
      json login = Onboard(stack, c, mail, display);
      REQUIRE(Status(PostJson(c, org_path + "/invitations", {{"email", mail}, {"role", "member"}},
                              Bearer(person.session))) == 201);
      return std::make_pair(login, Parse(AcceptInvitation(stack, c, login, mail)));
    };
    const std::string ben_mail = "ben." + tag + "@example.de";
    ben_party = join(ben_mail, "Ben Member " + tag).second["person"]["id"].get<std::string>();
    org.markers.push_back(ben_mail);
    const std::string rita_mail = "rita." + tag + "@example.de";
    auto [rita, rita_member] = join(rita_mail, "Rita Removed " + tag);
    const std::string rita_party = rita_member["person"]["id"];
    json rita_acting = Parse(PostJson(c, "/api/v1/me/acting-party", {{"party_id", org.party}}, Bearer(rita)));
    const std::string ivy_mail = "ivy." + tag + "@example.de";
    REQUIRE(Status(PostJson(c, org_path + "/invitations", {{"email", ivy_mail}, {"role", "admin"}},
                            Bearer(person.session))) == 201);
    ivy_token = MailedToken(stack, ivy_mail, "invitations");
    org.markers.push_back(ivy_mail);

    json anna_second = Login(c, anna_mail);
    org.session = Parse(PostJson(c, "/api/v1/me/acting-party", {{"party_id", org.party}}, Bearer(anna_second)));

    // Each owner: a draft with an attachment, an order awaiting its fee with a started
    // payment, and a delivered application the department answered with a notice the
    // owner replied to.
    own_token = ClientToken(own_client);
    for (Owner* o : {&person, &org}) SetUpOwner(*o, tag);

    // Rita loses her membership; her session acting for the organisation is what she keeps.
    REQUIRE(Status(c.Delete((org_path + "/members/" + rita_party).c_str(), Bearer(person.session))) == 204);

    // The others: a person, a member of another organisation acting for it.
    otto_mail = "otto." + tag + "@example.de";
    mona_mail = "mona." + tag + "@example.de";
    Onboard(stack, c, otto_mail, "Otto Other " + tag);
    json mona = Onboard(stack, c, mona_mail, "Mona Member " + tag);
    mona_org = Parse(PostJson(c, "/api/v1/organisations",
                              {{"name", "Andere Firma " + tag},
                               {"legal_form", "company"},
                               {"address",
                                {{"street", "Königstraße"},
                                 {"house_number", "1"},
                                 {"postcode", "90402"},
                                 {"city", "Nürnberg"},
                                 {"country", "DE"}}}},
                              Bearer(mona)))["id"]
                   .get<std::string>();
    removed_member = {"removed member", Bearer(rita_acting)};
  }

  // The other parties, with fresh sessions (the matrix ends the callers' own sessions
  // with its last operations).
  std::vector<Caller> Others() {
    json mona = Login(c_, mona_mail);
    json mona_acting = Parse(PostJson(c_, "/api/v1/me/acting-party", {{"party_id", mona_org}}, Bearer(mona)));
    return {{"anonymous", {}},
            {"another person", Bearer(Login(c_, otto_mail))},
            {"member of another organisation", Bearer(mona_acting)},
            {"back office of another destination", BearerToken(ClientToken(other_client)), true},
            {"citizen session at the back-office API", Bearer(person.session), false, true}};
  }

  std::string ClientToken(const json& client) {
    const std::string basic = "Basic " + absl::Base64Escape(client["client_id"].get<std::string>() + ":" +
                                                            client["client_secret"].get<std::string>());
    auto r = c_.Post("/api/v1/oauth/token", {{"Authorization", basic}}, "grant_type=client_credentials",
                     "application/x-www-form-urlencoded");
    return Parse(r)["access_token"].get<std::string>();
  }

  void SetUpOwner(Owner& o, const std::string& tag) {
    auto& c = c_;
    const std::string name_marker = "Zacharias " + o.name + " " + tag;
    json certificate = {
        {"certificate_type", "birth"},
        {"copies", 2},
        {"event_date", "1990-02-28"},
        {"person_name", name_marker},
        {"purpose", "pension"},
        {"given_name", "Anna"},
        {"family_name", "Muster"},
        {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}},
        {"email", "anna@example.org"}};
    // The draft stays a draft, with its attachment.
    json draft =
        Parse(PostJson(c, "/api/v1/services/civil-registry-certificate/drafts", json::object(), Bearer(o.session)));
    o.draft = draft["id"].get<std::string>();
    auto h = Bearer(o.session);
    h.emplace("If-Match", "\"1\"");
    auto saved =
        c.Patch(("/api/v1/drafts/" + o.draft).c_str(), h, json{{"data", certificate}}.dump(), "application/json");
    REQUIRE(Status(saved) == 200);
    o.draft_etag = saved->get_header_value("ETag");
    httplib::MultipartFormDataItems items = {{"file", kPdf, "Vollmacht-" + tag + ".pdf", "application/pdf"}};
    o.attachment = Parse(c.Post(("/api/v1/drafts/" + o.draft + "/attachments?field=attachments").c_str(),
                                Bearer(o.session), items))["id"]
                       .get<std::string>();

    // The order awaiting its fee, with a started payment.
    const std::string ordered = Apply(c, o.session, "civil-registry-certificate", certificate);
    o.fee_submission = ordered;
    const json submission = Parse(c.Get(("/api/v1/submissions/" + ordered).c_str(), Bearer(o.session)));
    o.payment = StartPayment(c, o.session, ordered, "matrix-pay-" + ordered)["id"].get<std::string>();

    // The delivered application, the department's notice and the owner's reply.
    const std::string dog = "Rex" + tag;
    o.delivered = Apply(
        c, o.session, "dog-tax-registration",
        {{"dog_name", dog},
         {"breed", "Dackel"},
         {"birth_date", "2024-03-01"},
         {"kept_since", "2024-05-01"},
         {"chip_number", "276098106543210"},
         {"given_name", "Anna"},
         {"family_name", "Muster"},
         {"address", {{"street", "Hauptmarkt"}, {"house_number", "18"}, {"postcode", "90403"}, {"city", "Nürnberg"}}}});
    const json delivered = Parse(c.Get(("/api/v1/submissions/" + o.delivered).c_str(), Bearer(o.session)));
    REQUIRE(testing::Eventually(
        [&] {
          auto r = c.Get("/api/v1/backoffice/submissions", BearerToken(own_token));
          return r && r->status == 200 && r->body.find(o.delivered) != std::string::npos;
        },
        20s));
    const std::string base = "/api/v1/backoffice/submissions/" + o.delivered;
    REQUIRE(Status(PostJson(c, base + "/acknowledge", json::object(), BearerToken(own_token))) == 200);
    const std::string notice = "Ihr Bescheid " + o.name + " " + tag;
    REQUIRE(Status(PostJson(
                c, base + "/messages",
                {{"body", notice},
                 {"message_key", "matrix-" + o.delivered},
                 {"notice", true},
                 {"attachments", {{{"filename", "Bescheid.pdf"}, {"content_base64", absl::Base64Escape(kPdf)}}}}},
                BearerToken(own_token))) == 201);
    REQUIRE(testing::Eventually(
        [&] {
          auto r = c.Get("/api/v1/mailbox/threads", Bearer(o.session));
          return r && r->status == 200 && r->body.find(o.delivered) != std::string::npos;
        },
        20s));
    const json threads = Parse(c.Get("/api/v1/mailbox/threads", Bearer(o.session)));
    for (const auto& t : threads["items"]) {
      if (t["submission_id"] == o.delivered) o.thread = t["id"].get<std::string>();
    }
    REQUIRE_FALSE(o.thread.empty());
    const json thread = Parse(c.Get(("/api/v1/mailbox/threads/" + o.thread).c_str(), Bearer(o.session)));
    for (const auto& m : thread["messages"]) {
      if (m["body"] == notice) {
        o.message = m["id"].get<std::string>();
        o.mailbox_attachment = m["attachments"][0]["id"].get<std::string>();
      }
    }
    REQUIRE_FALSE(o.mailbox_attachment.empty());
    const std::string reply = "Danke " + o.name + " " + tag;
    REQUIRE(Status(PostJson(c, "/api/v1/mailbox/threads/" + o.thread + "/messages", {{"body", reply}},
                            Bearer(o.session))) == 201);
    // A document with an expiry, with a label only the owner may see.
    const std::string label = "Marke " + o.name + " " + tag;
    o.document = Parse(PostJson(
        c, "/api/v1/me/documents",
        {{"type", "residential_parking_permit"},
         {"expires_on", absl::FormatTime("%Y-%m-%d", absl::Now() + absl::Hours(24 * 400), absl::UTCTimeZone())},
         {"label", label}},
        Bearer(o.session)))["id"]
                     .get<std::string>();
    const std::vector<std::string> more = {o.document,
                                           label,
                                           o.draft,
                                           o.attachment,
                                           ordered,
                                           submission["reference"].get<std::string>(),
                                           o.payment,
                                           o.delivered,
                                           delivered["reference"].get<std::string>(),
                                           o.thread,
                                           o.message,
                                           o.mailbox_attachment,
                                           name_marker,
                                           dog,
                                           notice,
                                           reply,
                                           "Vollmacht-" + tag};
    o.markers.insert(o.markers.end(), more.begin(), more.end());
  }

  // Every resource of the owners, read by the owners (and the department and the
  // administrator where only they see it). Two reads with nothing in between are equal.
  std::map<std::string, std::string> Snapshot() {
    own_token = ClientToken(own_client);  // Short-lived.
    std::map<std::string, std::string> out;
    auto read = [&](const std::string& key, const httplib::Headers& h, const std::string& path) {
      auto r = c_.Get(path.c_str(), h);
      out[key + " " + path] = r ? std::to_string(r->status) + " " + r->body : "no answer";
    };
    for (const Owner* o : {&person, &org}) {
      const auto h = Bearer(o->session);
      for (const std::string& path :
           {std::string("/api/v1/me"), std::string("/api/v1/me/acting-party"), std::string("/api/v1/drafts"),
            "/api/v1/drafts/" + o->draft, "/api/v1/attachments/" + o->attachment, std::string("/api/v1/submissions"),
            "/api/v1/submissions/" + o->fee_submission, "/api/v1/submissions/" + o->delivered,
            "/api/v1/payments/" + o->payment, std::string("/api/v1/mailbox/threads"),
            std::string("/api/v1/mailbox/threads?archived=true"), "/api/v1/mailbox/threads/" + o->thread,
            "/api/v1/mailbox/attachments/" + o->mailbox_attachment, std::string("/api/v1/me/documents"),
            "/api/v1/me/documents/" + o->document}) {
        read(o->name, h, path);
      }
      for (const std::string& path : {"/api/v1/backoffice/submissions/" + o->delivered,
                                      "/api/v1/backoffice/submissions/" + o->delivered + "/messages"}) {
        read("department", BearerToken(own_token), path);
      }
      read("administrator", Bearer(admin), "/api/v1/admin/deliveries/" + o->delivered + "/attempts");
    }
    const auto anna = Bearer(person.session);
    for (const std::string& path :
         {std::string("/api/v1/me/profile"), std::string("/api/v1/me/preferences"), std::string("/api/v1/me/consents"),
          std::string("/api/v1/organisations"), "/api/v1/organisations/" + org.party,
          "/api/v1/organisations/" + org.party + "/members"}) {
      read("person", anna, path);
    }
    read("department", BearerToken(own_token), "/api/v1/backoffice/submissions");
    read("department", BearerToken(own_token), "/api/v1/backoffice/replies");
    read("administrator", Bearer(admin), "/api/v1/admin/accounts?q=" + anna_mail + "&reason=matrix");
    read("administrator", Bearer(admin), "/api/v1/admin/dead-letters");
    // The invitation still open: its token still names it (a wrong token is 422 either way).
    return out;
  }

  Stack stack;
  json admin, own_client, other_client, own_partner;
  std::string own_token, anna_mail, anna_id, org_name, consent, ben_party, ivy_token;
  Owner person, org;
  std::string otto_mail, mona_mail, mona_org;
  Caller removed_member;

 private:
  httplib::Client c_;
};

Fixture& Shared() {
  static Fixture f;
  return f;
}

// The matrix: one entry per documented operation. Operations that end the caller's own
// session come last. `invitation` is the token the invitation operations send.
std::vector<Entry> Matrix(Fixture& f, const std::string& invitation) {
  const std::string today = absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone());
  const std::string multipart_boundary = "matrix-boundary-7f3a";
  const std::string multipart =
      "--" + multipart_boundary +
      "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.pdf\"\r\nContent-Type: application/pdf\r\n\r\n" +
      kPdf + "\r\n--" + multipart_boundary + "--\r\n";
  const json address = {
      {"street", "Hauptmarkt"}, {"house_number", "1"}, {"postcode", "90403"}, {"city", "Nürnberg"}, {"country", "DE"}};
  using K = Kind;
  return {
      // Operations and catalogue: public.
      {"GET /healthz", K::kPublic, false, [](const Owner&) { return Get("/healthz"); }},
      {"GET /readyz", K::kPublic, false, [](const Owner&) { return Get("/readyz"); }},
      {"GET /api/v1/services", K::kPublic, false, [](const Owner&) { return Get("/api/v1/services?q=hund"); }},
      {"GET /api/v1/services/{id}", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/services/dog-tax-registration"); }},
      // Registration and log-in: public; aimed at the owner's address, they change nothing of hers.
      {"POST /api/v1/auth/register", K::kPublic, false,
       [&f](const Owner&) {
         return Post("/api/v1/auth/register", {{"email", f.anna_mail},
                                               {"password", "ein ganz anderes Passwort"},
                                               {"display_name", "Mallory"},
                                               {"language", "en"}});
       }},
      {"POST /api/v1/auth/verify-email", K::kPublic, false,
       [](const Owner&) {
         return Post("/api/v1/auth/verify-email", {{"token", "forged-verification-token"}});
       }},
      {"POST /api/v1/auth/login", K::kPublic, false,
       [](const Owner&) {
         return Post("/api/v1/auth/login", {{"email", "nobody." + Letters(6) + "@example.de"}, {"password", "falsch"}});
       }},
      {"POST /api/v1/auth/password-reset", K::kPublic, false,
       [&f](const Owner&) {
         return Post("/api/v1/auth/password-reset", {{"email", f.anna_mail}});
       }},
      {"POST /api/v1/auth/password-reset/confirm", K::kPublic, false,
       [](const Owner&) {
         return Post("/api/v1/auth/password-reset/confirm",
                     {{"token", "forged-reset-token"}, {"new_password", "ein neues langes Passwort"}});
       }},
      {"POST /api/v1/oauth/token", K::kPublic, false,
       [](const Owner&) {
         return Request{
             "POST", "/api/v1/oauth/token", "grant_type=client_credentials", "application/x-www-form-urlencoded", {}};
       }},
      // Log-in with upstream providers: public; a forged answer logs nobody in.
      {"GET /api/v1/auth/providers", K::kPublic, false, [](const Owner&) { return Get("/api/v1/auth/providers"); }},
      {"GET /api/v1/auth/providers/{provider}/login", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/auth/providers/bundid/login?return_to=/"); }},
      {"POST /api/v1/auth/providers/{provider}/login", K::kPublic, false,
       [](const Owner&) {
         return Post("/api/v1/auth/providers/bundid/login", {{"minimum_level", "substantial"}});
       }},
      {"GET /api/v1/auth/saml/{provider}/metadata", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/auth/saml/bundid/metadata"); }},
      {"POST /api/v1/auth/saml/{provider}/acs", K::kPublic, false,
       [](const Owner&) {
         return Request{"POST",
                        "/api/v1/auth/saml/bundid/acs",
                        "SAMLResponse=PHNhbWxwOlJlc3BvbnNlLz4%3D&RelayState=x",
                        "application/x-www-form-urlencoded",
                        {}};
       }},
      {"GET /api/v1/auth/saml/{provider}/slo", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/auth/saml/bundid/slo"); }},
      {"GET /api/v1/auth/oidc/{provider}/callback", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/auth/oidc/generic-oidc/callback?code=forged&state=forged"); }},
      // The OpenID Provider for partner portals: public endpoints; forged forms, codes and
      // tokens get nobody anything, and the page shows none of the owners' data.
      {"GET /.well-known/openid-configuration", K::kPublic, false,
       [](const Owner&) { return Get("/.well-known/openid-configuration"); }},
      {"GET /api/v1/oidc/jwks", K::kPublic, false, [](const Owner&) { return Get("/api/v1/oidc/jwks"); }},
      {"GET /api/v1/oidc/authorize", K::kPublic, false,
       [&f](const Owner&) {
         return Get("/api/v1/oidc/authorize?response_type=code&scope=openid&client_id=" +
                    f.own_partner["client_id"].get<std::string>() +
                    "&redirect_uri=https%3A%2F%2Fpartner.example%2Fcallback&state=s&code_challenge_method=S256"
                    "&code_challenge=" +
                    std::string(43, 'A'));
       }},
      {"POST /api/v1/oidc/authorize/login", K::kPublic, false,
       [&f](const Owner&) {
         return Request{"POST",
                        "/api/v1/oidc/authorize/login",
                        "csrf_token=forged&email=" + httplib::detail::encode_query_param(f.anna_mail) + "&password=x",
                        "application/x-www-form-urlencoded",
                        {{"Cookie", "__Host-stadtportal_authorize=forged-pending-id"}}};
       }},
      {"POST /api/v1/oidc/authorize/consent", K::kPublic, false,
       [](const Owner&) {
         return Request{"POST",
                        "/api/v1/oidc/authorize/consent",
                        "csrf_token=forged&decision=allow",
                        "application/x-www-form-urlencoded",
                        {{"Cookie", "__Host-stadtportal_authorize=forged-pending-id"}}};
       }},
      {"GET /api/v1/oidc/authorize/continue", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/oidc/authorize/continue?csrf_token=forged"); }},
      {"POST /api/v1/oidc/token", K::kPublic, false,
       [](const Owner&) {
         return Request{"POST",
                        "/api/v1/oidc/token",
                        "grant_type=authorization_code&code=forged-code&code_verifier=" + std::string(43, 'a'),
                        "application/x-www-form-urlencoded",
                        {}};
       }},
      {"POST /api/v1/oidc/introspect", K::kPublic, false,
       [](const Owner&) {
         return Request{"POST", "/api/v1/oidc/introspect", "token=forged", "application/x-www-form-urlencoded", {}};
       }},
      {"GET /api/v1/oidc/userinfo", K::kPartner, false, [](const Owner&) { return Get("/api/v1/oidc/userinfo"); }},
      {"POST /api/v1/oidc/userinfo", K::kPartner, false, [](const Owner&) { return Post("/api/v1/oidc/userinfo"); }},
      {"GET /api/v1/oidc/logout", K::kPublic, false,
       [](const Owner&) { return Get("/api/v1/oidc/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F"); }},
      // The payer's return and the providers' webhooks: public, show and change nothing of the owner's.
      {"GET /api/v1/payments/{id}/return", K::kPublic, true,
       [](const Owner& o) { return Get("/api/v1/payments/" + o.payment + "/return"); }},
      {"POST /api/v1/payment-webhooks/{provider}", K::kPublic, false,
       [](const Owner& o) {
         return WithHeader(
             Post("/api/v1/payment-webhooks/testpay",
                  {{"id", "evt_" + Letters(10)}, {"type", "checkout.succeeded"}, {"checkout_id", "chk_" + o.payment}}),
             "Testpay-Signature", "t=1,v1=00");
       }},

      // The caller's own account.
      {"GET /api/v1/me", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me"); }},
      // The GDPR export: each caller's own (an organisation's member and a partner portal: 403).
      {"GET /api/v1/me/export", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/export"); }},
      // The erasure: each caller's own account only; with the owner's address as
      // confirmation it erases nobody (400), hers least of all.
      {"DELETE /api/v1/me", K::kOwn, false,
       [&f](const Owner&) {
         return Request{"DELETE", "/api/v1/me", json{{"confirm", f.anna_mail}}.dump(), "application/json", {}};
       }},
      // A second factor: each caller's own (none of them holds an administrative role).
      {"POST /api/v1/auth/totp/enrol", K::kOwn, false,
       [](const Owner&) {
         return Post("/api/v1/auth/totp/enrol", {{"enrolment_code", "guessed-code-1234567"}});
       }},
      {"POST /api/v1/auth/totp/confirm", K::kOwn, false,
       [](const Owner&) {
         return Post("/api/v1/auth/totp/confirm", {{"code", "123456"}});
       }},
      {"POST /api/v1/auth/totp/verify", K::kOwn, false,
       [](const Owner&) {
         return Post("/api/v1/auth/totp/verify", {{"code", "123456"}});
       }},
      {"GET /api/v1/me/providers", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/providers"); }},
      {"GET /api/v1/me/connected-portals", K::kOwn, false,
       [](const Owner&) { return Get("/api/v1/me/connected-portals"); }},
      {"DELETE /api/v1/me/connected-portals/{client_id}", K::kOwn, false,
       [&f](const Owner&) {
         return Request{
             "DELETE", "/api/v1/me/connected-portals/" + f.own_partner["client_id"].get<std::string>(), "", "", {}};
       }},
      {"DELETE /api/v1/me/providers/{provider}", K::kOwn, false,
       [](const Owner&) {
         return Request{"DELETE", "/api/v1/me/providers/bundid", "", "", {}};
       }},
      {"GET /api/v1/me/profile", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/profile"); }},
      {"PATCH /api/v1/me/profile", K::kOwn, false,
       [](const Owner&) {
         return Request{"PATCH", "/api/v1/me/profile", R"({"given_name":"Mallory"})", "application/json", {}};
       }},
      {"GET /api/v1/me/preferences", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/preferences"); }},
      {"PUT /api/v1/me/preferences", K::kOwn, false,
       [](const Owner&) {
         return Request{
             "PUT",
             "/api/v1/me/preferences",
             json{{"language", "de"}, {"email", {{"messages", false}, {"status_changes", false}, {"reminders", false}}}}
                 .dump(),
             "application/json",
             {}};
       }},
      {"GET /api/v1/me/consents", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/consents"); }},
      // Who read the caller's data: each caller's own log (a partner token: no scope).
      {"GET /api/v1/me/access-log", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/access-log"); }},
      {"POST /api/v1/me/consents", K::kOwn, false,
       [](const Owner&) {
         return Post("/api/v1/me/consents", {{"purpose", "satisfaction-survey"}, {"text_version", "2026-01"}});
       }},
      {"POST /api/v1/me/consents/{id}/withdraw", K::kOwned, false,
       [&f](const Owner&) { return Post("/api/v1/me/consents/" + f.consent + "/withdraw"); }},
      // The citizen file: the acting party's own; no partner scope.
      {"GET /api/v1/me/file", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/file"); }},
      // Documents with an expiry: the acting party's own.
      {"GET /api/v1/document-types", K::kPublic, false, [](const Owner&) { return Get("/api/v1/document-types"); }},
      {"GET /api/v1/me/documents", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/documents"); }},
      {"POST /api/v1/me/documents", K::kOwn, false,
       [today](const Owner&) {
         return Post("/api/v1/me/documents", {{"type", "dog_tax_tag"}, {"expires_on", today}});
       }},
      {"GET /api/v1/me/documents/{id}", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/me/documents/" + o.document); }},
      {"DELETE /api/v1/me/documents/{id}", K::kOwned, true,
       [](const Owner& o) {
         return Request{"DELETE", "/api/v1/me/documents/" + o.document, "", "", {}};
       }},
      {"POST /api/v1/me/documents/{id}/renewal", K::kOwned, true,
       [](const Owner& o) { return Post("/api/v1/me/documents/" + o.document + "/renewal"); }},
      {"GET /api/v1/me/acting-party", K::kOwn, false, [](const Owner&) { return Get("/api/v1/me/acting-party"); }},
      {"POST /api/v1/me/acting-party", K::kOwned, false,
       [&f](const Owner&) {
         return Post("/api/v1/me/acting-party", {{"party_id", f.org.party}});
       }},

      // Organisations.
      {"GET /api/v1/organisations", K::kOwn, false, [](const Owner&) { return Get("/api/v1/organisations"); }},
      {"POST /api/v1/organisations", K::kOwn, false,
       [address](const Owner&) {
         return Post("/api/v1/organisations",
                     {{"name", "Eigene Firma " + Letters(6)}, {"legal_form", "company"}, {"address", address}});
       }},
      {"GET /api/v1/organisations/{id}", K::kOwned, false,
       [&f](const Owner&) { return Get("/api/v1/organisations/" + f.org.party); }},
      {"GET /api/v1/organisations/{id}/members", K::kOwned, false,
       [&f](const Owner&) { return Get("/api/v1/organisations/" + f.org.party + "/members"); }},
      {"PATCH /api/v1/organisations/{id}/members/{party_id}", K::kOwned, false,
       [&f](const Owner&) {
         return Request{"PATCH",
                        "/api/v1/organisations/" + f.org.party + "/members/" + f.ben_party,
                        R"({"role":"owner"})",
                        "application/json",
                        {}};
       }},
      {"DELETE /api/v1/organisations/{id}/members/{party_id}", K::kOwned, false,
       [&f](const Owner&) {
         return Request{"DELETE", "/api/v1/organisations/" + f.org.party + "/members/" + f.ben_party, "", "", {}};
       }},
      {"POST /api/v1/organisations/{id}/invitations", K::kOwned, false,
       [&f](const Owner&) {
         return Post("/api/v1/organisations/" + f.org.party + "/invitations",
                     {{"email", "mallory." + Letters(6) + "@example.de"}, {"role", "owner"}});
       }},

      // Applications.
      {"POST /api/v1/services/{id}/drafts", K::kOwn, false,
       [](const Owner&) { return Post("/api/v1/services/dog-tax-registration/drafts"); }},
      {"GET /api/v1/drafts", K::kOwn, false, [](const Owner&) { return Get("/api/v1/drafts"); }},
      {"GET /api/v1/drafts/{id}", K::kOwned, true, [](const Owner& o) { return Get("/api/v1/drafts/" + o.draft); }},
      {"PATCH /api/v1/drafts/{id}", K::kOwned, true,
       [](const Owner& o) {
         return WithHeader(
             Request{
                 "PATCH", "/api/v1/drafts/" + o.draft, R"({"data":{"person_name":"Mallory"}})", "application/json", {}},
             "If-Match", o.draft_etag);
       }},
      {"DELETE /api/v1/drafts/{id}", K::kOwned, true,
       [](const Owner& o) {
         return Request{"DELETE", "/api/v1/drafts/" + o.draft, "", "", {}};
       }},
      {"POST /api/v1/drafts/{id}/validate", K::kOwned, true,
       [](const Owner& o) { return Post("/api/v1/drafts/" + o.draft + "/validate"); }},
      {"POST /api/v1/drafts/{id}/attachments", K::kOwned, true,
       [multipart, multipart_boundary](const Owner& o) {
         return Request{"POST",
                        "/api/v1/drafts/" + o.draft + "/attachments?field=attachments",
                        multipart,
                        "multipart/form-data; boundary=" + multipart_boundary,
                        {}};
       }},
      {"GET /api/v1/attachments/{id}", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/attachments/" + o.attachment); }},
      {"DELETE /api/v1/attachments/{id}", K::kOwned, true,
       [](const Owner& o) {
         return Request{"DELETE", "/api/v1/attachments/" + o.attachment, "", "", {}};
       }},
      {"POST /api/v1/drafts/{id}/submit", K::kOwned, true,
       [](const Owner& o) {
         return WithHeader(Post("/api/v1/drafts/" + o.draft + "/submit"), "Idempotency-Key",
                           "matrix-takeover-" + Letters(8));
       }},
      {"GET /api/v1/submissions", K::kOwn, false, [](const Owner&) { return Get("/api/v1/submissions"); }},
      {"GET /api/v1/submissions/{id}", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/submissions/" + o.fee_submission); }},
      {"POST /api/v1/submissions/{id}/withdraw", K::kOwned, true,
       [](const Owner& o) { return Post("/api/v1/submissions/" + o.delivered + "/withdraw"); }},
      {"GET /api/v1/submissions/{id}/receipt", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/submissions/" + o.fee_submission + "/receipt"); }},
      {"POST /api/v1/submissions/{id}/feedback", K::kOwned, true,
       [](const Owner& o) {
         return Post("/api/v1/submissions/" + o.delivered + "/feedback", {{"rating", 1}});
       }},
      {"POST /api/v1/admin/services/{id}/versions", K::kAdmin, false,
       [](const Owner&) {
         return Post("/api/v1/admin/services/dog-tax-registration/versions", {{"definition", json::object()}});
       }},

      // Payments.
      {"POST /api/v1/submissions/{id}/payment", K::kOwned, true,
       [](const Owner& o) {
         return WithHeader(Post("/api/v1/submissions/" + o.fee_submission + "/payment"), "Idempotency-Key",
                           "matrix-pay-" + Letters(8));
       }},
      {"GET /api/v1/payments/{id}", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/payments/" + o.payment); }},
      {"POST /api/v1/payments/{id}/refunds", K::kAdmin, true,
       [](const Owner& o) {
         return Post("/api/v1/payments/" + o.payment + "/refunds",
                     {{"amount_minor", 100}, {"refund_amount_available", 0}});
       }},
      {"POST /api/v1/admin/payments/reconcile", K::kAdmin, false,
       [](const Owner&) {
         return Post("/api/v1/admin/payments/reconcile", {{"older_than_seconds", 0}});
       }},
      {"GET /api/v1/admin/payments/report", K::kAdmin, false,
       [today](const Owner&) { return Get("/api/v1/admin/payments/report?day=" + today); }},
      {"GET /api/v1/admin/kpis", K::kAdmin, false,
       [today](const Owner&) {
         return Get("/api/v1/admin/kpis?service=civil-registry-certificate&granularity=day&from=" + today +
                    "&to=" + today);
       }},
      {"GET /api/v1/admin/kpis/funnel", K::kAdmin, false,
       [today](const Owner&) {
         return Get("/api/v1/admin/kpis/funnel?service=civil-registry-certificate&from=" + today + "&to=" + today);
       }},

      // The mailbox.
      {"GET /api/v1/mailbox/threads", K::kOwn, false, [](const Owner&) { return Get("/api/v1/mailbox/threads"); }},
      {"GET /api/v1/mailbox/threads/{id}", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/mailbox/threads/" + o.thread); }},
      {"POST /api/v1/mailbox/threads/{id}/messages", K::kOwned, true,
       [](const Owner& o) {
         return Post("/api/v1/mailbox/threads/" + o.thread + "/messages", {{"body", "Von Mallory"}});
       }},
      {"POST /api/v1/mailbox/messages/{id}/read", K::kOwned, true,
       [](const Owner& o) { return Post("/api/v1/mailbox/messages/" + o.message + "/read"); }},
      {"GET /api/v1/mailbox/attachments/{id}", K::kOwned, true,
       [](const Owner& o) { return Get("/api/v1/mailbox/attachments/" + o.mailbox_attachment); }},
      {"POST /api/v1/mailbox/threads/{id}/archive", K::kOwned, true,
       [](const Owner& o) { return Post("/api/v1/mailbox/threads/" + o.thread + "/archive"); }},
      {"POST /api/v1/mailbox/threads/{id}/unarchive", K::kOwned, true,
       [](const Owner& o) { return Post("/api/v1/mailbox/threads/" + o.thread + "/unarchive"); }},

      // The back-office API.
      {"GET /api/v1/backoffice/submissions", K::kBackofficeOwn, false,
       [](const Owner&) { return Get("/api/v1/backoffice/submissions"); }},
      {"GET /api/v1/backoffice/submissions/{id}", K::kBackofficeOwned, true,
       [](const Owner& o) { return Get("/api/v1/backoffice/submissions/" + o.delivered); }},
      {"POST /api/v1/backoffice/submissions/{id}/acknowledge", K::kBackofficeOwned, true,
       [](const Owner& o) { return Post("/api/v1/backoffice/submissions/" + o.delivered + "/acknowledge"); }},
      {"POST /api/v1/backoffice/submissions/{id}/status", K::kBackofficeOwned, true,
       [](const Owner& o) {
         return Post("/api/v1/backoffice/submissions/" + o.delivered + "/status",
                     {{"status", "rejected"}, {"message", "Abgelehnt von Mallory"}});
       }},
      {"POST /api/v1/backoffice/submissions/{id}/messages", K::kBackofficeOwned, true,
       [](const Owner& o) {
         return Post("/api/v1/backoffice/submissions/" + o.delivered + "/messages",
                     {{"body", "Von Mallory"}, {"message_key", "mallory-" + Letters(8)}, {"notice", true}});
       }},
      {"GET /api/v1/backoffice/submissions/{id}/messages", K::kBackofficeOwned, true,
       [](const Owner& o) { return Get("/api/v1/backoffice/submissions/" + o.delivered + "/messages"); }},
      {"GET /api/v1/backoffice/replies", K::kBackofficeOwn, false,
       [](const Owner&) { return Get("/api/v1/backoffice/replies"); }},

      // Administration.
      {"GET /api/v1/admin/accounts", K::kAdmin, false,
       [&f](const Owner&) { return Get("/api/v1/admin/accounts?q=" + f.anna_mail + "&reason=curious"); }},
      {"POST /api/v1/admin/accounts/{id}/lock", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/accounts/" + f.anna_id + "/lock", {{"reason", "Mallory"}});
       }},
      {"POST /api/v1/admin/accounts/{id}/unlock", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/accounts/" + f.anna_id + "/unlock", {{"reason", "Mallory"}});
       }},
      {"POST /api/v1/admin/backoffice-clients", K::kAdmin, false,
       [](const Owner&) {
         return Post("/api/v1/admin/backoffice-clients",
                     {{"destination", "stadtkaemmerei"}, {"department", "Mallory"}});
       }},
      {"POST /api/v1/admin/backoffice-clients/{id}/disable", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/backoffice-clients/" + f.own_client["client_id"].get<std::string>() + "/disable");
       }},
      {"POST /api/v1/admin/backoffice-clients/{id}/enable", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/backoffice-clients/" + f.own_client["client_id"].get<std::string>() + "/enable");
       }},
      {"POST /api/v1/admin/backoffice-clients/{id}/rotate-secret", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/backoffice-clients/" + f.own_client["client_id"].get<std::string>() +
                     "/rotate-secret");
       }},
      {"GET /api/v1/admin/audit-log", K::kAdmin, false, [](const Owner&) { return Get("/api/v1/admin/audit-log"); }},
      {"POST /api/v1/admin/partner-clients", K::kAdmin, false,
       [](const Owner&) {
         return Post("/api/v1/admin/partner-clients", {{"name", "Mallory"},
                                                       {"redirect_uris", {"https://mallory.example/cb"}},
                                                       {"scopes", {"openid", "profile"}},
                                                       {"token_endpoint_auth_method", "client_secret_basic"}});
       }},
      {"GET /api/v1/admin/partner-clients", K::kAdmin, false,
       [](const Owner&) { return Get("/api/v1/admin/partner-clients"); }},
      {"GET /api/v1/admin/partner-clients/{id}", K::kAdmin, false,
       [&f](const Owner&) {
         return Get("/api/v1/admin/partner-clients/" + f.own_partner["client_id"].get<std::string>());
       }},
      {"POST /api/v1/admin/partner-clients/{id}/disable", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/partner-clients/" + f.own_partner["client_id"].get<std::string>() + "/disable");
       }},
      {"POST /api/v1/admin/partner-clients/{id}/enable", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/partner-clients/" + f.own_partner["client_id"].get<std::string>() + "/enable");
       }},
      {"POST /api/v1/admin/partner-clients/{id}/rotate-credentials", K::kAdmin, false,
       [&f](const Owner&) {
         return Post("/api/v1/admin/partner-clients/" + f.own_partner["client_id"].get<std::string>() +
                     "/rotate-credentials");
       }},
      {"PUT /api/v1/admin/destinations/{id}", K::kAdmin, false,
       [](const Owner&) {
         return Request{"PUT",
                        "/api/v1/admin/destinations/stadtkaemmerei",
                        json{{"name", "Mallory"},
                             {"mode", "push"},
                             {"endpoint_url", "https://mallory.example/inbox"},
                             {"secret", std::string(40, 'm')}}
                            .dump(),
                        "application/json",
                        {}};
       }},
      {"GET /api/v1/admin/dead-letters", K::kAdmin, false,
       [](const Owner&) { return Get("/api/v1/admin/dead-letters"); }},
      {"GET /api/v1/admin/deliveries/{id}/attempts", K::kAdmin, true,
       [](const Owner& o) { return Get("/api/v1/admin/deliveries/" + o.delivered + "/attempts"); }},
      {"POST /api/v1/admin/dead-letters/replay", K::kAdmin, true,
       [](const Owner& o) {
         return Post("/api/v1/admin/dead-letters/replay", {{"submission_id", o.delivered}});
       }},

      // An invitation to the organisation: refused (422 for a token that names no open invitation).
      {"POST /api/v1/invitations/accept",
       K::kOwned,
       false,
       [invitation](const Owner&) {
         return Post("/api/v1/invitations/accept", {{"token", invitation}});
       },
       {422}},
      {"POST /api/v1/invitations/decline",
       K::kOwned,
       false,
       [invitation](const Owner&) {
         return Post("/api/v1/invitations/decline", {{"token", invitation}});
       },
       {422}},

      // Last: these end the caller's own session (or try to change its password).
      {"POST /api/v1/auth/password-change", K::kOwn, false,
       [](const Owner&) {
         return Post("/api/v1/auth/password-change",
                     {{"current_password", "nicht das Passwort"}, {"new_password", "ein neues langes Passwort"}});
       }},
      {"POST /api/v1/auth/logout-all", K::kOwn, false, [](const Owner&) { return Post("/api/v1/auth/logout-all"); }},
      {"POST /api/v1/auth/logout", K::kOwn, false, [](const Owner&) { return Post("/api/v1/auth/logout"); }},
  };
}

bool Backoffice(Kind k) { return k == Kind::kBackofficeOwn || k == Kind::kBackofficeOwned; }

// Whether the caller must be refused (401/403/404) rather than get its normal answer.
bool MustRefuse(Kind k, const Caller& who) {
  switch (k) {
    case Kind::kPublic: return false;
    case Kind::kOwn: return who.backoffice || who.headers.empty();
    case Kind::kBackofficeOwn: return !who.backoffice;
    default: return true;
  }
}

// Every documented operation has exactly one entry (a new route cannot be missed), and
// the entry's kind matches the security the spec names for it.
void CheckCoverage(const std::vector<Entry>& entries) {
  std::set<std::string> covered;
  for (const auto& e : entries) {
    INFO(e.op);
    CHECK(covered.insert(e.op).second);
  }
  std::set<std::string> documented;
  for (const auto& d : DocumentedOperations()) {
    INFO("documented operation without a matrix entry, or with the wrong kind: " << d.op);
    documented.insert(d.op);
    auto e = std::find_if(entries.begin(), entries.end(), [&](const Entry& x) { return x.op == d.op; });
    REQUIRE(e != entries.end());
    if (e->kind == Kind::kPublic) CHECK(d.schemes.empty());
    if (Backoffice(e->kind)) CHECK(d.schemes == std::set<std::string>{"backoffice"});
    if (e->kind == Kind::kPartner) CHECK(d.schemes == std::set<std::string>{"partner"});
    if (e->kind != Kind::kPublic && e->kind != Kind::kPartner && !Backoffice(e->kind)) {
      CHECK(d.schemes.count("bearer") == 1);
    }
  }
  CHECK(documented.size() > 70);
  for (const auto& op : covered) {
    INFO("matrix entry for an operation the spec does not list: " << op);
    CHECK(documented.count(op) == 1);
  }
}

// Runs the entries for the callers; returns the number of (operation × caller) cases and
// appends every finding to `findings`.
int RunMatrix(Fixture& f, const std::vector<Entry>& entries, const std::vector<Caller>& callers,
              std::vector<std::string>& findings) {
  std::vector<std::string> markers;
  for (const Owner* o : {&f.person, &f.org}) markers.insert(markers.end(), o->markers.begin(), o->markers.end());
  auto c = f.stack.Http();
  int cases = 0;
  auto before = f.Snapshot();
  REQUIRE(f.Snapshot() == before);  // Reading is free of effects.
  for (const auto& who : callers) {
    for (const auto& e : entries) {
      if (who.citizen_at_backoffice && !Backoffice(e.kind)) continue;
      std::vector<const Owner*> targets = {&f.person};
      if (e.per_owner) targets.push_back(&f.org);
      for (const Owner* o : targets) {
        ++cases;
        Request q = e.build(*o);
        httplib::Request req;
        req.method = q.method;
        req.path = q.path;
        req.body = q.body;
        req.headers = q.headers;
        for (const auto& [k, v] : who.headers) req.headers.emplace(k, v);
        if (!q.content_type.empty()) req.headers.emplace("Content-Type", q.content_type);
        auto r = c.send(req);
        const std::string where =
            absl::StrCat(e.op, e.per_owner ? " (the " + o->name + "'s)" : std::string(), " as ", who.name, ": ");
        const int status = Status(r);
        if (status == 0 || status >= 500) {
          findings.push_back(where + "answered " + std::to_string(status));
          continue;
        }
        if (MustRefuse(e.kind, who) && status != 401 && status != 403 && status != 404 &&
            !e.also_refused.count(status)) {
          findings.push_back(where + "not refused: " + std::to_string(status) + " " + r->body.substr(0, 300));
        }
        for (const auto& m : markers) {
          if (q.path.find(m) != std::string::npos || q.body.find(m) != std::string::npos) continue;
          if (r->body.find(m) != std::string::npos) {
            findings.push_back(where + "the answer carries the owners' \"" + m + "\": " + r->body.substr(0, 300));
          }
        }
      }
    }
    // Nothing of the owners changed (each caller is judged by what changed during its calls).
    const auto after = f.Snapshot();
    for (const auto& [key, value] : before) {
      if (after.at(key) != value) {
        findings.push_back("after the calls of " + who.name + ", " + key + " changed:\n  before: " +
                           value.substr(0, 400) + "\n  after:  " + after.at(key).substr(0, 400));
      }
    }
    before = after;
  }
  return cases;
}

}  // namespace

TEST_CASE("authorization matrix: every operation × every other party: refused, no data, no change", "[e2e]") {
  Fixture& f = Shared();
  const auto entries = Matrix(f, "invitation-token-" + Letters(20));
  CheckCoverage(entries);
  std::vector<std::string> findings;
  const int cases = RunMatrix(f, entries, f.Others(), findings);
  std::cout << "authorization matrix: " << cases << " (operation × caller) cases, " << findings.size()
            << " cross-party results" << std::endl;
  testing::Report(absl::StrCat("authorization matrix: ", cases, " (operation x caller) cases, ", findings.size(),
                               " cross-party results"));
  INFO(absl::StrJoin(findings, "\n"));
  CHECK(cases > 400);
  CHECK(findings.empty());
}

// Whoever holds an invitation link but is not the account it was sent to gets nothing.
TEST_CASE("authorization matrix: an open invitation's link used by other parties", "[e2e]") {
  Fixture& f = Shared();
  std::vector<Entry> entries;
  for (auto& e : Matrix(f, f.ivy_token)) {
    if (e.op.find("/invitations/") != std::string::npos) entries.push_back(std::move(e));
  }
  REQUIRE(entries.size() == 2);
  std::vector<std::string> findings;
  const int cases = RunMatrix(f, entries, f.Others(), findings);
  std::cout << "authorization matrix, invitation link: " << cases << " cases, " << findings.size()
            << " cross-party results" << std::endl;
  testing::Report(absl::StrCat("authorization matrix, invitation link: ", cases, " (operation x caller) cases, ",
                               findings.size(), " cross-party results"));
  INFO(absl::StrJoin(findings, "\n"));
  CHECK(findings.empty());
}

// A member removed from the organisation, calling with the session that acted for it.
TEST_CASE("authorization matrix: a removed member's session acting for the organisation", "[e2e]") {
  Fixture& f = Shared();
  std::vector<std::string> findings;
  const int cases = RunMatrix(f, Matrix(f, "invitation-token-" + Letters(20)), {f.removed_member}, findings);
  std::cout << "authorization matrix, removed member: " << cases << " cases, " << findings.size()
            << " cross-party results" << std::endl;
  testing::Report(absl::StrCat("authorization matrix, removed member: ", cases, " (operation x caller) cases, ",
                               findings.size(), " cross-party results"));
  INFO(absl::StrJoin(findings, "\n"));
  CHECK(findings.empty());
}

}  // namespace stadtportal::e2e

#include "services/accounts/store.h"

#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/api/api.h"
#include "libs/db/row.h"
#include "libs/events/events.h"
#include "libs/log/log.h"
#include "libs/privacy/privacy.h"
#include "libs/status/status.h"

namespace stadtportal::accounts {
namespace {

// The consent that reminders before a document expires need.
constexpr char kRemindersPurpose[] = "reminders";

using db::Micros;
using google::protobuf::util::TimeUtil;

constexpr char kPartyColumns[] =
    "p.id::text AS id, p.tenant, p.kind, p.display_name, "
    "coalesce(p.identity_account_id::text, '') AS identity_account_id, "
    "(extract(epoch FROM p.created_at) * 1000000)::bigint AS created_at";
// The party's columns, then the organisation's details and the member's role.
constexpr char kOrganisationColumns[] =
    "p.id::text AS id, p.tenant, p.kind, p.display_name, '' AS identity_account_id, "
    "(extract(epoch FROM p.created_at) * 1000000)::bigint AS created_at, "
    "o.legal_form, o.register_number, o.street, o.house_number, o.postcode, o.city, o.country, m.role";
constexpr char kConsentColumns[] =
    "id::text AS id, purpose, text_version, (extract(epoch FROM given_at) * 1000000)::bigint AS given_at, "
    "coalesce((extract(epoch FROM withdrawn_at) * 1000000)::bigint, 0) AS withdrawn_at";

v1::Party ToParty(const pqxx::row& r) {
  v1::Party p;
  p.set_id(r["id"].as<std::string>());
  p.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  p.set_kind(r["kind"].as<std::string>() == "person" ? common::v1::PARTY_KIND_PERSON
                                                     : common::v1::PARTY_KIND_ORGANISATION);
  p.set_display_name(r["display_name"].as<std::string>());
  p.set_identity_account_id(r["identity_account_id"].as<std::string>());
  *p.mutable_created_at() = Micros(r["created_at"]);
  return p;
}

v1::Organisation ToOrganisation(const pqxx::row& r) {
  v1::Organisation o;
  *o.mutable_party() = ToParty(r);
  const auto form = r["legal_form"].as<std::string>();
  o.set_legal_form(form == "company"       ? v1::LEGAL_FORM_COMPANY
                   : form == "association" ? v1::LEGAL_FORM_ASSOCIATION
                                           : v1::LEGAL_FORM_AUTHORITY);
  o.set_register_number(r["register_number"].as<std::string>());
  auto* a = o.mutable_address();
  a->set_street(r["street"].as<std::string>());
  a->set_house_number(r["house_number"].as<std::string>());
  a->set_postcode(r["postcode"].as<std::string>());
  a->set_city(r["city"].as<std::string>());
  a->set_country(r["country"].as<std::string>());
  o.set_my_role(ParseRole(r["role"].as<std::string>()));
  return o;
}

v1::Membership ToMembership(const pqxx::row& r) {
  // The person's party columns, then organisation_id, role, since.
  v1::Membership m;
  *m.mutable_person() = ToParty(r);
  m.set_organisation_id(r["organisation_id"].as<std::string>());
  m.set_role(ParseRole(r["role"].as<std::string>()));
  *m.mutable_since() = Micros(r["since"]);
  return m;
}

v1::Consent ToConsent(const pqxx::row& r) {
  v1::Consent c;
  c.set_id(r["id"].as<std::string>());
  c.set_purpose(r["purpose"].as<std::string>());
  c.set_text_version(r["text_version"].as<std::string>());
  *c.mutable_given_at() = Micros(r["given_at"]);
  if (r["withdrawn_at"].as<int64_t>() != 0) *c.mutable_withdrawn_at() = Micros(r["withdrawn_at"]);
  return c;
}

// A time parameter in microseconds since the epoch, exactly (no floating point).
std::string MicrosToTime(const char* param) {
  return std::string("('epoch'::timestamptz + ") + param + "::bigint * interval '1 microsecond')";
}

// consent.changed: the citizen file shows each consent given and withdrawn.
void PublishConsentChanged(pqxx::work& tx, const std::string& tenant, const std::string& party_id,
                           const v1::Consent& consent, const std::string& state,
                           const google::protobuf::Timestamp& at) {
  events::v1::ConsentChanged e;
  e.set_tenant(tenant);
  e.set_party_id(party_id);
  e.set_consent_id(consent.id());
  e.set_purpose(consent.purpose());
  e.set_text_version(consent.text_version());
  e.set_state(state);
  *e.mutable_occurred_at() = at;
  events::Publish(tx, party_id, e);
}

constexpr char kDocumentColumns[] =
    "d.id::text AS id, d.party_id::text AS party_id, d.type, d.label, to_char(d.expires_on, 'YYYY-MM-DD') AS "
    "expires_on, d.source, coalesce(d.submission_id::text, '') AS submission_id, d.reference, d.destination, "
    "(extract(epoch FROM d.created_at) * 1000000)::bigint AS created_at, "
    "coalesce(to_char(r.due_on, 'YYYY-MM-DD'), '') AS reminder_due_on, coalesce(r.state, '') AS reminder_state";
// The document's latest reminder (one per due date; a document has one due date).
constexpr char kDocumentFrom[] =
    " FROM documents d LEFT JOIN LATERAL (SELECT due_on, state FROM reminders WHERE document_id = d.id "
    "ORDER BY due_on DESC LIMIT 1) r ON true ";
// Whether the party has a consent with purpose "reminders" that stands.
constexpr char kRemindersConsented[] =
    "EXISTS (SELECT 1 FROM consents c WHERE c.party_id = d.party_id AND c.purpose = 'reminders' "
    "AND c.withdrawn_at IS NULL)";

v1::Document ToDocument(const pqxx::row& r) {
  v1::Document d;
  d.set_id(r["id"].as<std::string>());
  d.set_party_id(r["party_id"].as<std::string>());
  d.set_type(r["type"].as<std::string>());
  d.set_label(r["label"].as<std::string>());
  d.set_expires_on(r["expires_on"].as<std::string>());
  d.set_source(r["source"].as<std::string>());
  d.set_submission_id(r["submission_id"].as<std::string>());
  d.set_reference(r["reference"].as<std::string>());
  d.set_destination(r["destination"].as<std::string>());
  *d.mutable_created_at() = Micros(r["created_at"]);
  d.set_reminder_due_on(r["reminder_due_on"].as<std::string>());
  d.set_reminder_state(r["reminder_state"].as<std::string>());
  return d;
}

v1::ProfileAttribute ToAttribute(const pqxx::row& r) {
  v1::ProfileAttribute a;
  a.set_name(r["name"].as<std::string>());
  a.set_value(r["value"].as<std::string>());
  a.set_source(r["source"].as<std::string>());
  a.set_provider(r["provider"].as<std::string>());
  a.set_assurance_level(r["assurance"].as<std::string>());
  if (r["vouched_at"].as<int64_t>() != 0) *a.mutable_vouched_at() = Micros(r["vouched_at"]);
  *a.mutable_updated_at() = Micros(r["updated_at"]);
  return a;
}

v1::Profile ReadProfile(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  v1::Profile p;
  p.set_party_id(party_id);
  for (const auto& r : tx.exec_prepared("accounts_profile", tenant, party_id)) *p.add_attributes() = ToAttribute(r);
  return p;
}

v1::Preferences ReadPreferences(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  v1::Preferences out;
  auto res = tx.exec_prepared("accounts_preferences", tenant, party_id);
  // Defaults until the person chooses: German, every notification on.
  out.set_language(res.empty() ? "de" : res[0]["language"].as<std::string>());
  out.mutable_email()->set_messages(res.empty() || res[0]["email_messages"].as<bool>());
  out.mutable_email()->set_status_changes(res.empty() || res[0]["email_status"].as<bool>());
  out.mutable_email()->set_reminders(res.empty() || res[0]["email_reminders"].as<bool>());
  return out;
}

// Inside a transaction: answers the open invitation `token_hash` if it was sent to the
// verified address of `person_id` (only the invited person may accept or decline it).
// Returns the row of the answered invitation: tenant, organisation_id, role.
absl::StatusOr<pqxx::row> AnswerInvitation(pqxx::work& tx, const std::string& token_hash, const std::string& person_id,
                                           const std::string& answer) {
  auto open = tx.exec_prepared("accounts_open_invitation", pqxx::binarystring(token_hash), person_id);
  if (open.empty()) return status::FieldError("token", "invalid_token");
  const auto invited = open[0]["invited_email"];
  const auto verified = open[0]["verified_email"];
  // Both sides are stored normalised; compared canonically all the same.
  if (verified.is_null() || absl::AsciiStrToLower(absl::StripAsciiWhitespace(invited.as<std::string>())) !=
                                absl::AsciiStrToLower(absl::StripAsciiWhitespace(verified.as<std::string>()))) {
    return absl::PermissionDeniedError("the invitation was sent to another e-mail address");
  }
  auto res = tx.exec_prepared("accounts_answer_invitation", pqxx::binarystring(token_hash), answer);
  if (res.empty()) return status::FieldError("token", "invalid_token");
  return res[0];
}

// Inside a transaction holding the organisation's membership rows: would the change
// leave the organisation without an owner?
bool LastOwner(pqxx::work& tx, const std::string& tenant, const std::string& org, const std::string& person) {
  const auto owners = tx.exec_prepared1("accounts_owners_locked", org)["owners"].as<int64_t>();
  auto role = tx.exec_prepared("accounts_role_of", tenant, org, person);
  return owners <= 1 && !role.empty() && role[0]["role"].as<std::string>() == "owner";
}

}  // namespace

std::string RoleName(v1::Role r) {
  switch (r) {
    case v1::ROLE_OWNER: return "owner";
    case v1::ROLE_ADMIN: return "admin";
    case v1::ROLE_MEMBER: return "member";
    default: return "";
  }
}

v1::Role ParseRole(const std::string& s) {
  if (s == "owner") return v1::ROLE_OWNER;
  if (s == "admin") return v1::ROLE_ADMIN;
  if (s == "member") return v1::ROLE_MEMBER;
  return v1::ROLE_UNSPECIFIED;
}

void Store::Prepare(pqxx::connection& conn) {
  const std::string party = kPartyColumns;
  const std::string org = kOrganisationColumns;
  const std::string member_columns =
      party +
      ", m.organisation_id::text AS organisation_id, m.role, (extract(epoch FROM m.since) * 1000000)::bigint AS since";
  conn.prepare("accounts_create_party",
               "INSERT INTO parties AS p (tenant, kind, display_name, identity_account_id) "
               "VALUES ($1, $2, $3, nullif($4, '')::uuid) RETURNING " +
                   party);
  conn.prepare("accounts_get_party", "SELECT " + party + " FROM parties p WHERE p.tenant = $1 AND p.id = $2::uuid");
  conn.prepare("accounts_ensure_person",
               "INSERT INTO parties (id, tenant, kind, display_name, identity_account_id) "
               "VALUES ($2::uuid, $1, 'person', '', $2::uuid) "
               "ON CONFLICT (tenant, identity_account_id) DO NOTHING");
  conn.prepare("accounts_person_of",
               "SELECT " + party + " FROM parties p WHERE p.tenant = $1 AND p.identity_account_id = $2::uuid");
  conn.prepare(
      "accounts_insert_organisation",
      "INSERT INTO organisations (party_id, tenant, legal_form, register_number, street, house_number, postcode, "
      "city, country) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9)");
  conn.prepare("accounts_insert_membership",
               "INSERT INTO memberships (tenant, organisation_id, person_id, role) VALUES ($1, $2::uuid, $3::uuid, $4) "
               "ON CONFLICT (organisation_id, person_id) DO NOTHING");
  conn.prepare("accounts_organisation_by_provider",
               "SELECT party_id::text AS party_id FROM organisations WHERE tenant = $1 AND provider = $2 "
               "AND provider_id = $3 FOR UPDATE");
  conn.prepare("accounts_vouch_organisation",
               "UPDATE organisations SET provider = $3, provider_id = $4 WHERE tenant = $1 AND party_id = $2::uuid");
  conn.prepare("accounts_get_organisation",
               "SELECT " + org +
                   " FROM parties p JOIN organisations o ON o.party_id = p.id "
                   "JOIN memberships m ON m.organisation_id = p.id AND m.person_id = $3::uuid "
                   "WHERE p.tenant = $1 AND p.id = $2::uuid");
  conn.prepare("accounts_organisations_of",
               "SELECT " + org +
                   " FROM parties p JOIN organisations o ON o.party_id = p.id "
                   "JOIN memberships m ON m.organisation_id = p.id WHERE m.tenant = $1 AND m.person_id = $2::uuid "
                   "ORDER BY p.display_name, p.id");
  conn.prepare("accounts_members", "SELECT " + member_columns +
                                       " FROM memberships m JOIN parties p ON p.id = m.person_id "
                                       "WHERE m.tenant = $1 AND m.organisation_id = $2::uuid ORDER BY m.since, p.id");
  conn.prepare("accounts_member",
               "SELECT " + member_columns +
                   " FROM memberships m JOIN parties p ON p.id = m.person_id "
                   "WHERE m.tenant = $1 AND m.organisation_id = $2::uuid AND m.person_id = $3::uuid");
  conn.prepare(
      "accounts_role_of",
      "SELECT role FROM memberships WHERE tenant = $1 AND organisation_id = $2::uuid AND person_id = $3::uuid");
  // Locks the organisation's memberships so that owner counts stay true under concurrency.
  conn.prepare("accounts_owners_locked",
               "SELECT count(*) FILTER (WHERE role = 'owner') AS owners FROM "
               "(SELECT role FROM memberships WHERE organisation_id = $1::uuid FOR UPDATE) m");
  conn.prepare(
      "accounts_set_role",
      "UPDATE memberships SET role = $4 WHERE tenant = $1 AND organisation_id = $2::uuid AND person_id = $3::uuid");
  conn.prepare("accounts_delete_membership",
               "DELETE FROM memberships WHERE tenant = $1 AND organisation_id = $2::uuid AND person_id = $3::uuid");
  conn.prepare("accounts_insert_invitation",
               "INSERT INTO invitations (tenant, organisation_id, email, role, token_hash, invited_by, expires_at) "
               "VALUES ($1, $2::uuid, $3, $4, $5, $6::uuid, now() + make_interval(secs => $7)) "
               "RETURNING id::text AS id, (extract(epoch FROM expires_at) * 1000000)::bigint AS expires_at");
  conn.prepare("accounts_open_invitation",
               "SELECT i.email AS invited_email, v.email AS verified_email FROM invitations i LEFT JOIN "
               "verified_emails v ON v.account_id = $2::uuid "
               "AND v.tenant = i.tenant WHERE i.token_hash = $1 AND i.answered_at IS NULL AND i.expires_at > now() "
               "FOR UPDATE OF i");
  conn.prepare("accounts_set_verified_email",
               "INSERT INTO verified_emails (account_id, tenant, email) VALUES ($1::uuid, $2, $3) "
               "ON CONFLICT (account_id) DO UPDATE SET tenant = $2, email = $3, verified_at = now()");
  conn.prepare("accounts_answer_invitation",
               "UPDATE invitations SET answered_at = now(), answer = $2 WHERE token_hash = $1 AND answered_at IS NULL "
               "AND expires_at > now() RETURNING tenant, organisation_id::text AS organisation_id, role");
  conn.prepare("accounts_profile",
               "SELECT name, value, source, provider, assurance, "
               "coalesce((extract(epoch FROM vouched_at) * 1000000)::bigint, 0) AS vouched_at, "
               "(extract(epoch FROM updated_at) * 1000000)::bigint AS updated_at FROM profile_attributes "
               "WHERE tenant = $1 AND party_id = $2::uuid ORDER BY name");
  conn.prepare("accounts_profile_source_locked",
               "SELECT source FROM profile_attributes WHERE party_id = $1::uuid AND name = $2 FOR UPDATE");
  conn.prepare(
      "accounts_profile_set_self",
      "INSERT INTO profile_attributes (tenant, party_id, name, value, source) VALUES ($1, $2::uuid, $3, $4, 'self') "
      "ON CONFLICT (party_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()");
  conn.prepare(
      "accounts_profile_delete_self",
      "DELETE FROM profile_attributes WHERE tenant = $1 AND party_id = $2::uuid AND name = $3 AND source = 'self'");
  conn.prepare(
      "accounts_profile_set_verified",
      "INSERT INTO profile_attributes (tenant, party_id, name, value, source, provider, assurance, vouched_at) "
      "VALUES ($1, $2::uuid, $3, $4, 'provider', $5, $6, now()) ON CONFLICT (party_id, name) DO UPDATE SET "
      "value = EXCLUDED.value, source = 'provider', provider = EXCLUDED.provider, "
      "assurance = EXCLUDED.assurance, vouched_at = now(), updated_at = now()");
  conn.prepare("accounts_preferences",
               "SELECT language, email_messages, email_status, email_reminders FROM preferences "
               "WHERE tenant = $1 AND party_id = $2::uuid");
  conn.prepare(
      "accounts_set_preferences",
      "INSERT INTO preferences (party_id, tenant, language, email_messages, email_status, email_reminders) "
      "VALUES ($2::uuid, $1, $3, $4, $5, $6) ON CONFLICT (party_id) DO UPDATE SET language = EXCLUDED.language, "
      "email_messages = EXCLUDED.email_messages, email_status = EXCLUDED.email_status, "
      "email_reminders = EXCLUDED.email_reminders, updated_at = now()");
  const std::string consent = kConsentColumns;
  conn.prepare("accounts_consents",
               "SELECT " + consent + " FROM consents WHERE tenant = $1 AND party_id = $2::uuid ORDER BY given_at, id");
  conn.prepare(
      "accounts_give_consent",
      "INSERT INTO consents (tenant, party_id, purpose, text_version) VALUES ($1, $2::uuid, $3, $4) RETURNING " +
          consent);
  conn.prepare("accounts_withdraw_consent",
               "UPDATE consents SET withdrawn_at = coalesce(withdrawn_at, now()) "
               "WHERE tenant = $1 AND party_id = $2::uuid AND id = $3::uuid RETURNING withdrawn_at = now() AS now, " +
                   consent);

  const std::string document = std::string("SELECT ") + kDocumentColumns + kDocumentFrom;
  conn.prepare("accounts_documents",
               document + "WHERE d.tenant = $1 AND d.party_id = $2::uuid ORDER BY d.expires_on, d.created_at, d.id");
  conn.prepare("accounts_document", document + "WHERE d.tenant = $1 AND d.party_id = $2::uuid AND d.id = $3::uuid");
  // Serialises a party's additions, so that the count limit holds.
  conn.prepare("accounts_lock_party", "SELECT id FROM parties WHERE tenant = $1 AND id = $2::uuid FOR UPDATE");
  conn.prepare("accounts_count_documents",
               "SELECT count(*) AS n FROM documents WHERE tenant = $1 AND party_id = $2::uuid");
  conn.prepare("accounts_insert_document",
               "INSERT INTO documents (tenant, party_id, type, label, expires_on, source, remind_days_before, "
               "submission_id, reference, destination) "
               "VALUES ($1, $2::uuid, $3, $4, $5::date, $6, $7, nullif($8, '')::uuid, $9, $10) "
               "ON CONFLICT (tenant, submission_id, type) WHERE source = 'department' DO NOTHING "
               "RETURNING id::text AS id");
  conn.prepare("accounts_ensure_party_of_event",
               "INSERT INTO parties (id, tenant, kind, display_name, identity_account_id) "
               "VALUES ($2::uuid, $1, 'person', '', $2::uuid) ON CONFLICT DO NOTHING");
  // The retention job: documents whose expiry lies more than twelve months before the
  // clock's day in Nuremberg ($1); their reminders go with them (ON DELETE CASCADE).
  conn.prepare("accounts_delete_expired_documents",
               "DELETE FROM documents WHERE id IN (SELECT id FROM documents WHERE expires_on <"
               " (($1::timestamptz AT TIME ZONE 'Europe/Berlin')::date - interval '12 months')::date"
               " ORDER BY expires_on LIMIT $2 FOR UPDATE SKIP LOCKED)");
  conn.prepare("accounts_delete_document",
               "DELETE FROM documents WHERE tenant = $1 AND party_id = $2::uuid AND id = $3::uuid");
  // The document's reminder, while the party consents; a reminder a withdrawal cancelled
  // is scheduled again, a sent one stays sent.
  // The document's reminder (or all the party's), while the party consents; a reminder a
  // withdrawal cancelled is scheduled again, a sent one stays sent.
  const std::string schedule =
      std::string(
          "INSERT INTO reminders (tenant, party_id, document_id, due_on) "
          "SELECT d.tenant, d.party_id, d.id, d.expires_on - d.remind_days_before FROM documents d WHERE ") +
      kRemindersConsented;
  const std::string rescheduled =
      " ON CONFLICT (document_id, due_on) DO UPDATE SET state = 'scheduled', cancelled_at = NULL "
      "WHERE reminders.state = 'cancelled'";
  conn.prepare("accounts_schedule_reminder", schedule + " AND d.id = $1::uuid" + rescheduled);
  conn.prepare("accounts_schedule_party_reminders",
               schedule + " AND d.tenant = $1 AND d.party_id = $2::uuid" + rescheduled);
  conn.prepare("accounts_cancel_reminders",
               std::string("UPDATE reminders r SET state = 'cancelled', cancelled_at = now() FROM documents d "
                           "WHERE d.id = r.document_id AND r.tenant = $1 AND r.party_id = $2::uuid "
                           "AND r.state = 'scheduled' AND NOT ") +
                   kRemindersConsented);
  conn.prepare("accounts_claim_due_reminders",
               std::string("SELECT r.id::text AS id, r.tenant, r.party_id::text AS party_id, p.kind AS party_kind, "
                           "d.id::text AS document_id, d.type, d.label, "
                           "to_char(d.expires_on, 'YYYY-MM-DD') AS expires_on "
                           "FROM reminders r JOIN documents d ON d.id = r.document_id "
                           "JOIN parties p ON p.id = r.party_id "
                           "WHERE r.state = 'scheduled' AND r.due_on <= $1::date AND d.expires_on >= $1::date AND ") +
                   kRemindersConsented + " ORDER BY r.due_on, r.id LIMIT $2 FOR UPDATE OF r SKIP LOCKED");
  conn.prepare("accounts_mark_reminder_sent",
               "UPDATE reminders SET state = 'sent', sent_at = now() WHERE id = $1::uuid AND state = 'scheduled'");
  conn.prepare("accounts_insert_access",
               "INSERT INTO access_log (event_id, tenant, party_id, occurred_at, accessor_kind, accessor_id,"
               " accessor_name, resource, resource_id, reference, action, purpose)"
               " VALUES ($1, $2, $3::uuid, 'epoch'::timestamptz + $4::bigint * interval '1 microsecond', $5, $6, $7,"
               " $8, $9, $10, $11, $12) ON CONFLICT (event_id) DO NOTHING");
  // Newest first; the cursor is the last entry's (occurred_at, id); from/to in
  // microseconds since the epoch ($4 inclusive, $5 exclusive; 0 for none).
  conn.prepare("accounts_access_log",
               "SELECT id, (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_at, accessor_kind,"
               " accessor_id, accessor_name, resource, resource_id, reference, action, purpose FROM access_log"
               " WHERE tenant = $1 AND party_id = $2::uuid"
               " AND ($3::bigint = 0 OR (occurred_at, id) < ('epoch'::timestamptz + $3::bigint * interval"
               " '1 microsecond', $6::bigint))"
               " AND ($4::bigint = 0 OR occurred_at >= 'epoch'::timestamptz + $4::bigint * interval '1 microsecond')"
               " AND ($5::bigint = 0 OR occurred_at < 'epoch'::timestamptz + $5::bigint * interval '1 microsecond')"
               " ORDER BY occurred_at DESC, id DESC LIMIT $7");
  // The citizen file (file.h). Times travel as microseconds since the epoch.
  conn.prepare("accounts_file_journal",
               "INSERT INTO file_events (event_id, topic, tenant, party_id, occurred_at, payload)"
               " VALUES ($1, $2, $3, $4::uuid, " +
                   std::string(MicrosToTime("$5")) +
                   ", $6::jsonb) ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
  conn.prepare("accounts_file_service_of",
               "SELECT payload->>'service_id' AS service_id FROM file_events WHERE tenant = $1 AND party_id = $2::uuid"
               " AND topic = 'submission.status_changed' AND payload->>'submission_id' = $3 LIMIT 1");
  conn.prepare("accounts_file_item",
               "INSERT INTO file_items (tenant, party_id, occurred_at, event_source, event_seq, kind, service_id,"
               " summary, link, source_event) VALUES ($1, $2::uuid, " +
                   std::string(MicrosToTime("$3")) +
                   ", $4, $5, $6, $7, $8::jsonb, $9, $10) ON CONFLICT (source_event) DO NOTHING RETURNING seq");
  conn.prepare("accounts_file_backfill_service",
               "UPDATE file_items SET service_id = $4 WHERE tenant = $1 AND party_id = $2::uuid AND service_id = ''"
               " AND summary->>'submission_id' = $3");
  conn.prepare("accounts_file_delete_items", "DELETE FROM file_items WHERE $1 = '' OR tenant = $1");
  conn.prepare("accounts_file_journal_page",
               "SELECT event_id, topic, payload::text AS payload FROM file_events WHERE ($1 = '' OR tenant = $1)"
               " AND event_id > $2 ORDER BY event_id LIMIT $3");
  // $5/$6: occurred_at from (inclusive) until (exclusive); $7–$9: after this item; $10: limit.
  conn.prepare("accounts_file_items",
               "SELECT source_event, kind, (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_us,"
               " service_id, link, summary::text AS summary FROM file_items"
               " WHERE tenant = $1 AND party_id = $2::uuid AND ($3 = '' OR kind = $3) AND ($4 = '' OR service_id = $4)"
               " AND occurred_at >= " +
                   std::string(MicrosToTime("$5")) + " AND occurred_at < " + MicrosToTime("$6") +
                   " AND (occurred_at, event_source, event_seq) > (" + MicrosToTime("$7") +
                   ", $8, $9) ORDER BY occurred_at, event_source, event_seq LIMIT $10");
  // The erasure of a person ($1 tenant, $2 party).
  conn.prepare("accounts_is_erased", "SELECT EXISTS (SELECT 1 FROM erased_parties WHERE tombstone = $1) AS erased");
  conn.prepare("accounts_tombstone", "INSERT INTO erased_parties (tombstone) VALUES ($1) ON CONFLICT DO NOTHING");
  // Only the address the person proved theirs: an unverified contact address may be
  // anybody's, and erasing by it would reach another person's invitations and mails (the
  // contact address itself goes with the profile).
  conn.prepare("accounts_erase_emails",
               "SELECT email FROM verified_emails WHERE tenant = $1 AND account_id = $2::uuid");
  // Addresses compared whole, ignoring case: never a pattern or a part of another.
  conn.prepare("accounts_erase_invitations_to",
               "DELETE FROM invitations WHERE tenant = $1 AND $2 <> '' AND lower(email) = lower($2)");
  conn.prepare("accounts_erase_mails_to",
               "DELETE FROM mail_outbox WHERE tenant = $1 AND $2 <> '' AND lower(recipient) = lower($2)");
  conn.prepare("accounts_unname_inviter",
               "UPDATE invitations SET invited_by = NULL WHERE invited_by IN"
               " (SELECT id FROM parties WHERE tenant = $1 AND kind = 'person'"
               " AND (id = $2::uuid OR identity_account_id = $2::uuid))");
  conn.prepare("accounts_erase_documents", "DELETE FROM documents WHERE tenant = $1 AND party_id = $2::uuid");
  // Profile, preferences, consents and memberships go with the party (ON DELETE CASCADE).
  conn.prepare("accounts_erase_party",
               "DELETE FROM parties WHERE tenant = $1 AND kind = 'person'"
               " AND (id = $2::uuid OR identity_account_id = $2::uuid)");
  conn.prepare("accounts_erase_verified_email",
               "DELETE FROM verified_emails WHERE tenant = $1 AND account_id = $2::uuid");
  conn.prepare("accounts_erase_access_log", "DELETE FROM access_log WHERE tenant = $1 AND party_id = $2::uuid");
  conn.prepare("accounts_erase_file_items", "DELETE FROM file_items WHERE tenant = $1 AND party_id = $2::uuid");
  conn.prepare("accounts_erase_file_events", "DELETE FROM file_events WHERE tenant = $1 AND party_id = $2::uuid");
  // The export ($3: at most this many of each kind).
  conn.prepare("accounts_export_party",
               "SELECT " + party + " FROM parties p WHERE p.tenant = $1 AND p.id = $2::uuid AND p.kind = 'person'");
  conn.prepare("accounts_export_preferences",
               "SELECT language, email_messages, email_status, email_reminders,"
               " (extract(epoch FROM updated_at) * 1000000)::bigint AS updated_at FROM preferences"
               " WHERE tenant = $1 AND party_id = $2::uuid");
  conn.prepare("accounts_export_memberships",
               "SELECT m.organisation_id::text AS organisation_id, p.display_name AS organisation_name, m.role,"
               " (extract(epoch FROM m.since) * 1000000)::bigint AS since FROM memberships m"
               " JOIN parties p ON p.id = m.organisation_id WHERE m.tenant = $1 AND m.person_id = $2::uuid"
               " ORDER BY m.since, m.organisation_id LIMIT $3");
  conn.prepare(
      "accounts_export_invitations",
      "SELECT i.id::text AS id, i.organisation_id::text AS organisation_id, p.display_name AS"
      " organisation_name, i.email, i.role, (extract(epoch FROM i.created_at) * 1000000)::bigint AS created_at,"
      " (extract(epoch FROM i.expires_at) * 1000000)::bigint AS expires_at,"
      " coalesce((extract(epoch FROM i.answered_at) * 1000000)::bigint, 0) AS answered_at,"
      " coalesce(i.answer, '') AS answer FROM invitations i JOIN parties p ON p.id = i.organisation_id"
      " JOIN verified_emails v ON v.tenant = i.tenant AND lower(v.email) = lower(i.email)"
      " WHERE i.tenant = $1 AND v.account_id = $2::uuid ORDER BY i.created_at, i.id LIMIT $3");
  conn.prepare("accounts_export_reminders",
               "SELECT id::text AS id, document_id::text AS document_id, to_char(due_on, 'YYYY-MM-DD') AS due_on,"
               " state, coalesce((extract(epoch FROM sent_at) * 1000000)::bigint, 0) AS sent_at,"
               " coalesce((extract(epoch FROM cancelled_at) * 1000000)::bigint, 0) AS cancelled_at,"
               " (extract(epoch FROM created_at) * 1000000)::bigint AS created_at FROM reminders"
               " WHERE tenant = $1 AND party_id = $2::uuid ORDER BY due_on, id LIMIT $3");
  conn.prepare("accounts_export_verified_email",
               "SELECT email, (extract(epoch FROM verified_at) * 1000000)::bigint AS verified_at FROM verified_emails"
               " WHERE tenant = $1 AND account_id = $2::uuid");
  conn.prepare("accounts_export_access_log",
               "SELECT (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_at, accessor_kind, accessor_id,"
               " accessor_name, resource, resource_id, reference, action, purpose FROM access_log"
               " WHERE tenant = $1 AND party_id = $2::uuid ORDER BY occurred_at, id LIMIT $3");
  conn.prepare("accounts_export_file_items",
               "SELECT source_event, kind, (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_at,"
               " service_id, link, summary::text AS summary FROM file_items WHERE tenant = $1 AND party_id = $2::uuid"
               " ORDER BY occurred_at, event_source, event_seq LIMIT $3");
  mail::Outbox::Prepare(conn);
}

absl::StatusOr<v1::Party> Store::CreateParty(const NewParty& p) {
  auto out = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Party> {
    if (p.kind == "person" && IsErased(tx, p.tenant, p.identity_account_id)) {
      return absl::FailedPreconditionError("the account was erased");
    }
    return ToParty(tx.exec_prepared1("accounts_create_party", p.tenant, p.kind, p.display_name, p.identity_account_id));
  });
  if (out.status().code() == absl::StatusCode::kAlreadyExists) {
    return absl::AlreadyExistsError("this identity account already has a person party");
  }
  return out;
}

absl::StatusOr<v1::Party> Store::GetParty(const std::string& tenant, const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::Party> {
    auto res = tx.exec_prepared("accounts_get_party", tenant, id);
    if (res.empty()) return absl::NotFoundError("party not found");
    return ToParty(res[0]);
  });
}

absl::StatusOr<v1::Party> Store::EnsurePerson(const std::string& tenant, const std::string& identity_account_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Party> {
    if (IsErased(tx, tenant, identity_account_id)) return absl::FailedPreconditionError("the account was erased");
    tx.exec_prepared("accounts_ensure_person", tenant, identity_account_id);
    return ToParty(tx.exec_prepared1("accounts_person_of", tenant, identity_account_id));
  });
}

absl::StatusOr<v1::Organisation> Store::CreateOrganisation(const NewOrganisation& o) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Organisation> {
    auto party = ToParty(tx.exec_prepared1("accounts_create_party", o.tenant, "organisation", o.name, ""));
    const auto& a = o.address;
    tx.exec_prepared("accounts_insert_organisation", party.id(), o.tenant, o.legal_form, o.register_number, a.street(),
                     a.house_number(), a.postcode(), a.city(), a.country());
    tx.exec_prepared("accounts_insert_membership", o.tenant, party.id(), o.owner_id, "owner");
    return ToOrganisation(tx.exec_prepared1("accounts_get_organisation", o.tenant, party.id(), o.owner_id));
  });
}

absl::StatusOr<v1::Organisation> Store::GetOrganisation(const std::string& tenant, const std::string& id,
                                                        const std::string& person_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::Organisation> {
    auto res = tx.exec_prepared("accounts_get_organisation", tenant, id, person_id);
    if (res.empty()) return absl::NotFoundError("organisation not found");
    return ToOrganisation(res[0]);
  });
}

absl::StatusOr<std::vector<v1::Organisation>> Store::ListOrganisationsOf(const std::string& tenant,
                                                                         const std::string& person_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::Organisation>> {
    std::vector<v1::Organisation> out;
    for (const auto& r : tx.exec_prepared("accounts_organisations_of", tenant, person_id))
      out.push_back(ToOrganisation(r));
    return out;
  });
}

absl::StatusOr<std::vector<v1::Membership>> Store::ListMembers(const std::string& tenant,
                                                               const std::string& organisation_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::Membership>> {
    std::vector<v1::Membership> out;
    for (const auto& r : tx.exec_prepared("accounts_members", tenant, organisation_id)) out.push_back(ToMembership(r));
    return out;
  });
}

absl::StatusOr<std::optional<std::string>> Store::RoleOf(const std::string& tenant, const std::string& organisation_id,
                                                         const std::string& person_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::optional<std::string>> {
    auto res = tx.exec_prepared("accounts_role_of", tenant, organisation_id, person_id);
    if (res.empty()) return std::optional<std::string>();
    return std::optional<std::string>(res[0]["role"].as<std::string>());
  });
}

absl::StatusOr<v1::Invitation> Store::Invite(const NewInvitation& i, const mail::Mail& mail) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Invitation> {
    auto r = tx.exec_prepared1("accounts_insert_invitation", i.tenant, i.organisation_id, i.email, i.role,
                               pqxx::binarystring(i.token_hash), i.invited_by, static_cast<double>(i.ttl.count()));
    v1::Invitation out;
    out.set_id(r["id"].as<std::string>());
    out.set_organisation_id(i.organisation_id);
    out.set_email(i.email);
    out.set_role(ParseRole(i.role));
    *out.mutable_expires_at() = Micros(r["expires_at"]);
    mail::Outbox::Enqueue(tx, i.tenant, mail);
    return out;
  });
}

absl::StatusOr<v1::Membership> Store::AcceptInvitation(const std::string& token_hash, const std::string& person_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Membership> {
    auto answered = AnswerInvitation(tx, token_hash, person_id, "accepted");
    if (!answered.ok()) return answered.status();
    const auto tenant = (*answered)["tenant"].as<std::string>();
    const auto org = (*answered)["organisation_id"].as<std::string>();
    tx.exec_prepared("accounts_insert_membership", tenant, org, person_id, (*answered)["role"].as<std::string>());
    return ToMembership(tx.exec_prepared1("accounts_member", tenant, org, person_id));
  });
}

absl::Status Store::SetVerifiedEmail(pqxx::work& tx, const std::string& account_id, const std::string& tenant,
                                     const std::string& email) {
  // From identity, and checked all the same: a malformed event changes nothing.
  if (auto s = api::ValidateUuid(account_id, "account_id"); !s.ok()) return s;
  if (!config::IsTenantKey(tenant)) return status::FieldError("tenant", "invalid");
  auto normalized = api::NormalizeEmail(email, "email");
  if (!normalized.ok()) return normalized.status();
  tx.exec_prepared("accounts_set_verified_email", account_id, tenant, *normalized);
  return absl::OkStatus();
}

absl::Status Store::DeclineInvitation(const std::string& token_hash, const std::string& person_id) {
  return pool_.Transact(
      [&](pqxx::work& tx) { return AnswerInvitation(tx, token_hash, person_id, "declined").status(); });
}

absl::StatusOr<v1::Membership> Store::ChangeRole(const std::string& tenant, const std::string& organisation_id,
                                                 const std::string& person_id, const std::string& role) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Membership> {
    if (role != "owner" && LastOwner(tx, tenant, organisation_id, person_id)) {
      return status::FieldConflict("role", "last_owner");
    }
    if (tx.exec_prepared0("accounts_set_role", tenant, organisation_id, person_id, role).affected_rows() == 0) {
      return absl::NotFoundError("member not found");
    }
    return ToMembership(tx.exec_prepared1("accounts_member", tenant, organisation_id, person_id));
  });
}

absl::Status Store::RemoveMember(const std::string& tenant, const std::string& organisation_id,
                                 const std::string& person_id) {
  return pool_.Transact([&](pqxx::work& tx) {
    if (LastOwner(tx, tenant, organisation_id, person_id)) {
      return status::FieldConflict("person_party_id", "last_owner");
    }
    if (tx.exec_prepared0("accounts_delete_membership", tenant, organisation_id, person_id).affected_rows() == 0) {
      return absl::NotFoundError("member not found");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Profile> Store::GetProfile(const std::string& tenant, const std::string& party_id) {
  return pool_.Transact(
      [&](pqxx::work& tx) -> absl::StatusOr<v1::Profile> { return ReadProfile(tx, tenant, party_id); });
}

absl::StatusOr<v1::Profile> Store::UpdateProfile(const std::string& tenant, const std::string& party_id,
                                                 const std::map<std::string, std::string>& values) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Profile> {
    for (const auto& [name, value] : values) {
      auto source = tx.exec_prepared("accounts_profile_source_locked", party_id, name);
      if (!source.empty() && source[0]["source"].as<std::string>() == "provider") {
        return absl::FailedPreconditionError(name + ": verified");
      }
      if (value.empty())
        tx.exec_prepared("accounts_profile_delete_self", tenant, party_id, name);
      else
        tx.exec_prepared("accounts_profile_set_self", tenant, party_id, name, value);
    }
    return ReadProfile(tx, tenant, party_id);
  });
}

absl::Status Store::RecordVerified(const std::string& tenant, const std::string& party_id,
                                   const std::map<std::string, std::string>& values, const std::string& provider,
                                   const std::string& assurance) {
  return pool_.Transact([&](pqxx::work& tx) {
    for (const auto& [name, value] : values) {
      tx.exec_prepared("accounts_profile_set_verified", tenant, party_id, name, value, provider, assurance);
    }
    return absl::OkStatus();
  });
}

absl::Status Store::RecordIdentified(pqxx::work& tx, const std::string& tenant, const std::string& account_id,
                                     const std::map<std::string, std::string>& values, const std::string& provider,
                                     const std::string& assurance, const VouchedOrganisation* organisation) {
  tx.exec_prepared("accounts_ensure_person", tenant, account_id);
  const auto person = ToParty(tx.exec_prepared1("accounts_person_of", tenant, account_id));
  for (const auto& [name, value] : values) {
    tx.exec_prepared("accounts_profile_set_verified", tenant, person.id(), name, value, provider, assurance);
  }
  if (organisation == nullptr) return absl::OkStatus();
  auto found = tx.exec_prepared("accounts_organisation_by_provider", tenant, provider, organisation->id);
  if (!found.empty()) {
    // A further representative of a company already here: a member who may act for it
    // (an existing membership keeps its role).
    tx.exec_prepared("accounts_insert_membership", tenant, found[0]["party_id"].as<std::string>(), person.id(),
                     "admin");
    return absl::OkStatus();
  }
  // The company's first log-in: the organisation, with the person as its owner.
  const auto& a = organisation->address;
  auto party = ToParty(tx.exec_prepared1("accounts_create_party", tenant, "organisation", organisation->name, ""));
  tx.exec_prepared("accounts_insert_organisation", party.id(), tenant, "company", "", a.street(), a.house_number(),
                   a.postcode(), a.city(), a.country());
  tx.exec_prepared("accounts_vouch_organisation", tenant, party.id(), provider, organisation->id);
  tx.exec_prepared("accounts_insert_membership", tenant, party.id(), person.id(), "owner");
  return absl::OkStatus();
}

absl::StatusOr<v1::Preferences> Store::GetPreferences(const std::string& tenant, const std::string& party_id) {
  return pool_.Transact(
      [&](pqxx::work& tx) -> absl::StatusOr<v1::Preferences> { return ReadPreferences(tx, tenant, party_id); });
}

absl::StatusOr<v1::Preferences> Store::SetPreferences(const std::string& tenant, const std::string& party_id,
                                                      const v1::Preferences& p) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Preferences> {
    tx.exec_prepared("accounts_set_preferences", tenant, party_id, p.language(), p.email().messages(),
                     p.email().status_changes(), p.email().reminders());
    // Messaging follows the preferences for its notifications.
    events::v1::PreferencesChanged e;
    e.set_tenant(tenant);
    e.set_party_id(party_id);
    e.set_language(p.language());
    e.set_messages(p.email().messages());
    e.set_status_changes(p.email().status_changes());
    e.set_reminders(p.email().reminders());
    events::Publish(tx, party_id, e);
    return ReadPreferences(tx, tenant, party_id);
  });
}

absl::StatusOr<std::vector<v1::Consent>> Store::ListConsents(const std::string& tenant, const std::string& party_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::Consent>> {
    std::vector<v1::Consent> out;
    for (const auto& r : tx.exec_prepared("accounts_consents", tenant, party_id)) out.push_back(ToConsent(r));
    return out;
  });
}

absl::StatusOr<v1::Consent> Store::GiveConsent(const std::string& tenant, const std::string& party_id,
                                               const std::string& purpose, const std::string& text_version) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Consent> {
    auto consent = ToConsent(tx.exec_prepared1("accounts_give_consent", tenant, party_id, purpose, text_version));
    if (purpose == kRemindersPurpose) tx.exec_prepared("accounts_schedule_party_reminders", tenant, party_id);
    PublishConsentChanged(tx, tenant, party_id, consent, "given", consent.given_at());
    return consent;
  });
}

absl::StatusOr<v1::Consent> Store::WithdrawConsent(const std::string& tenant, const std::string& party_id,
                                                   const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Consent> {
    auto res = tx.exec_prepared("accounts_withdraw_consent", tenant, party_id, id);
    if (res.empty()) return absl::NotFoundError("consent not found");
    auto consent = ToConsent(res[0]);
    // Withdrawn before: told then.
    if (!res[0]["now"].as<bool>()) return consent;
    // The last standing consent to reminders gone: no pending reminder goes out.
    if (consent.purpose() == kRemindersPurpose) tx.exec_prepared("accounts_cancel_reminders", tenant, party_id);
    PublishConsentChanged(tx, tenant, party_id, consent, "withdrawn", consent.withdrawn_at());
    return consent;
  });
}

absl::StatusOr<std::vector<v1::Document>> Store::ListDocuments(const std::string& tenant, const std::string& party_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<std::vector<v1::Document>> {
    std::vector<v1::Document> out;
    for (const auto& r : tx.exec_prepared("accounts_documents", tenant, party_id)) out.push_back(ToDocument(r));
    return out;
  });
}

absl::StatusOr<v1::Document> Store::GetDocument(const std::string& tenant, const std::string& party_id,
                                                const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::Document> {
    auto res = tx.exec_prepared("accounts_document", tenant, party_id, id);
    if (res.empty()) return absl::NotFoundError("document not found");
    return ToDocument(res[0]);
  });
}

absl::StatusOr<v1::Document> Store::AddDocument(const NewDocument& d) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Document> {
    tx.exec_prepared("accounts_lock_party", d.tenant, d.party_id);
    if (tx.exec_prepared1("accounts_count_documents", d.tenant, d.party_id)["n"].as<int64_t>() >=
        kMaxDocumentsPerParty) {
      return status::FieldError("documents", "too_many_documents");
    }
    const auto id = tx.exec_prepared1("accounts_insert_document", d.tenant, d.party_id, d.type, d.label, d.expires_on,
                                      d.source, d.remind_days_before, d.submission_id, d.reference, d.destination)["id"]
                        .as<std::string>();
    tx.exec_prepared("accounts_schedule_reminder", id);
    return ToDocument(tx.exec_prepared1("accounts_document", d.tenant, d.party_id, id));
  });
}

absl::Status Store::DeleteDocument(const std::string& tenant, const std::string& party_id, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    if (tx.exec_prepared0("accounts_delete_document", tenant, party_id, id).affected_rows() == 0) {
      return absl::NotFoundError("document not found");
    }
    return absl::OkStatus();
  });
}

absl::Status Store::RecordDocument(pqxx::work& tx, const NewDocument& d) {
  tx.exec_prepared("accounts_ensure_party_of_event", d.tenant, d.party_id);
  auto inserted = tx.exec_prepared("accounts_insert_document", d.tenant, d.party_id, d.type, d.label, d.expires_on,
                                   d.source, d.remind_days_before, d.submission_id, d.reference, d.destination);
  if (inserted.empty()) return absl::OkStatus();  // Recorded before.
  tx.exec_prepared("accounts_schedule_reminder", inserted[0]["id"].as<std::string>());
  return absl::OkStatus();
}

absl::StatusOr<int> Store::SendDueReminders(absl::Time now, int limit, const DocumentTypes& types) {
  const std::string today = absl::FormatTime("%Y-%m-%d", now, absl::UTCTimeZone());
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    int sent = 0;
    for (const auto& r : tx.exec_prepared("accounts_claim_due_reminders", today, limit)) {
      const auto id = r["id"].as<std::string>();
      if (tx.exec_prepared0("accounts_mark_reminder_sent", id).affected_rows() != 1) continue;
      events::v1::ReminderDue e;
      e.set_tenant(r["tenant"].as<std::string>());
      e.set_reminder_id(id);
      e.set_party_id(r["party_id"].as<std::string>());
      e.set_party_kind(r["party_kind"].as<std::string>());
      e.set_document_id(r["document_id"].as<std::string>());
      e.set_document_type(r["type"].as<std::string>());
      e.set_label(r["label"].as<std::string>());
      e.set_expires_on(r["expires_on"].as<std::string>());
      // A type no longer configured is named by its id and renewed nowhere.
      const auto* type = types.Find(e.document_type());
      e.set_document_name_de(type != nullptr ? type->name_de() : e.document_type());
      e.set_document_name_en(type != nullptr ? type->name_en() : e.document_type());
      e.set_renewal_service_id(type != nullptr ? type->renewal_service_id() : "");
      *e.mutable_occurred_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
      events::Publish(tx, e.party_id(), e);
      ++sent;
    }
    return sent;
  });
}

absl::StatusOr<int> Store::EndDocumentRetention(absl::Time now, int limit) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    const std::string at = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
    return static_cast<int>(tx.exec_prepared0("accounts_delete_expired_documents", at, limit).affected_rows());
  });
}

absl::Status Store::AddAccessLogEntry(pqxx::work& tx, const std::string& event_id, const events::v1::DataAccessed& e) {
  tx.exec_prepared("accounts_insert_access", event_id, e.tenant(), e.party_id(),
                   TimeUtil::TimestampToMicroseconds(e.occurred_at()), e.accessor_kind(), e.accessor_id(),
                   e.accessor_name(), e.resource(), e.resource_id(), e.reference(), e.action(), e.purpose());
  return absl::OkStatus();
}

absl::StatusOr<v1::ListAccessLogResponse> Store::ListAccessLog(const AccessLogQuery& q) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListAccessLogResponse> {
    v1::ListAccessLogResponse out;
    auto res = tx.exec_prepared("accounts_access_log", q.tenant, q.party_id, q.after_micros, q.from_micros, q.to_micros,
                                q.after_id, q.page_size + 1);
    for (int i = 0; i < static_cast<int>(res.size()) && i < q.page_size; ++i) {
      const auto& r = res[i];
      auto* e = out.add_entries();
      *e->mutable_occurred_at() = Micros(r["occurred_at"]);
      e->set_accessor_kind(r["accessor_kind"].as<std::string>());
      // Which administrator looked is for the data protection officer (identity's
      // admin access log), not for the person.
      if (e->accessor_kind() != "administrator") e->set_accessor_id(r["accessor_id"].as<std::string>());
      e->set_accessor_name(r["accessor_name"].as<std::string>());
      e->set_resource(r["resource"].as<std::string>());
      e->set_resource_id(r["resource_id"].as<std::string>());
      e->set_reference(r["reference"].as<std::string>());
      e->set_action(r["action"].as<std::string>());
      e->set_purpose(r["purpose"].as<std::string>());
      if (i == q.page_size - 1 && static_cast<int>(res.size()) > q.page_size) {
        out.mutable_page()->set_next_page_token(
            api::NextPageToken(absl::StrCat(r["occurred_at"].as<int64_t>(), "|", r["id"].as<int64_t>())));
      }
    }
    return out;
  });
}

bool Store::JournalFileEvent(pqxx::work& tx, const FileEntry& e) {
  return !tx.exec_prepared("accounts_file_journal", e.event_id, e.topic, e.tenant, e.party_id, e.occurred_us,
                           e.payload.dump())
              .empty();
}

bool Store::WriteFileItem(pqxx::work& tx, const FileEntry& e) {
  if (!e.item) return false;
  const FileItem& item = *e.item;
  std::string service_id = item.service_id;
  // A payment, refund or message names its submission: the service is the submission's,
  // as its statuses in the journal tell.
  if (service_id.empty() && !item.submission_id.empty()) {
    auto found = tx.exec_prepared("accounts_file_service_of", e.tenant, e.party_id, item.submission_id);
    if (!found.empty() && !found[0]["service_id"].is_null()) service_id = found[0]["service_id"].as<std::string>();
  }
  const bool written = !tx.exec_prepared("accounts_file_item", e.tenant, e.party_id, e.occurred_us, e.source,
                                         e.sequence, item.kind, service_id, item.summary.dump(), item.link, e.event_id)
                            .empty();
  // Events travel on several streams: a payment or message taken before its submission's
  // first status gets the service now, as a rebuild would give it.
  if (written && !item.service_id.empty() && !item.submission_id.empty()) {
    tx.exec_prepared("accounts_file_backfill_service", e.tenant, e.party_id, item.submission_id, item.service_id);
  }
  return written;
}

void Store::DeleteFileItems(pqxx::work& tx, const std::string& tenant) {
  tx.exec_prepared("accounts_file_delete_items", tenant);
}

std::vector<events::Event> Store::FileJournal(pqxx::work& tx, const std::string& tenant, const std::string& after,
                                              int limit) {
  std::vector<events::Event> out;
  for (const auto& r : tx.exec_prepared("accounts_file_journal_page", tenant, after, limit)) {
    out.push_back({r["event_id"].as<std::string>(), r["topic"].as<std::string>(), "",
                   nlohmann::json::parse(r["payload"].as<std::string>())});
  }
  return out;
}

absl::StatusOr<v1::ListFileItemsResponse> Store::ListFile(const FileQuery& q) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListFileItemsResponse> {
    v1::ListFileItemsResponse out;
    // The open ends: occurred_at is after the epoch (FileEntryOf) and before the year 10000.
    const int64_t from = q.from_us.value_or(0);
    const int64_t until = q.until_us.value_or(int64_t{253402300800} * 1000000);
    int64_t after_us = 0;
    std::string after_source;
    int64_t after_seq = 0;
    if (q.after) {
      after_us = q.after->first;
      const auto dash = q.after->second.rfind('-');
      after_source = q.after->second.substr(0, dash);
      after_seq = std::stoll(q.after->second.substr(dash + 1));
    }
    auto res = tx.exec_prepared("accounts_file_items", q.tenant, q.party_id, q.kind, q.service_id, from, until,
                                after_us, after_source, after_seq, q.page_size + 1);
    for (int i = 0; i < static_cast<int>(res.size()); ++i) {
      if (i == q.page_size) {
        const auto& last = res[i - 1];
        out.mutable_page()->set_next_page_token(
            FileCursor(last["occurred_us"].as<int64_t>(), last["source_event"].as<std::string>()));
        break;
      }
      auto* item = out.add_items();
      item->set_id(res[i]["source_event"].as<std::string>());
      item->set_kind(res[i]["kind"].as<std::string>());
      *item->mutable_occurred_at() = Micros(res[i]["occurred_us"]);
      item->set_service_id(res[i]["service_id"].as<std::string>());
      item->set_link(res[i]["link"].as<std::string>());
      item->set_summary_json(res[i]["summary"].as<std::string>());
    }
    return out;
  });
}

bool Store::IsErased(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  return tx.exec_prepared1("accounts_is_erased", privacy::Tombstone(tenant, party_id))["erased"].as<bool>();
}

Store::Erased Store::ErasePerson(pqxx::work& tx, const std::string& tenant, const std::string& party_id) {
  Erased out;
  for (const auto& r : tx.exec_prepared("accounts_erase_emails", tenant, party_id)) {
    out.emails.push_back(r["email"].as<std::string>());
  }
  for (const auto& email : out.emails) {
    out.rows += tx.exec_prepared0("accounts_erase_invitations_to", tenant, email).affected_rows();
    out.rows += tx.exec_prepared0("accounts_erase_mails_to", tenant, email).affected_rows();
  }
  tx.exec_prepared0("accounts_unname_inviter", tenant, party_id);
  out.documents = tx.exec_prepared0("accounts_erase_documents", tenant, party_id).affected_rows();
  out.parties = tx.exec_prepared0("accounts_erase_party", tenant, party_id).affected_rows();
  for (const char* statement : {"accounts_erase_verified_email", "accounts_erase_access_log",
                                "accounts_erase_file_items", "accounts_erase_file_events"}) {
    out.rows += tx.exec_prepared0(statement, tenant, party_id).affected_rows();
  }
  tx.exec_prepared0("accounts_tombstone", privacy::Tombstone(tenant, party_id));
  return out;
}

namespace {

// A time column selected as microseconds, as RFC 3339 UTC; 0 (not set) as null.
nlohmann::json Time(const pqxx::field& f) {
  if (f.as<int64_t>() == 0) return nullptr;
  return TimeUtil::ToString(Micros(f));
}

nlohmann::json Rfc3339(const google::protobuf::Timestamp& t) { return TimeUtil::ToString(t); }

}  // namespace

absl::StatusOr<common::v1::PersonalData> Store::ExportPersonalData(const std::string& tenant,
                                                                   const std::string& party_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<common::v1::PersonalData> {
    nlohmann::json doc;
    doc["party"] = nullptr;
    if (auto r = tx.exec_prepared("accounts_export_party", tenant, party_id); !r.empty()) {
      const v1::Party p = ToParty(r[0]);
      doc["party"] = {{"id", p.id()},
                      {"kind", "person"},
                      {"display_name", p.display_name()},
                      {"created_at", Rfc3339(p.created_at())}};
    }
    doc["profile"] = nlohmann::json::array();
    const v1::Profile profile = ReadProfile(tx, tenant, party_id);
    for (const auto& a : profile.attributes()) {
      doc["profile"].push_back({{"name", a.name()},
                                {"value", a.value()},
                                {"source", a.source()},
                                {"provider", a.provider()},
                                {"assurance_level", a.assurance_level()},
                                {"vouched_at", a.has_vouched_at() ? Rfc3339(a.vouched_at()) : nullptr},
                                {"updated_at", Rfc3339(a.updated_at())}});
    }
    doc["preferences"] = nullptr;
    if (auto r = tx.exec_prepared("accounts_export_preferences", tenant, party_id); !r.empty()) {
      doc["preferences"] = {{"language", r[0]["language"].as<std::string>()},
                            {"email_messages", r[0]["email_messages"].as<bool>()},
                            {"email_status_changes", r[0]["email_status"].as<bool>()},
                            {"email_reminders", r[0]["email_reminders"].as<bool>()},
                            {"updated_at", Time(r[0]["updated_at"])}};
    }
    // Each consent given is a row of its own, withdrawn or not: the history.
    doc["consents"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_consents", tenant, party_id)) {
      const v1::Consent c = ToConsent(r);
      doc["consents"].push_back({{"id", c.id()},
                                 {"purpose", c.purpose()},
                                 {"text_version", c.text_version()},
                                 {"given_at", Rfc3339(c.given_at())},
                                 {"withdrawn_at", c.has_withdrawn_at() ? Rfc3339(c.withdrawn_at()) : nullptr}});
    }
    doc["memberships"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_export_memberships", tenant, party_id, kMaxExported)) {
      doc["memberships"].push_back({{"organisation_id", r["organisation_id"].as<std::string>()},
                                    {"organisation_name", r["organisation_name"].as<std::string>()},
                                    {"role", r["role"].as<std::string>()},
                                    {"since", Time(r["since"])}});
    }
    doc["invitations"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_export_invitations", tenant, party_id, kMaxExported)) {
      doc["invitations"].push_back({{"id", r["id"].as<std::string>()},
                                    {"organisation_id", r["organisation_id"].as<std::string>()},
                                    {"organisation_name", r["organisation_name"].as<std::string>()},
                                    {"email", r["email"].as<std::string>()},
                                    {"role", r["role"].as<std::string>()},
                                    {"created_at", Time(r["created_at"])},
                                    {"expires_at", Time(r["expires_at"])},
                                    {"answered_at", Time(r["answered_at"])},
                                    {"answer", r["answer"].as<std::string>()}});
    }
    doc["documents"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_documents", tenant, party_id)) {
      const v1::Document d = ToDocument(r);
      doc["documents"].push_back({{"id", d.id()},
                                  {"type", d.type()},
                                  {"label", d.label()},
                                  {"expires_on", d.expires_on()},
                                  {"source", d.source()},
                                  {"submission_id", d.submission_id()},
                                  {"reference", d.reference()},
                                  {"created_at", Rfc3339(d.created_at())}});
    }
    doc["reminders"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_export_reminders", tenant, party_id, kMaxExported)) {
      doc["reminders"].push_back({{"id", r["id"].as<std::string>()},
                                  {"document_id", r["document_id"].as<std::string>()},
                                  {"due_on", r["due_on"].as<std::string>()},
                                  {"state", r["state"].as<std::string>()},
                                  {"sent_at", Time(r["sent_at"])},
                                  {"cancelled_at", Time(r["cancelled_at"])},
                                  {"created_at", Time(r["created_at"])}});
    }
    doc["verified_email"] = nullptr;
    if (auto r = tx.exec_prepared("accounts_export_verified_email", tenant, party_id); !r.empty()) {
      doc["verified_email"] = {{"email", r[0]["email"].as<std::string>()}, {"verified_at", Time(r[0]["verified_at"])}};
    }
    doc["access_log"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_export_access_log", tenant, party_id, kMaxExported)) {
      const std::string kind = r["accessor_kind"].as<std::string>();
      doc["access_log"].push_back({{"occurred_at", Time(r["occurred_at"])},
                                   {"accessor_kind", kind},
                                   // As the listing shows it: which administrator is identity's record.
                                   {"accessor_id", kind == "administrator" ? "" : r["accessor_id"].as<std::string>()},
                                   {"accessor_name", r["accessor_name"].as<std::string>()},
                                   {"resource", r["resource"].as<std::string>()},
                                   {"resource_id", r["resource_id"].as<std::string>()},
                                   {"reference", r["reference"].as<std::string>()},
                                   {"action", r["action"].as<std::string>()},
                                   {"purpose", r["purpose"].as<std::string>()}});
    }
    doc["file"] = nlohmann::json::array();
    for (const auto& r : tx.exec_prepared("accounts_export_file_items", tenant, party_id, kMaxExported)) {
      doc["file"].push_back({{"id", r["source_event"].as<std::string>()},
                             {"kind", r["kind"].as<std::string>()},
                             {"occurred_at", Time(r["occurred_at"])},
                             {"service_id", r["service_id"].as<std::string>()},
                             {"link", r["link"].as<std::string>()},
                             {"summary", nlohmann::json::parse(r["summary"].as<std::string>())}});
    }
    common::v1::PersonalData out;
    out.set_service("accounts");
    out.set_json(doc.dump());
    return out;
  });
}

}  // namespace stadtportal::accounts

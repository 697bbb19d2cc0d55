#include "services/submission/store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "libs/db/row.h"
#include "libs/events/events.h"
#include "libs/log/log.h"
#include "libs/metrics/metrics.h"
#include "libs/status/status.h"
#include "services/submission/kpi.h"
#include "services/submission/reference.h"

namespace stadtportal::submission {
namespace {

using db::Micros;

constexpr char kServiceColumns[] =
    "tenant, id, name_de, name_en, description_de, description_en, category, department, "
    "required_assurance_level, fee_minor, fee_currency, fee_per_unit, retention_days, form_version, destination, "
    "leika, "
    "retention_years, retention_legal_basis, lasting_value";

// Draft columns (d = drafts, o = online_services).
constexpr char kDraftColumns[] =
    "d.id::text AS id, d.service_id, d.form_version, d.version, d.data::text AS data, "
    "array_to_string(d.read_only, ',') AS read_only, d.last_step, "
    "(extract(epoch FROM d.created_at) * 1000000)::bigint AS created_at, "
    "(extract(epoch FROM d.updated_at) * 1000000)::bigint AS updated_at, "
    "(extract(epoch FROM d.expires_at) * 1000000)::bigint AS expires_at, o.name_de, o.name_en, d.seq";

constexpr char kAttachmentColumns[] =
    "id::text AS id, field, filename, media_type, size, sha256, "
    "(extract(epoch FROM created_at) * 1000000)::bigint AS created_at";

// Submission columns (s = submissions, o = online_services).
constexpr char kSubmissionColumns[] =
    "s.id::text AS id, s.reference, s.service_id, o.name_de, o.name_en, s.form_version, s.status, "
    "s.data::text AS data, s.fee_minor, s.fee_currency, "
    "(extract(epoch FROM s.submitted_at) * 1000000)::bigint AS submitted_at, s.seq, s.delivery_delayed, "
    "(extract(epoch FROM s.closed_at) * 1000000)::bigint AS closed_at, "
    "(extract(epoch FROM s.retain_until) * 1000000)::bigint AS retain_until";

v1::OnlineService ToService(const pqxx::row& r) {
  v1::OnlineService s;
  s.mutable_tenant()->set_key(r["tenant"].as<std::string>());
  s.set_id(r["id"].as<std::string>());
  s.mutable_name()->set_de(r["name_de"].as<std::string>());
  s.mutable_name()->set_en(r["name_en"].as<std::string>());
  s.mutable_description()->set_de(r["description_de"].as<std::string>());
  s.mutable_description()->set_en(r["description_en"].as<std::string>());
  s.set_category(r["category"].as<std::string>());
  s.set_department(r["department"].as<std::string>());
  const auto level = r["required_assurance_level"].as<std::string>();
  s.set_required_assurance_level(level == "high"          ? v1::ASSURANCE_LEVEL_HIGH
                                 : level == "substantial" ? v1::ASSURANCE_LEVEL_SUBSTANTIAL
                                                          : v1::ASSURANCE_LEVEL_LOW);
  s.mutable_fee()->set_amount_minor(r["fee_minor"].as<int64_t>());
  s.mutable_fee()->set_currency(r["fee_currency"].as<std::string>());
  s.set_fee_per_unit(r["fee_per_unit"].as<bool>());
  s.set_retention_days(r["retention_days"].as<int>());
  s.set_form_version(r["form_version"].as<int>());
  s.set_destination(r["destination"].as<std::string>());
  s.set_leika(r["leika"].as<std::string>());
  s.set_retention_years(r["retention_years"].as<int>());
  s.set_retention_legal_basis(r["retention_legal_basis"].as<std::string>());
  s.set_lasting_value(r["lasting_value"].as<bool>());
  return s;
}

v1::Attachment ToAttachment(const pqxx::row& r) {
  v1::Attachment a;
  a.set_id(r["id"].as<std::string>());
  a.set_field(r["field"].as<std::string>());
  a.set_filename(r["filename"].as<std::string>());
  a.set_media_type(r["media_type"].as<std::string>());
  a.set_size(r["size"].as<int64_t>());
  a.set_sha256(r["sha256"].as<std::string>());
  *a.mutable_created_at() = Micros(r["created_at"]);
  return a;
}

v1::Draft ToDraft(const pqxx::row& r) {
  v1::Draft d;
  d.set_id(r["id"].as<std::string>());
  d.set_service_id(r["service_id"].as<std::string>());
  d.set_form_version(r["form_version"].as<int>());
  d.set_version(r["version"].as<int64_t>());
  d.set_data_json(r["data"].as<std::string>());
  for (absl::string_view f : absl::StrSplit(r["read_only"].as<std::string>(), ',', absl::SkipEmpty())) {
    d.add_read_only_fields(std::string(f));
  }
  d.set_last_completed_step(r["last_step"].as<std::string>());
  *d.mutable_created_at() = Micros(r["created_at"]);
  *d.mutable_updated_at() = Micros(r["updated_at"]);
  *d.mutable_expires_at() = Micros(r["expires_at"]);
  d.mutable_service_name()->set_de(r["name_de"].as<std::string>());
  d.mutable_service_name()->set_en(r["name_en"].as<std::string>());
  return d;
}

v1::Submission ToSubmission(const pqxx::row& r) {
  v1::Submission s;
  s.set_id(r["id"].as<std::string>());
  s.set_reference(r["reference"].as<std::string>());
  s.set_service_id(r["service_id"].as<std::string>());
  s.mutable_service_name()->set_de(r["name_de"].as<std::string>());
  s.mutable_service_name()->set_en(r["name_en"].as<std::string>());
  s.set_form_version(r["form_version"].as<int>());
  s.set_status(r["status"].as<std::string>());
  s.set_data_json(r["data"].as<std::string>());
  s.mutable_fee()->set_amount_minor(r["fee_minor"].as<int64_t>());
  s.mutable_fee()->set_currency(r["fee_currency"].as<std::string>());
  *s.mutable_submitted_at() = Micros(r["submitted_at"]);
  s.set_withdrawable(Withdrawable(s.status()));
  s.set_delivery_delayed(r["delivery_delayed"].as<bool>());
  if (!r["closed_at"].is_null()) {
    *s.mutable_closed_at() = Micros(r["closed_at"]);
    *s.mutable_retain_until() = Micros(r["retain_until"]);
  }
  return s;
}

// An attachment with its bytes (the attachment columns and `content`).
v1::AttachmentContent ToContent(const pqxx::row& r) {
  v1::AttachmentContent out;
  *out.mutable_attachment() = ToAttachment(r);
  out.set_content(pqxx::binarystring(r["content"]).str());
  return out;
}

// An online service with form_json of its current version.
absl::StatusOr<v1::OnlineService> LoadService(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  auto res = tx.exec_prepared("submission_get_online_service", tenant, id);
  if (res.empty()) return absl::NotFoundError("online service not found");
  v1::OnlineService out = ToService(res[0]);
  out.set_form_json(res[0]["form_json"].as<std::string>());
  return out;
}

// Publishes that a submission goes to its department now (submitted without a fee, or
// paid), naming the destination its online service delivers to.
void PublishReadyForDelivery(pqxx::work& tx, const std::string& tenant, const std::string& id,
                             const std::string& reference, const std::string& party_id, const std::string& service_id,
                             const std::string& payment_id) {
  events::v1::SubmissionReadyForDelivery e;
  e.set_tenant(tenant);
  e.set_submission_id(id);
  e.set_reference(reference);
  e.set_party_id(party_id);
  e.set_service_id(service_id);
  e.set_destination(tx.exec_prepared("submission_destination", tenant, service_id)[0]["destination"].as<std::string>());
  e.set_payment_id(payment_id);
  events::Publish(tx, id, e);
}

prometheus::Family<prometheus::Counter>& FunnelTotal() {
  static auto& family = metrics::CounterFamily("stadtportal_submission_funnel_total",
                                               "Funnel events written, by online service and event.");
  return family;
}

prometheus::Family<prometheus::Histogram>& Ratings() {
  static auto& family = metrics::HistogramFamily(
      "stadtportal_submission_rating", "Satisfaction ratings given after submitting (1 to 5), by online service.");
  return family;
}

prometheus::Histogram& RatingOf(const std::string& service_id) {
  return Ratings().Add({{"online_service", service_id}}, prometheus::Histogram::BucketBoundaries{1, 2, 3, 4});
}

// Every event of a service exported from the start (at 0). Only services registered so
// are counted: a view reported for an unknown id adds no series (bounded labels). The
// label is online_service: Prometheus gives every scraped series the part's own
// `service` label.
void RegisterFunnel(const std::string& service_id) {
  for (const char* event :
       {"viewed", "draft_started", "step_completed", "saved", "validation_failed", "submitted", "abandoned"}) {
    FunnelTotal().Add({{"online_service", service_id}, {"event", event}});
  }
  RatingOf(service_id);
}

void Funnel(pqxx::work& tx, const std::string& tenant, const FunnelEvent& e) {
  tx.exec_prepared("submission_funnel", tenant, e.service_id, e.event, e.draft_id, e.step, e.field, e.rule, e.count);
  // Counted when written (a rolled-back transaction's events stay counted: rare, and the
  // KPIs read the table, not the counter).
  const prometheus::Labels labels = {{"online_service", e.service_id}, {"event", e.event}};
  if (FunnelTotal().Has(labels)) FunnelTotal().Add(labels).Increment(e.count);
}

// Whether `stored_sha` is that of `definition` without the members later releases added
// to published versions: the service key, then the retention rule.
bool PublishedWithout(const nlohmann::json& definition, const std::string& stored_sha) {
  auto without_retention = definition;
  for (const char* member : {"retention_years", "retention_legal_basis", "lasting_value"}) {
    without_retention.erase(member);
  }
  auto without_both = without_retention;
  without_both.erase("leika");
  auto without_key = definition;
  without_key.erase("leika");
  for (const auto* older : {&without_retention, &without_both, &without_key}) {
    if (stored_sha == DefinitionSha256(*older)) return true;
  }
  return false;
}

// Inserts one version of a definition and points the service at the newest version.
// `require_next`: the version must be exactly the current one + 1 (admin publishing).
absl::Status UpsertVersion(pqxx::work& tx, const Definition& d, const std::string& published_by, bool require_next) {
  const auto& j = d.json;
  const auto current = tx.exec_prepared("submission_current_version", d.tenant, d.id);
  const int current_version = current.empty() ? 0 : current[0]["form_version"].as<int>();
  if (require_next && d.version != current_version + 1) {
    return status::Stale("version", absl::StrCat("expected ", current_version + 1));
  }
  if (d.version >= current_version) {
    const auto& fee = j["fee"];
    const std::string unit_field = fee.value("per_unit_field", "");
    tx.exec_prepared("submission_upsert_service", d.tenant, d.id, j["name"]["de"].get<std::string>(),
                     j["name"]["en"].get<std::string>(), j["description"]["de"].get<std::string>(),
                     j["description"]["en"].get<std::string>(), j["category"].get<std::string>(),
                     j["department"].get<std::string>(), j["required_assurance_level"].get<std::string>(),
                     fee["amount_minor"].get<int64_t>(), fee["currency"].get<std::string>(), !unit_field.empty(),
                     // retention_days is no longer a rule; definitions without it keep the column filled.
                     j.value("retention_days", j["retention_years"].get<int>() * 365),
                     j["destination"].get<std::string>(), unit_field, j["leika"].get<std::string>(),
                     j["retention_years"].get<int>(), j["retention_legal_basis"].get<std::string>(),
                     j["lasting_value"].get<bool>());
  }
  tx.exec_prepared("submission_insert_form_version", d.tenant, d.id, d.version, j.dump(), d.sha256, published_by);
  const auto stored = tx.exec_prepared("submission_form_version_sha", d.tenant, d.id, d.version);
  const auto stored_sha = stored[0]["sha256"].as<std::string>();
  if (stored_sha != d.sha256) {
    // A version published before definitions carried their service key, or their
    // retention rule, is the same definition without them. Its stored copy stays as
    // published (so the previous release still starts); the service row has the key and
    // the rule. Any other change is refused.
    if (!PublishedWithout(j, stored_sha)) {
      return absl::FailedPreconditionError(absl::StrCat("catalogue: ", d.tenant, "/", d.id, " version ", d.version,
                                                        " differs from the published one; publish a new version"));
    }
  }
  tx.exec_prepared("submission_set_form_version", d.tenant, d.id, d.version);
  if (d.version > current_version) {
    events::v1::CatalogueChanged e;
    e.set_tenant(d.tenant);
    e.set_service_id(d.id);
    e.set_form_version(d.version);
    events::Publish(tx, d.id, e);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Draft> LoadDraft(pqxx::work& tx, const Owner& owner, const std::string& id) {
  auto res = tx.exec_prepared("submission_get_draft", owner.tenant, owner.party_id, id);
  if (res.empty()) return absl::NotFoundError("draft not found");
  v1::Draft d = ToDraft(res[0]);
  for (const auto& row : tx.exec_prepared("submission_draft_attachments", id)) *d.add_attachments() = ToAttachment(row);
  return d;
}

// The status history, oldest first.
void AddHistory(pqxx::work& tx, v1::Submission& s) {
  for (const auto& row : tx.exec_prepared("submission_history", s.id())) {
    auto* h = s.add_history();
    h->set_status(row["status"].as<std::string>());
    *h->mutable_at() = Micros(row["at"]);
    h->set_note(row["note"].as<std::string>());
  }
}

absl::StatusOr<v1::Submission> LoadSubmission(pqxx::work& tx, const Owner& owner, const std::string& id) {
  auto res = tx.exec_prepared("submission_get_submission", owner.tenant, owner.party_id, id);
  if (res.empty()) return absl::NotFoundError("submission not found");
  v1::Submission s = ToSubmission(res[0]);
  for (const auto& row : tx.exec_prepared("submission_submission_attachments", id)) {
    *s.add_attachments() = ToAttachment(row);
  }
  AddHistory(tx, s);
  return s;
}

std::string ArrayLiteral(const std::vector<std::string>& ids) {
  return absl::StrCat("{", absl::StrJoin(ids, ","), "}");
}

// The submission with its files, as the department receives it.
absl::StatusOr<v1::DeliverySnapshot> LoadSnapshot(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  v1::DeliverySnapshot out;
  auto res = tx.exec_prepared("submission_snapshot", tenant, id);
  if (res.empty()) return absl::NotFoundError("submission not found");
  *out.mutable_submission() = ToSubmission(res[0]);
  out.set_destination(res[0]["destination"].as<std::string>());
  out.set_party_id(res[0]["party_id"].is_null() ? "" : res[0]["party_id"].as<std::string>());
  for (const auto& f : tx.exec_prepared("submission_files", id)) {
    auto* file = out.add_files();
    *file = ToContent(f);
    *out.mutable_submission()->add_attachments() = file->attachment();
  }
  return out;
}

// The retention rule of a submission as docs/data-protection.md names it.
std::string RetentionRule(int years, bool lasting_value, bool open) {
  return absl::StrCat(open ? "open procedure; once closed, kept " : "closed submission: kept ", years,
                      years == 1 ? " year" : " years", " after closing, then ",
                      lasting_value ? "offered to the archive and anonymised" : "anonymised");
}

// What a status change names of its submission.
struct Subject {
  std::string tenant;
  std::string id;
  std::string reference;
  std::string party_id;
  std::string service_id;
};

Subject SubjectOf(const std::string& tenant, const std::string& id, const pqxx::row& lock) {
  // An anonymised submission names no party.
  return {tenant, id, lock["reference"].as<std::string>(),
          lock["party_id"].is_null() ? "" : lock["party_id"].as<std::string>(), lock["service_id"].as<std::string>()};
}

// A status the submission takes (its column is written by the caller): the history row
// and, in the same transaction, submission.status_changed at the history's time.
void RecordStatus(pqxx::work& tx, const Subject& s, const std::string& status, const std::string& previous,
                  const std::string& note) {
  const pqxx::row history = tx.exec_prepared1("submission_add_history", s.id, status, note);
  events::v1::SubmissionStatusChanged e;
  e.set_tenant(s.tenant);
  e.set_submission_id(s.id);
  e.set_reference(s.reference);
  e.set_party_id(s.party_id);
  e.set_service_id(s.service_id);
  e.set_status(status);
  e.set_previous_status(previous);
  *e.mutable_occurred_at() = Micros(history["at"]);
  if (!s.party_id.empty()) events::Publish(tx, s.id, e);  // An anonymised one is nobody's to see.
}

// Sets the status, with its history row and its event (RecordStatus); a status that
// closes the procedure starts the retention (closed_at, retain_until).
void Move(pqxx::work& tx, const Subject& s, const std::string& status, const std::string& previous,
          const std::string& note) {
  tx.exec_prepared("submission_set_status", s.id, status, Closed(status));
  RecordStatus(tx, s, status, previous, note);
}

// The delivery reached `status` (delivered, received by the department): the delay ends;
// a later status stays.
absl::Status Reached(pqxx::work& tx, const std::string& tenant, const std::string& id, const std::string& status) {
  tx.exec_prepared("submission_set_delayed", tenant, id, false);
  auto lock = tx.exec_prepared("submission_lock_any", tenant, id);
  if (lock.empty()) return absl::OkStatus();  // Not ours (another tenant's deployment).
  if (!MayMove(Actor::kDelivery, lock[0]["status"].as<std::string>(), status)) return absl::OkStatus();
  return Store::ChangeStatus(tx, Actor::kDelivery, tenant, id, status, "");
}

// The end of a submission's retention (and of one no rule keeps when its person asks for
// erasure): files deleted; party, account, answers, status notes and the feedback comment
// removed; service, form version, reference, dates, status, fee and rating stay.
void Anonymise(pqxx::work& tx, const std::string& id, bool handed_over) {
  tx.exec_prepared("submission_delete_files", id);
  tx.exec_prepared("submission_anonymise_history", id);
  tx.exec_prepared("submission_anonymise_feedback", id);
  tx.exec_prepared("submission_anonymise", id, handed_over);
}

// A submission a retention rule still keeps (RetainedRecords; the erasure leaves exactly
// these): every one not anonymised yet — open ones until they close, closed ones until
// their retain_until. Since the erasure's complement is the anonymised ones, which name
// no party, the erasure anonymises a submission only if this rule is narrowed.
constexpr char kRetained[] = "s.anonymised_at IS NULL";

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  Kpis::Prepare(conn);
  const std::string service_cols = kServiceColumns;
  // $2: search text ('' = all), $3: category ('' = all), $4: keyset cursor, $5: limit,
  // $6: federal service key ('' = all). The text is looked for in the names and
  // descriptions and in the labels of the choices the current form offers (a citizen
  // looking for "Geburtsurkunde" finds the certificate service that offers it).
  conn.prepare("submission_list_online_services",
               "SELECT " + service_cols +
                   " FROM online_services s WHERE tenant = $1 AND form_version > 0"
                   " AND ($2 = '' OR strpos(lower(name_de || ' ' || name_en || ' ' || description_de || ' ' ||"
                   " description_en), lower($2)) > 0"
                   " OR EXISTS (SELECT 1 FROM form_versions f, jsonb_path_query(f.definition,"
                   " 'lax $.form.steps[*].fields[*].options[*].label.*') AS choice WHERE f.tenant = s.tenant"
                   " AND f.service_id = s.id AND f.version = s.form_version"
                   " AND strpos(lower(choice #>> '{}'), lower($2)) > 0))"
                   " AND ($3 = '' OR category = $3) AND ($6 = '' OR leika = $6) AND id > $4 ORDER BY id LIMIT $5");
  conn.prepare("submission_get_online_service",
               "SELECT " + service_cols +
                   ", (SELECT definition::text FROM form_versions f WHERE f.tenant = s.tenant AND f.service_id = s.id"
                   " AND f.version = s.form_version) AS form_json FROM online_services s WHERE tenant = $1 AND id = $2"
                   " AND form_version > 0");
  conn.prepare("submission_current_version",
               "SELECT form_version FROM online_services WHERE tenant = $1 AND id = $2 FOR UPDATE");
  conn.prepare("submission_upsert_service",
               "INSERT INTO online_services (tenant, id, name_de, name_en, description_de, description_en, category,"
               " department, required_assurance_level, fee_minor, fee_currency, fee_per_unit, retention_days,"
               " destination, fee_unit_field, leika, retention_years, retention_legal_basis, lasting_value)"
               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
               " ON CONFLICT (tenant, id) DO UPDATE SET name_de = $3, name_en = $4, description_de = $5,"
               " description_en = $6, category = $7, department = $8, required_assurance_level = $9,"
               " fee_minor = $10, fee_currency = $11, fee_per_unit = $12, retention_days = $13, destination = $14,"
               " fee_unit_field = $15, leika = $16, retention_years = $17, retention_legal_basis = $18,"
               " lasting_value = $19");
  conn.prepare("submission_insert_form_version",
               "INSERT INTO form_versions (tenant, service_id, version, definition, sha256, published_by)"
               " VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT DO NOTHING");
  conn.prepare("submission_form_version_sha",
               "SELECT sha256 FROM form_versions WHERE tenant = $1 AND service_id = $2 AND version = $3");
  conn.prepare("submission_set_form_version",
               "UPDATE online_services SET form_version = greatest(form_version, $3) WHERE tenant = $1 AND id = $2");
  conn.prepare("submission_get_definition",
               "SELECT definition::text AS definition FROM form_versions WHERE tenant = $1 AND service_id = $2"
               " AND version = $3");
  conn.prepare("submission_service_ids", "SELECT DISTINCT id FROM online_services");
  conn.prepare("submission_funnel",
               "INSERT INTO funnel_events (tenant, service_id, event, draft_id, step, field, rule, count)"
               " VALUES ($1, $2, $3, nullif($4, '')::uuid, $5, $6, $7, $8)");

  const std::string draft_from =
      std::string(" FROM drafts d JOIN online_services o ON o.tenant = d.tenant AND o.id = d.service_id");
  conn.prepare("submission_insert_draft",
               "INSERT INTO drafts (id, tenant, party_id, account_id, service_id, form_version, data, read_only,"
               " expires_at) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6::jsonb, $7::text[],"
               " now() + make_interval(hours => $8)) RETURNING id::text AS id");
  conn.prepare("submission_get_draft", std::string("SELECT ") + kDraftColumns + draft_from +
                                           " WHERE d.tenant = $1 AND d.party_id = $2 AND d.id = $3");
  conn.prepare("submission_update_draft",
               "UPDATE drafts SET data = $5::jsonb, version = version + 1, updated_at = now(),"
               " last_step = CASE WHEN $6 = '' THEN last_step ELSE $6 END,"
               " expires_at = now() + make_interval(hours => $7)"
               " WHERE tenant = $1 AND party_id = $2 AND id = $3 AND version = $4 RETURNING id");
  conn.prepare("submission_list_drafts", std::string("SELECT ") + kDraftColumns + draft_from +
                                             " WHERE d.tenant = $1 AND d.party_id = $2 AND d.seq < $3"
                                             " ORDER BY d.seq DESC LIMIT $4");
  conn.prepare("submission_delete_draft",
               "DELETE FROM drafts WHERE tenant = $1 AND party_id = $2 AND id = $3 RETURNING service_id");
  conn.prepare(
      "submission_purge_drafts",
      "DELETE FROM drafts WHERE id IN (SELECT id FROM drafts WHERE expires_at < $2::timestamptz ORDER BY expires_at"
      " LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING tenant, service_id, id::text AS id");
  conn.prepare("submission_lock_draft",
               "SELECT version, service_id FROM drafts WHERE tenant = $1 AND party_id = $2 AND id = $3 FOR UPDATE");

  conn.prepare("submission_draft_attachments", std::string("SELECT ") + kAttachmentColumns +
                                                   " FROM attachments WHERE draft_id = $1 ORDER BY created_at, id");
  conn.prepare("submission_submission_attachments", std::string("SELECT ") + kAttachmentColumns +
                                                        " FROM attachments WHERE submission_id = $1"
                                                        " ORDER BY created_at, id");
  conn.prepare("submission_count_attachments",
               "SELECT count(*) AS files FROM attachments WHERE draft_id = $1 AND field = $2");
  conn.prepare("submission_insert_attachment",
               "INSERT INTO attachments (id, tenant, party_id, draft_id, field, filename, media_type, size, sha256,"
               " content) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING " +
                   std::string(kAttachmentColumns));
  conn.prepare("submission_get_attachment", std::string("SELECT ") + kAttachmentColumns +
                                                ", content FROM attachments WHERE tenant = $1 AND party_id = $2"
                                                " AND id = $3");
  conn.prepare("submission_delete_attachment",
               "DELETE FROM attachments WHERE tenant = $1 AND party_id = $2 AND id = $3 AND draft_id IS NOT NULL"
               " RETURNING id");

  const std::string submission_from =
      std::string(" FROM submissions s JOIN online_services o ON o.tenant = s.tenant AND o.id = s.service_id");
  conn.prepare("submission_by_key", std::string("SELECT ") + kSubmissionColumns + ", s.draft_id::text AS draft_id" +
                                        submission_from +
                                        " WHERE s.tenant = $1 AND s.party_id = $2 AND s.idempotency_key = $3");
  conn.prepare("submission_next_reference",
               "INSERT INTO reference_counters (tenant, year, last) VALUES ($1, extract(year FROM now())::int, 1)"
               " ON CONFLICT (tenant, year) DO UPDATE SET last = reference_counters.last + 1 RETURNING year, last");
  conn.prepare("submission_insert_submission",
               "INSERT INTO submissions (id, tenant, party_id, account_id, service_id, form_version, reference,"
               " status, data, fee_minor, fee_currency, draft_id, idempotency_key)"
               " SELECT gen_random_uuid(), d.tenant, d.party_id, $3, d.service_id, d.form_version, $4, $5, $6::jsonb,"
               " $7, $8, d.id, $9 FROM drafts d WHERE d.tenant = $1 AND d.id = $2 RETURNING id::text AS id");
  conn.prepare("submission_add_history",
               "INSERT INTO submission_history (submission_id, status, note) VALUES ($1, $2, $3)"
               " RETURNING (extract(epoch FROM at) * 1000000)::bigint AS at");
  conn.prepare("submission_move_attachments",
               "UPDATE attachments SET submission_id = $2, draft_id = NULL WHERE draft_id = $1");
  conn.prepare("submission_remove_submitted_draft", "DELETE FROM drafts WHERE id = $1");
  conn.prepare("submission_get_submission", std::string("SELECT ") + kSubmissionColumns + submission_from +
                                                " WHERE s.tenant = $1 AND s.party_id = $2 AND s.id = $3");
  conn.prepare("submission_history",
               "SELECT status, (extract(epoch FROM at) * 1000000)::bigint AS at, note FROM submission_history"
               " WHERE submission_id = $1 ORDER BY seq");
  // "My submissions", newest first: served by submissions_mine / submissions_mine_status.
  // $5: '' all, 'open' or 'closed' (the archive view).
  const std::string archived = " AND ($5 = '' OR (s.closed_at IS NOT NULL) = ($5 = 'closed'))";
  conn.prepare("submission_list_submissions", std::string("SELECT ") + kSubmissionColumns + submission_from +
                                                  " WHERE s.tenant = $1 AND s.party_id = $2 AND s.seq < $3" + archived +
                                                  " ORDER BY s.seq DESC LIMIT $4");
  conn.prepare("submission_list_submissions_by_status",
               std::string("SELECT ") + kSubmissionColumns + submission_from +
                   " WHERE s.tenant = $1 AND s.party_id = $2 AND s.status = $6 AND s.seq < $3" + archived +
                   " ORDER BY s.seq DESC LIMIT $4");
  conn.prepare("submission_snapshot", std::string("SELECT ") + kSubmissionColumns +
                                          ", o.destination, s.party_id::text AS party_id" + submission_from +
                                          " WHERE s.tenant = $1 AND s.id = $2::uuid");
  conn.prepare("submission_files",
               std::string("SELECT ") + kAttachmentColumns +
                   ", content FROM attachments WHERE submission_id = $1::uuid ORDER BY created_at, id");
  conn.prepare("submission_record_payment_failure",
               "INSERT INTO payment_failures (tenant, service_id, submission_id, provider, outcome, day)"
               " SELECT tenant, service_id, id, $3, $4, ($5::timestamptz AT TIME ZONE 'UTC')::date FROM submissions"
               " WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("submission_lock_any",
               "SELECT status, reference, party_id::text AS party_id, service_id FROM submissions"
               " WHERE tenant = $1 AND id = $2::uuid FOR UPDATE");
  conn.prepare("submission_set_delayed",
               "UPDATE submissions SET delivery_delayed = $3, updated_at = now() WHERE tenant = $1 AND id = $2::uuid");
  conn.prepare("submission_destination", "SELECT destination FROM online_services WHERE tenant = $1 AND id = $2");
  // $3: the status closes the procedure (Closed): the retention runs from now.
  conn.prepare("submission_set_status",
               "UPDATE submissions s SET status = $2, updated_at = now(),"
               " closed_at = CASE WHEN $3 THEN now() END,"
               " retain_until = CASE WHEN $3 THEN now() + make_interval(years => o.retention_years) END"
               " FROM online_services o WHERE s.id = $1 AND o.tenant = s.tenant AND o.id = s.service_id");
  conn.prepare("submission_lock_submission",
               "SELECT status, service_id, reference FROM submissions WHERE tenant = $1 AND party_id = $2 AND id = $3"
               " FOR UPDATE");
  // The retention job: the oldest submission whose retention ended ($1), one at a time;
  // $2: records of lasting value may be handed over (an archive folder is configured).
  conn.prepare("submission_expired",
               "SELECT s.tenant, s.id::text AS id, o.lasting_value AND s.handed_over_at IS NULL AS hand_over,"
               " o.retention_years, o.retention_legal_basis FROM submissions s"
               " JOIN online_services o ON o.tenant = s.tenant AND o.id = s.service_id"
               " WHERE s.anonymised_at IS NULL AND s.retain_until <= $1::timestamptz"
               " AND ($2 OR NOT o.lasting_value OR s.handed_over_at IS NOT NULL)"
               " ORDER BY s.retain_until LIMIT 1 FOR UPDATE OF s SKIP LOCKED");
  conn.prepare("submission_waiting_for_archive",
               "SELECT count(*) AS waiting FROM submissions s"
               " JOIN online_services o ON o.tenant = s.tenant AND o.id = s.service_id"
               " WHERE s.anonymised_at IS NULL AND s.retain_until <= $1::timestamptz AND o.lasting_value"
               " AND s.handed_over_at IS NULL");
  // Party, answers, notes, comments and files go; service, dates, status and fee stay.
  conn.prepare("submission_anonymise",
               "UPDATE submissions SET party_id = NULL, account_id = NULL, data = '{}', idempotency_key = id::text,"
               " anonymised_at = now(), handed_over_at = CASE WHEN $2 THEN now() ELSE handed_over_at END"
               " WHERE id = $1::uuid");
  conn.prepare("submission_anonymise_history",
               "UPDATE submission_history SET note = '' WHERE submission_id = $1::uuid AND note <> ''");
  conn.prepare("submission_anonymise_feedback",
               "UPDATE feedback SET comment = '' WHERE submission_id = $1::uuid AND comment <> ''");
  conn.prepare("submission_delete_files", "DELETE FROM attachments WHERE submission_id = $1::uuid");
  conn.prepare("submission_retained",
               "SELECT s.id::text AS id, s.reference, s.service_id, o.retention_years, o.retention_legal_basis,"
               " o.lasting_value, coalesce(to_char(s.retain_until AT TIME ZONE 'UTC', 'YYYY-MM-DD'), '') AS until"
               " FROM submissions s JOIN online_services o ON o.tenant = s.tenant AND o.id = s.service_id"
               " WHERE s.tenant = $1 AND s.party_id = $2 AND " +
                   std::string(kRetained) + " ORDER BY s.seq DESC LIMIT $3");
  // The export: the party's own records, oldest first, each kind bounded ($3).
  conn.prepare("submission_export_drafts", std::string("SELECT ") + kDraftColumns + draft_from +
                                               " WHERE d.tenant = $1 AND d.party_id = $2 ORDER BY d.seq LIMIT $3");
  conn.prepare("submission_export_submissions", std::string("SELECT ") + kSubmissionColumns + submission_from +
                                                    " WHERE s.tenant = $1 AND s.party_id = $2 ORDER BY s.seq LIMIT $3");
  conn.prepare("submission_export_attachments",
               std::string("SELECT ") + kAttachmentColumns +
                   ", coalesce(draft_id::text, '') AS draft_id, coalesce(submission_id::text, '') AS submission_id"
                   " FROM attachments WHERE tenant = $1 AND party_id = $2 ORDER BY created_at, id LIMIT $3");
  conn.prepare("submission_export_history",
               "SELECT h.submission_id::text AS submission_id, h.status, h.note,"
               " (extract(epoch FROM h.at) * 1000000)::bigint AS at FROM submission_history h"
               " JOIN submissions s ON s.id = h.submission_id WHERE s.tenant = $1 AND s.party_id = $2"
               " ORDER BY h.submission_id, h.seq LIMIT $3");
  conn.prepare("submission_export_feedback",
               "SELECT f.submission_id::text AS submission_id, f.rating, f.comment,"
               " (extract(epoch FROM f.given_at) * 1000000)::bigint AS given_at FROM feedback f"
               " JOIN submissions s ON s.id = f.submission_id WHERE s.tenant = $1 AND s.party_id = $2 LIMIT $3");
  // The erasure: drafts go with their files (ON DELETE CASCADE); submissions no rule
  // keeps are anonymised; an organisation's records forget the account that wrote them.
  conn.prepare("submission_erase_drafts",
               "DELETE FROM drafts WHERE tenant = $1 AND party_id = $2 RETURNING id::text AS id, service_id");
  conn.prepare("submission_erase_unretained",
               "SELECT s.id::text AS id FROM submissions s WHERE s.tenant = $1 AND s.party_id = $2 AND NOT (" +
                   std::string(kRetained) + ") ORDER BY s.id FOR UPDATE");
  conn.prepare("submission_erase_draft_author",
               "UPDATE drafts SET account_id = NULL WHERE tenant = $1 AND account_id = $2");
  conn.prepare("submission_erase_submission_author",
               "UPDATE submissions SET account_id = NULL WHERE tenant = $1 AND account_id = $2"
               " AND party_id IS DISTINCT FROM $2");
  conn.prepare("submission_give_feedback",
               "WITH s AS (SELECT id, service_id FROM submissions WHERE tenant = $1 AND party_id = $2 AND id = $3),"
               " f AS (INSERT INTO feedback (submission_id, rating, comment) SELECT id, $4, $5 FROM s"
               " RETURNING (extract(epoch FROM given_at) * 1000000)::bigint AS given_at)"
               " SELECT f.given_at, s.service_id FROM f, s");
}

absl::Status Store::SyncCatalogue(const std::vector<Definition>& definitions) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    for (const auto& d : definitions) {
      if (auto s = UpsertVersion(tx, d, "catalogue", false); !s.ok()) return s;
    }
    for (const auto& row : tx.exec_prepared("submission_service_ids")) RegisterFunnel(row["id"].as<std::string>());
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::OnlineService> Store::Publish(const Definition& d, const std::string& published_by) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::OnlineService> {
    if (auto s = UpsertVersion(tx, d, published_by, true); !s.ok()) return s;
    RegisterFunnel(d.id);
    return LoadService(tx, d.tenant, d.id);
  });
}

absl::StatusOr<v1::ListOnlineServicesResponse> Store::ListOnlineServices(const CatalogueQuery& q) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListOnlineServicesResponse> {
    v1::ListOnlineServicesResponse out;
    // One row more than the page tells whether another page follows.
    auto res = tx.exec_prepared("submission_list_online_services", q.tenant, q.text, q.category, q.page.after,
                                q.page.size + 1, q.leika);
    for (const auto& row : res) {
      if (out.services_size() == q.page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(out.services(q.page.size - 1).id()));
        break;
      }
      *out.add_services() = ToService(row);
    }
    return out;
  });
}

absl::StatusOr<v1::OnlineService> Store::GetOnlineService(const std::string& tenant, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) { return LoadService(tx, tenant, id); });
}

absl::StatusOr<nlohmann::json> Store::GetDefinition(const std::string& tenant, const std::string& service_id,
                                                    int version) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<nlohmann::json> {
    auto res = tx.exec_prepared("submission_get_definition", tenant, service_id, version);
    if (res.empty()) return absl::NotFoundError("form version not found");
    return nlohmann::json::parse(res[0]["definition"].as<std::string>());
  });
}

absl::Status Store::RecordFunnel(const std::string& tenant, const std::vector<FunnelEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  return pool_.Transact([&](pqxx::work& tx) {
    for (const auto& e : events) Funnel(tx, tenant, e);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Draft> Store::CreateDraft(const Owner& owner, const std::string& account_id,
                                             const std::string& service_id, int form_version,
                                             const nlohmann::json& data, const std::vector<std::string>& read_only,
                                             std::chrono::hours lifetime) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Draft> {
    auto res = tx.exec_prepared("submission_insert_draft", owner.tenant, owner.party_id, account_id, service_id,
                                form_version, data.dump(), ArrayLiteral(read_only), static_cast<int>(lifetime.count()));
    const std::string id = res[0]["id"].as<std::string>();
    Funnel(tx, owner.tenant, {"draft_started", service_id, id, "", "", ""});
    return LoadDraft(tx, owner, id);
  });
}

absl::StatusOr<v1::Draft> Store::GetDraft(const Owner& owner, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) { return LoadDraft(tx, owner, id); });
}

absl::StatusOr<v1::Draft> Store::UpdateDraft(const Owner& owner, const std::string& id, int64_t expected_version,
                                             const nlohmann::json& data, const std::string& completed_step,
                                             std::chrono::hours lifetime) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Draft> {
    auto res = tx.exec_prepared("submission_update_draft", owner.tenant, owner.party_id, id, expected_version,
                                data.dump(), completed_step, static_cast<int>(lifetime.count()));
    if (res.empty()) {
      auto current = LoadDraft(tx, owner, id);
      if (!current.ok()) return current.status();
      return status::Stale("version", absl::StrCat("the draft changed; current version ", current->version()));
    }
    auto d = LoadDraft(tx, owner, id);
    if (!d.ok()) return d.status();
    Funnel(tx, owner.tenant, {"saved", d->service_id(), id, "", "", ""});
    if (!completed_step.empty())
      Funnel(tx, owner.tenant, {"step_completed", d->service_id(), id, completed_step, "", ""});
    return d;
  });
}

absl::StatusOr<v1::ListDraftsResponse> Store::ListDrafts(const Owner& owner, const api::Page& page) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListDraftsResponse> {
    v1::ListDraftsResponse out;
    const int64_t after = page.after.empty() ? INT64_MAX : std::stoll(page.after);
    auto res = tx.exec_prepared("submission_list_drafts", owner.tenant, owner.party_id, after, page.size + 1);
    for (int i = 0; i < static_cast<int>(res.size()); ++i) {
      if (i == page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(res[i - 1]["seq"].as<std::string>()));
        break;
      }
      *out.add_drafts() = ToDraft(res[i]);
    }
    return out;
  });
}

absl::Status Store::DeleteDraft(const Owner& owner, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("submission_delete_draft", owner.tenant, owner.party_id, id);
    if (res.empty()) return absl::NotFoundError("draft not found");
    Funnel(tx, owner.tenant, {"abandoned", res[0]["service_id"].as<std::string>(), id, "", "", "deleted"});
    return absl::OkStatus();
  });
}

absl::StatusOr<int> Store::PurgeExpiredDrafts(int limit, absl::Time now) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<int> {
    auto res = tx.exec_prepared("submission_purge_drafts", limit,
                                absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone()));
    for (const auto& row : res) {
      Funnel(tx, row["tenant"].as<std::string>(),
             {"abandoned", row["service_id"].as<std::string>(), row["id"].as<std::string>(), "", "", "expired"});
    }
    return static_cast<int>(res.size());
  });
}

absl::StatusOr<v1::Attachment> Store::AddAttachment(const Owner& owner, const std::string& draft_id,
                                                    const v1::Attachment& meta, const std::string& content,
                                                    int max_files) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Attachment> {
    // The draft's row lock makes the count and the insert one step.
    if (tx.exec_prepared("submission_lock_draft", owner.tenant, owner.party_id, draft_id).empty()) {
      return absl::NotFoundError("draft not found");
    }
    if (tx.exec_prepared("submission_count_attachments", draft_id, meta.field())[0]["files"].as<int>() >= max_files) {
      return status::FieldError("file", "too_many_files");
    }
    auto res =
        tx.exec_prepared("submission_insert_attachment", owner.tenant, owner.party_id, draft_id, meta.field(),
                         meta.filename(), meta.media_type(), meta.size(), meta.sha256(), pqxx::binarystring(content));
    return ToAttachment(res[0]);
  });
}

absl::StatusOr<v1::AttachmentContent> Store::GetAttachment(const Owner& owner, const std::string& id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::AttachmentContent> {
    auto res = tx.exec_prepared("submission_get_attachment", owner.tenant, owner.party_id, id);
    if (res.empty()) return absl::NotFoundError("attachment not found");
    return ToContent(res[0]);
  });
}

absl::Status Store::DeleteAttachment(const Owner& owner, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) {
    if (tx.exec_prepared("submission_delete_attachment", owner.tenant, owner.party_id, id).empty()) {
      return absl::NotFoundError("attachment not found");
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<std::pair<v1::Submission, std::string>>> Store::FindByIdempotencyKey(
    const Owner& owner, const std::string& key) {
  using Found = std::optional<std::pair<v1::Submission, std::string>>;
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<Found> {
    auto res = tx.exec_prepared("submission_by_key", owner.tenant, owner.party_id, key);
    if (res.empty()) return Found();
    auto full = LoadSubmission(tx, owner, res[0]["id"].as<std::string>());
    if (!full.ok()) return full.status();
    return Found(std::make_pair(*std::move(full), res[0]["draft_id"].as<std::string>()));
  });
}

absl::StatusOr<v1::Submission> Store::Submit(const NewSubmission& n) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Submission> {
    auto lock = tx.exec_prepared("submission_lock_draft", n.owner.tenant, n.owner.party_id, n.draft_id);
    if (lock.empty()) return absl::NotFoundError("draft not found");
    if (lock[0]["version"].as<int64_t>() != n.draft_version) {
      return status::Stale("version", "the draft changed while it was submitted");
    }
    const std::string service_id = lock[0]["service_id"].as<std::string>();
    auto ref = tx.exec_prepared("submission_next_reference", n.owner.tenant);
    const std::string reference =
        FormatReference(n.reference_prefix, ref[0]["year"].as<int>(), ref[0]["last"].as<int64_t>());
    const bool fee = n.fee_minor > 0;
    const std::string status(InitialStatus(fee));
    auto ins = tx.exec_prepared("submission_insert_submission", n.owner.tenant, n.draft_id, n.account_id, reference,
                                status, n.data.dump(), n.fee_minor, n.fee_currency, n.idempotency_key);
    const std::string id = ins[0]["id"].as<std::string>();
    // The history always begins with "submitted"; a fee due adds its own step.
    const Subject subject{n.owner.tenant, id, reference, n.owner.party_id, service_id};
    RecordStatus(tx, subject, "submitted", "", "");
    if (status != "submitted") RecordStatus(tx, subject, status, "submitted", "");
    tx.exec_prepared("submission_move_attachments", n.draft_id, id);
    tx.exec_prepared("submission_remove_submitted_draft", n.draft_id);
    // With a fee due, the payment's success makes it ready (MarkPaid).
    if (!fee) PublishReadyForDelivery(tx, n.owner.tenant, id, reference, n.owner.party_id, service_id, "");
    Funnel(tx, n.owner.tenant, {"submitted", service_id, n.draft_id, "", "", ""});
    return LoadSubmission(tx, n.owner, id);
  });
}

absl::StatusOr<v1::ListSubmissionsResponse> Store::ListSubmissions(const Owner& owner, const std::string& status,
                                                                   std::optional<bool> archived,
                                                                   const api::Page& page) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<v1::ListSubmissionsResponse> {
    v1::ListSubmissionsResponse out;
    const int64_t after = page.after.empty() ? INT64_MAX : std::stoll(page.after);
    const std::string which = !archived.has_value() ? "" : *archived ? "closed" : "open";
    auto res = status.empty() ? tx.exec_prepared("submission_list_submissions", owner.tenant, owner.party_id, after,
                                                 page.size + 1, which)
                              : tx.exec_prepared("submission_list_submissions_by_status", owner.tenant, owner.party_id,
                                                 after, page.size + 1, which, status);
    for (int i = 0; i < static_cast<int>(res.size()); ++i) {
      if (i == page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(res[i - 1]["seq"].as<std::string>()));
        break;
      }
      *out.add_submissions() = ToSubmission(res[i]);
    }
    return out;
  });
}

absl::StatusOr<v1::Submission> Store::GetSubmission(const Owner& owner, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) { return LoadSubmission(tx, owner, id); });
}

absl::StatusOr<v1::Submission> Store::Withdraw(const Owner& owner, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Submission> {
    auto lock = tx.exec_prepared("submission_lock_submission", owner.tenant, owner.party_id, id);
    if (lock.empty()) return absl::NotFoundError("submission not found");
    if (!MayMove(Actor::kApplicant, lock[0]["status"].as<std::string>(), "withdrawn")) {
      return status::FieldConflict("status", "decided");
    }
    Move(tx,
         {owner.tenant, id, lock[0]["reference"].as<std::string>(), owner.party_id,
          lock[0]["service_id"].as<std::string>()},
         "withdrawn", lock[0]["status"].as<std::string>(), "");
    events::v1::SubmissionWithdrawn e;
    e.set_tenant(owner.tenant);
    e.set_submission_id(id);
    e.set_reference(lock[0]["reference"].as<std::string>());
    e.set_service_id(lock[0]["service_id"].as<std::string>());
    events::Publish(tx, id, e);
    return LoadSubmission(tx, owner, id);
  });
}

absl::Status Store::RecordPaymentFailure(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                                         const std::string& provider, const std::string& outcome,
                                         const std::string& occurred_at) {
  tx.exec_prepared("submission_record_payment_failure", tenant, submission_id, provider, outcome, occurred_at);
  return absl::OkStatus();
}

absl::Status Store::MarkPaid(pqxx::work& tx, const std::string& tenant, const std::string& submission_id,
                             const std::string& payment_id) {
  auto lock = tx.exec_prepared("submission_lock_any", tenant, submission_id);
  if (lock.empty() || !MayMove(Actor::kPayment, lock[0]["status"].as<std::string>(), "paid")) {
    // Withdrawn or already paid: nothing moves (a refund is the payment side's business).
    log::Warn("payment for a submission not awaiting payment",
              {{"submission", submission_id}, {"payment", payment_id}});
    return absl::OkStatus();
  }
  const pqxx::row row = lock[0];
  Move(tx, SubjectOf(tenant, submission_id, row), "paid", row["status"].as<std::string>(), "");
  PublishReadyForDelivery(tx, tenant, submission_id, row["reference"].as<std::string>(),
                          row["party_id"].as<std::string>(), row["service_id"].as<std::string>(), payment_id);
  return absl::OkStatus();
}

absl::StatusOr<v1::DeliverySnapshot> Store::Snapshot(const std::string& tenant, const std::string& id) {
  return pool_.Transact([&](pqxx::work& tx) { return LoadSnapshot(tx, tenant, id); });
}

absl::Status Store::ChangeStatus(pqxx::work& tx, Actor actor, const std::string& tenant, const std::string& id,
                                 const std::string& status, const std::string& note) {
  auto lock = tx.exec_prepared("submission_lock_any", tenant, id);
  if (lock.empty()) return absl::NotFoundError("submission not found");
  const std::string from = lock[0]["status"].as<std::string>();
  if (from == status) return absl::OkStatus();  // Said twice: once in the history.
  if (!MayMove(actor, from, status)) return status::FieldConflict("status", "illegal_transition");
  Move(tx, SubjectOf(tenant, id, lock[0]), status, from, note);
  return absl::OkStatus();
}

absl::StatusOr<v1::Submission> Store::SetStatus(const std::string& tenant, const std::string& id,
                                                const std::string& status, const std::string& note) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Submission> {
    if (auto c = ChangeStatus(tx, Actor::kDepartment, tenant, id, status, note); !c.ok()) return c;
    auto res = tx.exec_prepared("submission_snapshot", tenant, id);
    v1::Submission out = ToSubmission(res[0]);
    AddHistory(tx, out);
    return out;
  });
}

absl::Status Store::MarkDelayed(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  tx.exec_prepared("submission_set_delayed", tenant, id, true);
  return absl::OkStatus();
}

absl::Status Store::MarkDelivered(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  return Reached(tx, tenant, id, "delivered");
}

absl::Status Store::MarkReceived(pqxx::work& tx, const std::string& tenant, const std::string& id) {
  return Reached(tx, tenant, id, "received_by_department");
}

absl::StatusOr<std::optional<ExpiredSubmission>> Store::EndRetention(absl::Time now, bool archive,
                                                                     const HandOver& hand_over) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<std::optional<ExpiredSubmission>> {
    const std::string at = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
    auto claimed = tx.exec_prepared("submission_expired", at, archive);
    if (claimed.empty()) return std::optional<ExpiredSubmission>();
    const pqxx::row row = claimed[0];
    ExpiredSubmission out;
    out.tenant = row["tenant"].as<std::string>();
    out.id = row["id"].as<std::string>();
    out.handed_over = row["hand_over"].as<bool>();
    if (out.handed_over) {
      auto snapshot = LoadSnapshot(tx, out.tenant, out.id);
      if (!snapshot.ok()) return snapshot.status();
      AddHistory(tx, *snapshot->mutable_submission());
      ArchiveRecord record{out.tenant, *std::move(snapshot), row["retention_years"].as<int>(),
                           row["retention_legal_basis"].as<std::string>()};
      out.reference = record.snapshot.submission().reference();
      // Written before anything is removed; a failure rolls the whole record back.
      if (auto s = hand_over(record); !s.ok()) return s;
    }
    Anonymise(tx, out.id, out.handed_over);
    return std::optional<ExpiredSubmission>(std::move(out));
  });
}

absl::StatusOr<int64_t> Store::WaitingForArchive(absl::Time now) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<int64_t> {
    const std::string at = absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone());
    return tx.exec_prepared("submission_waiting_for_archive", at)[0]["waiting"].as<int64_t>();
  });
}

absl::StatusOr<common::v1::RetainedRecords> Store::RetainedRecords(const std::string& tenant,
                                                                   const std::string& party_id) {
  return pool_.Read([&](pqxx::nontransaction& tx) -> absl::StatusOr<common::v1::RetainedRecords> {
    common::v1::RetainedRecords out;
    for (const auto& row : tx.exec_prepared("submission_retained", tenant, party_id, kMaxRetainedRecords)) {
      auto* r = out.add_records();
      r->set_service("submission");
      r->set_kind("submission");
      r->set_id(row["id"].as<std::string>());
      r->set_reference(row["reference"].as<std::string>());
      r->set_until(row["until"].as<std::string>());
      r->set_rule(RetentionRule(row["retention_years"].as<int>(), row["lasting_value"].as<bool>(), r->until().empty()));
      r->set_legal_basis(row["retention_legal_basis"].as<std::string>());
    }
    return out;
  });
}

absl::StatusOr<v1::Feedback> Store::GiveFeedback(const Owner& owner, const std::string& submission_id, int rating,
                                                 const std::string& comment) {
  std::string service_id;
  auto given = pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<v1::Feedback> {
    auto res =
        tx.exec_prepared("submission_give_feedback", owner.tenant, owner.party_id, submission_id, rating, comment);
    if (res.empty()) return absl::NotFoundError("submission not found");
    v1::Feedback out;
    out.set_rating(rating);
    out.set_comment(comment);
    *out.mutable_given_at() = Micros(res[0]["given_at"]);
    service_id = res[0]["service_id"].as<std::string>();
    return out;
  });
  if (given.ok()) RatingOf(service_id).Observe(rating);
  return given;
}

absl::StatusOr<PersonalRecords> Store::PersonalData(const std::string& tenant, const std::string& party_id) {
  return pool_.Transact([&](pqxx::work& tx) -> absl::StatusOr<PersonalRecords> {
    PersonalRecords out;
    std::map<std::string, v1::Draft*> drafts;
    std::map<std::string, v1::Submission*> submissions;
    for (const auto& row : tx.exec_prepared("submission_export_drafts", tenant, party_id, kMaxExportRecords)) {
      out.drafts.push_back(ToDraft(row));
    }
    for (auto& d : out.drafts) drafts[d.id()] = &d;
    for (const auto& row : tx.exec_prepared("submission_export_submissions", tenant, party_id, kMaxExportRecords)) {
      out.submissions.push_back(ToSubmission(row));
    }
    for (auto& s : out.submissions) submissions[s.id()] = &s;
    for (const auto& row : tx.exec_prepared("submission_export_attachments", tenant, party_id, kMaxExportRecords)) {
      if (auto d = drafts.find(row["draft_id"].as<std::string>()); d != drafts.end()) {
        *d->second->add_attachments() = ToAttachment(row);
      } else if (auto s = submissions.find(row["submission_id"].as<std::string>()); s != submissions.end()) {
        *s->second->add_attachments() = ToAttachment(row);
      }
    }
    for (const auto& row : tx.exec_prepared("submission_export_history", tenant, party_id, kMaxExportRecords)) {
      auto s = submissions.find(row["submission_id"].as<std::string>());
      if (s == submissions.end()) continue;
      auto* h = s->second->add_history();
      h->set_status(row["status"].as<std::string>());
      *h->mutable_at() = Micros(row["at"]);
      h->set_note(row["note"].as<std::string>());
    }
    for (const auto& row : tx.exec_prepared("submission_export_feedback", tenant, party_id, kMaxExportRecords)) {
      v1::Feedback f;
      f.set_rating(row["rating"].as<int>());
      f.set_comment(row["comment"].as<std::string>());
      *f.mutable_given_at() = Micros(row["given_at"]);
      out.feedback[row["submission_id"].as<std::string>()] = std::move(f);
    }
    return out;
  });
}

absl::StatusOr<Erased> Store::Erase(pqxx::work& tx, const std::string& tenant, const std::string& party_id,
                                    const std::string& account_id) {
  Erased out;
  for (const auto& row : tx.exec_prepared("submission_erase_drafts", tenant, party_id)) {
    // The funnel keeps counting it as abandoned (no personal data: ids and the service).
    Funnel(tx, tenant,
           {"abandoned", row["service_id"].as<std::string>(), row["id"].as<std::string>(), "", "", "erased"});
    ++out.drafts;
  }
  for (const auto& row : tx.exec_prepared("submission_erase_unretained", tenant, party_id)) {
    Anonymise(tx, row["id"].as<std::string>(), false);
    ++out.submissions;
  }
  out.authored = tx.exec_prepared("submission_erase_draft_author", tenant, account_id).affected_rows() +
                 tx.exec_prepared("submission_erase_submission_author", tenant, account_id).affected_rows();
  out.events = events::ErasePublished(tx, {party_id, account_id});
  return out;
}

}  // namespace stadtportal::submission

#include "services/accounts/consumers.h"

#include <regex>
#include <set>
#include <tuple>

#include <google/protobuf/util/time_util.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/api/api.h"
#include "libs/app/retention.h"
#include "libs/config/config.h"
#include "libs/log/log.h"
#include "libs/status/status.h"
#include "services/accounts/file.h"
#include "services/accounts/service.h"
#include "services/accounts/store.h"

namespace stadtportal::accounts {
namespace {

// Provider field (identity's federation::ProfileFields) → profile attribute.
const std::map<std::string, std::string>& ProfileNames() {
  static const std::map<std::string, std::string> kNames = {
      {"given_name", "given_name"},   {"family_name", "family_name"},          {"birth_date", "birth_date"},
      {"email", "contact_email"},     {"postal_code", "address.postcode"},     {"locality", "address.city"},
      {"country", "address.country"}, {"house_number", "address.house_number"}};
  return kNames;
}

// The profile values of what a provider asserted. A street with its number at the end
// ("Heidestraße 17", as the state ID accounts send it) gives street and house number.
std::map<std::string, std::string> ProfileValues(const google::protobuf::Map<std::string, std::string>& asserted) {
  std::map<std::string, std::string> values;
  for (const auto& [field, value] : asserted) {
    if (field == "street") {
      static const std::regex kStreetNumber(R"(^(.*\S)\s+([0-9]+ ?[A-Za-z]?(-[0-9]+ ?[A-Za-z]?)?)$)");
      std::smatch m;
      if (std::regex_match(value, m, kStreetNumber)) {
        values["address.street"] = m[1].str();
        values["address.house_number"] = m[2].str();
      } else {
        values["address.street"] = value;
      }
      continue;
    }
    const auto it = ProfileNames().find(field);
    if (it != ProfileNames().end()) values[it->second] = value;
  }
  // A German postcode unless the provider named another country.
  if (values.count("address.postcode") != 0 && values.count("address.country") == 0) values["address.country"] = "DE";
  const std::string country = values.count("address.country") != 0 ? values["address.country"] : "DE";
  const std::string today = absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone());
  for (auto it = values.begin(); it != values.end();) {
    if (auto s = ValidateProfileValue(it->first, it->second, country, today); !s.ok() || it->second.empty()) {
      log::Warn("asserted attribute left out", {{"attribute", it->first}, {"error", std::string(s.message())}});
      it = values.erase(it);
    } else {
      ++it;
    }
  }
  return values;
}

namespace ev = events::v1;

// The party an event is about: identity's account events name the account, whose id is
// its person party's.
std::string PartyOf(const ev::AccountVerified& e) { return e.account_id(); }
std::string PartyOf(const ev::AccountIdentified& e) { return e.account_id(); }
std::string PartyOf(const ev::ProviderLinkChanged& e) { return e.account_id(); }
template <class M>
std::string PartyOf(const M& e) {
  return e.party_id();
}

// Registers `handle` behind the consumer's one check for erased parties: an event about a
// party whose tombstone is kept is acknowledged and changes nothing, so a late event
// cannot bring the party's rows back.
template <class M>
void OnUnlessErased(events::Handlers& h,
                    std::function<absl::Status(pqxx::work&, const events::Event&, const M&)> handle) {
  h.On<M>(std::function<absl::Status(pqxx::work&, const events::Event&, const M&)>(
      [handle = std::move(handle)](pqxx::work& tx, const events::Event& e, const M& m) -> absl::Status {
        if (Store::IsErased(tx, m.tenant(), PartyOf(m))) {
          log::Info("event about an erased party skipped", {{"event_id", e.id}, {"topic", e.topic}});
          return absl::OkStatus();
        }
        return handle(tx, e, m);
      }));
}

// The same for a handler of the message alone.
template <class M>
void OnUnlessErased(events::Handlers& h, std::function<absl::Status(pqxx::work&, const M&)> handle) {
  OnUnlessErased<M>(
      h, std::function<absl::Status(pqxx::work&, const events::Event&, const M&)>(
             [handle = std::move(handle)](pqxx::work& tx, const events::Event&, const M& m) { return handle(tx, m); }));
}

// The citizen file's topics, each journalled by RecordFileEvent.
template <class M>
void OnFileEvent(events::Handlers& h) {
  OnUnlessErased<M>(h, std::function<absl::Status(pqxx::work&, const events::Event&, const M&)>(
                           [](pqxx::work& tx, const events::Event& e, const M&) { return RecordFileEvent(tx, e); }));
}

}  // namespace

absl::Status OnAccountVerified(pqxx::work& tx, const events::v1::AccountVerified& e) {
  return Store::SetVerifiedEmail(tx, e.account_id(), e.tenant(), e.email());
}

absl::Status OnAccountIdentified(pqxx::work& tx, const events::v1::AccountIdentified& e) {
  // From identity, and checked all the same: a malformed event changes nothing.
  if (auto s = api::ValidateUuid(e.account_id(), "account_id"); !s.ok()) return s;
  if (!config::IsTenantKey(e.tenant())) return status::FieldError("tenant", "invalid");
  static const std::regex kProvider("^[a-z0-9][a-z0-9-]{0,62}$");
  if (!std::regex_match(e.provider(), kProvider)) return status::FieldError("provider", "invalid");
  const std::string& level = e.assurance_level();
  if (level != "low" && level != "substantial" && level != "high") {
    return status::FieldError("assurance_level", "invalid");
  }
  const auto& asserted = e.attributes();
  if (asserted.count("organisation_id") == 0) {
    return Store::RecordIdentified(tx, e.tenant(), e.account_id(), ProfileValues(asserted), e.provider(), level);
  }
  // A company account: the address is the company's, the rest the representative's.
  google::protobuf::Map<std::string, std::string> person;
  for (const auto& [field, value] : asserted) {
    if (field == "street" || field == "postal_code" || field == "locality" || field == "country") continue;
    if (field != "organisation_id" && field != "organisation_name") person[field] = value;
  }
  if (level == "low") {
    // Acting for a company needs a company's proof (substantial at least, as ELSTER's
    // company accounts give): at low, anyone could name any organisation and join it.
    log::Warn("organisation asserted at level low left out", {{"provider", e.provider()}});
    return Store::RecordIdentified(tx, e.tenant(), e.account_id(), ProfileValues(person), e.provider(), level);
  }
  VouchedOrganisation organisation;
  organisation.id = asserted.at("organisation_id");
  organisation.name = asserted.count("organisation_name") != 0 ? asserted.at("organisation_name") : "";
  const auto address = ProfileValues(asserted);
  auto part = [&](const char* name) {
    auto it = address.find(name);
    return it == address.end() ? std::string() : it->second;
  };
  organisation.address.set_street(part("address.street"));
  organisation.address.set_house_number(part("address.house_number"));
  organisation.address.set_postcode(part("address.postcode"));
  organisation.address.set_city(part("address.city"));
  organisation.address.set_country(part("address.country"));
  if (auto s = api::ValidateText(organisation.id, "organisation_id", 100); !s.ok()) return s;
  if (auto s = api::ValidateText(organisation.name, "organisation_name", 200); !s.ok()) return s;
  if (auto s = ValidateAddress(organisation.address); !s.ok()) return s;
  return Store::RecordIdentified(tx, e.tenant(), e.account_id(), ProfileValues(person), e.provider(), level,
                                 &organisation);
}

absl::Status OnDocumentRecorded(pqxx::work& tx, const events::v1::DocumentRecorded& e, const DocumentTypes& types) {
  // From connector, which checked the back office's values; checked all the same.
  if (!config::IsTenantKey(e.tenant())) return status::FieldError("tenant", "invalid");
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  if (auto s = api::ValidateUuid(e.submission_id(), "submission_id"); !s.ok()) return s;
  if (auto s = api::ValidateText(e.reference(), "reference", 40); !s.ok()) return s;
  if (auto s = api::ValidateSlug(e.destination(), "destination"); !s.ok()) return s;
  const auto* type = types.Find(e.document_type());
  if (type == nullptr) return status::FieldError("document_type", "invalid_option");
  if (!IsDate(e.expires_on())) return status::FieldError("expires_on", "invalid_date");
  if (auto s = ValidateDocumentLabel(e.label()); !s.ok()) return s;
  NewDocument d;
  d.tenant = e.tenant();
  d.party_id = e.party_id();
  d.type = e.document_type();
  d.label = e.label();
  d.expires_on = e.expires_on();
  d.source = "department";
  d.remind_days_before = type->remind_days_before();
  d.submission_id = e.submission_id();
  d.reference = e.reference();
  d.destination = e.destination();
  return Store::RecordDocument(tx, d);
}

absl::Status OnDataAccessed(pqxx::work& tx, const events::Event& event, const events::v1::DataAccessed& e) {
  if (!config::IsTenantKey(e.tenant())) return status::FieldError("tenant", "invalid");
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  static const std::set<std::string> kKinds = {"back_office", "partner", "administrator"};
  if (kKinds.count(e.accessor_kind()) == 0) return status::FieldError("accessor_kind", "invalid_option");
  static const std::set<std::string> kResources = {"submission", "attachment", "mailbox", "profile", "account"};
  if (kResources.count(e.resource()) == 0) return status::FieldError("resource", "invalid_option");
  static const std::regex kAction("^[a-z][a-z_]{0,31}$");
  if (!std::regex_match(e.action(), kAction)) return status::FieldError("action", "invalid");
  // Required texts, then optional ones (checked only when given).
  for (const auto& [field, value, max] :
       {std::make_tuple("accessor_id", &e.accessor_id(), 200),
        std::make_tuple("accessor_name", &e.accessor_name(), 200), std::make_tuple("purpose", &e.purpose(), 500)}) {
    if (auto s = api::ValidateText(*value, field, max); !s.ok()) return s;
  }
  for (const auto& [field, value, max] :
       {std::make_tuple("resource_id", &e.resource_id(), 100), std::make_tuple("reference", &e.reference(), 100)}) {
    if (value->empty()) continue;
    if (auto s = api::ValidateText(*value, field, max); !s.ok()) return s;
  }
  // A time the publisher's clock gave: set, and not ahead of ours by more than a skew.
  const absl::Time at =
      absl::FromUnixMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(e.occurred_at()));
  if (!e.has_occurred_at() || at < absl::FromUnixSeconds(946684800) || at > absl::Now() + absl::Minutes(5)) {
    return status::FieldError("occurred_at", "invalid");
  }
  if (event.id.empty() || event.id.size() > 100) return status::FieldError("id", "invalid");
  return Store::AddAccessLogEntry(tx, event.id, e);
}

absl::Status OnPartyErasureRequested(pqxx::work& tx, const events::v1::PartyErasureRequested& e) {
  if (auto s = api::ValidateUuid(e.party_id(), "party_id"); !s.ok()) return s;
  if (!config::IsTenantKey(e.tenant())) return status::FieldError("tenant", "invalid");
  const auto erased = Store::ErasePerson(tx, e.tenant(), e.party_id());
  std::vector<std::string> published = erased.emails;
  published.push_back(e.party_id());
  const int64_t events_erased = events::ErasePublished(tx, published);
  log::Info("party erased", {{"party_id", e.party_id()},
                             {"parties", std::to_string(erased.parties)},
                             {"documents", std::to_string(erased.documents)},
                             {"rows", std::to_string(erased.rows)},
                             {"events", std::to_string(events_erased)}});
  // Counted with the handler's success: the consumer commits right after it.
  if (erased.parties > 0) app::CountRetention("party", "erased", erased.parties);
  if (erased.documents > 0) app::CountRetention("document", "erased", erased.documents);
  return absl::OkStatus();
}

events::Handlers Consumers(std::shared_ptr<const DocumentTypes> types) {
  events::Handlers h;
  OnUnlessErased<ev::AccountVerified>(h, OnAccountVerified);
  OnUnlessErased<ev::AccountIdentified>(h, OnAccountIdentified);
  OnUnlessErased<ev::DocumentRecorded>(
      h, [types](pqxx::work& tx, const ev::DocumentRecorded& e) { return OnDocumentRecorded(tx, e, *types); });
  OnUnlessErased<ev::DataAccessed>(h, OnDataAccessed);
  // The citizen file: status changes, payments, refunds, mailbox messages, reminders,
  // consents and provider links of every party (file.h).
  OnFileEvent<ev::SubmissionStatusChanged>(h);
  OnFileEvent<ev::PaymentSucceeded>(h);
  OnFileEvent<ev::PaymentRefunded>(h);
  OnFileEvent<ev::MessageReceived>(h);
  OnFileEvent<ev::ReminderDue>(h);
  OnFileEvent<ev::ConsentChanged>(h);
  OnFileEvent<ev::ProviderLinkChanged>(h);
  h.On<ev::PartyErasureRequested>(OnPartyErasureRequested);
  return h;
}

}  // namespace stadtportal::accounts

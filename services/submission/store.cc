#include "services/submission/store.h"

namespace stadtportal::submission {
namespace {

constexpr char kColumns[] =
    "tenant, id, name_de, name_en, description_de, description_en, category, department, "
    "required_assurance_level, fee_minor, fee_currency, fee_per_unit, retention_days";

v1::OnlineService ToService(const pqxx::row& r) {
  v1::OnlineService s;
  s.mutable_tenant()->set_key(r[0].as<std::string>());
  s.set_id(r[1].as<std::string>());
  s.mutable_name()->set_de(r[2].as<std::string>());
  s.mutable_name()->set_en(r[3].as<std::string>());
  s.mutable_description()->set_de(r[4].as<std::string>());
  s.mutable_description()->set_en(r[5].as<std::string>());
  s.set_category(r[6].as<std::string>());
  s.set_department(r[7].as<std::string>());
  const auto level = r[8].as<std::string>();
  s.set_required_assurance_level(level == "high"          ? v1::ASSURANCE_LEVEL_HIGH
                                 : level == "substantial" ? v1::ASSURANCE_LEVEL_SUBSTANTIAL
                                                          : v1::ASSURANCE_LEVEL_LOW);
  s.mutable_fee()->set_amount_minor(r[9].as<int64_t>());
  s.mutable_fee()->set_currency(r[10].as<std::string>());
  s.set_fee_per_unit(r[11].as<bool>());
  s.set_retention_days(r[12].as<int>());
  return s;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  // $2: search text ('' = all), $3: category ('' = all), $4: keyset cursor, $5: limit.
  conn.prepare("submission_list_online_services",
               std::string("SELECT ") + kColumns +
                   " FROM online_services WHERE tenant = $1"
                   " AND ($2 = '' OR strpos(lower(name_de || ' ' || name_en || ' ' || description_de || ' ' ||"
                   " description_en), lower($2)) > 0)"
                   " AND ($3 = '' OR category = $3) AND id > $4 ORDER BY id LIMIT $5");
  conn.prepare("submission_get_online_service",
               std::string("SELECT ") + kColumns + " FROM online_services WHERE tenant = $1 AND id = $2");
}

absl::StatusOr<v1::ListOnlineServicesResponse> Store::ListOnlineServices(const CatalogueQuery& q) {
  v1::ListOnlineServicesResponse out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    // One row more than the page tells whether another page follows.
    auto res = tx.exec_prepared("submission_list_online_services", q.tenant, q.text, q.category, q.page.after,
                                q.page.size + 1);
    for (const auto& row : res) {
      if (out.services_size() == q.page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(out.services(q.page.size - 1).id()));
        break;
      }
      *out.add_services() = ToService(row);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::OnlineService> Store::GetOnlineService(const std::string& tenant, const std::string& id) {
  v1::OnlineService out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("submission_get_online_service", tenant, id);
    if (res.empty()) return absl::NotFoundError("online service not found");
    out = ToService(res[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace stadtportal::submission

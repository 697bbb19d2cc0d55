#include "services/connector/store.h"

#include <google/protobuf/util/time_util.h>

namespace stadtportal::connector {
namespace {

constexpr char kColumns[] = "tenant, id, name, mode, endpoint_url, (extract(epoch FROM updated_at) * 1000000)::bigint";

v1::Destination ToDestination(const pqxx::row& r) {
  v1::Destination d;
  d.mutable_tenant()->set_key(r[0].as<std::string>());
  d.set_id(r[1].as<std::string>());
  d.set_name(r[2].as<std::string>());
  d.set_mode(r[3].as<std::string>() == "push" ? v1::DELIVERY_MODE_PUSH : v1::DELIVERY_MODE_PULL);
  d.set_endpoint_url(r[4].as<std::string>());
  *d.mutable_updated_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[5].as<int64_t>());
  return d;
}

}  // namespace

void Store::Prepare(pqxx::connection& conn) {
  conn.prepare(
      "connector_put_destination",
      std::string("INSERT INTO destinations (tenant, id, name, mode, endpoint_url) VALUES ($1, $2, $3, $4, $5) "
                  "ON CONFLICT (tenant, id) DO UPDATE SET name = EXCLUDED.name, mode = EXCLUDED.mode, "
                  "endpoint_url = EXCLUDED.endpoint_url, updated_at = now() RETURNING ") +
          kColumns);
  conn.prepare(
      "connector_list_destinations",
      std::string("SELECT ") + kColumns + " FROM destinations WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3");
}

absl::StatusOr<v1::Destination> Store::PutDestination(const DestinationRow& d) {
  v1::Destination out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    out = ToDestination(tx.exec_prepared1("connector_put_destination", d.tenant, d.id, d.name, d.mode, d.endpoint_url));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<v1::ListDestinationsResponse> Store::ListDestinations(const std::string& tenant, const api::Page& page) {
  v1::ListDestinationsResponse out;
  absl::Status s = pool_.Transact([&](pqxx::work& tx) {
    auto res = tx.exec_prepared("connector_list_destinations", tenant, page.after, page.size + 1);
    for (const auto& row : res) {
      if (out.destinations_size() == page.size) {
        out.mutable_page()->set_next_page_token(api::NextPageToken(out.destinations(page.size - 1).id()));
        break;
      }
      *out.add_destinations() = ToDestination(row);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace stadtportal::connector

#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "libs/api/api.h"
#include "libs/db/pool.h"
#include "stadtportal/connector/v1/connector.pb.h"

namespace stadtportal::connector {

struct DestinationRow {
  std::string tenant;
  std::string id;
  std::string name;
  std::string mode;  // "push" | "pull"
  std::string endpoint_url;
};

// The connector schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  absl::StatusOr<v1::Destination> PutDestination(const DestinationRow& d);
  // Ordered by id.
  absl::StatusOr<v1::ListDestinationsResponse> ListDestinations(const std::string& tenant, const api::Page& page);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::connector

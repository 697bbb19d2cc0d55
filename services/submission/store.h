#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/api/api.h"
#include "libs/db/pool.h"
#include "stadtportal/submission/v1/submission.pb.h"

namespace stadtportal::submission {

struct CatalogueQuery {
  std::string tenant;
  std::string text;      // "" = all
  std::string category;  // "" = all
  api::Page page;
};

// The submission schema: all SQL of the service, as named prepared statements.
class Store {
 public:
  explicit Store(db::Pool& pool) : pool_(pool) {}
  static void Prepare(pqxx::connection& conn);

  // One page ordered by id, and the token of the next ("" when there is none).
  absl::StatusOr<v1::ListOnlineServicesResponse> ListOnlineServices(const CatalogueQuery& q);
  absl::StatusOr<v1::OnlineService> GetOnlineService(const std::string& tenant, const std::string& id);

 private:
  db::Pool& pool_;
};

}  // namespace stadtportal::submission

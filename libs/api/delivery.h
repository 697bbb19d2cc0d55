#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "stadtportal/submission/v1/submission.pb.h"

// The one delivery document: what a push destination receives as the body of its POST and
// what a back office fetches (GET /api/v1/backoffice/submissions/{id}), built from the
// submission service's snapshot:
//   {"delivery_id": "<submission id>", "destination": "<destination id>",
//    "submission": {<the submission, proto field names, every field; "data" as an object>},
//    "files": [{"id", "field", "filename", "media_type", "size", "sha256", "content_base64"}]}
// docs/api/openapi.yaml (DeliveryDocument) describes it.
namespace stadtportal::api {

// INTERNAL when the snapshot's data_json is not a JSON object (the submission service
// stores only objects, so this is a broken snapshot, not a caller's mistake).
absl::StatusOr<nlohmann::json> DeliveryDocument(const submission::v1::DeliverySnapshot& snapshot);

}  // namespace stadtportal::api

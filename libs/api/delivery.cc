#include "libs/api/delivery.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/escaping.h"

namespace stadtportal::api {

absl::StatusOr<nlohmann::json> DeliveryDocument(const submission::v1::DeliverySnapshot& snapshot) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string printed;
  if (!google::protobuf::util::MessageToJsonString(snapshot.submission(), &printed, o).ok()) {
    return absl::InternalError("the submission cannot be written as JSON");
  }
  nlohmann::json submission = nlohmann::json::parse(printed);
  nlohmann::json data = nlohmann::json::parse(snapshot.submission().data_json(), nullptr, false);
  if (!data.is_object()) return absl::InternalError("the submission's data is not a JSON object");
  submission.erase("data_json");
  submission["data"] = std::move(data);

  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : snapshot.files()) {
    files.push_back({{"id", f.attachment().id()},
                     {"field", f.attachment().field()},
                     {"filename", f.attachment().filename()},
                     {"media_type", f.attachment().media_type()},
                     {"size", f.attachment().size()},
                     {"sha256", f.attachment().sha256()},
                     {"content_base64", absl::Base64Escape(f.content())}});
  }
  return nlohmann::json{{"delivery_id", snapshot.submission().id()},
                        {"destination", snapshot.destination()},
                        {"submission", std::move(submission)},
                        {"files", std::move(files)}};
}

}  // namespace stadtportal::api

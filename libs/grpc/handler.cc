#include "libs/grpc/handler.h"

namespace stadtportal::grpcx {

std::string ClientMetadata(const grpc::ServerContext& ctx, const std::string& key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace stadtportal::grpcx

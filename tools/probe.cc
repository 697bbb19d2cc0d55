// stadtportal-probe HOST:PORT [SERVICE]: asks a gRPC server's health (overall, or of
// SERVICE) and lists its services via reflection. Exit 0 only when SERVING.
// Useful where no shell tools exist, e.g. inside the runtime containers.
#include <cstdio>
#include <string>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "libs/grpc/client.h"

int main(int argc, char** argv) {
  using namespace stadtportal;
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: stadtportal-probe HOST:PORT [SERVICE]\n");
    return 2;
  }
  const std::string target = std::string("ipv4:") + argv[1];
  const std::string service = argc == 3 ? argv[2] : "";
  auto channel = grpcx::MakeChannel(target);
  const absl::Status health = grpcx::CheckHealth(channel, service, std::chrono::seconds(3));
  std::printf("health%s%s: %s\n", service.empty() ? "" : " of ", service.c_str(),
              health.ok() ? "SERVING" : std::string(health.message()).c_str());

  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  auto ctx = grpcx::NewClientContext(std::chrono::seconds(3));
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  stream->Write(req);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  while (stream->Read(&resp)) {
    for (const auto& s : resp.list_services_response().service()) std::printf("service: %s\n", s.name().c_str());
  }
  stream->Finish();
  return health.ok() ? 0 : 1;
}

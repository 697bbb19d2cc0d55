#include "libs/http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "libs/http/json_body.h"
#include "libs/log/log.h"
#include "libs/testing/testing.h"

namespace stadtportal::http {
namespace {

// A real server on a free port with a few routes.
struct Fixture {
  Router router{"test_http", [] {
                  EdgeOptions e;
                  e.max_body_bytes = 1024;
                  e.max_upload_bytes = 64 * 1024;
                  e.max_uploads = 1;
                  e.upload_wait = std::chrono::milliseconds(0);
                  return e;
                }()};
  Server server;
  std::atomic<int> upload_handlers{0};
  std::thread thread;
  uint16_t port = 0;

  Fixture() {
    router.Add("GET", "/items/{id}", [](const httplib::Request&, httplib::Response& res, const Params& p) {
      WriteJson(res, 200, {{"id", p.at("id")}});
    });
    router.Add("POST", "/items", [](const httplib::Request& req, httplib::Response& res, const Params&) {
      WriteJson(res, 201, {{"size", req.body.size()}});
    });
    router.Add("POST", "/notes", [](const httplib::Request& req, httplib::Response& res, const Params&) {
      WriteJson(res, 201, {{"size", req.body.size()}});
    });
    router.SetBodyLimit("POST", "/notes", 8192);
    router.Add("POST", "/files", [this](const httplib::Request& req, httplib::Response& res, const Params&) {
      ++upload_handlers;
      if (req.has_param("slow")) std::this_thread::sleep_for(std::chrono::milliseconds(800));
      WriteJson(res, 201, {{"files", req.files.size()}, {"size", req.get_file_value("file").content.size()}});
    });
    router.SetUpload("POST", "/files");
    // What a handler sees: the ids bound to its log lines (and to gRPC metadata).
    router.Add("GET", "/ids", [](const httplib::Request& req, httplib::Response& res, const Params&) {
      WriteJson(res, 200,
                {{"request_id", log::CurrentRequestId()},
                 {"traceparent", log::CurrentTraceparent()},
                 {"q", req.get_param_value("q")}});
    });
    router.Add("POST", "/json", [](const httplib::Request& req, httplib::Response& res, const Params&) {
      auto body = ParseJsonBody(req, {{"email", {FieldType::kString}}});
      if (!body.ok()) return WriteProblem(res, body.status());
      WriteJson(res, 200, *body);
    });
    ServerOptions o;
    o.threads = 4;
    o.queue = 2;
    o.request_timeout = std::chrono::milliseconds(1500);
    Configure(server, o);
    router.Install(server);
    port = static_cast<uint16_t>(server.bind_to_any_port("127.0.0.1"));
    thread = std::thread([this] { server.listen_after_bind(); });
    REQUIRE(testing::Eventually([this] { return server.is_running(); }, std::chrono::seconds(5)));
  }
  ~Fixture() {
    server.stop();
    thread.join();
  }
};

}  // namespace

// Sends `request` as it is on a fresh connection and returns what the server answers
// until it closes the connection or `wait` passes without a byte.
std::string RawExchange(uint16_t port, const std::string& request, std::chrono::milliseconds wait) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{static_cast<time_t>(wait.count() / 1000), static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST_CASE("routes match templates and capture parameters", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Get("/items/abc");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(nlohmann::json::parse(r->body)["id"] == "abc");
  CHECK(r->get_header_value("X-Request-Id").size() == 32);
}

TEST_CASE("unknown paths are 404 and wrong methods 405, as problems", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Get("/nothing/here");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  auto p = nlohmann::json::parse(r->body);
  CHECK(p["status"] == 404);
  CHECK(p["request_id"] == r->get_header_value("X-Request-Id"));

  auto d = c.Delete("/items/abc");
  REQUIRE(d);
  CHECK(d->status == 405);
  CHECK(d->get_header_value("Allow") == "GET");
  CHECK(nlohmann::json::parse(d->body)["status"] == 405);
  CHECK(nlohmann::json::parse(d->body)["title"] == "Method not allowed");
}

TEST_CASE("a caller's request id is kept, a malformed one replaced", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Get("/items/1", {{"X-Request-Id", "caller-id-123"}});
  REQUIRE(r);
  CHECK(r->get_header_value("X-Request-Id") == "caller-id-123");
  auto bad = c.Get("/items/1", {{"X-Request-Id", "bad id with spaces"}});
  REQUIRE(bad);
  CHECK(bad->get_header_value("X-Request-Id") != "bad id with spaces");
}

TEST_CASE("traceparent: a W3C one is kept, anything else replaced by a fresh one", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto seen = [&](const std::string& traceparent) {
    auto r = c.Get("/ids", {{"traceparent", traceparent}});
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return nlohmann::json::parse(r->body)["traceparent"].get<std::string>();
  };
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  CHECK(seen(valid) == valid);
  CHECK(seen("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later") == valid);
  // httplib URL-decodes header values: "%7F" arrives as DEL, "%C3%BC" as "ü".
  for (const std::string& hostile : std::vector<std::string>{"%7F", "%00", "%C3%BC%E2%82%AC", "00-%0d%0a-x", "garbage",
                                                             "ff-" + valid.substr(3), std::string(4000, 'a')}) {
    INFO(hostile);
    const std::string fresh = seen(hostile);
    CHECK(fresh != hostile);
    CHECK(log::NormalizeTraceparent(fresh) == fresh);
  }
  auto none = c.Get("/ids");
  REQUIRE(none);
  const std::string made = nlohmann::json::parse(none->body)["traceparent"];
  CHECK(log::NormalizeTraceparent(made) == made);
}

TEST_CASE("control characters or invalid UTF-8 in path, query or headers are a 400 problem", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto status = [](const httplib::Result& r) { return r ? r->status : 0; };
  // Plain non-ASCII text is fine.
  auto ok = c.Get("/ids?q=N%C3%BCrnberg", {{"X-Note", "Grüße"}});
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(nlohmann::json::parse(ok->body)["q"] == "Nürnberg");
  for (const std::string path :
       {"/ids?q=%FF", "/ids?q=%7F", "/ids?q=a%0Ab", "/ids?q=%C2%85", "/ids?%00=x", "/items/%FF", "/items/%C0%AF"}) {
    INFO(path);
    auto r = c.Get(path);
    CHECK(status(r) == 400);
    if (r) CHECK(r->get_header_value("Content-Type") == "application/problem+json");
  }
  for (const std::string value : {"%7F", "%FF", "a%0D%0Ab", "%00", "\xff\xfe", "%E2%80"}) {
    INFO(value);
    CHECK(status(c.Get("/ids", {{"X-Anything", value}})) == 400);
    CHECK(status(c.Get("/items/1", {{"Idempotency-Key", value}})) == 400);
  }
  CHECK(status(c.Get("/ids")) == 200);  // Still serving.
}

TEST_CASE("a JSON number too large for a double is a 400 problem, not a 500", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  for (const std::string body : {R"({"email":1e999999})", R"({"email":-1e400})", R"({"x":[1e309]})",
                                 R"({"email":"a","n":123456789012345678901234567890e999})"}) {
    INFO(body);
    auto r = c.Post("/json", body, "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->get_header_value("Content-Type") == "application/problem+json");
    auto p = nlohmann::json::parse(r->body);
    REQUIRE(p["errors"].size() == 1);
    CHECK(p["errors"][0]["code"] == "number_out_of_range");
  }
  for (const std::string body : {"{", R"({"email":"\ud800"})", "[1e5", "\xff", R"({"email":"x"}})"}) {
    INFO(body);
    auto r = c.Post("/json", body, "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);
  }
  auto fine = c.Post("/json", R"({"email":"anna@example.de"})", "application/json");
  REQUIRE(fine);
  CHECK(fine->status == 200);
  // Large but representable numbers are values like any other (the field's type decides):
  // a well-formed body with a mistyped field is 422, naming the field.
  auto big = c.Post("/json", R"({"email":1e308})", "application/json");
  REQUIRE(big);
  CHECK(big->status == 422);
  auto p = nlohmann::json::parse(big->body);
  REQUIRE(p["errors"].size() == 1);
  CHECK(p["errors"][0]["field"] == "email");
  CHECK(p["errors"][0]["code"] == "wrong_type_string");
  CHECK(p["errors"][0]["message"] == "Hier wird ein Text erwartet.");
}

TEST_CASE("bodies over the limit are refused with 413 problem", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto ok = c.Post("/items", std::string(100, 'x'), "text/plain");
  REQUIRE(ok);
  CHECK(ok->status == 201);
  auto big = c.Post("/items", std::string(4096, 'x'), "text/plain");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(big->get_header_value("Content-Type") == "application/problem+json");
}

TEST_CASE("each route has its body limit, checked before and while the body is read", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  CHECK(c.Post("/notes", std::string(4096, 'x'), "text/plain")->status == 201);  // Its own 8 KiB.
  CHECK(c.Post("/notes", std::string(9000, 'x'), "text/plain")->status == 413);
  // Not declared (chunked): counted while reading, refused once over.
  size_t sent = 0;
  auto chunked = c.Post(
      "/items",
      [&](size_t, httplib::DataSink& sink) {
        const std::string piece(512, 'x');
        if (sent < 8192) {
          sink.write(piece.data(), piece.size());
          sent += piece.size();
        } else {
          sink.done();
        }
        return true;
      },
      "text/plain");
  REQUIRE(chunked);
  CHECK(chunked->status == 413);
  CHECK(chunked->get_header_value("Content-Type") == "application/problem+json");
  // Unknown paths take the default limit too: nothing is buffered for a 404.
  CHECK(c.Post("/nothing", std::string(4096, 'x'), "text/plain")->status == 413);
  // A malformed length, and a body on a GET, are refused.
  httplib::Client c2("127.0.0.1", f.port);
  CHECK(c2.Get("/items/1", {{"Content-Length", "12abc"}})->status == 400);
}

TEST_CASE("upload routes take their own limit, fill the files, and only so many at once", "[unit]") {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  httplib::MultipartFormDataItems items = {{"file", std::string(50 * 1024, 'p'), "scan.pdf", "application/pdf"}};
  auto ok = c.Post("/files", items);
  REQUIRE(ok);
  CHECK(ok->status == 201);
  CHECK(nlohmann::json::parse(ok->body)["size"] == 50 * 1024);
  items[0].content.assign(70 * 1024, 'p');
  CHECK(c.Post("/files", items)->status == 413);
  // One slot: while one upload is handled, another is refused at once (503, Retry-After).
  items[0].content.assign(1024, 'p');
  auto slow = std::async(std::launch::async, [&] {
    httplib::Client c1("127.0.0.1", f.port);
    return c1.Post("/files?slow=1", items)->status;
  });
  REQUIRE(testing::Eventually([&] { return f.upload_handlers.load() == 2; }, std::chrono::seconds(5)));
  httplib::Client c2("127.0.0.1", f.port);
  auto busy = c2.Post("/files", items);
  REQUIRE(busy);
  CHECK(busy->status == 503);
  CHECK(busy->get_header_value("Retry-After") == "5");
  CHECK(slow.get() == 201);
  CHECK(c2.Post("/files", items)->status == 201);  // The slot is free again.

  // With a gate, an upload that fails it is refused before it takes the slot: while the
  // slot is held, a refused upload gets 401 (not 503), and the held one is not disturbed.
  f.router.SetUploadGate([](const httplib::Request& req) { return req.has_header("X-Caller"); });
  auto held = std::async(std::launch::async, [&] {
    httplib::Client c1("127.0.0.1", f.port);
    return c1.Post("/files?slow=1", {{"X-Caller", "a"}}, items)->status;
  });
  REQUIRE(testing::Eventually([&] { return f.upload_handlers.load() == 4; }, std::chrono::seconds(5)));
  auto anonymous = c2.Post("/files", items);
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);
  CHECK(anonymous->get_header_value("WWW-Authenticate") == "Bearer");
  CHECK(f.upload_handlers.load() == 4);
  CHECK(held.get() == 201);
}

TEST_CASE("a request trickling in is cut off at the request deadline", "[unit]") {
  Fixture f;  // 1.5 s per request.
  httplib::Client c("127.0.0.1", f.port);
  const auto t0 = std::chrono::steady_clock::now();
  size_t sent = 0;
  auto r = c.Post(
      "/items",
      [&](size_t, httplib::DataSink& sink) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Each read well within its timeout.
        if (sent++ < 30) {
          sink.write("x", 1);
        } else {
          sink.done();
        }
        return true;
      },
      "text/plain");
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK((!r || r->status == 408));
  CHECK(took < std::chrono::milliseconds(3500));
  // A prompt request on a fresh connection is served as ever.
  httplib::Client fresh("127.0.0.1", f.port);
  CHECK(fresh.Get("/items/1")->status == 200);
}

TEST_CASE("a malformed request id is never echoed, even when refused before routing", "[unit]") {
  Fixture f;
  const std::string answer = RawExchange(f.port,
                                         "POST /items HTTP/1.1\r\nHost: x\r\nX-Request-Id: %01evil%7F\r\n"
                                         "Expect: 100-continue\r\nContent-Length: 999999\r\n\r\n",
                                         std::chrono::milliseconds(3000));
  REQUIRE(answer.rfind("HTTP/1.1 413", 0) == 0);
  const size_t at = answer.find("X-Request-Id: ");
  REQUIRE(at != std::string::npos);
  const std::string id = answer.substr(at + 14, answer.find("\r\n", at) - at - 14);
  CHECK(log::IsValidRequestId(id));
  CHECK(id.find("evil") == std::string::npos);
}

TEST_CASE("a multipart body of many empty parts is refused, not stored part by part", "[unit]") {
  Fixture f;  // Uploads up to 64 KiB.
  std::string body;
  for (int i = 0; i < 400; ++i) body += "--B\r\nContent-Disposition: form-data; name=\"\"\r\n\r\n\r\n";
  body += "--B--\r\n";
  REQUIRE(body.size() < 64 * 1024);
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Post("/files", body, "multipart/form-data; boundary=B");
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(f.upload_handlers.load() == 0);
}

TEST_CASE("more connections than workers queue instead of failing", "[unit]") {
  Fixture f;  // Four workers, queue of two.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", f.port);
      c.set_keep_alive(false);
      auto r = c.Get("/items/x");
      if (r && r->status == 200) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == 12);
}

}  // namespace stadtportal::http

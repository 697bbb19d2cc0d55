#include "libs/api/zip.h"

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"

namespace stadtportal::api {
namespace {

const absl::Time kModified = absl::FromUnixSeconds(1796644800);  // 2026-12-07 12:00:00 UTC

// Reads an archive back with Python's zipfile: testzip() (every CRC checked), then each
// entry's name, time, method and content (base64).
nlohmann::json ReadWithPython(const std::string& archive) {
  char path[] = "/tmp/zip_test_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, archive.data(), archive.size()) == static_cast<ssize_t>(archive.size()));
  close(fd);
  const std::string command = std::string("/usr/bin/python3 -c '") +
                              "import base64, json, sys, zipfile\n"
                              "z = zipfile.ZipFile(sys.argv[1])\n"
                              "bad = z.testzip()\n"
                              "print(json.dumps({\"bad\": bad, \"entries\": [{\"name\": i.filename, "
                              "\"time\": list(i.date_time), \"method\": i.compress_type, "
                              "\"content\": base64.b64encode(z.read(i)).decode()} for i in z.infolist()]}))\n"
                              "' " +
                              path;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int rc = pclose(pipe);
  unlink(path);
  REQUIRE(rc == 0);
  return nlohmann::json::parse(out);
}

TEST_CASE("a ZIP of stored entries reads back with another implementation", "[zip]") {
  std::string archive;
  int writes = 0;
  ZipWriter zip(
      [&](const char* data, size_t size) {
        archive.append(data, size);
        ++writes;
        return true;
      },
      kModified);
  std::string binary;
  for (int i = 0; i < 70000; ++i) binary.push_back(static_cast<char>((i * 7919) % 256));
  const std::map<std::string, std::string> entries = {
      {"export.json", R"({"format":"stadtportal-export/1"})"},
      {"submission/attachment/5f0c/urkunde.pdf", binary},
      {"messaging/attachment/77aa/empty.txt", ""},
      {"messaging/attachment/77ab/Brief_an_die_Stadt.txt",
       "Guten Tag,\nmit freundlichen Gr\xc3\xbc\xc3\x9f"
       "en\n"},
  };
  // Written in this order; the archive keeps it.
  const std::vector<std::string> order = {"export.json", "submission/attachment/5f0c/urkunde.pdf",
                                          "messaging/attachment/77aa/empty.txt",
                                          "messaging/attachment/77ab/Brief_an_die_Stadt.txt"};
  for (const auto& name : order) REQUIRE(zip.Add(name, entries.at(name)).ok());
  REQUIRE(zip.Finish().ok());
  CHECK(zip.bytes_written() == archive.size());
  CHECK(writes > static_cast<int>(order.size()));  // streamed entry by entry, not at the end

  const auto read = ReadWithPython(archive);
  CHECK(read["bad"].is_null());
  REQUIRE(read["entries"].size() == order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& e = read["entries"][i];
    CHECK(e["name"] == order[i]);
    CHECK(e["method"] == 0);  // stored
    CHECK(e["time"] == nlohmann::json::array({2026, 12, 7, 12, 0, 0}));
    std::string content;
    REQUIRE(absl::Base64Unescape(e["content"].get<std::string>(), &content));
    CHECK(content == entries.at(order[i]));
  }
}

TEST_CASE("an empty ZIP is a valid archive", "[zip]") {
  std::string archive;
  ZipWriter zip([&](const char* d, size_t n) { return archive.append(d, n), true; }, kModified);
  REQUIRE(zip.Finish().ok());
  CHECK(archive.size() == 22);
  const auto read = ReadWithPython(archive);
  CHECK(read["entries"].empty());
}

TEST_CASE("the ZIP writer refuses names outside the export's paths and writes nothing for them", "[zip]") {
  std::string archive;
  ZipWriter zip([&](const char* d, size_t n) { return archive.append(d, n), true; }, kModified);
  for (const std::string name :
       {"", "../etc/passwd", "/etc/passwd", "submission/attachment/5f0c/../../x", "submission\\attachment\\1\\a.pdf",
        "submission/attachment/5f0c", "Export.json", "submission/attachment/5f0c/a b.pdf", "a/b/c/d/e"}) {
    INFO(name);
    CHECK(zip.Add(name, "x").code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(archive.empty());
  REQUIRE(zip.Add("export.json", "{}").ok());
  CHECK(zip.Add("export.json", "{}").code() == absl::StatusCode::kInvalidArgument);  // twice
  REQUIRE(zip.Finish().ok());
  CHECK(zip.Add("submission/attachment/5f0c/a.pdf", "x").code() == absl::StatusCode::kFailedPrecondition);
  CHECK(zip.Finish().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("the ZIP writer refuses an archive above 2 GiB before it writes the entry", "[zip]") {
  // Address space for the content without memory behind it: the writer refuses before it
  // reads a byte.
  void* big = mmap(nullptr, ZipWriter::kMaxBytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(big != MAP_FAILED);
  std::string archive;
  ZipWriter zip([&](const char* d, size_t n) { return archive.append(d, n), true; }, kModified);
  REQUIRE(zip.Add("export.json", "{}").ok());
  const size_t before = archive.size();
  CHECK(zip.Add("submission/attachment/1/big.bin",
                std::string_view(static_cast<const char*>(big), ZipWriter::kMaxBytes - 200))
            .code() == absl::StatusCode::kResourceExhausted);
  munmap(big, ZipWriter::kMaxBytes);
  CHECK(archive.size() == before);
  REQUIRE(zip.Finish().ok());
  CHECK(ReadWithPython(archive)["entries"].size() == 1);
}

TEST_CASE("a sink that refuses stops the ZIP writer", "[zip]") {
  int calls = 0;
  ZipWriter zip([&](const char*, size_t) { return ++calls < 2; }, kModified);
  CHECK(zip.Add("export.json", "{}").code() == absl::StatusCode::kUnavailable);
  CHECK(zip.Add("submission/attachment/1/a.pdf", "x").code() == absl::StatusCode::kFailedPrecondition);
  CHECK(zip.Finish().code() == absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace stadtportal::api

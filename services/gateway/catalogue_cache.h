#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace stadtportal::gateway {

// The public catalogue's answers (an online service, a page of the list) as rendered,
// kept in memory so a catalogue request costs no call to the submission service. An
// entry changes only when a form version is published: the submission service's
// `catalogue.changed` event drops every entry on every replica (events::Broadcast), and
// the replica that passed the publication on drops them at once. While the event reader
// is not live (Redis unreachable, starting) nothing is served from or put into the cache.
// Each entry also lapses after `lifetime`. See
// docs/adr/0022-catalogue-cache-and-rate-limit-leases.md.
class CatalogueCache {
 public:
  struct Entry {
    std::string body;  // application/json
    std::string etag;  // Strong: "\"<hash of the body>\"".
  };
  // `live`: whether invalidations currently arrive.
  CatalogueCache(std::function<bool()> live, size_t max_entries = 2048,
                 std::chrono::seconds lifetime = std::chrono::seconds(60));

  // An entry for an answer that is not kept (its ETag computed all the same).
  static std::shared_ptr<const Entry> Uncached(std::string body);
  // The entry of `key`, or null.
  std::shared_ptr<const Entry> Get(const std::string& key);
  // The generation to pass to Put: read it before asking the submission service.
  uint64_t generation() const;
  // Makes the entry of `body` and keeps it unless the catalogue changed since
  // `generation` (the answer may be older than the change) or the reader is not live.
  std::shared_ptr<const Entry> Put(const std::string& key, std::string body, uint64_t generation);
  // The catalogue changed: every entry goes.
  void DropAll();

  size_t size() const;

 private:
  struct Slot {
    std::shared_ptr<const Entry> entry;
    std::chrono::steady_clock::time_point lapses;
  };
  std::function<bool()> live_;
  size_t max_entries_;
  std::chrono::seconds lifetime_;
  mutable std::mutex mu_;
  uint64_t generation_ = 0;
  std::unordered_map<std::string, Slot> entries_;
};

// Whether an If-None-Match header names `etag` (weak comparison, "*" included, RFC 9110 13.1.2).
bool EtagMatches(const std::string& if_none_match, const std::string& etag);

}  // namespace stadtportal::gateway

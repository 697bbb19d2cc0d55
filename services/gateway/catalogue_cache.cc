#include "services/gateway/catalogue_cache.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/auth/tokens.h"

namespace stadtportal::gateway {

CatalogueCache::CatalogueCache(std::function<bool()> live, size_t max_entries, std::chrono::seconds lifetime)
    : live_(std::move(live)), max_entries_(max_entries), lifetime_(lifetime) {}

std::shared_ptr<const CatalogueCache::Entry> CatalogueCache::Get(const std::string& key) {
  if (!live_()) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (std::chrono::steady_clock::now() >= it->second.lapses) {
    entries_.erase(it);
    return nullptr;
  }
  return it->second.entry;
}

uint64_t CatalogueCache::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

std::shared_ptr<const CatalogueCache::Entry> CatalogueCache::Uncached(std::string body) {
  auto entry = std::make_shared<Entry>();
  entry->etag = "\"" + absl::BytesToHexString(auth::Sha256(body).substr(0, 16)) + "\"";
  entry->body = std::move(body);
  return entry;
}

std::shared_ptr<const CatalogueCache::Entry> CatalogueCache::Put(const std::string& key, std::string body,
                                                                 uint64_t generation) {
  auto entry = Uncached(std::move(body));
  if (!live_()) return entry;
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != generation_) return entry;
  // Keys come from the query (search words): a full cache starts over rather than grow.
  if (entries_.size() >= max_entries_ && entries_.find(key) == entries_.end()) entries_.clear();
  entries_[key] = {entry, std::chrono::steady_clock::now() + lifetime_};
  return entry;
}

void CatalogueCache::DropAll() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  entries_.clear();
}

size_t CatalogueCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

bool EtagMatches(const std::string& if_none_match, const std::string& etag) {
  const absl::string_view ours = absl::StripPrefix(etag, "W/");
  for (absl::string_view candidate : absl::StrSplit(if_none_match, ',')) {
    candidate = absl::StripAsciiWhitespace(candidate);
    if (candidate == "*" || absl::StripPrefix(candidate, "W/") == ours) return true;
  }
  return false;
}

}  // namespace stadtportal::gateway

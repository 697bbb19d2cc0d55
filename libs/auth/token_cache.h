#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

// A bounded, thread-safe map from exact bytes to a value with a last second of use: the
// caller tokens a Signer signed lately, the ones a Verifier verified lately.
namespace stadtportal::auth {

template <typename V>
class TokenCache {
 public:
  explicit TokenCache(size_t capacity) : capacity_(capacity) {}
  // A copy starts empty: what one signer or verifier cached is its own.
  TokenCache(const TokenCache& other) : capacity_(other.capacity_) {}
  TokenCache& operator=(const TokenCache& other) {
    if (this != &other) {
      std::lock_guard<std::mutex> lock(mu_);
      capacity_ = other.capacity_;
      entries_.clear();
      order_.clear();
    }
    return *this;
  }

  // The value stored under exactly `key`, unless `now` (Unix seconds) is past its last
  // second of use.
  std::optional<V> Get(const std::string& key, int64_t now) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || now > it->second.until) return std::nullopt;
    return it->second.value;
  }

  // Stores `value` under `key` until the second `until`; beyond the capacity the oldest
  // entry goes.
  void Put(const std::string& key, V value, int64_t until) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = entries_.insert_or_assign(key, Entry{std::move(value), until});
    if (!added) return;
    // The map's nodes stay where they are, so the order holds pointers to their keys.
    order_.push_back(&it->first);
    while (order_.size() > capacity_) {
      entries_.erase(entries_.find(*order_.front()));
      order_.pop_front();
    }
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    V value;
    int64_t until;
  };
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<const std::string*> order_;  // Oldest first.
};

}  // namespace stadtportal::auth

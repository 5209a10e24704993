// LruCache<Key, Value>: a map holding at most `capacity` entries that, when full, evicts the least recently
// used one and hands it to a callback (the CUDA context destroys evicted cuFFT plans this way).
#pragma once
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <utility>

#include "error.hpp"

namespace longseq {

template <class Key, class Value>
class LruCache {
 public:
  using Evict = std::function<void(const Key&, Value&)>;

  explicit LruCache(std::size_t capacity, Evict on_evict = {}) : on_evict_(std::move(on_evict)) {
    set_capacity(capacity);
  }
  LruCache(const LruCache&) = delete;
  LruCache& operator=(const LruCache&) = delete;

  std::size_t size() const { return index_.size(); }
  std::size_t capacity() const { return capacity_; }
  // Lowering the capacity evicts the oldest entries at once.
  void set_capacity(std::size_t c) {
    LONGSEQ_CHECK(c >= 1, "LruCache: capacity must be >= 1, got ", c);
    capacity_ = c;
    while (index_.size() > capacity_) evict_oldest();
  }

  // The cached value, now the most recently used; nullptr when absent.
  Value* find(const Key& k) {
    auto it = index_.find(k);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }
  // Inserts a value for a key not yet present (evicting the oldest entry when full); returns it.
  Value& insert(const Key& k, Value v) {
    LONGSEQ_CHECK(index_.find(k) == index_.end(), "LruCache: key inserted twice");
    if (index_.size() >= capacity_) evict_oldest();
    order_.emplace_front(k, std::move(v));
    index_.emplace(k, order_.begin());
    return order_.front().second;
  }
  // Visits every entry, most recent first.
  template <class F>
  void for_each(F&& f) {
    for (auto& [k, v] : order_) f(k, v);
  }
  // Hands every entry to the eviction callback and empties the cache.
  void clear() {
    while (!order_.empty()) evict_oldest();
  }
  ~LruCache() { clear(); }

 private:
  void evict_oldest() {
    auto& [k, v] = order_.back();
    if (on_evict_) on_evict_(k, v);
    index_.erase(k);
    order_.pop_back();
  }
  std::size_t capacity_ = 1;
  Evict on_evict_;
  std::list<std::pair<Key, Value>> order_;  // most recently used first
  std::map<Key, typename std::list<std::pair<Key, Value>>::iterator> index_;
};

}  // namespace longseq

// LruCache: capacity bound, least-recently-used eviction through the callback, lookups refreshing an entry.
#include <doctest/doctest.h>

#include <longseq/core/lru_cache.hpp>
#include <string>
#include <vector>

using namespace longseq;

TEST_CASE("LruCache keeps at most its capacity and evicts the least recently used entry") {
  std::vector<int> evicted;
  LruCache<int, std::string> c(3, [&](const int& k, std::string&) { evicted.push_back(k); });
  c.insert(1, "a");
  c.insert(2, "b");
  c.insert(3, "c");
  CHECK(c.size() == 3);
  CHECK(evicted.empty());
  REQUIRE(c.find(1) != nullptr);  // 1 is now the most recent: 2 is the oldest
  CHECK(*c.find(1) == "a");
  c.insert(4, "d");
  CHECK(evicted == std::vector<int>{2});
  CHECK(c.find(2) == nullptr);
  CHECK(c.size() == 3);
  c.insert(5, "e");  // oldest now 3
  CHECK(evicted == std::vector<int>{2, 3});

  std::vector<int> order;
  c.for_each([&](const int& k, std::string&) { order.push_back(k); });
  CHECK(order == std::vector<int>{5, 4, 1});

  c.set_capacity(1);  // shrinking evicts the oldest at once
  CHECK(evicted == std::vector<int>{2, 3, 1, 4});
  CHECK(c.size() == 1);
  CHECK_THROWS_AS(c.insert(5, "again"), Error);
  CHECK_THROWS_AS(c.set_capacity(0), Error);
  c.clear();
  CHECK(evicted == std::vector<int>{2, 3, 1, 4, 5});
  CHECK(c.size() == 0);
}

TEST_CASE("LruCache hands every remaining entry to the callback when destroyed") {
  int destroyed = 0;
  {
    LruCache<int, int> c(4, [&](const int&, int&) { ++destroyed; });
    c.insert(1, 10);
    c.insert(2, 20);
  }
  CHECK(destroyed == 2);
}

// train::Staging, the host-memory route of a device store's collectives, run on the host policy (plain copies):
// buckets cover the buffer exactly once, each is one collective, half and bf16 are reduced in float.
#include <doctest/doctest.h>

#include <type_traits>
#include <vector>

#include <longseq/train/staging.hpp>

using namespace longseq;

namespace {

// Plays rank 1 of 2 whose twin holds the same values: a sum doubles them, a broadcast from rank 0 writes the
// twin's values (here: a marker). Records each collective's length and element type.
struct Twin {
  std::vector<index_t> lengths;
  bool all_float = true;
  int rank() const { return 1; }
  int size() const { return 2; }
  template <class T>
  void allreduce_sum(T* p, index_t n) {
    lengths.push_back(n);
    all_float = all_float && std::is_same_v<T, float>;
    for (index_t i = 0; i < n; ++i) p[i] += p[i];
  }
  template <class T>
  void broadcast(T* p, index_t n, int root) {
    REQUIRE(root == 0);
    lengths.push_back(n);
    for (index_t i = 0; i < n; ++i) p[i] = T(-1);
  }
  void barrier() {}
};
static_assert(train::Communicator<Twin>);
struct OnDevice : Twin {
  static constexpr bool device_memory = true;
};
static_assert(train::host_memory_collectives<Twin> && train::host_memory_collectives<train::SingleProcess>);
static_assert(!train::host_memory_collectives<OnDevice>);

}  // namespace

TEST_CASE("Staging: buckets cover the buffer once, one collective each, values as a whole-buffer collective") {
  for (index_t bucket : {1, 5, 23, 100}) {
    CAPTURE(bucket);
    std::vector<double> v(23);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.25 * double(i) - 2.0;
    std::vector<double> want = v;
    Twin whole;
    whole.allreduce_sum(want.data(), index_t(want.size()));
    Twin c;
    train::Staging<double, device::host> st(bucket);
    st.allreduce_sum(c, v.data(), index_t(v.size()));
    CHECK(v == want);
    const index_t buckets = (23 + bucket - 1) / bucket;
    CHECK(st.buckets_sent() == buckets);
    REQUIRE(index_t(c.lengths.size()) == buckets);
    index_t covered = 0;
    for (index_t n : c.lengths) {
      CHECK(n <= bucket);
      covered += n;
    }
    CHECK(covered == 23);
    st.broadcast(c, v.data(), index_t(v.size()), 0);
    for (double x : v) CHECK(x == -1.0);
  }
  using Host = train::Staging<float, device::host>;
  CHECK_THROWS_WITH_AS(Host(0), doctest::Contains("bucket = 0 elements, expected > 0"), Error);
}

TEST_CASE_TEMPLATE("Staging: half and bf16 buffers are reduced in float and rounded back", N, bf16, half) {
  std::vector<N> v(9);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = N(0.375f * float(i) - 1.5f);
  Twin c;
  train::Staging<N, device::host> st(4);
  st.allreduce_sum(c, v.data(), index_t(v.size()));
  CHECK(c.all_float);
  CHECK(c.lengths == std::vector<index_t>{4, 4, 1});
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(float(v[i]) == 2.0f * (0.375f * float(i) - 1.5f));  // exact
}

// Data-parallel training over the ranks of the job equals one process on the combined batch; sharding,
// collectives, metric reduction and the bucket API's misuse checks.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <longseq/nn/linear.hpp>
#include <longseq/ops/activation.hpp>
#include <longseq/train/adamw.hpp>

#include "world.hpp"

using namespace longseq;
using longseq::testing::world;

namespace {

// Two linear layers with a GELU between them: (n, 4) -> (n, 8) -> (n, 3).
template <class T>
struct Mlp {
  nn::Linear<T> l1{{.in = 4, .out = 8}};
  nn::Linear<T> l2{{.in = 8, .out = 3}};
  typename nn::Linear<T>::Saved s1, s2;
  Tensor<T> h, a, y, dy, da, dh;

  template <class F>
  void parameters(F&& f) {
    auto f1 = prefixed("l1", f);
    l1.parameters(f1);
    auto f2 = prefixed("l2", f);
    l2.parameters(f2);
  }
};

constexpr index_t n_in = 4, n_out = 3;

// The global batch of step `step`: inputs (B, 4) and targets (B, 3), the same on every rank.
template <class T>
void make_batch(index_t batch, index_t step, std::vector<T>& x, std::vector<T>& t) {
  Rng rng(1234, std::uint64_t(step) + 1);
  x.resize(std::size_t(batch * n_in));
  t.resize(std::size_t(batch * n_out));
  for (auto& v : x) v = T(rng.normal());
  for (auto& v : t) v = T(rng.normal());
}

// How a rank weights its shard-mean loss: by its share of rows (Shard::weight), by its share of counted
// rows (count_weight), or not at all with the summed gradient divided by the number of ranks (right only
// for equal shards).
enum class Weights { rows, counted, plain_mean };

// Trains `steps` AdamW steps of the mean squared error on global batches of `batch` rows, this rank
// computing its shard. Uses the bucketed all-reduce when the communicator has one and `bucketed`.
// masked: rows with (row + step) % 3 == 0 carry no loss, so ranks count different numbers of rows.
template <class T, class Comm>
std::vector<T> fit_steps(Comm& comm, index_t batch, index_t steps, bool bucketed, std::uint64_t init_seed,
                         Weights weights = Weights::rows, bool masked = false) {
  Mlp<T> m;
  ParamStore<T> store;
  store.bind(m);
  Rng rng(init_seed);
  m.l1.init(rng);
  m.l2.init(rng);
  train::broadcast_parameters(comm, store);
  train::AdamW<T> opt(store, {.lr = 1e-2, .weight_decay = 0.1});
  HostContext ctx;
  ctx.threads = 1;
  const index_t l2_offset = store.find("l2.weight")->offset;
  constexpr bool has_buckets = requires { comm.start_buckets_from(index_t(0)); };
  if constexpr (has_buckets) comm.attach_gradients(store);

  std::vector<T> x, t;
  for (index_t step = 0; step < steps; ++step) {
    make_batch(batch, step, x, t);
    const train::Shard sh = train::shard(batch, comm);
    opt.zero_grad();
    auto counted = [&](index_t row) { return !masked || (row + step) % 3 != 0; };
    index_t n_counted = 0;
    for (index_t i = sh.begin; i < sh.end(); ++i) n_counted += counted(i) ? 1 : 0;
    const double weight = weights == Weights::counted ? train::count_weight(comm, double(n_counted))
                          : weights == Weights::rows  ? sh.weight
                                                      : 1.0;
    if (sh.count > 0) {
      const index_t n = sh.count;
      TensorView<const T> xs(x.data() + sh.begin * n_in, Shape{n, n_in});
      m.h.resize(Shape{n, 8});
      m.a.resize(Shape{n, 8});
      m.y.resize(Shape{n, n_out});
      m.l1.forward(ctx, xs, m.h.view(), m.s1);
      ops::gelu_forward<T>(ctx, m.h.view(), m.a.view());
      m.l2.forward(ctx, m.a.view(), m.y.view(), m.s2);
      // d(mean over the shard's counted rows of the per-row mean squared error) / dy, times the rank's weight.
      m.dy.resize(m.y.shape());
      const double scale = n_counted > 0 ? weight * 2.0 / double(n_counted * n_out) : 0.0;
      for (index_t i = 0; i < n * n_out; ++i)
        m.dy.data()[i] = counted(sh.begin + i / n_out)
                             ? T(scale * (double(m.y.data()[i]) - double(t[std::size_t(sh.begin * n_out + i)])))
                             : T(0);
      m.da.resize(m.a.shape());
      m.dh.resize(m.h.shape());
      m.l2.backward(ctx, m.s2, m.dy.view(), m.da.view());
      if constexpr (has_buckets)
        if (bucketed) comm.start_buckets_from(l2_offset);
      ops::gelu_backward<T>(ctx, m.h.view(), m.da.view(), m.dh.view());
      if constexpr (has_buckets)
        if (bucketed) comm.poll();
      m.l1.backward(ctx, m.s1, m.dh.view(), TensorView<T>(nullptr, Shape{0}));  // inputs need no gradient
    } else if constexpr (has_buckets) {
      // A rank without rows still starts the same buckets in the same order as its peers.
      if (bucketed) comm.start_buckets_from(l2_offset);
    }
    if constexpr (has_buckets)
      if (bucketed) comm.finish();
    if (!bucketed) {
      if (weights != Weights::plain_mean) train::allreduce_gradients(comm, store);
      else train::allreduce_mean_gradients(comm, store);
    }
    opt.step();
  }
  auto v = store.values();
  return std::vector<T>(v.data, v.data + v.numel());
}

template <class T>
double max_rel_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(b[i]))));
  return m;
}

// Runs data-parallel training on all ranks and the single-process reference on rank 0; returns the
// largest difference (reference vs rank 0, and any rank vs rank 0), the same on every rank.
template <class T>
double parallel_vs_single(index_t batch, index_t steps, bool bucketed, Weights weights = Weights::rows,
                          bool masked = false) {
  auto& comm = world();
  // Ranks initialize differently; broadcast_parameters must make them start from rank 0's values.
  std::vector<T> par =
      fit_steps<T>(comm, batch, steps, bucketed, 7 + std::uint64_t(comm.rank()), weights, masked);
  double diff = 0;
  if (train::is_root(comm)) {
    train::SingleProcess single;
    std::vector<T> ref = fit_steps<T>(single, batch, steps, false, 7, Weights::counted, masked);
    REQUIRE(ref.size() == par.size());
    diff = max_rel_diff(par, ref);
  }
  std::vector<T> root = par;
  comm.broadcast(root.data(), index_t(root.size()), 0);
  diff = std::max(diff, max_rel_diff(par, root));
  double all = diff;
  comm.allreduce_sum(&all, 1);  // >= every rank's difference
  return all;
}

}  // namespace

TEST_CASE("shard: contiguous disjoint slices covering the batch, weights summing to one") {
  for (index_t b = 0; b <= 11; ++b)
    for (int r = 1; r <= 4; ++r) {
      index_t next = 0;
      double wsum = 0;
      index_t lo = b, hi = 0;
      for (int k = 0; k < r; ++k) {
        const train::Shard s = train::shard(b, r, k);
        CHECK(s.begin == next);
        next = s.end();
        wsum += s.weight;
        lo = std::min(lo, s.count);
        hi = std::max(hi, s.count);
      }
      CHECK(next == b);
      CHECK(hi - lo <= 1);
      if (b > 0) CHECK(wsum == doctest::Approx(1.0).epsilon(1e-15));
    }
  CHECK(train::shard(7, 2, 0).count == 4);
  CHECK(train::shard(7, 2, 1).begin == 4);
  CHECK(train::shard(7, 2, 1).weight == doctest::Approx(3.0 / 7.0));
  CHECK_THROWS_WITH_AS(train::shard(8, 2, 2), doctest::Contains("rank 2 of 2 does not exist"), longseq::Error);
  CHECK_THROWS_WITH_AS(train::shard(-1, 2, 0), doctest::Contains("batch size must be >= 0"), longseq::Error);
}

TEST_CASE("collectives: allreduce, broadcast, reduce, barrier over the job") {
  auto& comm = world();
  REQUIRE(comm.size() >= 2);
  const int r = comm.rank(), n = comm.size();
  std::vector<double> v{double(r), 1.0, double(r * r)};
  comm.allreduce_sum(v.data(), 3);
  double sq = 0;
  for (int k = 0; k < n; ++k) sq += double(k * k);
  CHECK(v[0] == double(n * (n - 1) / 2));
  CHECK(v[1] == double(n));
  CHECK(v[2] == sq);

  std::vector<float> b{float(r) + 0.5f, float(-r)};
  comm.broadcast(b.data(), 2, n - 1);
  CHECK(b[0] == float(n - 1) + 0.5f);
  CHECK(b[1] == float(-(n - 1)));

  std::vector<std::int64_t> c{std::int64_t(r + 1)};
  comm.reduce_sum(c.data(), 1, 0);
  if (r == 0) CHECK(c[0] == std::int64_t(n * (n + 1) / 2));
  else CHECK(c[0] == std::int64_t(r + 1));
  comm.barrier();
  CHECK_THROWS_WITH_AS(comm.broadcast(b.data(), 2, n), doctest::Contains("is not a rank of"),
                       longseq::Error);
}

TEST_CASE("allreduce_stats equals merging every rank's statistics") {
  auto& comm = world();
  auto stats_of = [](int k) {
    heads::LossStats s;
    s.count = 3 + k;
    s.loss = 0.25 * (k + 1);
    s.correct = k + 1;
    s.sq_err = 0.5 * k;
    s.target_sum = k;
    s.target_sq = 2 * k;
    return s;
  };
  heads::LossStats want;
  for (int k = 0; k < comm.size(); ++k) want.merge(stats_of(k));
  const heads::LossStats got = train::allreduce_stats(comm, stats_of(comm.rank()));
  CHECK(got.count == want.count);
  CHECK(got.loss == doctest::Approx(want.loss).epsilon(1e-14));
  CHECK(got.correct == want.correct);
  CHECK(got.sq_err == doctest::Approx(want.sq_err));
  CHECK(got.accuracy() == doctest::Approx(want.accuracy()));
  CHECK(got.r2() == doctest::Approx(want.r2()));
}

TEST_CASE("data parallel equals one process on the combined batch (double, nearly exact)") {
  auto& comm = world();
  const double saved = comm.options().timeout_s;
  SUBCASE("even batch, one all-reduce of the flat buffer") { CHECK(parallel_vs_single<double>(8, 6, false) < 1e-12); }
  SUBCASE("odd batch (7 rows: 4 + 3), weighted shards") { CHECK(parallel_vs_single<double>(7, 6, false) < 1e-12); }
  SUBCASE("bucketed non-blocking all-reduce, tiny buckets") {
    // 64-byte buckets: many buckets, some straddling the l1 / l2 boundary.
    train::MpiCommunicator bucketed({.timeout_s = saved, .bucket_bytes = 64});
    auto run = [&] {
      std::vector<double> par = fit_steps<double>(bucketed, 7, 6, true, 7 + std::uint64_t(bucketed.rank()));
      double diff = 0;
      if (train::is_root(bucketed)) {
        train::SingleProcess single;
        diff = max_rel_diff(par, fit_steps<double>(single, 7, 6, false, 7));
      }
      bucketed.allreduce_sum(&diff, 1);
      return diff;
    };
    CHECK(run() < 1e-12);
  }
  SUBCASE("plain averaging of shard means: equal to the combined batch only for equal shards") {
    CHECK(parallel_vs_single<double>(8, 6, false, Weights::plain_mean) < 1e-12);
    if (comm.size() == 2) CHECK(parallel_vs_single<double>(7, 6, false, Weights::plain_mean) > 1e-6);
  }
  SUBCASE("rows without loss: ranks weighted by their counted rows (count_weight)") {
    // Batch 8 at step 0: rows 0, 3, 6 carry no loss, so 2 ranks count 2 and 3 of the 5 rows.
    CHECK(parallel_vs_single<double>(8, 6, false, Weights::counted, true) < 1e-12);
    // Weighting by rows instead (4/8 each) is wrong here.
    if (comm.size() == 2) CHECK(parallel_vs_single<double>(8, 6, false, Weights::rows, true) > 1e-6);
  }
  SUBCASE("a batch smaller than the number of ranks leaves a rank without rows") {
    CHECK(parallel_vs_single<double>(1, 3, false) < 1e-12);
  }
}

TEST_CASE("data parallel equals one process on the combined batch (float)") {
  CHECK(parallel_vs_single<float>(8, 6, false) < 2e-5);
  CHECK(parallel_vs_single<float>(9, 6, false) < 2e-5);
}

TEST_CASE("bucket API: ranges, misuse errors") {
  train::MpiCommunicator comm({.timeout_s = world().options().timeout_s, .bucket_bytes = 40});
  CHECK_THROWS_WITH_AS(comm.finish(), doctest::Contains("call attach_gradients first"), longseq::Error);
  std::vector<float> g(25);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = float(i) * float(comm.rank() + 1);
  comm.attach_gradients(g.data(), index_t(g.size()));
  REQUIRE(comm.num_buckets() == 3);  // 10 floats per bucket
  CHECK(comm.bucket_range(2) == std::pair<index_t, index_t>{20, 25});
  comm.start_buckets_from(20);
  CHECK_THROWS_WITH_AS(comm.start_bucket(2), doctest::Contains("already started"), longseq::Error);
  CHECK_THROWS_WITH_AS(comm.barrier(), doctest::Contains("still in flight"), longseq::Error);
  CHECK_THROWS_WITH_AS(comm.bucket_range(3), doctest::Contains("bucket 3 does not exist"), longseq::Error);
  comm.finish();
  const float factor = float(comm.size() * (comm.size() + 1) / 2);
  for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == float(i) * factor);
}

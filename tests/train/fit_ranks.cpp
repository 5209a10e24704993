// The rank-aware parts of fit without MPI: a communicator that plays rank 1 of 2 whose twin rank 0 computes
// exactly the same numbers (every all-reduce doubles, broadcasts keep the values). Its run must equal the
// single-process run, reduce metrics to the same values, and write neither checkpoints nor logs.
#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>

#include <longseq/train/fit.hpp>

#include "train/toy.hpp"

using namespace longseq;
using Cls = heads::ClassificationHead<double>;
using Net = testing::ToyNet<double, Cls>;

namespace {

struct TwinRank {
  int collectives = 0, barriers = 0, broadcasts = 0;
  int rank() const { return 1; }
  int size() const { return 2; }
  template <class T>
  void allreduce_sum(T* p, index_t n) {
    ++collectives;
    for (index_t i = 0; i < n; ++i) p[i] += p[i];
  }
  template <class T>
  void broadcast(T*, index_t, int) { ++broadcasts; }
  void barrier() { ++barriers; }
};
static_assert(train::Communicator<TwinRank>);

// The toy task, told its shard but loading whole batches (its twin loads the same ones).
struct TwinTask : testing::ToyTask<double> {
  int shard_rank = -1, shard_ranks = -1;
  void set_shard(int r, int n) {
    shard_rank = r;
    shard_ranks = n;
  }
};

struct Outcome {
  std::vector<double> params;
  train::FitResult res;
};

// Without dropout: each rank draws its own dropout masks, so the twin would differ from rank 0 there.
Net::Config net_config() {
  auto c = testing::toy_config<double, Cls>(8, {.dim = 8, .classes = 2});
  c.backbone.block.dropout = 0.0;
  return c;
}

template <class Comm>
Outcome run(Comm& comm, const std::string& dir, train::MetricsLog* log) {
  Net net(net_config());
  ParamStore<double> store;
  store.bind(net);
  Rng rng(3);
  net.init(rng);
  train::AdamW<double> opt(store, {.lr = 3e-3, .weight_decay = 0.01});
  TwinTask task;
  train::FitConfig c;
  c.progress = false;
  c.epochs = 2;
  c.accum = 2;
  c.clip = 1.0;
  c.seed = 5;
  c.log_every = 1;
  c.log = log;
  c.checkpoint_dir = dir;
  Outcome o;
  o.res = train::fit(net, store, opt, train::Schedule{}, task, c, comm);
  CHECK(task.shard_rank == comm.rank());
  CHECK(task.shard_ranks == comm.size());
  auto v = store.values();
  o.params.assign(v.data, v.data + v.numel());
  return o;
}

}  // namespace

TEST_CASE("fit ranks: a non-root rank computes the same update, reduces metrics, and writes nothing") {
  const auto base = std::filesystem::temp_directory_path() / ("longseq_fit_ranks_" + std::to_string(::getpid()));
  std::filesystem::remove_all(base);
  train::SingleProcess one;
  const std::string log_path = (base / "one.jsonl").string();
  std::filesystem::create_directories(base);
  Outcome ref;
  {
    train::MetricsLog log(log_path);
    ref = run(one, (base / "one").string(), &log);
  }
  TwinRank twin;
  const std::string twin_log_path = (base / "twin.jsonl").string();
  Outcome got;
  {
    train::MetricsLog log(twin_log_path);
    got = run(twin, (base / "twin").string(), &log);
  }
  REQUIRE(got.params.size() == ref.params.size());
  for (std::size_t i = 0; i < ref.params.size(); ++i) CHECK(got.params[i] == doctest::Approx(ref.params[i]).epsilon(1e-12));
  REQUIRE(got.res.history.size() == ref.res.history.size());
  for (std::size_t e = 0; e < ref.res.history.size(); ++e) {
    CHECK(got.res.history[e].val.accuracy() == ref.res.history[e].val.accuracy());
    CHECK(got.res.history[e].val.loss == doctest::Approx(ref.res.history[e].val.loss).epsilon(1e-12));
    CHECK(got.res.history[e].val.count == 2 * ref.res.history[e].val.count);  // both ranks' examples
  }
  CHECK(got.res.best_epoch == ref.res.best_epoch);
  CHECK(twin.broadcasts == 1);  // rank 0's initial parameters
  CHECK(twin.barriers >= 2);    // after each checkpoint rank 0 writes
  CHECK(twin.collectives > 0);
  CHECK(std::filesystem::exists(base / "one" / "last.safetensors"));
  CHECK(std::filesystem::exists(base / "one" / "best.safetensors"));
  CHECK_FALSE(std::filesystem::exists(base / "twin" / "last.safetensors"));
  CHECK_FALSE(std::filesystem::exists(base / "twin" / "best.safetensors"));
  CHECK(std::filesystem::file_size(log_path) > 0);
  CHECK(std::filesystem::file_size(twin_log_path) == 0);
  std::filesystem::remove_all(base);
}

TEST_CASE("fit ranks: a task without set_shard cannot run on several ranks") {
  Net net(testing::toy_config<double, Cls>(8, {.dim = 8, .classes = 2}));
  ParamStore<double> store;
  store.bind(net);
  train::AdamW<double> opt(store, {.lr = 1e-3});
  testing::ToyTask<double> task;
  TwinRank twin;
  train::FitConfig c;
  c.progress = false;
  CHECK_THROWS_WITH_AS(train::fit(net, store, opt, train::Schedule{}, task, c, twin),
                       doctest::Contains("fit: running on 2 ranks needs a task with set_shard(rank, ranks)"),
                       longseq::Error);
}

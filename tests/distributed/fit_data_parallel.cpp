// train::fit across the ranks of the job: the same parameters and metrics as one process on the same
// global batches (classification and masked denoising, with gradient accumulation), only rank 0 writing
// checkpoints, and resuming on a different number of ranks.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "../train/toy.hpp"
#include "world.hpp"

using namespace longseq;
using longseq::testing::world;

namespace {

// The toy task of the trainer tests, cut to this rank's rows of every global batch.
struct ShardedToy {
  testing::ToyTask<double> full;
  int rank = 0, ranks = 1;
  train::Shard sh;
  Tensor<double> values, raw;
  Tensor<std::int32_t> labels;
  Tensor<std::uint8_t> mask;

  void set_shard(int r, int n) {
    rank = r;
    ranks = n;
  }
  index_t num_batches(train::Split s, index_t epoch) const { return full.num_batches(s, epoch); }
  void load(train::Split s, index_t epoch, index_t i) {
    full.load(s, epoch, i);
    sh = train::shard(full.batch, ranks, rank);
    const index_t L = full.length, C = full.in_features();
    values.resize(Shape{sh.count, L, C});
    raw.resize(Shape{sh.count, L});
    mask.resize(Shape{sh.count, L});
    labels.resize(Shape{sh.count});
    std::memcpy(values.data(), full.values.data() + sh.begin * L * C, sizeof(double) * std::size_t(sh.count * L * C));
    std::memcpy(raw.data(), full.raw.data() + sh.begin * L, sizeof(double) * std::size_t(sh.count * L));
    std::memcpy(mask.data(), full.mask.data() + sh.begin * L, std::size_t(sh.count * L));
    std::memcpy(labels.data(), full.labels.data() + sh.begin, sizeof(std::int32_t) * std::size_t(sh.count));
  }
  bool empty() const { return sh.count == 0; }
  models::Inputs<double> inputs() const { return {{}, values.view(), {}}; }
  heads::Targets<double> targets() const { return {labels.view(), raw.view(), mask.view(), {}}; }
  index_t tokens() const { return sh.count * full.length; }
};

// Toy network without dropout (dropout masks depend on the row's place in the local batch).
template <class Head>
typename testing::ToyNet<double, Head>::Config net_config(typename Head::Config head, bool mask_channel) {
  return {{.channels = 1, .dim = 8, .mask_channel = mask_channel},
          {.depth = 2, .block = {{.dim = 8}, {.dim = 8, .expand = 2}, 0.0}},
          {.dim = 8},
          head};
}

struct Outcome {
  std::vector<double> params;
  train::FitResult res;
};

// Trains the toy model with `comm` (rank 0's initialization is broadcast by fit; every rank initializes
// from a different seed to prove it).
template <class Head, class Comm>
Outcome run_fit(Comm& comm, bool pretrain, train::FitConfig cfg, typename Head::Config head) {
  using Net = testing::ToyNet<double, Head>;
  Net net(net_config<Head>(head, pretrain));
  ParamStore<double> store;
  store.bind(net);
  Rng rng(7 + std::uint64_t(comm.rank()), 1);
  net.init(rng);
  train::AdamW<double> opt(store, {.lr = 5e-3, .weight_decay = 0.01});
  ShardedToy task;
  task.full.pretrain = pretrain;
  task.full.batch = 6;  // 6 rows over 2 ranks: 3 each; denoising counts differ between ranks
  train::Schedule sched{train::Schedule::Kind::cosine, 3, 20, 0.0};
  Outcome o;
  o.res = train::fit(net, store, opt, sched, task, cfg, comm);
  auto v = store.values();
  o.params.assign(v.data, v.data + v.numel());
  return o;
}

train::FitConfig quiet_config() {
  train::FitConfig c;
  c.progress = false;
  c.log_every = 0;
  c.epochs = 2;
  c.clip = 1.0;
  c.seed = 11;
  return c;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return m;
}

// A folder name every rank agrees on (rank 0's pid).
std::string shared_dir(const std::string& tag) {
  double pid = double(::getpid());
  world().broadcast(&pid, 1, 0);
  return (std::filesystem::temp_directory_path() / ("longseq_fit_dp_" + tag + "_" + std::to_string(long(pid)))).string();
}

}  // namespace

TEST_CASE("fit data parallel: 2 ranks give the parameters and metrics of one process on the same batches") {
  auto& comm = world();
  REQUIRE(comm.size() >= 2);
  train::SingleProcess one;
  SUBCASE("classification, accumulation over 2 micro-batches") {
    auto cfg = quiet_config();
    cfg.accum = 2;
    using Head = heads::ClassificationHead<double>;
    Head::Config hc{.dim = 8, .classes = 2};
    const Outcome ref = run_fit<Head>(one, false, cfg, hc);
    const Outcome dp = run_fit<Head>(comm, false, cfg, hc);
    CHECK(max_rel_diff(dp.params, ref.params) < 1e-10);
    REQUIRE(dp.res.history.size() == ref.res.history.size());
    for (std::size_t e = 0; e < ref.res.history.size(); ++e) {
      CHECK(dp.res.history[e].val.count == ref.res.history[e].val.count);
      CHECK(dp.res.history[e].val.loss == doctest::Approx(ref.res.history[e].val.loss).epsilon(1e-10));
      CHECK(dp.res.history[e].test.accuracy() == ref.res.history[e].test.accuracy());
      CHECK(dp.res.history[e].train.loss == doctest::Approx(ref.res.history[e].train.loss).epsilon(1e-10));
    }
    CHECK(dp.res.best_epoch == ref.res.best_epoch);
  }
  SUBCASE("masked denoising: ranks count different numbers of masked positions") {
    auto cfg = quiet_config();
    cfg.select = train::Select::loss;
    using Head = heads::MaskedDenoisingHead<double>;
    Head::Config hc{.dim = 8, .classes = 1, .loss = heads::DenoiseLoss::l1};
    const Outcome ref = run_fit<Head>(one, true, cfg, hc);
    const Outcome dp = run_fit<Head>(comm, true, cfg, hc);
    CHECK(max_rel_diff(dp.params, ref.params) < 1e-10);
    CHECK(dp.res.history.back().val.loss == doctest::Approx(ref.res.history.back().val.loss).epsilon(1e-10));
  }
}

TEST_CASE("fit data parallel: rank 0 writes checkpoints; a run resumes on a different number of ranks") {
  auto& comm = world();
  train::SingleProcess one;
  using Head = heads::ClassificationHead<double>;
  Head::Config hc{.dim = 8, .classes = 2};
  const std::string dir = shared_dir("resume");
  auto cfg = quiet_config();
  cfg.epochs = 3;
  const Outcome full = run_fit<Head>(one, false, cfg, hc);  // uninterrupted, one process

  // 2 ranks stop after 5 updates (mid-epoch), one process resumes and finishes.
  auto part = cfg;
  part.checkpoint_dir = dir + "/a";
  part.stop_after = 5;
  const Outcome first = run_fit<Head>(comm, false, part, hc);
  CHECK(first.res.interrupted);
  CHECK(std::filesystem::exists(part.checkpoint_dir + "/last.safetensors"));
  if (train::is_root(comm)) {
    auto rest = cfg;
    rest.checkpoint_dir = part.checkpoint_dir;
    rest.resume = true;
    const Outcome second = run_fit<Head>(one, false, rest, hc);
    CHECK(second.res.resumed_from == 5);
    CHECK(max_rel_diff(second.params, full.params) < 1e-10);
  }
  comm.barrier();

  // One process stops after 7 updates, 2 ranks resume and finish.
  if (train::is_root(comm)) {
    auto p1 = cfg;
    p1.checkpoint_dir = dir + "/b";
    p1.stop_after = 7;
    CHECK(run_fit<Head>(one, false, p1, hc).res.interrupted);
  }
  comm.barrier();
  auto rest = cfg;
  rest.checkpoint_dir = dir + "/b";
  rest.resume = true;
  const Outcome second = run_fit<Head>(comm, false, rest, hc);
  CHECK(second.res.resumed_from == 7);
  CHECK(max_rel_diff(second.params, full.params) < 1e-10);
  CHECK(second.res.best_epoch == full.res.best_epoch);
  comm.barrier();
  if (train::is_root(comm)) std::filesystem::remove_all(dir);
}

TEST_CASE("fit data parallel: a task without set_shard is refused on several ranks") {
  auto& comm = world();
  using Net = testing::ToyNet<double, heads::ClassificationHead<double>>;
  Net net(net_config<heads::ClassificationHead<double>>({.dim = 8, .classes = 2}, false));
  ParamStore<double> store;
  store.bind(net);
  train::AdamW<double> opt(store, {.lr = 1e-3});
  testing::ToyTask<double> task;  // no set_shard
  CHECK_THROWS_WITH_AS(train::fit(net, store, opt, train::Schedule{}, task, quiet_config(), comm),
                       doctest::Contains("needs a task with set_shard(rank, ranks)"), longseq::Error);
}

// Forwards to an MpiCommunicator and records the offsets fit starts buckets from (-1 marks finish()).
struct RecordingComm {
  train::MpiCommunicator& c;
  std::vector<index_t> log;
  int rank() const { return c.rank(); }
  int size() const { return c.size(); }
  template <class T>
  void allreduce_sum(T* x, index_t n) { c.allreduce_sum(x, n); }
  template <class T>
  void broadcast(T* x, index_t n, int root = 0) { c.broadcast(x, n, root); }
  void barrier() { c.barrier(); }
  template <class T>
  void attach_gradients(ParamStore<T>& s) { c.attach_gradients(s); }
  void start_buckets_from(index_t o) {
    log.push_back(o);
    c.start_buckets_from(o);
  }
  void poll() { c.poll(); }
  void finish() {
    log.push_back(-1);
    c.finish();
  }
  void detach_gradients() { c.detach_gradients(); }
};

TEST_CASE("fit data parallel: gradient buckets start during the backward, with the same result") {
  auto& w = world();
  // Own communicator with 256-byte buckets (32 doubles): the toy model spans many of them.
  train::MpiCommunicator mpi({.timeout_s = w.options().timeout_s, .bucket_bytes = 256});
  RecordingComm comm{mpi, {}};
  static_assert(train::BucketedCommunicator<RecordingComm, double>);
  train::SingleProcess one;
  using Head = heads::ClassificationHead<double>;
  Head::Config hc{.dim = 8, .classes = 2};
  auto cfg = quiet_config();
  cfg.accum = 2;
  const Outcome ref = run_fit<Head>(one, false, cfg, hc);
  const Outcome dp = run_fit<Head>(comm, false, cfg, hc);
  CHECK(max_rel_diff(dp.params, ref.params) < 1e-10);
  // Per update, on the last micro-batch only: head, norm, block 1, block 0, encoder, each starting from
  // a smaller offset (the encoder's is 0), then finish().
  REQUIRE(comm.log.size() == std::size_t(6 * dp.res.steps));
  for (std::size_t k = 0; k < comm.log.size(); k += 6) {
    CHECK(comm.log[k] > 0);
    for (std::size_t j = 1; j < 5; ++j) CHECK(comm.log[k + j] < comm.log[k + j - 1]);
    CHECK(comm.log[k + 4] == 0);
    CHECK(comm.log[k + 5] == -1);
  }
  // Every bucket was started from the backward, none was left for finish().
  const auto st = mpi.bucket_stats();
  CHECK(st.steps == dp.res.steps);
  REQUIRE(st.buckets > 2 * st.steps);
  CHECK(st.early == st.buckets);
  // fit leaves nothing attached: a plain collective works right away.
  double x = 1;
  mpi.allreduce_sum(&x, 1);
  CHECK(x == double(mpi.size()));
}

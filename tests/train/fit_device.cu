// train::fit on a device model (its device store, AdamW<T, device::cuda> and the device loss scaler) against
// the same loop on the host, and checkpoints across policies: a run saved on the GPU resumes on the host and
// the other way round, with the optimizer state (values, moments, bf16 masters, step) restored bit for bit;
// loss statistics left on the device (BatchStats, RunningStats) against the host's.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/models/family.hpp>
#include <longseq/train/transfer.hpp>

#include "nn/device_compare.hpp"
#include "train/checkpoint_state.hpp"
#include "train/toy.hpp"

using namespace longseq;
using Dev = device::cuda;

namespace {
template <class F>
using Net = typename F::template Model<typename F::LinearEncoder,
                                       nn::Stack<nn::PreNormResidual<typename F::LayerNorm, typename F::FeedForward>>,
                                       typename F::ClassificationHead>;

template <class C>
C net_config(index_t h) {
  C c;
  c.encoder = {.channels = 1, .dim = h};
  c.backbone.depth = 2;
  c.backbone.block.norm = {.dim = h};
  c.backbone.block.mixer = {.dim = h, .expand = 2};
  c.backbone.block.dropout = 0.1;
  c.norm = {.dim = h};
  c.head = {.dim = h, .classes = 2, .pool = nn::PoolMode::mean};
  return c;
}

const train::AdamWConfig opt_config{.lr = 3e-3, .weight_decay = 0.01};

// A model, its store and optimizer on policy D, initialized on the host from seed 42 (and copied).
template <class D>
struct Run {
  using N = Net<models::Family<float, D>>;
  N net;
  ParamStore<float, D> store;
  train::AdamW<float, D> opt;
  Run() : net(net_config<typename N::Config>(8)), opt((store.bind(net), store), opt_config) {
    using HN = Net<models::Family<float>>;
    HN host(net_config<typename HN::Config>(8));
    ParamStore<float> hs;
    hs.bind(host);
    Rng rng(42);
    host.init(rng);
    train::copy_parameters(hs, store);
  }
  train::FitResult fit(const train::FitConfig& cfg) {
    testing::ToyTask<float> task;
    return train::fit(net, store, opt, train::Schedule{}, task, cfg);
  }
  Tensor<float> params() { return train::detail::on_host(store.values()); }
};

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("longseq_fit_device_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  return dir.string();
}

train::FitConfig quiet(const std::string& dir, bool scaling) {
  train::FitConfig c;
  c.progress = false;
  c.epochs = 2;
  c.accum = 2;
  c.clip = 1.0;
  c.seed = 7;
  c.log_every = 2;
  c.checkpoint_dir = dir;
  if (scaling) c.loss_scale = {.initial = 1024, .window = 2};
  return c;
}

double max_rel(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.numel() == b.numel());
  double num = 0, den = 0;
  for (index_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

template <class T>
void upload(TensorView<T, Dev> dst, const std::vector<T>& src) {
  copy_to_device<T>(TensorView<const T>(src.data(), dst.shape), dst);
}
}  // namespace

TEST_CASE("fit: a device model trains like the host model, and each resumes the other's run") {
  for (bool scaling : {false, true}) {
    CAPTURE(scaling);
    Tensor<float> host_full, dev_full;
    train::FitResult hr, dr;
    {
      Run<device::host> r;
      hr = r.fit(quiet(temp_dir("host_full"), scaling));
      host_full = r.params();
    }
    {
      Run<Dev> r;
      dr = r.fit(quiet(temp_dir("dev_full"), scaling));
      dev_full = r.params();
    }
    CHECK(dr.steps == 6);
    CHECK(dr.steps == hr.steps);
    CHECK(dr.skipped == hr.skipped);
    CHECK(dr.loss_scale == hr.loss_scale);
    REQUIRE(dr.history.size() == 2);
    CHECK(dr.history[1].val.loss == doctest::Approx(hr.history[1].val.loss).epsilon(1e-3));
    CHECK(dr.history[1].val.count == hr.history[1].val.count);
    INFO("device vs host after the whole run: ", max_rel(dev_full, host_full));
    CHECK(max_rel(dev_full, host_full) < 1e-3);

    // Saved on the GPU mid-epoch, finished on the host: the device run's result.
    {
      const auto dir = temp_dir("dev_to_host");
      Run<Dev> a;
      auto cfg = quiet(dir, scaling);
      cfg.stop_after = 4;
      CHECK(a.fit(cfg).interrupted);
      Run<device::host> b;
      cfg.stop_after = 0;
      cfg.resume = cfg.resume_required = true;
      const auto res = b.fit(cfg);
      CHECK(res.resumed_from == 4);
      CHECK(res.steps == 6);
      INFO("resumed on the host vs the whole device run: ", max_rel(b.params(), dev_full));
      CHECK(max_rel(b.params(), dev_full) < 1e-3);
    }
    // Saved on the host, finished on the GPU: the host run's result.
    {
      const auto dir = temp_dir("host_to_dev");
      Run<device::host> a;
      auto cfg = quiet(dir, scaling);
      cfg.stop_after = 4;
      CHECK(a.fit(cfg).interrupted);
      Run<Dev> b;
      cfg.stop_after = 0;
      cfg.resume = cfg.resume_required = true;
      const auto res = b.fit(cfg);
      CHECK(res.resumed_from == 4);
      CHECK(res.steps == 6);
      INFO("resumed on the device vs the whole host run: ", max_rel(b.params(), host_full));
      CHECK(max_rel(b.params(), host_full) < 1e-3);
    }
  }
}

TEST_CASE("checkpoint: a bf16 device optimizer's state resumes on the host and back, bit for bit") {
  using testing::TwoParams;
  const train::AdamWConfig oc{.lr = 1e-2, .weight_decay = 0.05, .ssm_lr = 3e-3};
  const auto dir = temp_dir("bf16");
  std::filesystem::create_directories(dir);
  TwoParams<bf16, Dev> d;
  ParamStore<bf16, Dev> sd;
  sd.bind(d);
  upload(sd.values(), testing::pattern<bf16>(sd.values().numel(), 0.0));
  train::AdamW<bf16, Dev> od(sd, oc);
  for (int k = 0; k < 3; ++k) {
    upload(sd.grads(), testing::pattern<bf16>(sd.grads().numel(), 10.0 + k));
    od.step(1.0 - 0.1 * k);
  }
  train::TrainState st;
  st.step = 3;
  st.loss_scale = {.scale = 512, .good_steps = 1, .skipped = 2};
  train::save_checkpoint(dir + "/dev.safetensors", sd, &od, st);

  TwoParams<bf16> h;
  ParamStore<bf16> sh;
  sh.bind(h);
  train::AdamW<bf16> oh(sh, oc);
  train::TrainState back;
  train::load_checkpoint(dir + "/dev.safetensors", sh, &oh, &back);
  CHECK(back.step == 3);
  CHECK(back.loss_scale.scale == 512);
  CHECK(back.loss_scale.skipped == 2);
  CHECK(testing::optimizer_state(sh, oh) == testing::optimizer_state(sd, od));

  // One more update on the host, then back to a fresh device optimizer.
  std::vector<bf16> g = testing::pattern<bf16>(sh.grads().numel(), 20.0);
  std::copy(g.begin(), g.end(), sh.grads().data);
  oh.step(0.5);
  train::save_checkpoint(dir + "/host.safetensors", sh, &oh, back);
  TwoParams<bf16, Dev> d2;
  ParamStore<bf16, Dev> sd2;
  sd2.bind(d2);
  train::AdamW<bf16, Dev> od2(sd2, oc);
  train::load_checkpoint(dir + "/host.safetensors", sd2, &od2, nullptr);
  CHECK(od2.steps() == 4);
  CHECK(testing::optimizer_state(sd2, od2) == testing::optimizer_state(sh, oh));
}

TEST_CASE("transfer: a pretraining checkpoint loads into a device store by name") {
  const auto dir = temp_dir("transfer");
  Run<device::host> pre;
  auto cfg = quiet(dir, false);
  cfg.epochs = 1;
  pre.fit(cfg);
  Run<Dev> ft;
  const auto rep = train::transfer<float>(dir + "/last.safetensors", ft.store);
  CHECK(!rep.loaded.empty());
  for (const auto& e : ft.store.entries()) {
    if (e.name.rfind("head.", 0) == 0) continue;
    const auto* p = pre.store.find(e.name);
    REQUIRE(p != nullptr);
    CHECK(testing::bytes_of(e.param->value) == testing::bytes_of(p->param->value));
  }
}

namespace {
std::vector<nlohmann::json> step_records(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line))
    if (auto j = nlohmann::json::parse(line); j["event"] == "step") out.push_back(j);
  return out;
}
void check_stats(const heads::LossStats& dev, const heads::LossStats& host) {
  CHECK(dev.count == host.count);
  CHECK(dev.correct == host.correct);
  CHECK(dev.loss == doctest::Approx(host.loss).epsilon(1e-3));
}
}  // namespace

TEST_CASE("fit: a device model's metrics stay on the device until logged and agree with the host's") {
  std::vector<nlohmann::json> logged[2];
  train::FitResult res[2];
  std::int64_t reads[2];
  for (int dev = 0; dev < 2; ++dev) {
    const auto path = temp_dir(dev ? "stats_dev" : "stats_host") + ".jsonl";
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    train::MetricsLog log(path, true);
    auto cfg = quiet("", false);
    cfg.log = &log;
    const auto before = heads::stats_reads().load();
    if (dev) {
      Run<Dev> r;
      res[dev] = r.fit(cfg);
    } else {
      Run<device::host> r;
      res[dev] = r.fit(cfg);
    }
    reads[dev] = heads::stats_reads().load() - before;
    logged[dev] = step_records(path);
  }
  // The same reads on both policies: one per report and one per split at each epoch's end, none per batch.
  CHECK(reads[1] == reads[0]);
  CHECK(reads[0] == 3 + 2 * 3);
  REQUIRE(res[1].history.size() == res[0].history.size());
  for (std::size_t e = 0; e < res[0].history.size(); ++e) {
    CAPTURE(e);
    check_stats(res[1].history[e].train, res[0].history[e].train);
    check_stats(res[1].history[e].val, res[0].history[e].val);
    check_stats(res[1].history[e].test, res[0].history[e].test);
  }
  REQUIRE(logged[1].size() == logged[0].size());
  for (std::size_t k = 0; k < logged[0].size(); ++k)
    CHECK(logged[1][k]["loss"].get<double>() == doctest::Approx(logged[0][k]["loss"].get<double>()).epsilon(1e-3));
}

TEST_CASE("fit: a non-finite loss on the device stops the run at the next report, naming its batch") {
  Run<Dev> r;
  testing::ToyTask<float> task;
  task.poison_at = 3;
  auto cfg = quiet("", false);
  CHECK_THROWS_WITH_AS(train::fit(r.net, r.store, r.opt, train::Schedule{}, task, cfg),
                       doctest::Contains("non-finite loss in batch 3"), Error);
}

TEST_CASE("BatchStats on the device: each loss's statistics match the returning forward, and the host's") {
  const index_t n = 37, c = 5;
  Rng rng(12);
  Tensor<float> z(Shape{n, c}), p(Shape{n}), t(Shape{n});
  Tensor<std::int32_t> y(Shape{n});
  Tensor<std::uint8_t> m(Shape{n});
  for (index_t i = 0; i < n * c; ++i) z[i] = float(rng.normal());
  for (index_t i = 0; i < n; ++i) {
    p[i] = float(rng.normal());
    t[i] = float(rng.normal());
    y[i] = i % 7 == 3 ? heads::ignore_index : std::int32_t(rng.below(c));
    m[i] = i % 3 != 0;
  }
  auto zd = to_device(z), pd = to_device(p), td = to_device(t);
  auto yd = to_device(y);
  auto md = to_device(m);
  HostContext hctx;
  Context<Dev> dctx;
  auto same = [](const heads::LossStats& d, const heads::LossStats& h) {
    CHECK(d.count == h.count);
    CHECK(d.correct == h.correct);
    CHECK(d.loss == doctest::Approx(h.loss).epsilon(1e-12));
    CHECK(d.abs_err == doctest::Approx(h.abs_err).epsilon(1e-12));
    CHECK(d.sq_err == doctest::Approx(h.sq_err).epsilon(1e-12));
    CHECK(d.target_sum == doctest::Approx(h.target_sum).epsilon(1e-12));
    CHECK(d.target_sq == doctest::Approx(h.target_sq).epsilon(1e-12));
  };
  {
    using CE = heads::CrossEntropy<float>;
    using CED = heads::CrossEntropy<float, Dev>;
    CE::Saved hs;
    CED::Saved ds;
    heads::BatchStats<Dev> out;
    const auto h = CE::forward(hctx, z.view(), y.view(), hs);
    CED::forward(dctx, zd.view(), yd.view(), ds, out);
    same(out.read(dctx), h);
    same(CED::forward(dctx, zd.view(), yd.view(), ds), h);
  }
  {
    using L1 = heads::MaskedL1<float>;
    using L1D = heads::MaskedL1<float, Dev>;
    L1::Saved hs;
    L1D::Saved ds;
    heads::BatchStats<Dev> out;
    const auto h = L1::forward(hctx, p.view(), t.view(), m.view(), hs);
    L1D::forward(dctx, pd.view(), td.view(), md.view(), ds, out);
    same(out.read(dctx), h);
  }
  {
    using MSE = heads::MeanSquaredError<float>;
    using MSED = heads::MeanSquaredError<float, Dev>;
    MSE::Saved hs;
    MSED::Saved ds;
    heads::BatchStats<Dev> out;
    const auto h = MSE::forward(hctx, p.view(), t.view(), hs);
    MSED::forward(dctx, pd.view(), td.view(), ds, out);
    same(out.read(dctx), h);
  }
  // RunningStats on the device merges as the host does.
  train::RunningStats<Dev> dacc;
  train::RunningStats<device::host> hacc;
  heads::BatchStats<Dev> db;
  heads::BatchStats<device::host> hb;
  const double losses[] = {0.5, NAN, 1.5};
  for (int i = 0; i < 3; ++i) {
    hb.value = {losses[i], double(2 + i), double(i), 0.5 * i, 0.25 * i, 0.125 * i, 1.0 * i};
    db.set(dctx, hb.value);
    hacc.add(hctx, hb, i);
    dacc.add(dctx, db, i);
  }
  const auto hsnap = hacc.read(hctx), dsnap = dacc.read(dctx);
  CHECK(dsnap.first_nonfinite == 1);
  CHECK(hsnap.first_nonfinite == 1);
  CHECK(std::isnan(dsnap.total.loss));
  CHECK(dsnap.total.count == hsnap.total.count);
  CHECK(dsnap.total.target_sq == hsnap.total.target_sq);
}

namespace {
// Rank 1 of 2 whose twin computes the same numbers: every sum doubles, broadcasts keep the values.
struct TwinRank {
  int rank() const { return 1; }
  int size() const { return 2; }
  template <class T>
  void allreduce_sum(T* p, index_t n) {
    for (index_t i = 0; i < n; ++i) p[i] += p[i];
  }
  template <class T>
  void broadcast(T*, index_t, int) {}
  void barrier() {}
};
struct TwinTask : testing::ToyTask<float> {
  void set_shard(int, int) {}  // the twin loads the same whole batches
};
}  // namespace

TEST_CASE("fit: a device store trains data parallel through host staging as the host store does") {
  Tensor<float> got[2];
  train::FitResult res[2];
  for (int dev = 0; dev < 2; ++dev) {
    TwinRank comm;
    TwinTask task;
    auto cfg = quiet("", false);
    if (dev) {
      Run<Dev> r;
      res[dev] = train::fit(r.net, r.store, r.opt, train::Schedule{}, task, cfg, comm);
      got[dev] = r.params();
    } else {
      Run<device::host> r;
      res[dev] = train::fit(r.net, r.store, r.opt, train::Schedule{}, task, cfg, comm);
      got[dev] = r.params();
    }
  }
  CHECK(res[1].steps == res[0].steps);
  check_stats(res[1].history.back().val, res[0].history.back().val);
  INFO("device vs host, both data parallel: ", max_rel(got[1], got[0]));
  CHECK(max_rel(got[1], got[0]) < 1e-3);
}

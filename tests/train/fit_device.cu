// train::fit on a device model (its device store, AdamW<T, device::cuda> and the device loss scaler) against
// the same loop on the host, and checkpoints across policies: a run saved on the GPU resumes on the host and
// the other way round, with the optimizer state (values, moments, bf16 masters, step) restored bit for bit.
#include <doctest/doctest.h>

#include <filesystem>
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

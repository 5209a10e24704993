// train::step on a whole model on the GPU against the same model on the host: one template of the step for
// both policies, with dynamic loss scaling and clipping; the parameters after three updates agree to float
// rounding, and the device decided every update itself (no outcome was read until the end).
#include <doctest/doctest.h>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/models/family.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/train/adamw.hpp>
#include <longseq/train/step.hpp>

#include "nn/device_compare.hpp"

using namespace longseq;
using Dev = device::cuda;

namespace {
template <class F>
using Net = typename F::template Model<typename F::LinearEncoder,
                                       nn::Stack<nn::PreNormResidual<typename F::LayerNorm, typename F::FeedForward>>,
                                       typename F::ClassificationHead>;

template <class C>
C config(index_t h) {
  C c;
  c.encoder = {.channels = 1, .dim = h};
  c.backbone.depth = 2;
  c.backbone.block.norm = {.dim = h};
  c.backbone.block.mixer = {.dim = h, .expand = 2};
  c.norm = {.dim = h};
  c.head = {.dim = h, .classes = 3, .pool = nn::PoolMode::mean};
  return c;
}
}  // namespace

TEST_CASE("train::step: a device model's updates match the host model's (loss scaling, clipping)") {
  using HN = Net<models::Family<float>>;
  using DN = Net<models::Family<float, Dev>>;
  const index_t b = 4, l = 24, h = 16;
  HN hm(config<HN::Config>(h));
  DN dm(config<DN::Config>(h));
  ParamStore<float> hs;
  ParamStore<float, Dev> ds;
  hs.bind(hm);
  ds.bind(dm);
  Rng rng(5);
  hm.init(rng);
  testing::copy_store(hs, ds);
  const train::AdamWConfig oc{.lr = 1e-2, .weight_decay = 0.01};
  train::AdamW<float> ho(hs, oc);
  train::AdamW<float, Dev> dop(ds, oc);
  const train::LossScaleConfig ls{.initial = 4096, .window = 2};
  train::LossScaler hsc(ls);
  train::DeviceLossScaler dsc(ls);

  Tensor<float> x(Shape{b, l, 1});
  Tensor<std::int32_t> y(Shape{b});
  HostContext hctx;
  Context<Dev> dctx;
  HN::Saved hsaved;
  DN::Saved dsaved;
  for (int t = 0; t < 3; ++t) {
    for (index_t i = 0; i < x.numel(); ++i) x[i] = float(rng.normal());
    for (index_t i = 0; i < b; ++i) y[i] = std::int32_t(rng.below(3));
    auto xd = to_device(x);
    auto yd = to_device(y);
    hctx.seed = dctx.seed = std::uint64_t(t);
    const train::StepConfig sc{.clip = 0.5, .lr_factor = 1.0 - 0.1 * t};
    const auto hr = train::step(hm, hctx, hsaved, ho, hsc, models::Inputs<float>{{}, x.view(), {}},
                                heads::Targets<float>{y.view(), {}, {}, {}}, sc);
    const auto dr = train::step(dm, dctx, dsaved, dop, dsc, models::Inputs<float, Dev>{{}, xd.view(), {}},
                                heads::Targets<float, Dev>{yd.view(), {}, {}, {}}, sc);
    CHECK(hr.update.taken());
    CHECK(dr.update.pending);
    CHECK(dr.stats.loss == doctest::Approx(hr.stats.loss).epsilon(1e-4));
  }
  const auto last = dsc.last();
  CHECK(last.taken());
  CHECK(dsc.state().scale == hsc.state().scale);
  CHECK(dop.steps() == 3);
  // Same parameters after three updates (to float rounding of the two orders of summation).
  double err = 0;
  for (const auto& e : hs.entries()) {
    const auto* d = ds.find(e.name);
    REQUIRE(d != nullptr);
    err = std::max(err, testing::rel_error<float>(d->param->value, e.param->value));
  }
  INFO("largest relative parameter difference: ", err);
  CHECK(err < 1e-4);
}

// The joint objective in fit on a device model (the masked copy staged through its own BatchStage, the
// denoising statistics left on the device) against the same run on the host.
#include <doctest/doctest.h>

#include <cmath>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/heads/joint.hpp>
#include <longseq/models/family.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <longseq/nn/stack.hpp>
#include <longseq/train/fit.hpp>
#include <longseq/train/tasks.hpp>
#include <longseq/train/transfer.hpp>

#include "nn/device_compare.hpp"

using namespace longseq;

namespace {
template <class F>
using Net = typename F::template Model<
    typename F::LinearEncoder, nn::Stack<nn::PreNormResidual<typename F::LayerNorm, typename F::FeedForward>>,
    heads::JointHead<typename F::ClassificationHead, typename F::MaskedDenoisingHead>>;

template <class C>
C net_config(index_t h) {
  C c;
  c.encoder = {.channels = 1, .dim = h, .mask_channel = true};
  c.backbone.depth = 2;
  c.backbone.block.norm = {.dim = h};
  c.backbone.block.mixer = {.dim = h, .expand = 2};
  c.backbone.block.dropout = 0.0;
  c.norm = {.dim = h};
  c.head.supervised = {.dim = h, .classes = 2, .pool = nn::PoolMode::mean};
  c.head.denoising = {.dim = h, .classes = 0, .loss = heads::DenoiseLoss::l1};
  return c;
}

data::Dataset images(index_t n, std::uint64_t stream) {
  data::TaskInfo info;
  info.name = "tiny-images";
  info.modality = data::Modality::pixels;
  info.num_classes = 2;
  info.vocab_size = 256;
  info.max_length = 12;
  info.height = 3;
  info.width = 4;
  data::Dataset d(info);
  Rng rng(31, stream);
  for (index_t i = 0; i < n; ++i) {
    std::vector<std::uint8_t> img(12);
    double sum = 0;
    for (auto& p : img) sum += double(p = std::uint8_t(rng.below(256)));
    d.add_pixels(sum > 127.5 * 12 ? 1 : 0, img);
  }
  return d;
}

template <class D>
train::FitResult run(Tensor<float>& params) {
  using N = Net<models::Family<float, D>>;
  using HN = Net<models::Family<float>>;
  N net(net_config<typename N::Config>(8));
  ParamStore<float, D> store;
  store.bind(net);
  {
    HN host(net_config<typename HN::Config>(8));
    ParamStore<float> hs;
    hs.bind(host);
    Rng rng(42);
    host.init(rng);
    train::copy_parameters(hs, store);
  }
  train::AdamW<float, D> opt(store, {.lr = 3e-3});
  const auto tr = images(24, 1), va = images(8, 2), te = images(8, 3);
  train::TaskOptions o{.objective = train::Objective::joint, .batch = 4, .seed = 5, .joint_weight = 0.5};
  o.mask.p = 0.5;
  o.augment = {.translate = 1, .flip = 0.5};
  train::DatasetTask<float> task(tr, va, te, o);
  train::FitConfig cfg;
  cfg.progress = false;
  cfg.epochs = 2;
  cfg.seed = 7;
  const auto r = train::fit(net, store, opt, train::Schedule{}, task, cfg);
  params = train::detail::on_host(store.values());
  return r;
}
}  // namespace

TEST_CASE("fit joint: a device model trains the joint objective like the host model") {
  Tensor<float> hp, dp;
  const auto hr = run<device::host>(hp);
  const auto dr = run<device::cuda>(dp);
  CHECK(dr.steps == hr.steps);
  REQUIRE(dr.history.size() == 2);
  CHECK(dr.history[1].joint);
  CHECK(dr.history[1].denoise.loss == doctest::Approx(hr.history[1].denoise.loss).epsilon(1e-3));
  CHECK(dr.history[1].denoise.count == hr.history[1].denoise.count);
  CHECK(dr.history[1].val.loss == doctest::Approx(hr.history[1].val.loss).epsilon(1e-3));
  double num = 0, den = 0;
  for (index_t i = 0; i < hp.numel(); ++i) {
    num = std::max(num, std::abs(double(dp[i]) - double(hp[i])));
    den = std::max(den, std::abs(double(hp[i])));
  }
  CHECK(num / den < 1e-3);
}

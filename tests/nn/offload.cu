// nn::Offload with a CUDA device layer: a model whose residual stack runs on the GPU trains like the same
// model on the host (parameters and losses agree to float rounding after a few updates).
#include <doctest/doctest.h>

#include <cmath>
#include <longseq/nn/cuda/offload.cuh>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>
#include <vector>

#include "train/toy.hpp"

using namespace longseq;
using Cls = heads::ClassificationHead<float>;
using Plain = testing::ToyNet<float, Cls>;

namespace {

using DevBlock = nn::PreNormResidual<nn::LayerNorm<float, device::cuda>, nn::FeedForward<float, device::cuda>>;
using Backbone = nn::Offload<nn::Stack<testing::ToyBlock<float>>, nn::Stack<DevBlock>>;
using Net = models::Model<models::LinearEncoder<float>, Backbone, nn::LayerNorm<float>, Cls>;

}  // namespace

TEST_CASE("Offload: a model with its stack on the GPU trains like the host model") {
  const auto pc = testing::toy_config<float, Cls>(8, {.dim = 8, .classes = 2});
  typename nn::Stack<DevBlock>::Config dev{.depth = 2, .block = {{.dim = 8}, {.dim = 8, .expand = 2}, 0.1}};
  testing::Trained<Plain> plain(pc);
  testing::Trained<Net> gpu(typename Net::Config{pc.encoder, {pc.backbone, dev}, pc.norm, pc.head});
  const auto a = plain.fit(), b = gpu.fit();
  const auto pa = plain.params(), pb = gpu.params();
  REQUIRE(pa.size() == pb.size());
  CHECK(a.steps == b.steps);
  CHECK(b.best_val_loss == doctest::Approx(a.best_val_loss).epsilon(1e-4));
  double err = 0;
  for (std::size_t i = 0; i < pa.size(); ++i) err = std::max(err, double(std::abs(pa[i] - pb[i])));
  INFO("largest parameter difference after ", a.steps, " updates: ", err);
  CHECK(err < 1e-4);
}

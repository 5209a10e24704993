// GPU LayerNorm, RMSNorm, FeedForward and the residual wrappers: each device layer against the host layer
// on the same parameters and inputs (output, input gradient, every parameter gradient).
#include <doctest/doctest.h>

#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>

#include "device_compare.hpp"

using namespace longseq;

static_assert(nn::assert_layer<nn::LayerNorm<float, device::cuda>, float, device::cuda>());
static_assert(nn::assert_layer<nn::RMSNorm<float, device::cuda>, float, device::cuda>());
static_assert(nn::assert_layer<nn::FeedForward<float, device::cuda>, float, device::cuda>());

namespace {

constexpr index_t B = 2, L = 9, H = 24;
const Shape io{B, L, H};

template <class D>
typename nn::LayerNorm<float, D>::Config ln_config(bool affine) {
  return {.dim = H, .eps = 1e-5, .affine = affine};
}
template <class D>
typename nn::FeedForward<float, D>::Config ff_config(nn::Activation a) {
  return {.dim = H, .expand = 2, .hidden = 0, .activation = a, .bias = true};
}
template <class D>
using LN = nn::LayerNorm<float, D>;
template <class D>
using FF = nn::FeedForward<float, D>;

template <class D, bool Pre>
using Block = std::conditional_t<Pre, nn::PreNormResidual<LN<D>, FF<D>>, nn::PostNormResidual<LN<D>, FF<D>>>;

template <class D, bool Pre>
typename Block<D, Pre>::Config block_config(double dropout) {
  typename Block<D, Pre>::Config c;
  c.norm = ln_config<D>(true);
  c.mixer = ff_config<D>(nn::Activation::gelu);
  c.dropout = dropout;
  c.stream = 7;
  return c;
}

}  // namespace

TEST_CASE("LayerNorm on the GPU matches the host layer") {
  for (bool affine : {true, false}) {
    INFO("affine ", affine);
    LN<device::host> h(ln_config<device::host>(affine));
    LN<device::cuda> d(ln_config<device::cuda>(affine));
    testing::compare_layer(h, d, io, io, 1e-5);
  }
}

TEST_CASE("RMSNorm on the GPU matches the host layer") {
  nn::RMSNorm<float> h({.dim = H});
  nn::RMSNorm<float, device::cuda> d({.dim = H});
  testing::compare_layer(h, d, io, io, 1e-5);
}

TEST_CASE("FeedForward on the GPU matches the host layer for every activation") {
  using nn::Activation;
  for (Activation a : {Activation::gelu, Activation::gelu_tanh, Activation::relu, Activation::silu,
                       Activation::sigmoid}) {
    INFO("activation ", int(a));
    FF<device::host> h(ff_config<device::host>(a));
    FF<device::cuda> d(ff_config<device::cuda>(a));
    testing::compare_layer(h, d, io, io, 1e-5);
  }
}

TEST_CASE("Pre- and post-norm residual blocks on the GPU match the host blocks (with dropout)") {
  for (double p : {0.0, 0.3}) {
    INFO("dropout ", p);
    Block<device::host, true> hpre(block_config<device::host, true>(p));
    Block<device::cuda, true> dpre(block_config<device::cuda, true>(p));
    testing::compare_layer(hpre, dpre, io, io, 1e-5);
    Block<device::host, false> hpost(block_config<device::host, false>(p));
    Block<device::cuda, false> dpost(block_config<device::cuda, false>(p));
    testing::compare_layer(hpost, dpost, io, io, 1e-5);
  }
}

TEST_CASE("Device layers reject wrong shapes with readable errors") {
  LN<device::cuda> ln(ln_config<device::cuda>(true));
  ParamStore<float, device::cuda> store;
  store.bind(ln);
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{2, H + 1}), y(Shape{2, H + 1});
  LN<device::cuda>::Saved s;
  CHECK_THROWS_WITH_AS(ln.forward(ctx, x.view(), y.view(), s),
                       doctest::Contains("LayerNorm: tensor 'x' has shape (2, 25), expected last dimension 24"), Error);
}

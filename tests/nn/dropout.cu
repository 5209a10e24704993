// Tied dropout on the GPU: the same mask as the host, bit for bit (forward, backward, in place), and a
// residual block with tied dropout against the host block.
#include <doctest/doctest.h>

#include <longseq/nn/dropout.hpp>
#include <longseq/nn/feed_forward.hpp>
#include <longseq/nn/norm_layers.hpp>
#include <longseq/nn/residual.hpp>

#include "device_compare.hpp"

using namespace longseq;

static_assert(nn::assert_layer<nn::Dropout<float, device::cuda>, float, device::cuda>());

TEST_CASE("tied dropout on the GPU drops the host's channels") {
  const index_t B = 5, L = 11, H = 70;
  Rng rng(3);
  Tensor<float> x(Shape{B, L, H}), y(Shape{B, L, H}), dx(Shape{B, L, H});
  testing::fill_uniform(x.view(), rng);
  HostContext hctx;
  Context<device::cuda> dctx;
  for (auto mask : {nn::DropoutMask::tied, nn::DropoutMask::element}) {
    INFO("tied ", mask == nn::DropoutMask::tied);
    nn::Dropout<float> h({.p = 0.35, .mask = mask, .stream = 4});
    nn::Dropout<float, device::cuda> d({.p = 0.35, .mask = mask, .stream = 4});
    hctx.seed = dctx.seed = 19;
    nn::Dropout<float>::Saved hs;
    nn::Dropout<float, device::cuda>::Saved ds;
    h.forward(hctx, x.view(), y.view(), hs);
    h.backward(hctx, hs, x.view(), dx.view());
    auto xd = to_device(x);
    Tensor<float, device::cuda> yd(x.shape()), dxd(x.shape());
    d.forward(dctx, xd.view(), yd.view(), ds);
    d.backward(dctx, ds, xd.view(), dxd.view());
    dctx.synchronize();
    const Tensor<float> yg = to_host(yd.view()), dxg = to_host(dxd.view());
    index_t differ = 0;
    for (index_t i = 0; i < x.numel(); ++i) differ += yg[i] != y[i] || dxg[i] != dx[i];
    CHECK(differ == 0);
  }
  // In place, as SSMConv and the residual wrappers call it.
  auto xd = to_device(x);
  nn::tied_dropout_forward<float>(dctx, xd.view(), xd.view(), 0.5, 7, 8);
  nn::tied_dropout_forward<float>(hctx, x.view(), x.view(), 0.5, 7, 8);
  dctx.synchronize();
  const Tensor<float> got = to_host(xd.view());
  index_t differ = 0;
  for (index_t i = 0; i < x.numel(); ++i) differ += got[i] != x[i];
  CHECK(differ == 0);
}

TEST_CASE("a residual block with tied dropout on the GPU matches the host block") {
  using LN = nn::LayerNorm<float>;
  using LNd = nn::LayerNorm<float, device::cuda>;
  using FF = nn::FeedForward<float>;
  using FFd = nn::FeedForward<float, device::cuda>;
  nn::PreNormResidual<LN, FF>::Config hc;
  nn::PreNormResidual<LNd, FFd>::Config dc;
  hc.norm.dim = dc.norm.dim = 16;
  hc.mixer.dim = dc.mixer.dim = 16;
  hc.mixer.expand = dc.mixer.expand = 2;
  hc.dropout = dc.dropout = 0.3;
  hc.dropout_mask = dc.dropout_mask = nn::DropoutMask::tied;
  hc.stream = dc.stream = 3;
  nn::PreNormResidual<LN, FF> h(hc);
  nn::PreNormResidual<LNd, FFd> d(dc);
  testing::compare_layer(h, d, Shape{3, 9, 16}, Shape{3, 9, 16}, 1e-5);
}

// GPU BatchNorm and RuntimeNorm: the device layer against the host layer on the same parameters and inputs
// (output, input gradient, parameter gradients; training and evaluation), and the running statistics the
// training forward leaves behind.
#include <doctest/doctest.h>

#include <longseq/nn/batch_norm.hpp>
#include <longseq/nn/runtime_norm.hpp>

#include "device_compare.hpp"

using namespace longseq;

static_assert(nn::assert_layer<nn::BatchNorm<float, device::cuda>, float, device::cuda>());
static_assert(nn::assert_layer<nn::RuntimeNorm<float, device::cuda>, float, device::cuda>());

namespace {
// More rows than one column-sum chunk (1024) so the chunked reduction is exercised.
constexpr index_t B = 3, L = 700, H = 40;
const Shape io{B, L, H};
}  // namespace

TEST_CASE("BatchNorm on the GPU matches the host layer in training and evaluation") {
  for (bool training : {true, false}) {
    INFO("training ", training);
    nn::BatchNorm<float> h({.dim = H});
    nn::BatchNorm<float, device::cuda> d({.dim = H});
    testing::compare_layer(h, d, io, io, 1e-4, 11, training);
  }
}

TEST_CASE("RuntimeNorm on the GPU matches the host layer for every kind") {
  for (auto kind : {nn::NormKind::layer, nn::NormKind::batch, nn::NormKind::none}) {
    INFO("kind ", int(kind));
    nn::RuntimeNorm<float> h({.dim = H, .kind = kind});
    nn::RuntimeNorm<float, device::cuda> d({.dim = H, .kind = kind});
    testing::compare_layer(h, d, io, io, 1e-4, 12);
  }
}

TEST_CASE("BatchNorm on the GPU updates the running statistics like the host layer") {
  nn::BatchNorm<float> h({.dim = H, .momentum = 0.3});
  nn::BatchNorm<float, device::cuda> d({.dim = H, .momentum = 0.3});
  ParamStore<float> hs;
  ParamStore<float, device::cuda> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(3);
  h.init(rng);
  testing::copy_store(hs, ds);
  Tensor<float> x(io), y(io);
  testing::fill_uniform(x.view(), rng, 2.0);
  HostContext hctx;
  Context<device::cuda> dctx;
  nn::BatchNorm<float>::Saved hsv;
  nn::BatchNorm<float, device::cuda>::Saved dsv;
  h.forward(hctx, x.view(), y.view(), hsv);
  auto xd = to_device(x);
  Tensor<float, device::cuda> yd(io);
  d.forward(dctx, xd.view(), yd.view(), dsv);
  dctx.synchronize();
  CHECK(testing::rel_error<float>(d.running_mean.value, h.running_mean.value) < 1e-5);
  CHECK(testing::rel_error<float>(d.running_var.value, h.running_var.value) < 1e-5);
  CHECK(d.running_var.buffer);
}

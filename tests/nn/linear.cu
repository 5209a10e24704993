// GPU nn::Linear: the device layer against the host layer on the same parameters and inputs: forward
// (apply and forward), the input gradient and the accumulated weight and bias gradients.
#include <doctest/doctest.h>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/nn/linear.hpp>

#include "device_compare.hpp"

using namespace longseq;

static_assert(nn::assert_layer<nn::Linear<float, device::cuda>, float, device::cuda>());

namespace {

void compare_linear(bool bias, bool want_dx) {
  using HostL = nn::Linear<float>;
  using DevL = nn::Linear<float, device::cuda>;
  const HostL::Config cfg{.in = 7, .out = 6, .bias = bias};
  HostL h(cfg);
  DevL d(DevL::Config{cfg.in, cfg.out, cfg.bias});
  ParamStore<float> hs;
  ParamStore<float, device::cuda> ds;
  hs.bind(h);
  ds.bind(d);
  Rng rng(11);
  h.init(rng);
  // Nonzero starting gradients, so that accumulation (+=) is checked as well as the values.
  testing::fill_uniform(hs.grads(), rng, 0.5);
  testing::copy_store(hs, ds);

  Tensor<float> x(Shape{2, 5, 7}), dy(Shape{2, 5, 6}), y(Shape{2, 5, 6}), dx(Shape{2, 5, 7});
  testing::fill_uniform(x.view(), rng);
  testing::fill_uniform(dy.view(), rng);
  HostContext hctx;
  Context<device::cuda> dctx;
  HostL::Saved hsaved;
  DevL::Saved dsaved;
  h.forward(hctx, x.view(), y.view(), hsaved);
  h.backward(hctx, hsaved, dy.view(), want_dx ? dx.view() : TensorView<float>());

  auto xd = to_device(x), dyd = to_device(dy);
  Tensor<float, device::cuda> yd(y.shape()), dxd(dx.shape()), yd2(y.shape());
  d.forward(dctx, xd.view(), yd.view(), dsaved);
  d.apply(dctx, xd.view(), yd2.view());
  d.backward(dctx, dsaved, dyd.view(), want_dx ? dxd.view() : TensorView<float, device::cuda>());
  dctx.synchronize();

  CHECK(testing::rel_error<float>(yd.view(), y.view()) < 1e-5);
  CHECK(testing::rel_error<float>(yd2.view(), y.view()) < 1e-5);
  CHECK(testing::rel_error<float>(dsaved.x.view(), x.view()) == 0.0);
  if (want_dx) CHECK(testing::rel_error<float>(dxd.view(), dx.view()) < 1e-5);
  testing::check_grads(hs, ds, 1e-5);
}

}  // namespace

TEST_CASE("Linear on the GPU matches the host layer (forward, dx, dW, db accumulated)") {
  SUBCASE("with bias") { compare_linear(true, true); }
  SUBCASE("without bias") { compare_linear(false, true); }
  SUBCASE("parameter gradients only (empty dx)") { compare_linear(true, false); }
}

TEST_CASE("Linear on the GPU rejects wrong shapes with readable errors") {
  nn::Linear<float, device::cuda> lin({.in = 4, .out = 3});
  ParamStore<float, device::cuda> store;
  store.bind(lin);
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{2, 5}), y(Shape{2, 3});
  nn::Linear<float, device::cuda>::Saved s;
  CHECK_THROWS_WITH_AS(lin.forward(ctx, x.view(), y.view(), s),
                       doctest::Contains("tensor 'x' has shape (2, 5), expected last dimension 4"), Error);
}

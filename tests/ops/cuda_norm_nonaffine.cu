// CUDA layernorm backward without parameter gradients (a non-affine LayerNorm): empty dgamma/dbeta give the
// host's dx and touch no buffer; one buffer passed as both is refused (it used to be read uninitialized).
#include <doctest/doctest.h>

#include <longseq/nn/norm_layers.hpp>
#include <longseq/ops/cuda/norm.cuh>
#include <longseq/ops/norm.hpp>

#include "ops/cuda_helpers.cuh"

using namespace longseq;
using namespace longseq::test;
using doctest::Contains;

TEST_CASE("cuda layernorm_backward: empty dgamma/dbeta compute dx only; an aliased pair is refused") {
  const index_t rows = 37, H = 48;
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  Shape shape{rows, H};
  auto x = random_tensor<float>(shape, 51, -2.0, 3.0);
  auto dy = random_tensor<float>(shape, 52);
  Tensor<float> gamma(Shape{H}, 1.0f), beta(Shape{H}, 0.0f), y(shape), dx(shape), dg(Shape{H}), db(Shape{H});
  Tensor<float> mean(Shape{rows}), rstd(Shape{rows});
  ops::layernorm_forward<float>(hctx, x.view(), gamma.view(), beta.view(), y.view(), mean.view(), rstd.view(), 1e-5f);
  ops::layernorm_backward<float>(hctx, x.view(), gamma.view(), mean.view(), rstd.view(), dy.view(), dx.view(),
                                 dg.view(), db.view());

  auto gx = to_device(x), gdy = to_device(dy), gg = to_device(gamma), gb = to_device(beta);
  Tensor<float, device::cuda> gy(shape), gdx(shape), gmean(Shape{rows}), grstd(Shape{rows});
  ops::layernorm_forward<float>(dctx, gx.view(), gg.view(), gb.view(), gy.view(), gmean.view(), grstd.view(), 1e-5f);
  TensorView<float, device::cuda> none(nullptr, Shape{0});
  ops::layernorm_backward<float>(dctx, gx.view(), gg.view(), gmean.view(), grstd.view(), gdy.view(), gdx.view(),
                                 none, none);
  CHECK(max_rel_error(to_host(gdx), as_double(dx)) < 1e-5);

  Tensor<float, device::cuda> shared(Shape{H});
  CHECK_THROWS_WITH_AS(ops::layernorm_backward<float>(dctx, gx.view(), gg.view(), gmean.view(), grstd.view(),
                                                      gdy.view(), gdx.view(), shared.view(), shared.view()),
                       Contains("'dgamma' and 'dbeta' are the same buffer"), Error);
  CHECK_THROWS_AS(ops::layernorm_backward<float>(dctx, gx.view(), gg.view(), gmean.view(), grstd.view(), gdy.view(),
                                                 gdx.view(), shared.view(), none),
                  Error);
}

TEST_CASE("non-affine LayerNorm on the GPU: dx equals the host layer's") {
  using Host = nn::LayerNorm<float>;
  using Dev = nn::LayerNorm<float, device::cuda>;
  Host h({.dim = 24, .affine = false});
  Dev d({.dim = 24, .affine = false});
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  Shape shape{5, 7, 24};
  auto x = random_tensor<float>(shape, 61, -1.0, 2.0);
  auto dy = random_tensor<float>(shape, 62);
  Tensor<float> y(shape), dx(shape);
  Host::Saved hs;
  h.forward(hctx, x.view(), y.view(), hs);
  h.backward(hctx, hs, dy.view(), dx.view());
  auto gx = to_device(x), gdy = to_device(dy);
  Tensor<float, device::cuda> gy(shape), gdx(shape);
  Dev::Saved ds;
  d.forward(dctx, gx.view(), gy.view(), ds);
  d.backward(dctx, ds, gdy.view(), gdx.view());
  CHECK(max_rel_error(to_host(gy), as_double(y)) < 1e-5);
  CHECK(max_rel_error(to_host(gdx), as_double(dx)) < 1e-5);
}

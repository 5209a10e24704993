#include <doctest/doctest.h>

#include <longseq/ops/ops.hpp>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

// The ops composed as an SSM-convolution block uses them: layernorm -> (B,H,L) -> causal fft_conv ->
// (B,L,H) -> gelu -> dropout -> x W^T + b -> glu. The chained backwards must give the gradient of the
// whole block, which checks that the ops agree on layouts and on written-vs-accumulated gradients.
TEST_CASE("ops compose: a convolution block's chained backward matches finite differences") {
  HostContext ctx;
  const index_t B = 2, L = 5, H = 3;
  auto x = random_tensor<double>(Shape{B, L, H}, 1);
  auto gamma = random_tensor<double>(Shape{H}, 2, 0.5, 1.5), beta = random_tensor<double>(Shape{H}, 3);
  auto k = random_tensor<double>(Shape{H, L}, 4);
  auto W = random_tensor<double>(Shape{2 * H, H}, 5), bias = random_tensor<double>(Shape{2 * H}, 6);
  auto w = random_tensor<double>(Shape{B, L, H}, 7);
  const double p = 0.25;
  const std::uint64_t seed = 11, stream = 3;

  Tensor<double> n(Shape{B, L, H}), mean(Shape{B * L}), rstd(Shape{B * L}), u(Shape{B, H, L}), c(Shape{B, H, L});
  Tensor<double> z(Shape{B, L, H}), a(Shape{B, L, H}), d(Shape{B, L, H}), g(Shape{B, L, 2 * H}), y(Shape{B, L, H});
  auto forward = [&] {
    layernorm_forward<double>(ctx, x, gamma, beta, n, mean, rstd, 1e-5);
    transpose12<double>(ctx, n, u);
    fft_conv_forward<double>(ctx, u, k, c);
    transpose12<double>(ctx, c, z);
    gelu_forward<double>(ctx, z, a);
    dropout_forward<double>(ctx, a, d, p, seed, stream);
    matmul<double>(ctx, d, W, g, Trans::N, Trans::T);
    add_bias<double>(ctx, g, bias);
    glu_forward<double>(ctx, g, y);
    return optest::dot(w, y);
  };
  auto nx = optest::numeric_grad(x, forward), nk = optest::numeric_grad(k, forward);
  auto nW = optest::numeric_grad(W, forward), nb = optest::numeric_grad(bias, forward);
  forward();

  Tensor<double> dg(g.shape()), dd(d.shape()), dz(z.shape()), dc(c.shape()), du(u.shape()), dn(n.shape());
  Tensor<double> dx(x.shape()), dk(k.shape()), dW(W.shape()), db(bias.shape());
  Tensor<double> dgamma(gamma.shape()), dbeta(beta.shape());
  glu_backward<double>(ctx, g, w, dg);
  sum_rows<double>(ctx, dg, db, true);
  matmul_backward<double>(ctx, d, W, dg, dd, dW, Trans::N, Trans::T, 1.0, GradMode::write, GradMode::accumulate);
  dropout_backward<double>(ctx, dd, dd, p, seed, stream);
  gelu_backward<double>(ctx, z, dd, dz);
  transpose12<double>(ctx, dz, dc);
  fft_conv_backward<double>(ctx, u, k, dc, du, dk);
  transpose12<double>(ctx, du, dn);
  layernorm_backward<double>(ctx, x, gamma, mean, rstd, dn, dx, dgamma, dbeta);

  CHECK(optest::rel_err(dx, nx) < 1e-7);
  CHECK(optest::rel_err(dk, nk) < 1e-7);
  CHECK(optest::rel_err(dW, nW) < 1e-7);
  CHECK(optest::rel_err(db, nb) < 1e-7);
}

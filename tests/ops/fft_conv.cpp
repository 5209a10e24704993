#include <doctest/doctest.h>

#include <longseq/ops/fft_conv.hpp>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;

namespace {

// O(L^2) direct sum in double.
Tensor<double> naive_conv(const Tensor<double>& u, const Tensor<double>& k, ConvMode mode) {
  index_t N = u.size(0), C = u.size(1), L = u.size(2), Lk = k.size(1);
  Tensor<double> y(u.shape());
  for (index_t b = 0; b < N; ++b)
    for (index_t c = 0; c < C; ++c)
      for (index_t l = 0; l < L; ++l) {
        double s = 0;
        for (index_t j = 0; j < Lk; ++j) {
          index_t src = l - j;
          if (src < 0) {
            if (mode == ConvMode::causal) continue;
            src += L;
          }
          s += k(c, j) * u(b, c, src);
        }
        y(b, c, l) = s;
      }
  return y;
}

}  // namespace

TEST_CASE("fft_conv matches the direct sum: causal and circular, Lk = L and Lk < L") {
  HostContext ctx;
  for (ConvMode mode : {ConvMode::causal, ConvMode::circular})
    for (index_t L : {1, 8, 13})
      for (index_t Lk : {index_t(1), L / 2 + 1, L}) {
        CAPTURE(int(mode));
        CAPTURE(L);
        CAPTURE(Lk);
        auto u = random_tensor<double>(Shape{2, 3, L}, 1), k = random_tensor<double>(Shape{3, Lk}, 2);
        Tensor<double> y(u.shape());
        fft_conv_forward<double>(ctx, u, k, y, mode);
        auto ref = naive_conv(u, k, mode);
        CHECK(optest::rel_err(y, ref, y.numel()) < 1e-13);
        // float (and bf16 storage, transformed in float) agree with double
        auto uf = optest::cast<float>(u), kf = optest::cast<float>(k);
        Tensor<float> yf(u.shape());
        fft_conv_forward<float>(ctx, uf, kf, yf, mode);
        CHECK(optest::rel_err(yf, ref, y.numel()) < 1e-5);
        auto ub = optest::cast<bf16>(u), kb = optest::cast<bf16>(k);
        Tensor<bf16> yb(u.shape());
        fft_conv_forward<bf16>(ctx, ub, kb, yb, mode);
        CHECK(optest::rel_err(yb, ref, y.numel()) < 3e-2);
      }
}

TEST_CASE("fft_conv backward matches finite differences; du written, dk accumulated") {
  HostContext ctx;
  for (ConvMode mode : {ConvMode::causal, ConvMode::circular})
    for (index_t Lk : {3, 6}) {
      CAPTURE(int(mode));
      CAPTURE(Lk);
      index_t L = 6;
      auto u = random_tensor<double>(Shape{2, 2, L}, 3), k = random_tensor<double>(Shape{2, Lk}, 4);
      auto w = random_tensor<double>(Shape{2, 2, L}, 5);
      Tensor<double> y(u.shape());
      auto loss = [&] {
        fft_conv_forward<double>(ctx, u, k, y, mode);
        return optest::dot(w, y);
      };
      auto nu = optest::numeric_grad(u, loss), nk = optest::numeric_grad(k, loss);
      Tensor<double> du(u.shape(), 9.0), dk(k.shape(), 0.5);
      fft_conv_backward<double>(ctx, u, k, w, du, dk, mode);
      CHECK(optest::rel_err(du, nu) < 1e-8);
      for (index_t i = 0; i < dk.numel(); ++i) dk[i] -= 0.5;
      CHECK(optest::rel_err(dk, nk) < 1e-8);
      // Skipping du still accumulates dk.
      Tensor<double> dk2(k.shape());
      fft_conv_backward<double>(ctx, u, k, w, TensorView<double>(), dk2, mode);
      CHECK(optest::rel_err(dk2, nk) < 1e-8);
      // float agrees with double
      auto uf = optest::cast<float>(u), kf = optest::cast<float>(k), wf = optest::cast<float>(w);
      Tensor<float> duf(u.shape()), dkf(k.shape());
      fft_conv_backward<float>(ctx, uf, kf, wf, duf, dkf, mode);
      CHECK(optest::rel_err(duf, du, du.numel()) < 1e-5);
      CHECK(optest::rel_err(dkf, dk, dk.numel()) < 1e-5);
    }
}

TEST_CASE("fft_conv gives the same result with one thread and with several") {
  HostContext ctx;
  auto u = random_tensor<double>(Shape{4, 8, 512}, 6), k = random_tensor<double>(Shape{8, 512}, 7);
  auto dy = random_tensor<double>(u.shape(), 8);
  Tensor<double> y1(u.shape()), y2(u.shape()), du1(u.shape()), du2(u.shape()), dk1(k.shape()), dk2(k.shape());
  ctx.threads = 1;
  fft_conv_forward<double>(ctx, u, k, y1);
  fft_conv_backward<double>(ctx, u, k, dy, du1, dk1);
  ctx.threads = 2;
  fft_conv_forward<double>(ctx, u, k, y2);
  fft_conv_backward<double>(ctx, u, k, dy, du2, dk2);
  for (index_t i = 0; i < y1.numel(); ++i) REQUIRE(y1[i] == y2[i]);
  for (index_t i = 0; i < du1.numel(); ++i) REQUIRE(du1[i] == du2[i]);
  for (index_t i = 0; i < dk1.numel(); ++i) REQUIRE(dk1[i] == dk2[i]);
}

TEST_CASE("fft_conv in float on longer rows (SIMD transforms) matches the direct sum") {
  HostContext ctx;
  for (ConvMode mode : {ConvMode::causal, ConvMode::circular})
    for (index_t L : {100, 257}) {
      CAPTURE(int(mode));
      CAPTURE(L);
      auto u = random_tensor<double>(Shape{2, 3, L}, 3), k = random_tensor<double>(Shape{3, L - 7}, 4);
      auto ref = naive_conv(u, k, mode);
      auto uf = optest::cast<float>(u), kf = optest::cast<float>(k);
      Tensor<float> yf(u.shape());
      fft_conv_forward<float>(ctx, uf, kf, yf, mode);
      CHECK(optest::rel_err(yf, ref, ref.numel()) < 1e-5);
    }
}

TEST_CASE("fft_conv rejects bad shapes, naming the tensor") {
  HostContext ctx;
  Tensor<float> u(Shape{2, 3, 8}), y(Shape{2, 3, 8});
  Tensor<float> k_long(Shape{3, 9}), k_wrong_c(Shape{4, 8}), y_bad(Shape{2, 3, 7});
  CHECK_THROWS_WITH_AS(fft_conv_forward<float>(ctx, u, k_long, y),
                       doctest::Contains("tensor 'k' has length Lk = 9 (shape (3, 9)), expected 1 <= Lk <= L = 8"),
                       Error);
  CHECK_THROWS_WITH_AS(fft_conv_forward<float>(ctx, u, k_wrong_c, y),
                       doctest::Contains("tensor 'k' has shape (4, 8), expected (3, Lk)"), Error);
  Tensor<float> k(Shape{3, 8});
  CHECK_THROWS_WITH_AS(fft_conv_forward<float>(ctx, u, k, y_bad),
                       doctest::Contains("tensor 'y' has shape (2, 3, 7), expected (2, 3, 8)"), Error);
  Tensor<float> u2(Shape{6, 8});
  CHECK_THROWS_WITH_AS(fft_conv_forward<float>(ctx, u2, k, y), doctest::Contains("tensor 'u' has rank 2"), Error);
  Tensor<float> dk_bad(Shape{3, 7}), du(Shape{2, 3, 8});
  CHECK_THROWS_WITH_AS(fft_conv_backward<float>(ctx, u, k, y, du, dk_bad),
                       doctest::Contains("tensor 'dk' has shape (3, 7), expected (3, 8)"), Error);
}

// GPU tests of cuBLAS GEMM and cuFFT convolution: agreement with naive double references and the host ops.
#include <doctest/doctest.h>

#include <complex>
#include <cstring>
#include <longseq/ops/cuda/fft.cuh>
#include <longseq/ops/cuda/fft_conv.cuh>
#include <longseq/ops/fft.hpp>
#include <longseq/ops/cuda/gemm.cuh>
#include <longseq/ops/fft_conv.hpp>
#include <longseq/ops/gemm.hpp>

#include "cuda_helpers.cuh"

using namespace longseq;
using namespace longseq::test;
using doctest::Contains;
using ops::ConvMode;
using ops::Trans;

namespace {

// C[i] = alpha op(A[i]) op(B[i]) + beta C[i] in double, from the same (padded, strided) storage.
std::vector<double> gemm_reference(Trans ta, Trans tb, index_t m, index_t n, index_t k, double alpha,
                                   const std::vector<double>& a, index_t lda, const std::vector<double>& b,
                                   index_t ldb, double beta, std::vector<double> c, index_t ldc, index_t batch,
                                   index_t sa, index_t sb, index_t sc) {
  for (index_t i = 0; i < batch; ++i)
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < n; ++j) {
        double s = 0;
        for (index_t p = 0; p < k; ++p) {
          double x = ta == Trans::N ? a[i * sa + r * lda + p] : a[i * sa + p * lda + r];
          double y = tb == Trans::N ? b[i * sb + p * ldb + j] : b[i * sb + j * ldb + p];
          s += x * y;
        }
        double& out = c[i * sc + r * ldc + j];
        out = alpha * s + (beta == 0 ? 0.0 : beta * out);
      }
  return c;
}

template <class T>
void check_gemm_all_transposes() {
  Context<device::cuda> ctx;
  const index_t m = 5, n = 7, k = 6, batch = 3;
  for (Trans ta : {Trans::N, Trans::T})
    for (Trans tb : {Trans::N, Trans::T}) {
      CAPTURE(int(ta));
      CAPTURE(int(tb));
      // Leading dimensions padded past the matrix width, batch strides padded past the matrix size.
      index_t lda = (ta == Trans::N ? k : m) + 2, ldb = (tb == Trans::N ? n : k) + 1, ldc = n + 3;
      index_t sa = (ta == Trans::N ? m : k) * lda + 4, sb = (tb == Trans::N ? k : n) * ldb + 1, sc = m * ldc + 2;
      auto a = random_tensor<T>(Shape{batch * sa}, 1);
      auto b = random_tensor<T>(Shape{batch * sb}, 2);
      auto c = random_tensor<T>(Shape{batch * sc}, 3);
      auto want = gemm_reference(ta, tb, m, n, k, 1.5, as_double(a), lda, as_double(b), ldb, 0.5, as_double(c),
                                 ldc, batch, sa, sb, sc);
      auto da = to_device(a), db = to_device(b), dc = to_device(c);
      ops::gemm<T>(ctx, ta, tb, m, n, k, T(1.5f), da.data(), lda, db.data(), ldb, T(0.5f), dc.data(), ldc, batch,
                   sa, sb, sc);
      auto got = download(ctx, dc);
      CHECK(max_rel_error(got, want) < 8 * tol<T>());
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        Context<device::host> hctx;
        ops::gemm<T>(hctx, ta, tb, m, n, k, T(1.5), a.data(), lda, b.data(), ldb, T(0.5), c.data(), ldc, batch, sa,
                     sb, sc);
        CHECK(max_rel_error(got, c) < 8 * tol<T>());
      }
    }
}

}  // namespace

TEST_CASE("cuda gemm matches the double reference and the host gemm for every transpose (float, double)") {
  check_gemm_all_transposes<float>();
  check_gemm_all_transposes<double>();
}

TEST_CASE("cuda gemm in half and bf16 accumulates in float") {
  check_gemm_all_transposes<longseq::half>();
  check_gemm_all_transposes<longseq::bf16>();
}

TEST_CASE("cuda gemm edge cases: beta = 0 ignores NaN in C, k = 0 scales C, shared B across the batch") {
  Context<device::cuda> ctx;
  const index_t m = 3, n = 4, k = 2, batch = 2;
  auto a = random_tensor<float>(Shape{batch, m, k}, 4);
  auto b = random_tensor<float>(Shape{k, n}, 5);
  Tensor<float> c(Shape{batch, m, n}, std::nanf(""));
  auto da = to_device(a), db = to_device(b), dc = to_device(c);
  ops::gemm<float>(ctx, Trans::N, Trans::N, m, n, k, 1.0f, da.data(), k, db.data(), n, 0.0f, dc.data(), n, batch,
                   m * k, 0, m * n);
  auto got = download(ctx, dc);
  auto want = gemm_reference(Trans::N, Trans::N, m, n, k, 1.0, as_double(a), k, as_double(b), n, 0.0,
                             std::vector<double>(std::size_t(batch * m * n), 0.0), n, batch, m * k, 0, m * n);
  CHECK(max_rel_error(got, want) < 1e-5);

  Tensor<float> c2(Shape{batch, m, n}, 2.0f);
  auto dc2 = to_device(c2);
  ops::gemm<float>(ctx, Trans::N, Trans::N, m, n, 0, 1.0f, da.data(), 1, db.data(), n, 0.25f, dc2.data(), n, batch,
                   m, 0, m * n);
  auto got2 = download(ctx, dc2);
  for (index_t i = 0; i < got2.numel(); ++i) CHECK(got2[i] == 0.5f);
}

TEST_CASE("cuda gemm rejects a leading dimension smaller than the matrix width") {
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> a(Shape{12}), b(Shape{12}), c(Shape{12});
  CHECK_THROWS_WITH_AS(ops::gemm<float>(ctx, Trans::N, Trans::N, 3, 4, 3, 1.0f, a.data(), 2, b.data(), 4, 0.0f,
                                        c.data(), 4),
                       Contains("gemm: leading dimension lda=2"), Error);
}

namespace {

// y[b,c,l] = sum_j k[c,j] u[b,c,l-j], with l-j read mod L (circular) or dropped when negative (causal).
struct ConvReference {
  index_t N, C, L, Lk;
  bool circular;
  index_t src(index_t l, index_t j) const {
    index_t t = l - j;
    if (t >= 0) return t;
    return circular ? t + L : -1;
  }
  std::vector<double> forward(const std::vector<double>& u, const std::vector<double>& k) const {
    std::vector<double> y(std::size_t(N * C * L), 0.0);
    for (index_t b = 0; b < N; ++b)
      for (index_t c = 0; c < C; ++c)
        for (index_t l = 0; l < L; ++l)
          for (index_t j = 0; j < Lk; ++j)
            if (index_t t = src(l, j); t >= 0) y[(b * C + c) * L + l] += k[c * Lk + j] * u[(b * C + c) * L + t];
    return y;
  }
  // du written; dk returned as the sum to add.
  void backward(const std::vector<double>& u, const std::vector<double>& k, const std::vector<double>& dy,
                std::vector<double>& du, std::vector<double>& dk) const {
    du.assign(std::size_t(N * C * L), 0.0);
    dk.assign(std::size_t(C * Lk), 0.0);
    for (index_t b = 0; b < N; ++b)
      for (index_t c = 0; c < C; ++c)
        for (index_t l = 0; l < L; ++l)
          for (index_t j = 0; j < Lk; ++j)
            if (index_t t = src(l, j); t >= 0) {
              double g = dy[(b * C + c) * L + l];
              du[(b * C + c) * L + t] += g * k[c * Lk + j];
              dk[c * Lk + j] += g * u[(b * C + c) * L + t];
            }
  }
};

template <class T>
void check_fft_conv(index_t N, index_t C, index_t L, index_t Lk, ConvMode mode) {
  CAPTURE(L);
  CAPTURE(Lk);
  CAPTURE(int(mode));
  Context<device::cuda> ctx;
  ConvReference ref{N, C, L, Lk, mode == ConvMode::circular};
  auto u = random_tensor<T>(Shape{N, C, L}, 11);
  auto k = random_tensor<T>(Shape{C, Lk}, 12, -0.5, 0.5);
  auto dy = random_tensor<T>(Shape{N, C, L}, 13);
  auto dk0 = random_tensor<T>(Shape{C, Lk}, 14);
  auto du_ = to_device(u), dk_ = to_device(k), ddy = to_device(dy);
  Tensor<T, device::cuda> dyout(Shape{N, C, L}), ddu(Shape{N, C, L});
  auto ddk = to_device(dk0);

  ops::fft_conv_forward<T>(ctx, du_.view(), dk_.view(), dyout.view(), mode);
  auto y = download(ctx, dyout);
  auto yref = ref.forward(as_double(u), as_double(k));
  double scale = double(Lk);  // sums of Lk products of values in [-1, 1]
  CHECK(max_rel_error(y, yref) < tol<T>() * scale);

  ops::fft_conv_backward<T>(ctx, du_.view(), dk_.view(), ddy.view(), ddu.view(), ddk.view(), mode);
  std::vector<double> du_ref, dk_ref;
  ref.backward(as_double(u), as_double(k), as_double(dy), du_ref, dk_ref);
  auto dk_init = as_double(dk0);
  for (std::size_t i = 0; i < dk_ref.size(); ++i) dk_ref[i] += dk_init[i];  // dk accumulates
  CHECK(max_rel_error(download(ctx, ddu), du_ref) < tol<T>() * scale);
  CHECK(max_rel_error(download(ctx, ddk), dk_ref) < tol<T>() * double(N * L));

  // The host op gives the same numbers.
  Context<device::host> hctx;
  Tensor<T> hy(Shape{N, C, L}), hdu(Shape{N, C, L});
  auto hdk = random_tensor<T>(Shape{C, Lk}, 14);  // the same values as dk0
  ops::fft_conv_forward<T>(hctx, u.view(), k.view(), hy.view(), mode);
  CHECK(max_rel_error(y, hy) < tol<T>() * scale);
  ops::fft_conv_backward<T>(hctx, u.view(), k.view(), dy.view(), hdu.view(), hdk.view(), mode);
  CHECK(max_rel_error(download(ctx, ddu), hdu) < tol<T>() * scale);
  CHECK(max_rel_error(download(ctx, ddk), hdk) < tol<T>() * double(N * L));
}

}  // namespace

TEST_CASE("cuda fft_conv forward/backward match the direct sums, causal and circular (float, double)") {
  for (ConvMode mode : {ConvMode::causal, ConvMode::circular}) {
    check_fft_conv<float>(2, 3, 16, 16, mode);
    check_fft_conv<float>(2, 3, 37, 5, mode);
    check_fft_conv<double>(2, 3, 16, 7, mode);
  }
  check_fft_conv<float>(1, 2, 300, 300, ConvMode::causal);
}

TEST_CASE("cuda fft_conv skips du when it is null and rejects mismatched kernels") {
  Context<device::cuda> ctx;
  auto u = to_device(random_tensor<float>(Shape{1, 2, 8}, 1));
  auto k = to_device(random_tensor<float>(Shape{2, 8}, 2));
  Tensor<float, device::cuda> y(Shape{1, 2, 8}), dk(Shape{2, 8});
  LONGSEQ_CUDA_CHECK(cudaMemset(dk.data(), 0, 16 * sizeof(float)));
  CHECK_NOTHROW(ops::fft_conv_backward<float>(ctx, u.view(), k.view(), u.view(), TensorView<float, device::cuda>(),
                                              dk.view()));
  Tensor<float, device::cuda> k3(Shape{3, 8});
  CHECK_THROWS_WITH_AS(ops::fft_conv_forward<float>(ctx, u.view(), k3.view(), y.view()),
                       Contains("one kernel per channel"), Error);
  Tensor<float, device::cuda> k_long(Shape{2, 9});
  CHECK_THROWS_WITH_AS(ops::fft_conv_forward<float>(ctx, u.view(), k_long.view(), y.view()),
                       Contains("expected 1 <= Lk <= L = 8"), Error);
}

namespace {

template <class T>
Tensor<std::complex<T>> random_spectrum(Shape s, std::uint64_t seed) {
  Tensor<std::complex<T>> X(s);
  Rng rng(seed);
  for (index_t i = 0; i < X.numel(); ++i) X[i] = std::complex<T>(T(rng.uniform(-1, 1)), T(rng.uniform(-1, 1)));
  return X;
}

// The real and imaginary parts side by side, for the real-valued comparison helpers.
template <class T>
Tensor<T> flatten(const Tensor<std::complex<T>>& X) {
  Tensor<T> r(Shape{2 * X.numel()});
  std::memcpy(r.data(), X.data(), std::size_t(X.numel()) * sizeof(std::complex<T>));
  return r;
}

template <class T>
void check_real_ffts(index_t n) {
  CAPTURE(n);
  Context<device::host> hctx;
  Context<device::cuda> dctx;
  const index_t rows = 3, bins = n / 2 + 1;
  auto x = random_tensor<T>(Shape{rows, n}, 81);
  auto X = random_spectrum<T>(Shape{rows, bins}, 82);  // the DC and Nyquist imaginary parts are not zero
  auto gx = to_device(x);
  auto gX = to_device(X);
  double t = 4 * tol<T>() * std::sqrt(double(n));

  Tensor<std::complex<T>> F(Shape{rows, bins});
  Tensor<std::complex<T>, device::cuda> gF(Shape{rows, bins});
  ops::rfft_forward<T>(hctx, x.view(), F.view());
  ops::rfft_forward<T>(dctx, gx.view(), gF.view());
  CHECK(max_rel_error(flatten(download(dctx, gF)), flatten(F)) < t);

  Tensor<std::complex<T>> dX(Shape{rows, bins});
  Tensor<std::complex<T>, device::cuda> gdX(Shape{rows, bins});
  ops::irfft_backward<T>(hctx, x.view(), dX.view());
  ops::irfft_backward<T>(dctx, gx.view(), gdX.view());
  CHECK(max_rel_error(flatten(download(dctx, gdX)), flatten(dX)) < t);

  Tensor<T> y(Shape{rows, n}), dx(Shape{rows, n});
  Tensor<T, device::cuda> gy(Shape{rows, n}), gdx(Shape{rows, n});
  ops::irfft_forward<T>(hctx, X.view(), y.view());
  ops::irfft_forward<T>(dctx, gX.view(), gy.view());
  CHECK(max_rel_error(download(dctx, gy), y) < t);
  ops::rfft_backward<T>(hctx, X.view(), dx.view());
  ops::rfft_backward<T>(dctx, gX.view(), gdx.view());
  CHECK(max_rel_error(download(dctx, gdx), dx) < t);

  // The inputs are untouched (cuFFT's inverse would overwrite its input; the ops transform a copy).
  CHECK(max_rel_error(flatten(download(dctx, gX)), flatten(X)) == 0.0);
  CHECK(max_rel_error(download(dctx, gx), x) == 0.0);
}

}  // namespace

TEST_CASE("cuda rfft/irfft and their backwards agree with the host ops, even and odd lengths") {
  for (index_t n : {16, 15, 2}) {
    check_real_ffts<float>(n);
    check_real_ffts<double>(n);
  }
  Context<device::cuda> ctx;
  Tensor<float, device::cuda> x(Shape{2, 8});
  Tensor<std::complex<float>, device::cuda> X(Shape{2, 4});
  CHECK_THROWS_WITH_AS(ops::rfft_forward<float>(ctx, x.view(), X.view()),
                       Contains("fft: tensor 'X' has shape (2, 4), expected (2, 5)"), Error);
}

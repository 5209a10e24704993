#include <doctest/doctest.h>

#include <longseq/ops/fft.hpp>

#include <cmath>
#include <numbers>
#include <thread>
#include <utility>
#include <vector>

#include "ops/op_testing.hpp"

using namespace longseq;
using namespace longseq::ops;
using optest::random_tensor;
using cd = std::complex<double>;

namespace {

cd naive_bin(const double* x, index_t n, index_t f) {
  cd s = 0;
  for (index_t t = 0; t < n; ++t) s += x[t] * std::polar(1.0, -2 * std::numbers::pi * double(f * t) / double(n));
  return s;
}

// Real scalar sum_f Re(conj(w_f) X_f) = sum_f (Re w Re X + Im w Im X): its gradient w.r.t. X is w.
double cdot(const Tensor<cd>& w, const Tensor<cd>& X) {
  double s = 0;
  for (index_t i = 0; i < X.numel(); ++i) s += w[i].real() * X[i].real() + w[i].imag() * X[i].imag();
  return s;
}

}  // namespace

TEST_CASE("rfft matches the DFT sum and irfft inverts it, for even and odd lengths") {
  HostContext ctx;
  for (index_t n : {1, 2, 7, 16, 45}) {
    CAPTURE(n);
    auto x = random_tensor<double>(Shape{2, 3, n}, 1);
    Tensor<cd> X(Shape{2, 3, rfft_bins(n)});
    rfft_forward<double>(ctx, x, X);
    for (index_t r = 0; r < 6; ++r)
      for (index_t f = 0; f < rfft_bins(n); ++f) CHECK(std::abs(X[r * rfft_bins(n) + f] - naive_bin(x.data() + r * n, n, f)) < 1e-12);
    Tensor<double> back(Shape{2, 3, n});
    irfft_forward<double>(ctx, X, back);
    CHECK(optest::rel_err(back, x, x.numel()) < 1e-14);
    // float agrees with double
    auto xf = optest::cast<float>(x);
    Tensor<std::complex<float>> Xf(X.shape());
    rfft_forward<float>(ctx, xf, Xf);
    for (index_t i = 0; i < X.numel(); ++i) CHECK(std::abs(cd(Xf[i]) - X[i]) < 1e-5 * double(n));
  }
  CHECK(ctx.fftw.size() >= 2);
}

TEST_CASE("rfft and irfft backwards match finite differences") {
  HostContext ctx;
  for (index_t n : {6, 7}) {
    CAPTURE(n);
    index_t bins = rfft_bins(n);
    auto x = random_tensor<double>(Shape{2, n}, 2);
    Tensor<cd> X(Shape{2, bins}), w(Shape{2, bins});
    Rng rng(3);
    for (index_t i = 0; i < w.numel(); ++i) w[i] = cd(rng.uniform(-1, 1), rng.uniform(-1, 1));
    auto loss = [&] {
      rfft_forward<double>(ctx, x, X);
      return cdot(w, X);
    };
    auto num = optest::numeric_grad(x, loss);
    Tensor<double> dx(Shape{2, n});
    rfft_backward<double>(ctx, w, dx);
    CHECK(optest::rel_err(dx, num) < 1e-8);

    // irfft: perturb real and imaginary parts of each bin.
    Tensor<cd> Z(Shape{2, bins});
    for (index_t i = 0; i < Z.numel(); ++i) Z[i] = cd(rng.uniform(-1, 1), rng.uniform(-1, 1));
    auto wy = random_tensor<double>(Shape{2, n}, 4);
    Tensor<double> y(Shape{2, n});
    auto lossz = [&] {
      irfft_forward<double>(ctx, Z, y);
      return optest::dot(wy, y);
    };
    Tensor<cd> dZ(Shape{2, bins});
    irfft_backward<double>(ctx, wy, dZ);
    double h = 1e-6, worst = 0;
    for (index_t i = 0; i < Z.numel(); ++i)
      for (cd dir : {cd(1, 0), cd(0, 1)}) {
        cd keep = Z[i];
        Z[i] = keep + h * dir;
        double up = lossz();
        Z[i] = keep - h * dir;
        double down = lossz();
        Z[i] = keep;
        double g = (up - down) / (2 * h), a = dir.real() != 0 ? dZ[i].real() : dZ[i].imag();
        worst = std::max(worst, std::abs(g - a));
      }
    CHECK(worst < 1e-8);
  }
}

TEST_CASE("fft shape errors name the tensors") {
  HostContext ctx;
  Tensor<double> x(Shape{3, 8});
  Tensor<cd> X(Shape{3, 4});
  CHECK_THROWS_WITH_AS(rfft_forward<double>(ctx, x, X),
                       doctest::Contains("tensor 'X' has shape (3, 4), expected (3, 5)"), Error);
  Tensor<cd> X2(Shape{3, 5});
  Tensor<double> y(Shape{3, 12});
  CHECK_THROWS_WITH_AS(irfft_forward<double>(ctx, X2, y),
                       doctest::Contains("tensor 'X' has shape (3, 5), expected (3, 7) (n/2+1 bins for tensor 'x'"),
                       Error);
  TensorView<double> strided(y.data(), Shape{3, 6}, Shape{12, 2});
  CHECK_THROWS_WITH_AS(rfft_forward<double>(ctx, strided, X), doctest::Contains("tensor 'x' with shape (3, 6) must be contiguous"),
                       Error);
}

TEST_CASE("FFTW plans are cached per (precision, direction, n, batch), shared safely across threads, and survive a move") {
  HostContext ctx;
  auto x = random_tensor<double>(Shape{4, 32}, 5);
  Tensor<cd> X(Shape{4, 17});
  rfft_forward<double>(ctx, x, X);
  std::size_t after_first = ctx.fftw.size();
  rfft_forward<double>(ctx, x, X);
  CHECK(ctx.fftw.size() == after_first);  // reused, not re-planned
  auto p1 = ctx.fftw.get<float>(FftDir::r2c, 32, 1), p2 = ctx.fftw.get<float>(FftDir::r2c, 32, 1);
  CHECK(p1 == p2);
  CHECK(ctx.fftw.get<float>(FftDir::r2c, 32, 3) != p1);
  CHECK_THROWS_WITH_AS(ctx.fftw.get<double>(FftDir::c2r, 0, 1), doctest::Contains("FFT of length 0 and batch 1"), Error);

  // Several threads planning new sizes on one context while others run transforms.
  std::vector<std::thread> pool;
  std::vector<double> errs(4, 1.0);
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      index_t n = 10 + 3 * t;
      auto xt = random_tensor<double>(Shape{3, n}, std::uint64_t(t));
      Tensor<cd> Xt(Shape{3, rfft_bins(n)});
      Tensor<double> back(Shape{3, n});
      rfft_forward<double>(ctx, xt, Xt);
      irfft_forward<double>(ctx, Xt, back);
      errs[std::size_t(t)] = optest::rel_err(back, xt, xt.numel());
    });
  for (auto& th : pool) th.join();
  for (double e : errs) CHECK(e < 1e-14);

  HostContext moved = std::move(ctx);
  CHECK(moved.fftw.size() >= after_first + 8);
  Tensor<double> back(Shape{4, 32});
  irfft_forward<double>(moved, X, back);
  CHECK(optest::rel_err(back, x, x.numel()) < 1e-14);
}

TEST_CASE("aligned (SIMD) FFT plans agree with the unaligned ones, are cached apart, and reject misaligned arrays") {
  HostContext ctx;
  for (index_t n : {13, 16, 26, 200, 2048}) {
    CAPTURE(n);
    ops::detail::RealFft<float> plain(ctx, n), simd(ctx, n, /*aligned=*/true);
    CHECK(simd.r2c != plain.r2c);
    auto x = random_tensor<float>(Shape{n}, std::uint64_t(n));
    ops::detail::fft_vector<float> in(x.data(), x.data() + n), back(static_cast<std::size_t>(n));
    std::vector<float> in_plain(x.data(), x.data() + n);
    ops::detail::fft_vector<std::complex<float>> X(std::size_t(rfft_bins(n)));
    std::vector<std::complex<float>> X_plain(std::size_t(rfft_bins(n)));
    simd.forward(in.data(), X.data());
    plain.forward(in_plain.data(), X_plain.data());
    double err = 0, scale = 0;
    for (std::size_t f = 0; f < X.size(); ++f) {
      err = std::max(err, double(std::abs(X[f] - X_plain[f])));
      scale = std::max(scale, double(std::abs(X_plain[f])));
    }
    CHECK(err <= 1e-6 * scale);
    simd.inverse(X.data(), back.data());
    for (index_t t = 0; t < n; ++t) CHECK(back[std::size_t(t)] / float(n) == doctest::Approx(x[t]).epsilon(1e-5));
  }
  ops::detail::RealFft<float> simd(ctx, 16, true);
  ops::detail::fft_vector<float> buf(40);
  ops::detail::fft_vector<std::complex<float>> X(9);
  CHECK_THROWS_WITH_AS(simd.forward(buf.data() + 1, X.data()),
                       doctest::Contains("RealFft: an aligned transform got arrays not aligned to 64 bytes"), Error);
}

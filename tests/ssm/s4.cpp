// S4 (DPLR): Cauchy/Woodbury kernel vs explicit powers of the dense system, gradients, errors.
#include <doctest/doctest.h>

#include <longseq/ssm/s4.hpp>

#include "kernel_test_util.hpp"

using namespace longseq;
using namespace longseq::ssm;
using Cd = std::complex<double>;

namespace {

// Solves M X = R for real (n, n) row-major matrices by Gaussian elimination with partial pivoting.
std::vector<double> solve_real(std::vector<double> m, std::vector<double> r, index_t n, index_t cols) {
  for (index_t c = 0; c < n; ++c) {
    index_t piv = c;
    for (index_t i = c + 1; i < n; ++i)
      if (std::abs(m[i * n + c]) > std::abs(m[piv * n + c])) piv = i;
    for (index_t j = 0; j < n; ++j) std::swap(m[c * n + j], m[piv * n + j]);
    for (index_t j = 0; j < cols; ++j) std::swap(r[c * cols + j], r[piv * cols + j]);
    for (index_t i = 0; i < n; ++i) {
      if (i == c) continue;
      double f = m[i * n + c] / m[c * n + c];
      for (index_t j = 0; j < n; ++j) m[i * n + j] -= f * m[c * n + j];
      for (index_t j = 0; j < cols; ++j) r[i * cols + j] -= f * r[c * cols + j];
    }
  }
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < cols; ++j) r[i * cols + j] /= m[i * n + i];
  return r;
}

// Kernel of the real HiPPO-LegS system by explicit powers: K_l = C dA^l dB with the bilinear dA, dB.
std::vector<double> legs_naive_kernel(const std::vector<double>& Cr, double dt, index_t N, index_t L) {
  auto t = hippo::transition(hippo::Measure::legs, N);
  std::vector<double> lhs(static_cast<std::size_t>(N * N)), rhs(static_cast<std::size_t>(N * N)),
      b(static_cast<std::size_t>(N));
  for (index_t i = 0; i < N; ++i) {
    for (index_t j = 0; j < N; ++j) {
      lhs[i * N + j] = (i == j) - 0.5 * dt * t.A[i * N + j];
      rhs[i * N + j] = (i == j) + 0.5 * dt * t.A[i * N + j];
    }
    b[i] = dt * t.B[i];
  }
  auto dA = solve_real(lhs, rhs, N, N);
  auto x = solve_real(lhs, b, N, 1);
  std::vector<double> K(static_cast<std::size_t>(L));
  for (index_t l = 0; l < L; ++l) {
    double s = 0;
    for (index_t i = 0; i < N; ++i) s += Cr[i] * x[i];
    K[l] = s;
    std::vector<double> nx(static_cast<std::size_t>(N), 0.0);
    for (index_t i = 0; i < N; ++i)
      for (index_t j = 0; j < N; ++j) nx[i] += dA[i * N + j] * x[j];
    x = nx;
  }
  return K;
}

}  // namespace

TEST_CASE("S4 Cauchy/Woodbury kernel equals explicit powers of the dense HiPPO-LegS system") {
  for (index_t l_max : {16, 15}) {
    CAPTURE(l_max);
    index_t N = 8, H = 2, M = N / 2;
    S4<double> k({.H = H, .N = N, .l_max = l_max, .channels = 2, .dt_min = 0.01, .dt_max = 0.2});
    ParamStore<double> store;
    store.bind(k);
    Rng rng(21);
    k.init(rng);
    // Replace C by a known raw output matrix c and correct it for l_max.
    auto raw = test::random_vec(2 * H * M * 2, 77);
    for (index_t i = 0; i < k.C.value.numel(); ++i) k.C.value[i] = raw[std::size_t(i)];
    k.correct_C(l_max);
    const auto& hp = hippo::nplr(hippo::Measure::legs, N);
    HostContext ctx;
    index_t L = l_max - 3;
    Tensor<double> K(Shape{2, H, L});
    S4<double>::Saved s;
    k.kernel_forward(ctx, L, K.view(), s);
    double err = 0, mx = 0;
    for (index_t c = 0; c < 2; ++c)
      for (index_t h = 0; h < H; ++h) {
        // Real-basis output matrix: C_r = 2 Re(c V^*).
        std::vector<double> Cr(static_cast<std::size_t>(N));
        for (index_t i = 0; i < N; ++i) {
          Cd acc = 0;
          for (index_t n = 0; n < M; ++n)
            acc += Cd(raw[std::size_t(((c * H + h) * M + n) * 2)], raw[std::size_t(((c * H + h) * M + n) * 2 + 1)]) *
                   std::conj(hp.V[i * M + n]);
          Cr[i] = 2 * acc.real();
        }
        auto ref = legs_naive_kernel(Cr, std::exp(k.log_dt.value[h]), N, L);
        for (index_t l = 0; l < L; ++l) {
          err = std::max(err, std::abs(ref[std::size_t(l)] - K(c, h, l)));
          mx = std::max(mx, std::abs(ref[std::size_t(l)]));
        }
      }
    CHECK(mx > 1e-3);
    CHECK(err < 1e-10 * (1 + mx));
  }
}

TEST_CASE("S4 kernel with random DPLR parameters equals the dense full-space kernel") {
  index_t N = 6, M = 3, L = 12;
  S4<double> k({.H = 1, .N = N, .l_max = L, .random = {.enabled = true, .sigma = 0.5}});
  ParamStore<double> store;
  store.bind(k);
  Rng rng(5);
  k.init(rng);
  std::vector<Cd> lam(static_cast<std::size_t>(M)), p(static_cast<std::size_t>(M)), b(static_cast<std::size_t>(M)),
      c(static_cast<std::size_t>(M));
  for (index_t n = 0; n < M; ++n) {
    lam[n] = k.lambda(0, n);
    p[n] = Cd(k.P.value(0, n, 0), k.P.value(0, n, 1));
    b[n] = Cd(k.B.value(0, n, 0), k.B.value(0, n, 1));
    c[n] = Cd(k.C.value(0, 0, n, 0), k.C.value(0, 0, n, 1));
  }
  double dt = std::exp(k.log_dt.value[0]);
  auto dA = s4_dense_dA(lam, p, dt);
  auto ct = s4_correct_C(c, lam, p, dt, L);
  {
    // The structured correction equals C (I - dA^L) with explicit dense powers.
    index_t n2 = 2 * M;
    std::vector<Cd> row(static_cast<std::size_t>(n2));
    for (index_t i = 0; i < M; ++i) {
      row[i] = c[i];
      row[M + i] = std::conj(c[i]);
    }
    for (index_t l = 0; l < L; ++l) {
      std::vector<Cd> nr(static_cast<std::size_t>(n2), 0.0);
      for (index_t i = 0; i < n2; ++i)
        for (index_t j = 0; j < n2; ++j) nr[j] += row[i] * dA[i * n2 + j];
      row = nr;
    }
    for (index_t i = 0; i < M; ++i) CHECK(std::abs(ct[i] - (c[i] - row[i])) < 1e-12 * (1 + std::abs(ct[i])));
  }
  for (index_t n = 0; n < M; ++n) {
    k.C.value(0, 0, n, 0) = ct[n].real();
    k.C.value(0, 0, n, 1) = ct[n].imag();
  }
  // dB = (I - dt/2 A)^{-1} dt B over the full space, via dA: (I - dt/2 A)^{-1} = (dA + I) / 2.
  index_t n2 = 2 * M;
  std::vector<Cd> x(static_cast<std::size_t>(n2)), bf(static_cast<std::size_t>(n2)), cf(static_cast<std::size_t>(n2));
  for (index_t i = 0; i < M; ++i) {
    bf[i] = b[i];
    bf[M + i] = std::conj(b[i]);
    cf[i] = c[i];
    cf[M + i] = std::conj(c[i]);
  }
  for (index_t i = 0; i < n2; ++i) {
    x[i] = 0;
    for (index_t j = 0; j < n2; ++j) x[i] += 0.5 * (dA[i * n2 + j] + (i == j ? 1.0 : 0.0)) * dt * bf[j];
  }
  HostContext ctx;
  Tensor<double> K(Shape{1, 1, L});
  S4<double>::Saved s;
  k.kernel_forward(ctx, L, K.view(), s);
  for (index_t l = 0; l < L; ++l) {
    Cd y = 0;
    for (index_t i = 0; i < n2; ++i) y += cf[i] * x[i];
    CHECK(K(0, 0, l) == doctest::Approx(y.real()).epsilon(1e-10));
    CHECK(std::abs(y.imag()) < 1e-10);
    std::vector<Cd> nx(static_cast<std::size_t>(n2), 0.0);
    for (index_t i = 0; i < n2; ++i)
      for (index_t j = 0; j < n2; ++j) nx[i] += dA[i * n2 + j] * x[j];
    x = nx;
  }
}

TEST_CASE("S4 kernel gradients match finite differences") {
  for (index_t l_max : {8, 7}) {
    CAPTURE(l_max);
    S4<double> k({.H = 2, .N = 4, .l_max = l_max, .channels = 2, .n_ssm = 1, .dt_min = 0.05, .dt_max = 0.5});
    CHECK(test::kernel_grad_mismatches(k, l_max - 2, 31) == 0);
    S4<double> r({.H = 2, .N = 6, .l_max = l_max, .random = {.enabled = true, .sigma = 0.4}});
    CHECK(test::kernel_grad_mismatches(r, l_max, 32) == 0);
  }
}

TEST_CASE("S4 rejects bad configurations and lengths") {
  CHECK_THROWS_WITH_AS(S4<double>({.H = 2, .N = 4}), doctest::Contains("S4: l_max = 0, expected the longest"), Error);
  S4<double> k({.H = 1, .N = 4, .l_max = 8});
  ParamStore<double> store;
  store.bind(k);
  Rng rng(1);
  k.init(rng);
  HostContext ctx;
  Tensor<double> K(Shape{1, 1, 9});
  S4<double>::Saved s;
  CHECK_THROWS_WITH_AS(k.kernel_forward(ctx, 9, K.view(), s),
                       doctest::Contains("requested kernel length L = 9 exceeds l_max = 8"), Error);
}

TEST_CASE("S4 float kernel agrees with double") {
  S4<double> kd({.H = 2, .N = 16, .l_max = 64});
  S4<float> kf({.H = 2, .N = 16, .l_max = 64});
  ParamStore<double> sd;
  ParamStore<float> sf;
  sd.bind(kd);
  sf.bind(kf);
  Rng r1(4);
  kd.init(r1);
  for (index_t i = 0; i < sd.values().numel(); ++i) sf.values()[i] = float(sd.values()[i]);
  HostContext ctx;
  Tensor<double> Kd(Shape{1, 2, 64});
  Tensor<float> Kf(Shape{1, 2, 64});
  S4<double>::Saved s1;
  S4<float>::Saved s2;
  kd.kernel_forward(ctx, 64, Kd.view(), s1);
  kf.kernel_forward(ctx, 64, Kf.view(), s2);
  double mx = 0;
  for (index_t i = 0; i < Kd.numel(); ++i) mx = std::max(mx, std::abs(Kd[i]));
  for (index_t i = 0; i < Kd.numel(); ++i) CHECK(std::abs(Kf[i] - Kd[i]) < 1e-4 * mx);
}

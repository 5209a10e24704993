// S4D kernels: direct-sum references, finite-difference gradients, float agreement, bad configurations.
#include <doctest/doctest.h>

#include <longseq/ssm/s4d.hpp>

#include "kernel_test_util.hpp"

using namespace longseq;
using namespace longseq::ssm;
using Cd = std::complex<double>;

namespace {

// Direct double sum of the published S4D kernel: K[c,h,l] = 2 Re sum_n C B dB(A) dA(A)^l.
template <class Disc>
double s4d_direct(S4D<double, Disc>& k, index_t c, index_t h, index_t l) {
  index_t s = h % k.S;
  double dt = std::exp(k.log_dt.value[h]);
  Cd acc = 0;
  for (index_t n = 0; n < k.M; ++n) {
    Cd a(-std::exp(k.log_A_real.value(s, n)), k.A_imag.value(s, n));
    Cd b(k.B.value(s, n, 0), k.B.value(s, n, 1)), cc(k.C.value(c, h, n, 0), k.C.value(c, h, n, 1));
    Cd x = dt * a, dA, dB;
    if constexpr (std::is_same_v<Disc, ZOH>) {
      dA = std::exp(x);
      dB = (std::exp(x) - 1.0) / a;
    } else {
      dA = (1.0 + x / 2.0) / (1.0 - x / 2.0);
      dB = dt / (1.0 - x / 2.0);
    }
    acc += cc * b * dB * std::pow(dA, double(l));
  }
  return 2 * acc.real();
}

template <class Disc>
void check_direct(S4DInit init) {
  S4D<double, Disc> k({.H = 4, .N = 8, .channels = 2, .n_ssm = 2, .init = init});
  ParamStore<double> store;
  store.bind(k);
  Rng rng(11);
  k.init(rng);
  HostContext ctx;
  index_t L = 70;
  Tensor<double> K(Shape{2, 4, L});
  typename S4D<double, Disc>::Saved s;
  k.kernel_forward(ctx, L, K.view(), s);
  double err = 0, mx = 0;
  for (index_t c = 0; c < 2; ++c)
    for (index_t h = 0; h < 4; ++h)
      for (index_t l = 0; l < L; ++l) {
        err = std::max(err, std::abs(K(c, h, l) - s4d_direct(k, c, h, l)));
        mx = std::max(mx, std::abs(K(c, h, l)));
      }
  CHECK(mx > 1e-3);
  CHECK(err < 1e-12 * (1 + mx));
}

}  // namespace

TEST_CASE("S4D kernel equals the direct sum (ZOH and bilinear, every init)") {
  for (auto init : {S4DInit::legs, S4DInit::lin, S4DInit::inv, S4DInit::real, S4DInit::random}) {
    check_direct<ZOH>(init);
    check_direct<Bilinear>(init);
  }
}

TEST_CASE("S4D kernel gradients match finite differences") {
  for (auto init : {S4DInit::legs, S4DInit::lin, S4DInit::real}) {
    S4D<double, ZOH> z({.H = 3, .N = 6, .channels = 2, .n_ssm = 1, .dt_min = 0.01, .dt_max = 0.5, .init = init});
    CHECK(test::kernel_grad_mismatches(z, 9, 5) == 0);
    S4D<double, Bilinear> b({.H = 2, .N = 4, .channels = 1, .init = init});
    CHECK(test::kernel_grad_mismatches(b, 9, 6) == 0);
  }
  S4D<double> r({.H = 2, .N = 4, .random = {.enabled = true, .sigma = 0.5}});
  CHECK(test::kernel_grad_mismatches(r, 40, 7) == 0);
}

TEST_CASE("S4D float kernel agrees with double") {
  S4D<double> kd({.H = 2, .N = 16});
  S4D<float> kf({.H = 2, .N = 16});
  ParamStore<double> sd;
  ParamStore<float> sf;
  sd.bind(kd);
  sf.bind(kf);
  Rng r1(4), r2(4);
  kd.init(r1);
  kf.init(r2);
  HostContext ctx;
  Tensor<double> Kd(Shape{1, 2, 200});
  Tensor<float> Kf(Shape{1, 2, 200});
  S4D<double>::Saved s1;
  S4D<float>::Saved s2;
  kd.kernel_forward(ctx, 200, Kd.view(), s1);
  kf.kernel_forward(ctx, 200, Kf.view(), s2);
  for (index_t i = 0; i < Kd.numel(); ++i) CHECK(Kf[i] == doctest::Approx(Kd[i]).epsilon(1e-3).scale(1.0));
}

TEST_CASE("S4D rejects bad configurations and shapes") {
  CHECK_THROWS_WITH_AS(S4D<double>({.H = 4, .N = 7}), doctest::Contains("S4D: state size N = 7, expected an even N"),
                       Error);
  CHECK_THROWS_WITH_AS(S4D<double>({.H = 4, .n_ssm = 3}), doctest::Contains("n_ssm = 3 must divide H = 4"), Error);
  CHECK_THROWS_WITH_AS(S4D<double>({.H = 4, .dt_min = 0.1, .dt_max = 0.01}), doctest::Contains("dt range"), Error);
  S4D<double> k({.H = 2, .N = 4});
  ParamStore<double> store;
  store.bind(k);
  Tensor<double> K(Shape{1, 3, 8});
  HostContext ctx;
  S4D<double>::Saved s;
  CHECK_THROWS_WITH_AS(k.kernel_forward(ctx, 8, K.view(), s),
                       doctest::Contains("tensor 'K' has shape (1, 3, 8), expected (1, 2, 8)"), Error);
}

TEST_CASE("S4D initializations follow their formulas") {
  auto A = [](S4DInit init) {
    S4D<double> k({.H = 2, .N = 8, .init = init});
    ParamStore<double> store;
    store.bind(k);
    Rng rng(3);
    k.init(rng);
    std::vector<Cd> a;
    for (index_t n = 0; n < 4; ++n) {
      a.emplace_back(-std::exp(k.log_A_real.value(1, n)), k.A_imag.value(1, n));
      CHECK(k.log_dt.value[0] >= std::log(1e-3));
      CHECK(k.log_dt.value[0] <= std::log(1e-1));
    }
    return a;
  };
  auto lin = A(S4DInit::lin), inv = A(S4DInit::inv), real = A(S4DInit::real), legs = A(S4DInit::legs);
  const auto& h = hippo::nplr(hippo::Measure::legs, 8);
  for (index_t n = 0; n < 4; ++n) {
    CHECK(lin[n].real() == doctest::Approx(-0.5));
    CHECK(lin[n].imag() == doctest::Approx(-M_PI * n));
    CHECK(inv[n].imag() == doctest::Approx(-8.0 / M_PI * (8.0 / (2 * n + 1) - 1)));
    CHECK(real[n].real() == doctest::Approx(-(1.0 + n)));
    CHECK(real[n].imag() == 0.0);
    CHECK(std::abs(legs[n] - h.w[n]) < 1e-12);
  }
}

// DLR, DSS and ConvKernel: published formulas, finite-difference gradients, penalties and errors.
#include <doctest/doctest.h>

#include <longseq/ssm/conv_kernel.hpp>
#include <longseq/ssm/dlr.hpp>
#include <longseq/ssm/dss.hpp>

#include "kernel_test_util.hpp"

using namespace longseq;
using namespace longseq::ssm;
using Cd = std::complex<double>;

TEST_CASE("DLR kernel follows K[h,l] = Re sum_n W[h,n] exp(Lambda_n l)") {
  DLR<double> k({.H = 3, .N = 16, .channels = 2, .dt_min = 1e-3, .dt_max = 0.1});
  ParamStore<double> store;
  store.bind(k);
  Rng rng(1);
  k.init(rng);
  // omega init: Re Lambda in [-dt_max/2, -dt_min/2], Im Lambda = 2 pi n / N.
  for (index_t n = 0; n < 16; ++n) {
    double re = -k.Lambda_r.value[n] * k.Lambda_r.value[n];
    CHECK(re <= -0.5e-3 + 1e-15);
    CHECK(re >= -0.05 - 1e-15);
    CHECK(k.Lambda_theta.value[n] == doctest::Approx(2 * M_PI * n / 16));
  }
  HostContext ctx;
  index_t L = 50;
  Tensor<double> K(Shape{2, 3, L});
  DLR<double>::Saved s;
  k.kernel_forward(ctx, L, K.view(), s);
  double err = 0;
  for (index_t c = 0; c < 2; ++c)
    for (index_t h = 0; h < 3; ++h)
      for (index_t l = 0; l < L; ++l) {
        Cd acc = 0;
        for (index_t n = 0; n < 16; ++n) {
          Cd lam(-k.Lambda_r.value[n] * k.Lambda_r.value[n], k.Lambda_theta.value[n]);
          acc += Cd(k.W.value(c, h, n, 0), k.W.value(c, h, n, 1)) * std::exp(lam * double(l));
        }
        err = std::max(err, std::abs(acc.real() - K(c, h, l)));
      }
  CHECK(err < 1e-13);
}

TEST_CASE("DLR, DSS and ConvKernel gradients match finite differences") {
  DLR<double> dlr({.H = 2, .N = 5, .channels = 2});
  CHECK(test::kernel_grad_mismatches(dlr, 12, 3) == 0);
  DLR<double> dlr_rand({.H = 2, .N = 3, .random = {.enabled = true, .sigma = 0.3}});
  CHECK(test::kernel_grad_mismatches(dlr_rand, 12, 4) == 0);
  DSS<double, DSSVariant::exp> e({.H = 3, .N = 4, .channels = 2, .dt_min = 0.01, .dt_max = 0.3});
  CHECK(test::kernel_grad_mismatches(e, 10, 5) == 0);
  DSS<double, DSSVariant::softmax> sm({.H = 2, .N = 4, .channels = 2, .dt_min = 0.01, .dt_max = 0.3});
  CHECK(test::kernel_grad_mismatches(sm, 10, 6) == 0);
  DSS<double, DSSVariant::softmax> smr({.H = 2, .N = 3, .random = {.enabled = true, .sigma = 0.2}});
  CHECK(test::kernel_grad_mismatches(smr, 10, 7) == 0);
  ConvKernel<double> ck({.H = 2, .l_max = 12, .channels = 2});
  CHECK(test::kernel_grad_mismatches(ck, 9, 8) == 0);
}

TEST_CASE("DSS kernels follow the published formulas") {
  DSS<double, DSSVariant::exp> e({.H = 2, .N = 6});
  DSS<double, DSSVariant::softmax> sm({.H = 2, .N = 6});
  ParamStore<double> s1, s2;
  s1.bind(e);
  s2.bind(sm);
  Rng r1(9), r2(9);
  e.init(r1);
  sm.init(r2);
  HostContext ctx;
  index_t L = 30;
  Tensor<double> Ke(Shape{1, 2, L}), Ks(Shape{1, 2, L});
  DSS<double, DSSVariant::exp>::Saved se;
  DSS<double, DSSVariant::softmax>::Saved ss;
  e.kernel_forward(ctx, L, Ke.view(), se);
  sm.kernel_forward(ctx, L, Ks.view(), ss);
  double err = 0;
  for (index_t h = 0; h < 2; ++h) {
    double dt = std::exp(e.log_dt.value[h]);
    CHECK(dt == doctest::Approx(std::exp(sm.log_dt.value[h])));
    for (index_t l = 0; l < L; ++l) {
      Cd ae = 0, as = 0;
      for (index_t n = 0; n < 6; ++n) {
        Cd lam(-0.5, sm.Lambda_im.value[n]);
        CHECK(e.lambda(n).real() == doctest::Approx(-0.5));
        CHECK(sm.lambda(n).real() == doctest::Approx(-0.5));
        Cd w(e.W.value(0, h, n, 0), e.W.value(0, h, n, 1));
        ae += w * (std::exp(lam * dt) - 1.0) / lam * std::exp(lam * dt * double(l));
        Cd den = 0;
        for (index_t k = 0; k < L; ++k) den += std::exp(lam * dt * double(k));
        as += w / lam * std::exp(lam * dt * double(l)) / den;
      }
      err = std::max({err, std::abs(ae.real() - Ke(0, h, l)), std::abs(as.real() - Ks(0, h, l))});
    }
  }
  CHECK(err < 1e-12);
}

TEST_CASE("ConvKernel penalty, truncation and errors") {
  ConvKernel<double> ck({.H = 1, .l_max = 4, .decay = 1.0, .smooth = 0.5});
  ParamStore<double> store;
  store.bind(ck);
  for (index_t l = 0; l < 4; ++l) ck.kernel.value[l] = double(l + 1);
  HostContext ctx;
  Tensor<double> K(Shape{1, 1, 3});
  ConvKernel<double>::Saved s;
  ck.kernel_forward(ctx, 3, K.view(), s);
  CHECK(K[2] == 3.0);
  // decay: (1/4)^2*4 + (2/4)^2*9 + (3/4)^2*16 = 0.25 + 2.25 + 9; smooth: 0.5 * 3.
  CHECK(s.penalty == doctest::Approx(11.5 + 1.5));
  // Gradient of <K, 0> + penalty equals the penalty's numeric gradient.
  Tensor<double> zero(Shape{1, 1, 3}, 0.0);
  ck.kernel_backward(ctx, s, zero.view());
  for (index_t l = 0; l < 4; ++l) {
    double keep = ck.kernel.value[l];
    ck.kernel.value[l] = keep + 1e-6;
    ck.kernel_forward(ctx, 3, K.view(), s);
    double p = s.penalty;
    ck.kernel.value[l] = keep - 1e-6;
    ck.kernel_forward(ctx, 3, K.view(), s);
    double m = s.penalty;
    ck.kernel.value[l] = keep;
    CHECK(ck.kernel.grad[l] == doctest::Approx((p - m) / 2e-6).epsilon(1e-6));
  }
  Tensor<double> K5(Shape{1, 1, 5});
  CHECK_THROWS_WITH_AS(ck.kernel_forward(ctx, 5, K5.view(), s),
                       doctest::Contains("requested length L = 5 exceeds l_max = 4"), Error);
  CHECK_THROWS_WITH_AS(DLR<double>({.H = 2, .channels = 3}), doctest::Contains("channels = 3, expected 1 or 2"), Error);
  CHECK_THROWS_WITH_AS((DSS<double>({.H = 0})), doctest::Contains("DSS: H = 0, expected H >= 1"), Error);
  DSS<double, DSSVariant::softmax> sm({.H = 1, .N = 2});
  ParamStore<double> s2;
  s2.bind(sm);
  Rng rng(2);
  sm.init(rng);
  sm.Lambda_re.value[1] = 50.0;
  sm.log_dt.value[0] = 0.0;
  Tensor<double> K20(Shape{1, 1, 20});
  DSS<double, DSSVariant::softmax>::Saved ss;
  CHECK_THROWS_WITH_AS(sm.kernel_forward(ctx, 20, K20.view(), ss),
                       doctest::Contains("DSS softmax: Re(lambda dt) (L - 1) = 950 for mode 1 of channel 0"), Error);
}

// Discretization policies (ZOH, bilinear) for diagonal state-space modes, with their derivatives.
#pragma once
#include <cmath>
#include <complex>
#include <concepts>

#include "unfused.hpp"

namespace longseq::ssm {

// One mode a (complex) with step dt, discretized: x_l = exp(log_dA) x_{l-1} + dB * b u_l, together with
// the derivatives of log_dA and dB with respect to a (complex-analytic) and dt (real).
struct DiscreteMode {
  std::complex<double> log_dA, dB;
  std::complex<double> dlog_dA_da, dlog_dA_ddt, ddB_da, ddB_ddt;
};

// Zero-order hold: dA = exp(dt a), dB = (exp(dt a) - 1) / a.
struct ZOH {
  static constexpr const char* name = "zoh";
  LONGSEQ_UNFUSED static DiscreteMode apply(std::complex<double> a, double dt) {
    using C = std::complex<double>;
    C x = dt * a;
    double s = std::sin(x.imag()), ea = std::exp(x.real());
    // exp(x) - 1 without cancellation: expm1(re) cos(im) - 2 sin^2(im/2) + i exp(re) sin(im).
    double sh = std::sin(0.5 * x.imag());
    C em1(std::expm1(x.real()) * std::cos(x.imag()) - 2 * sh * sh, ea * s);
    C ex = em1 + 1.0;
    DiscreteMode m;
    m.log_dA = x;
    m.dlog_dA_da = dt;
    m.dlog_dA_ddt = a;
    m.dB = em1 / a;
    // d/da (exp(dt a) - 1)/a = dt^2 (x e^x - e^x + 1) / x^2; the series keeps small |x| accurate.
    C g;
    if (std::abs(x) < 0.1) {
      C term = 1.0, sum = 0.0;
      double fact = 2.0;  // (k+2)!
      for (int k = 0; k < 14; ++k) {
        sum += term * double(k + 1) / fact;
        term *= x;
        fact *= double(k + 3);
      }
      g = sum;
    } else {
      g = (x * ex - em1) / (x * x);
    }
    m.ddB_da = dt * dt * g;
    m.ddB_ddt = ex;
    return m;
  }
};

// Bilinear (Tustin): dA = (1 + dt a / 2) / (1 - dt a / 2), dB = dt / (1 - dt a / 2).
struct Bilinear {
  static constexpr const char* name = "bilinear";
  LONGSEQ_UNFUSED static DiscreteMode apply(std::complex<double> a, double dt) {
    using C = std::complex<double>;
    C x = dt * a, den = 1.0 - 0.5 * x;
    DiscreteMode m;
    m.log_dA = 2.0 * std::atanh(0.5 * x);  // log((1 + x/2) / (1 - x/2)) without cancellation
    C dlog = 1.0 / (1.0 - 0.25 * x * x);
    m.dlog_dA_da = dt * dlog;
    m.dlog_dA_ddt = a * dlog;
    m.dB = dt / den;
    m.ddB_da = 0.5 * dt * dt / (den * den);
    m.ddB_ddt = 1.0 / (den * den);
    return m;
  }
};

template <class D>
concept Discretization = requires(std::complex<double> a, double dt) {
  { D::name } -> std::convertible_to<const char*>;
  { D::apply(a, dt) } -> std::same_as<DiscreteMode>;
};

}  // namespace longseq::ssm

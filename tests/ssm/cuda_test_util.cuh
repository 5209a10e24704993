// Helpers for the CUDA ssm tests: bf16 copies of float data, the relative max-norm difference, and an S4
// kernel in double whose parameters and gradients are compared with the device S4 entry points.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <complex>
#include <vector>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/dtype.hpp>
#include <longseq/core/parameters.hpp>
#include <longseq/core/rng.hpp>
#include <longseq/core/tensor.hpp>
#include <longseq/ssm/s4.hpp>

namespace longseq::test {

// x rounded to bf16 and back, so that a float run sees exactly the values a bf16 run stores.
inline Tensor<float> bf16_rounded(const Tensor<float>& x) {
  Tensor<float> r(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) r[i] = float(bf16(x[i]));
  return r;
}

inline Tensor<bf16> to_bf16(const Tensor<float>& x) {
  Tensor<bf16> r(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) r[i] = bf16(x[i]);
  return r;
}

// max |a - b| / max |a| of two device tensors of one shape, read back to the host.
template <class T, class U>
double rel_diff(const Tensor<T, device::cuda>& a, const Tensor<U, device::cuda>& b) {
  auto ha = to_host(a.view());
  auto hb = to_host(b.view());
  REQUIRE(ha.numel() == hb.numel());
  double m = 0, e = 0;
  for (index_t i = 0; i < ha.numel(); ++i) {
    m = std::max(m, std::abs(double(ha[i])));
    e = std::max(e, std::abs(double(ha[i]) - double(hb[i])));
  }
  return m > 0 ? e / m : e;
}

// max |a - b| / max |a| of a host reference and a device tensor with as many elements.
template <class T>
double rel_diff(const std::vector<double>& a, const Tensor<T, device::cuda>& b) {
  auto hb = to_host(b.view());
  REQUIRE(index_t(a.size()) == hb.numel());
  double m = 0, e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::abs(a[i]));
    e = std::max(e, std::abs(a[i] - double(hb[index_t(i)])));
  }
  return m > 0 ? e / m : e;
}

// An S4 kernel in double with the HiPPO initialization and perturbed P and B, so that the copies differ.
// The store must outlive the returned kernel (it holds the parameters).
inline ssm::S4<double> make_s4(index_t H, index_t N, index_t Lk, index_t channels, index_t n_ssm,
                               ParamStore<double>& store) {
  ssm::S4<double>::Config cfg;
  cfg.H = H;
  cfg.N = N;
  cfg.l_max = Lk;
  cfg.channels = channels;
  cfg.n_ssm = n_ssm;
  ssm::S4<double> s4(cfg);
  store.bind(s4);
  Rng rng(21);
  s4.init(rng);
  for (index_t i = 0; i < s4.P.value.numel(); ++i) s4.P.value[i] += 0.1 * rng.normal();
  for (index_t i = 0; i < s4.B.value.numel(); ++i) s4.B.value[i] += 0.1 * rng.normal();
  return s4;
}

template <class T>
Tensor<T> copy_as(TensorView<const double> x) {
  Tensor<T> t(x.shape);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(x[i]);
  return t;
}

// The S4 parameters as the device entry points take them: dt = exp(log_dt) (H), lambda = -exp(log_A_real) +
// i A_imag, P, B (S, M, 2) and C (channels, H, M, 2), on the host in T.
template <class T>
struct S4Inputs {
  Tensor<T> dt, lambda, P, B, C;
  explicit S4Inputs(const ssm::S4<double>& s4)
      : dt(Shape{s4.cfg.H}),
        lambda(Shape{s4.S, s4.M, 2}),
        P(copy_as<T>(s4.P.value)),
        B(copy_as<T>(s4.B.value)),
        C(copy_as<T>(s4.C.value)) {
    for (index_t h = 0; h < s4.cfg.H; ++h) dt[h] = T(std::exp(s4.log_dt.value[h]));
    for (index_t i = 0; i < s4.S * s4.M; ++i) {
      lambda[2 * i] = T(-std::exp(s4.log_A_real.value[i]));
      lambda[2 * i + 1] = T(s4.A_imag.value[i]);
    }
  }
};

// Device gradients with respect to S4Inputs, shaped like them.
template <class T>
struct S4Grads {
  Tensor<T, device::cuda> dt, lambda, P, B, C;
  explicit S4Grads(const ssm::S4<double>& s4)
      : dt(Shape{s4.cfg.H}),
        lambda(Shape{s4.S, s4.M, 2}),
        P(Shape{s4.S, s4.M, 2}),
        B(Shape{s4.S, s4.M, 2}),
        C(Shape{s4.cfg.channels, s4.cfg.H, s4.M, 2}) {}
};

// Checks device gradients against the host S4's parameter gradients, chained through dt = exp(log_dt) and
// lambda = -exp(log_A_real) + i A_imag: each within tol of the host's largest entry.
template <class T>
void check_s4_grads(const ssm::S4<double>& s4, const S4Grads<T>& g, double tol) {
  auto h_dt = to_host(g.dt.view());
  auto h_lam = to_host(g.lambda.view());
  std::vector<double> want_dt, got_dt, want_ar, got_ar, want_ai, got_ai;
  for (index_t h = 0; h < s4.cfg.H; ++h) {
    want_dt.push_back(s4.log_dt.grad[h]);
    got_dt.push_back(std::exp(s4.log_dt.value[h]) * double(h_dt[h]));
  }
  for (index_t i = 0; i < s4.S * s4.M; ++i) {
    want_ar.push_back(s4.log_A_real.grad[i]);
    got_ar.push_back(-std::exp(s4.log_A_real.value[i]) * double(h_lam[2 * i]));
    want_ai.push_back(s4.A_imag.grad[i]);
    got_ai.push_back(double(h_lam[2 * i + 1]));
  }
  auto err = [](const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0, e = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      m = std::max(m, std::abs(a[i]));
      e = std::max(e, std::abs(a[i] - b[i]));
    }
    return m > 0 ? e / m : e;
  };
  auto grad_of = [](const Param<double>& p) { return std::vector<double>(p.grad.data, p.grad.data + p.grad.numel()); };
  CHECK(err(want_dt, got_dt) <= tol);
  CHECK(err(want_ar, got_ar) <= tol);
  CHECK(err(want_ai, got_ai) <= tol);
  CHECK(rel_diff(grad_of(s4.P), g.P) <= tol);
  CHECK(rel_diff(grad_of(s4.B), g.B) <= tol);
  CHECK(rel_diff(grad_of(s4.C), g.C) <= tol);
}

}  // namespace longseq::test

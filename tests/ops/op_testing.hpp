// Helpers for the ops tests: random tensors, central-difference gradients and error measures.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include <longseq/core/rng.hpp>
#include <longseq/core/tensor.hpp>

namespace optest {

using namespace longseq;

template <class T>
Tensor<T> random_tensor(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor<T> t(s);
  Rng rng(seed);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(rng.uniform(lo, hi));
  return t;
}

template <class T, class U>
Tensor<T> cast(const Tensor<U>& x) {
  Tensor<T> t(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) t[i] = T(double(x[i]));
  return t;
}

// Central differences of a scalar function of x, perturbing x in place one element at a time.
template <class F>
std::vector<double> numeric_grad(Tensor<double>& x, F&& loss, double h = 1e-6) {
  std::vector<double> g(std::size_t(x.numel()));
  for (index_t i = 0; i < x.numel(); ++i) {
    double keep = x[i];
    x[i] = keep + h;
    double up = loss();
    x[i] = keep - h;
    double down = loss();
    x[i] = keep;
    g[std::size_t(i)] = (up - down) / (2 * h);
  }
  return g;
}

// The scalar sum_i w[i] * y[i]: its gradient with respect to y is w.
inline double dot(const Tensor<double>& w, const Tensor<double>& y) {
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += w[i] * y[i];
  return s;
}

// max |a - b| / max(1e-3, max |b|): an error relative to the scale of the reference.
template <class A, class B>
double rel_err(const A& a, const B& b, index_t n) {
  double num = 0, den = 1e-3;
  for (index_t i = 0; i < n; ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}
inline double rel_err(const Tensor<double>& a, const std::vector<double>& b) {
  return rel_err(a, b, a.numel());
}

}  // namespace optest

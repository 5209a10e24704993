// Helpers for the GPU op tests: random host tensors, device copies and a relative-error comparison.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <vector>

namespace longseq::test {

// Uniform in [lo, hi), rounded to T (so a half/bf16 reference can start from the same values).
template <class T>
Tensor<T> random_tensor(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor<T> t(s);
  Rng rng(seed);
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(float(rng.uniform(lo, hi)));
  if constexpr (std::is_same_v<T, double>) {
    Rng r2(seed);
    for (index_t i = 0; i < t.numel(); ++i) t[i] = r2.uniform(lo, hi);
  }
  return t;
}

template <class T>
std::vector<double> as_double(const Tensor<T>& t) {
  std::vector<double> v(std::size_t(t.numel()));
  for (index_t i = 0; i < t.numel(); ++i) v[std::size_t(i)] = double(float(t[i]));
  if constexpr (std::is_same_v<T, double>)
    for (index_t i = 0; i < t.numel(); ++i) v[std::size_t(i)] = t[i];
  return v;
}

// Largest |got - want| relative to max(1, max |want|): one number per comparison, robust near zero.
template <class T>
double max_rel_error(const Tensor<T>& got, const std::vector<double>& want) {
  REQUIRE(std::size_t(got.numel()) == want.size());
  auto g = as_double(got);
  double scale = 1.0, err = 0.0;
  for (double w : want) scale = std::max(scale, std::abs(w));
  for (std::size_t i = 0; i < want.size(); ++i) {
    double d = std::abs(g[i] - want[i]);
    if (!(d <= err)) err = std::isnan(d) ? INFINITY : d;
  }
  return err / scale;
}

template <class T>
double max_rel_error(const Tensor<T>& got, const Tensor<T>& want) {
  return max_rel_error(got, as_double(want));
}

template <class T>
Tensor<T> download(Context<device::cuda>& ctx, const Tensor<T, device::cuda>& d) {
  ctx.synchronize();
  return to_host(d);
}

// Tolerance for results stored in T: a few units in the last place of the storage type.
template <class T>
double tol() {
  if constexpr (std::is_same_v<T, double>) return 1e-11;
  else if constexpr (std::is_same_v<T, float>) return 2e-5;
  else if constexpr (std::is_same_v<T, longseq::half>) return 4e-3;
  else return 1e-2;
}

// Tolerance for results that sum n terms: float/double results may differ from the host's by the
// summation order (grows like sqrt(n)); half/bf16 results differ by at most a rounding of the output.
template <class T>
double sum_tol(index_t n) {
  if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>)
    return 8 * tol<T>() * std::max(1.0, std::sqrt(double(n)));
  else
    return 2 * tol<T>();
}

}  // namespace longseq::test

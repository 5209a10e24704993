// Global gradient norm over a ParamStore, scaling the gradients, clipping by the norm (as torch.nn.utils.clip_grad_norm_), and a
// finiteness check naming the first parameter whose gradient holds NaN or Inf.
#pragma once
#include <cmath>
#include <string>

#include "../core/parameters.hpp"

namespace longseq::train {

template <class T>
double global_grad_norm(ParamStore<T>& store) {
  double sq = 0;
  for (const auto& e : store.entries()) {
    const T* g = e.param->grad.data;
    for (index_t i = 0; i < e.param->shape.numel(); ++i) sq += double(g[i]) * double(g[i]);
  }
  return std::sqrt(sq);
}

// Multiplies every gradient by `factor` (in double, rounded once to T).
template <class T>
void scale_grads(ParamStore<T>& store, double factor) {
  auto g = store.grads();
  for (index_t i = 0; i < g.numel(); ++i) g[i] = T(double(g[i]) * factor);
}

// Scales all gradients by max_norm / (norm + 1e-6) when the norm exceeds max_norm; returns the norm
// before clipping. max_norm <= 0 disables clipping (the norm is still returned).
template <class T>
double clip_grad_norm(ParamStore<T>& store, double max_norm) {
  const double norm = global_grad_norm(store);
  if (max_norm > 0 && std::isfinite(norm)) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) scale_grads(store, coef);
  }
  return norm;
}

// Name of the first parameter with a non-finite gradient (empty when all are finite).
template <class T>
std::string first_nonfinite_grad(ParamStore<T>& store) {
  for (const auto& e : store.entries()) {
    const T* g = e.param->grad.data;
    for (index_t i = 0; i < e.param->shape.numel(); ++i)
      if (!std::isfinite(double(g[i]))) return e.name;
  }
  return {};
}

}  // namespace longseq::train

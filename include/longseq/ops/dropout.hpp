// Inverted dropout whose mask comes from Philox counters, so the backward regenerates it instead of storing it.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/rng.hpp"
#include "common.hpp"

namespace longseq::ops {

// Element i is kept when the uniform Philox(seed, stream, i / 4)[i % 4] (24 bits, in float) is >= p.
// The comparison is done in float on every device so host and GPU masks agree bit for bit.
LONGSEQ_HD inline bool dropout_keeps(std::uint64_t seed, std::uint64_t stream, std::uint64_t i, float p) {
  return Philox::to_unit(Philox::generate(seed, stream, i / 4).v[i % 4]) >= p;
}

namespace detail {

inline void check_dropout_p(double p) {
  LONGSEQ_CHECK(p >= 0.0 && p < 1.0, "dropout: probability p = ", p, " must lie in [0, 1)");
}

// out[i] = in[i] * keep(i) / (1 - p); one Philox call serves four consecutive elements.
template <class T>
void apply_dropout(Context<device::host>& ctx, const TensorView<const T>& in, const TensorView<T>& out, double p,
                   std::uint64_t seed, std::uint64_t stream) {
  using W = accum_t<T>;
  index_t n = in.numel();
  if (p == 0.0) {
    if (out.data != in.data)
      for (index_t i = 0; i < n; ++i) out.data[i] = in.data[i];
    return;
  }
  float pf = float(p);
  W scale = W(1) / (W(1) - W(p));
  index_t blocks = (n + 3) / 4;
  int nt = threads_for(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t b = 0; b < blocks; ++b) {
    auto r = Philox::generate(seed, stream, std::uint64_t(b));
    for (index_t j = 0; j < 4 && 4 * b + j < n; ++j) {
      index_t i = 4 * b + j;
      out.data[i] = Philox::to_unit(r.v[j]) >= pf ? T(W(in.data[i]) * scale) : T(0);
    }
  }
}

}  // namespace detail

// y = x * mask / (1 - p) with mask as in dropout_keeps; p = 0 copies x. x, y contiguous, same shape
// (y may alias x). Whether dropout is active (ctx.training) is the calling layer's decision.
template <class T>
void dropout_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x, TensorView<T> y,
                     double p, std::uint64_t seed, std::uint64_t stream) {
  static_assert(Real<T>, "dropout: T must be float, double, half or bf16");
  detail::check_dropout_p(p);
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  detail::expect_same_shape(y, x.shape, "y", "x");
  detail::apply_dropout(ctx, x, y, p, seed, stream);
}

// dx = dy * mask / (1 - p), the mask regenerated from (seed, stream); dx written (may alias dy).
template <class T>
void dropout_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx,
                      double p, std::uint64_t seed, std::uint64_t stream) {
  static_assert(Real<T>, "dropout: T must be float, double, half or bf16");
  detail::check_dropout_p(p);
  expect_contiguous(dy, "dy");
  expect_contiguous(dx, "dx");
  detail::expect_same_shape(dx, dy.shape, "dx", "dy");
  detail::apply_dropout(ctx, dy, dx, p, seed, stream);
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/dropout.cuh"
#endif

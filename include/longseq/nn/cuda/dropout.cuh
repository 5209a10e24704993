// Tied dropout on the GPU: one thread per element, the mask of (b, h) drawn with the host's rule
// (ops::dropout_keeps at counter element b H + h), so host and GPU drop the same channels. The checks and the
// forward/backward entry points are nn/dropout.hpp's, shared with the host.
#pragma once
#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../ops/cuda/dropout.cuh"

namespace longseq::nn {

namespace cuda_detail {

template <class T>
struct TiedDropoutOp {
  const T* in;
  T* out;
  index_t LH, H;
  std::uint64_t seed, stream;
  float p;
  accum_t<T> scale;
  __device__ void operator()(index_t i) const {
    using W = accum_t<T>;
    const index_t bh = (i / LH) * H + i % H;
    out[i] = ops::dropout_keeps(seed, stream, std::uint64_t(bh), p) ? T(W(in[i]) * scale) : T(W(0));
  }
};

}  // namespace cuda_detail

namespace detail {

// out[b, l, h] = in[b, l, h] keep(b, h) / (1 - p) for in, out (B, L, H) contiguous, already checked.
template <class T>
void apply_tied_dropout(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& in,
                        const TensorView<T, device::cuda>& out, double p, std::uint64_t seed, std::uint64_t stream) {
  using W = accum_t<T>;
  if (ops::cuda_detail::dropout_shortcut(ctx, in, out, p)) return;
  const index_t H = in.size(2);
  longseq::cuda::for_each(ctx.stream(), in.numel(),
                          cuda_detail::TiedDropoutOp<T>{in.data, out.data, in.size(1) * H, H, seed, stream, float(p),
                                                        W(1) / (W(1) - W(p))},
                          "nn::tied_dropout");
}

}  // namespace detail

}  // namespace longseq::nn

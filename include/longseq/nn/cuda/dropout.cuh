// Tied dropout on the GPU: one thread per element, the mask of (b, h) drawn with the host's rule
// (ops::dropout_keeps at counter element b H + h), so host and GPU drop the same channels.
#pragma once
#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../ops/cuda/math.cuh"

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

template <class T>
void apply_tied_dropout(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& in,
                        const TensorView<T, device::cuda>& out, double p, std::uint64_t seed, std::uint64_t stream,
                        const char* name) {
  using W = accum_t<T>;
  const index_t n = in.numel();
  if (n == 0) return;
  if (p == 0.0) {
    if (out.data != in.data)
      LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(out.data, in.data, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToDevice,
                                         ctx.stream()));
    return;
  }
  const index_t H = in.size(2);
  longseq::cuda::for_each(ctx.stream(), n,
                          TiedDropoutOp<T>{in.data, out.data, in.size(1) * H, H, seed, stream, float(p),
                                           W(1) / (W(1) - W(p))},
                          name);
}

}  // namespace cuda_detail

// y = x * keep(b, h) / (1 - p), x and y (B, L, H) contiguous (y may alias x); p = 0 copies x.
template <class T>
void tied_dropout_forward(Context<device::cuda>& ctx, ops::cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y,
                          double p, std::uint64_t seed, std::uint64_t stream) {
  static_assert(Real<T>, "tied dropout: T must be float, double, half or bf16");
  ops::detail::check_dropout_p(p);
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  detail::check_tied_io(x.shape, y.shape, "x", "y");
  cuda_detail::apply_tied_dropout(ctx, x, y, p, seed, stream, "tied_dropout_forward");
}

// dx = dy * keep(b, h) / (1 - p) with the mask regenerated from (seed, stream); dx written (may alias dy).
template <class T>
void tied_dropout_backward(Context<device::cuda>& ctx, ops::cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> dx,
                           double p, std::uint64_t seed, std::uint64_t stream) {
  static_assert(Real<T>, "tied dropout: T must be float, double, half or bf16");
  ops::detail::check_dropout_p(p);
  expect_contiguous(dy, "dy");
  expect_contiguous(dx, "dx");
  detail::check_tied_io(dy.shape, dx.shape, "dy", "dx");
  cuda_detail::apply_tied_dropout(ctx, dy, dx, p, seed, stream, "tied_dropout_backward");
}

}  // namespace longseq::nn

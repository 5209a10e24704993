// Inverted dropout on the GPU: the keep mask of element i is ops::dropout_keeps(seed, stream, i, p), the
// host's rule bit for bit, so host and GPU runs drop the same elements.
#pragma once
#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../dropout.hpp"
#include "math.cuh"

namespace longseq::ops {

namespace cuda_detail {

// Thread b serves elements 4b..4b+3 from one Philox block (the counter of element i is i / 4).
template <class T>
struct DropoutOp {
  const T* in;
  T* out;
  index_t n;
  std::uint64_t seed, stream;
  float p;
  accum_t<T> scale;
  __device__ void operator()(index_t b) const {
    using W = accum_t<T>;
    Philox::u32x4 r = Philox::generate(seed, stream, std::uint64_t(b));
    for (index_t j = 0; j < 4 && 4 * b + j < n; ++j) {
      index_t i = 4 * b + j;
      out[i] = Philox::to_unit(r.v[j]) >= p ? T(W(in[i]) * scale) : T(W(0));
    }
  }
};

// What every dropout on the GPU (per element here, tied in nn/) does before drawing a mask: nothing for an
// empty tensor, a copy for p = 0. True when that finished the job.
template <class T>
bool dropout_shortcut(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& in,
                      const TensorView<T, device::cuda>& out, double p) {
  const index_t n = in.numel();
  if (n == 0) return true;
  if (p != 0.0) return false;
  if (out.data != in.data)
    LONGSEQ_CUDA_CHECK(
        cudaMemcpyAsync(out.data, in.data, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToDevice, ctx.stream()));
  return true;
}

template <class T>
void apply_dropout(Context<device::cuda>& ctx, const TensorView<const T, device::cuda>& in,
                   const TensorView<T, device::cuda>& out, double p, std::uint64_t seed, std::uint64_t stream,
                   const char* name) {
  using W = accum_t<T>;
  if (dropout_shortcut(ctx, in, out, p)) return;
  const index_t n = in.numel();
  // The same float threshold and scale as the host op.
  cuda::for_each(ctx.stream(), (n + 3) / 4,
                 DropoutOp<T>{in.data, out.data, n, seed, stream, float(p), W(1) / (W(1) - W(p))}, name);
}

}  // namespace cuda_detail

// y = x * mask / (1 - p); p = 0 copies x. x, y contiguous, same shape (y may alias x).
template <class T>
void dropout_forward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> x, TensorView<T, device::cuda> y, double p,
                     std::uint64_t seed, std::uint64_t stream) {
  static_assert(Real<T>, "dropout: T must be float, double, half or bf16");
  detail::check_dropout_p(p);
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  cuda_detail::expect_same_shape_as(y, x, "y", "x");
  cuda_detail::apply_dropout(ctx, x, y, p, seed, stream, "dropout_forward");
}

// dx = dy * mask / (1 - p) with the mask regenerated from (seed, stream); dx written (may alias dy).
template <class T>
void dropout_backward(Context<device::cuda>& ctx, cuda_detail::CudaIn<T> dy, TensorView<T, device::cuda> dx,
                      double p, std::uint64_t seed, std::uint64_t stream) {
  static_assert(Real<T>, "dropout: T must be float, double, half or bf16");
  detail::check_dropout_p(p);
  expect_contiguous(dy, "dy");
  expect_contiguous(dx, "dx");
  cuda_detail::expect_same_shape_as(dx, dy, "dx", "dy");
  cuda_detail::apply_dropout(ctx, dy, dx, p, seed, stream, "dropout_backward");
}

}  // namespace longseq::ops

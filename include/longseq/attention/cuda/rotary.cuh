// The q/k position policies on the GPU: position_apply overloads for NoRotation (nothing to do) and Rotary
// (one thread per rotated pair), called by MultiHeadAttention<T, device::cuda, Position>.
#pragma once
#include <cmath>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/dtype.hpp"
#include "../rotary.hpp"

namespace longseq::attention {

namespace cuda_rotary {

// Pair i of head h at row (b, l) of x (batch, len, row), rotated by sign * angle(offset + l, i). The angle,
// its cosine and sine are computed in double as on the host; the rotation itself in accum_t<T>.
template <class T>
struct RotateOp {
  T* x;
  index_t len, heads, head_dim, pairs, offset, row;
  double base, rot_dim, sign;
  bool interleaved;
  __device__ void operator()(index_t e) const {
    using W = accum_t<T>;
    const index_t i = e % pairs;
    index_t rest = e / pairs;
    const index_t h = rest % heads;
    rest /= heads;
    const index_t l = rest % len, b = rest / len;
    const double th = double(offset + l) * ::pow(base, -2.0 * double(i) / rot_dim);
    const W c = W(::cos(th)), s = W(sign * ::sin(th));
    T* p = x + (b * len + l) * row + h * head_dim;
    T* a = interleaved ? p + 2 * i : p + i;
    T* z = interleaved ? p + 2 * i + 1 : p + i + pairs;
    const W x1 = W(*a), x2 = W(*z);
    *a = T(x1 * c - x2 * s);
    *z = T(x2 * c + x1 * s);
  }
};

}  // namespace cuda_rotary

// No rotation: q and k stay as they are.
template <class T>
void position_apply(Context<device::cuda>&, const NoRotation&, T*, index_t, index_t, index_t, index_t, index_t,
                    bool) {}

// Rotary::apply (backward = false) or Rotary::apply_backward (backward = true) on a device pointer x
// (batch, len, heads * head_dim) with row stride `row`.
template <class T>
void position_apply(Context<device::cuda>& ctx, const Rotary& r, T* x, index_t batch, index_t len, index_t heads,
                    index_t offset, index_t row, bool backward) {
  const index_t pairs = r.rot_dim / 2;
  if (pairs == 0) return;
  LONGSEQ_CHECK(row >= heads * r.head_dim, "Rotary (CUDA): row stride ", row, " is smaller than heads * head_dim = ",
                heads * r.head_dim);
  cuda_rotary::RotateOp<T> op{};
  op.x = x;
  op.len = len;
  op.heads = heads;
  op.head_dim = r.head_dim;
  op.pairs = pairs;
  op.offset = offset;
  op.row = row;
  op.base = r.cfg.base;
  op.rot_dim = double(r.rot_dim);
  op.sign = backward ? -1.0 : 1.0;
  op.interleaved = r.cfg.interleaved;
  cuda::for_each(ctx.stream(), batch * len * heads * pairs, op, "rotary");
}

}  // namespace longseq::attention

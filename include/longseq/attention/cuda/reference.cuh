// Plain GPU attention kept as the correctness reference for the fused kernels: materializes the
// (B, heads, Lq, Lk) scores with cuBLAS, masks them, applies the ops softmax, multiplies by V; and back.
#pragma once
#include <cmath>
#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../ops/cuda/gemm.cuh"
#include "../../ops/cuda/softmax.cuh"
#include "flash.cuh"

namespace longseq::attention {

namespace cuda_reference {

// Element (bh, i, j) of the contiguous score tensor; hidden entries become -inf.
template <class T>
struct MaskScores {
  T* s;
  MaskSpec mask;
  index_t heads, len_q, len_k;
  __device__ void operator()(index_t e) const {
    const index_t j = e % len_k, i = (e / len_k) % len_q, b = e / (len_k * len_q) / heads;
    if (!cuda_flash::visible(mask, b, i + mask.q_offset, j)) s[e] = T(-INFINITY);
  }
};

// Per score row: lse = log sum exp in fp32 (-inf when every key is hidden), and the softmax row set to 0
// there (the ops softmax gives NaN for an all -inf row; flash attention gives a zero output).
template <class T>
struct RowLse {
  const T* s;
  T* p;
  float* lse;
  index_t len_k;
  __device__ void operator()(index_t row) const {
    const T* sr = s + row * len_k;
    float mx = -INFINITY;
    for (index_t j = 0; j < len_k; ++j) mx = fmaxf(mx, float(sr[j]));
    if (mx == -INFINITY) {
      for (index_t j = 0; j < len_k; ++j) p[row * len_k + j] = T(0.0f);
      if (lse) lse[row] = -INFINITY;
      return;
    }
    float sum = 0.0f;
    for (index_t j = 0; j < len_k; ++j) sum += expf(float(sr[j]) - mx);
    if (lse) lse[row] = mx + logf(sum);
  }
};

// y[e] = x[e] * Z[e] (Z the 0 or 1/(1-p) dropout multiplier of element e); y may be x.
template <class T>
struct ApplyDropout {
  const T* x;
  T* y;
  cuda_flash::Dropout drop;
  __device__ void operator()(index_t e) const { y[e] = T(float(x[e]) * drop.factor(std::uint64_t(e))); }
};

// s = masked scores, p = softmax rows (zero rows where nothing is visible), pd = p with dropout (or p
// itself); lse (nullable) gets the log-sum-exp. All (B * heads, Lq, Lk) contiguous.
template <class T>
void probabilities(Context<device::cuda>& ctx, const FlashArgs<T>& a, T* s, T* p, T* pd, float* lse) {
  const index_t H = a.heads, Lq = a.len_q, Lk = a.len_k, dh = a.head_dim, n = a.batch * H * Lq * Lk;
  for (index_t b = 0; b < a.batch; ++b)
    for (index_t h = 0; h < H; ++h)
      ops::gemm<T>(ctx, ops::Trans::N, ops::Trans::T, Lq, Lk, dh, T(float(a.scale)), a.q + b * a.q_batch + h * dh,
                   a.q_row, a.k + b * a.k_batch + h * dh, a.k_row, T(0.0f), s + (b * H + h) * Lq * Lk, Lk);
  cuda::for_each(ctx.stream(), n, MaskScores<T>{s, a.mask, H, Lq, Lk}, "attention_reference_mask");
  const Shape rows{a.batch * H * Lq, Lk};
  ops::softmax_forward<T>(ctx, TensorView<const T, device::cuda>(s, rows), TensorView<T, device::cuda>(p, rows));
  cuda::for_each(ctx.stream(), a.batch * H * Lq, RowLse<T>{s, p, lse, Lk}, "attention_reference_lse");
  if (pd != p) cuda::for_each(ctx.stream(), n, ApplyDropout<T>{p, pd, cuda_flash::dropout_of(a)}, "attention_reference_dropout");
}

}  // namespace cuda_reference

// Same contract as flash_forward on Context<device::cuda> (device pointers, fp32 lse), any head_dim, with
// B * heads * Lq * Lk elements of scratch: for tests and debugging, not for long sequences.
template <class T>
void reference_forward(Context<device::cuda>& ctx, const FlashArgs<T>& a, T* o, index_t o_batch, index_t o_row,
                       float* lse) {
  const index_t H = a.heads, Lq = a.len_q, Lk = a.len_k, dh = a.head_dim;
  LONGSEQ_CHECK(a.batch >= 0 && H > 0 && Lq >= 0 && Lk > 0 && dh > 0,
                "reference_forward (CUDA): bad sizes batch=", a.batch, ", heads=", H, ", len_q=", Lq,
                ", len_k=", Lk, ", head_dim=", dh);
  const auto n = std::size_t(a.batch * H * Lq * Lk);
  if (n == 0) return;
  auto s = ctx.scratch<T>(n), p = ctx.scratch<T>(n), pd = ctx.scratch<T>(a.dropout > 0 ? n : 0);
  T* pz = a.dropout > 0 ? pd.data() : p.data();
  cuda_reference::probabilities(ctx, a, s.data(), p.data(), pz, lse);
  for (index_t b = 0; b < a.batch; ++b)
    for (index_t h = 0; h < H; ++h)
      ops::gemm<T>(ctx, ops::Trans::N, ops::Trans::N, Lq, dh, Lk, T(1.0f), pz + (b * H + h) * Lq * Lk, Lk,
                   a.v + b * a.v_batch + h * dh, a.v_row, T(0.0f), o + b * o_batch + h * dh, o_row);
}

// Same contract as flash_backward on Context<device::cuda>; recomputes everything from q, k, v (o and lse
// are not read): dPd = do v^T, dP = Z dPd, dS = softmax_backward(P, dP), dq = scale dS k,
// dk = scale dS^T q, dv = Pd^T do.
template <class T>
void reference_backward(Context<device::cuda>& ctx, const FlashArgs<T>& a, const T* /*o*/, index_t o_batch,
                        index_t o_row, const float* /*lse*/, const T* dout, T* dq, T* dk, T* dv) {
  const index_t H = a.heads, Lq = a.len_q, Lk = a.len_k, dh = a.head_dim;
  const auto n = std::size_t(a.batch * H * Lq * Lk);
  if (n == 0) return;
  auto s = ctx.scratch<T>(n), p = ctx.scratch<T>(n), pd = ctx.scratch<T>(a.dropout > 0 ? n : 0),
       g = ctx.scratch<T>(n);
  T* pz = a.dropout > 0 ? pd.data() : p.data();
  cuda_reference::probabilities(ctx, a, s.data(), p.data(), pz, nullptr);
  for (index_t b = 0; b < a.batch; ++b)
    for (index_t h = 0; h < H; ++h)
      ops::gemm<T>(ctx, ops::Trans::N, ops::Trans::T, Lq, Lk, dh, T(1.0f), dout + b * o_batch + h * dh, o_row,
                   a.v + b * a.v_batch + h * dh, a.v_row, T(0.0f), g.data() + (b * H + h) * Lq * Lk, Lk);
  if (a.dropout > 0)
    cuda::for_each(ctx.stream(), index_t(n), cuda_reference::ApplyDropout<T>{g.data(), g.data(), cuda_flash::dropout_of(a)},
                   "attention_reference_dropout_grad");
  const Shape rows{a.batch * H * Lq, Lk};
  ops::softmax_backward<T>(ctx, TensorView<const T, device::cuda>(p.data(), rows),
                           TensorView<const T, device::cuda>(g.data(), rows), TensorView<T, device::cuda>(g.data(), rows));
  const T scale = T(float(a.scale));
  for (index_t b = 0; b < a.batch; ++b)
    for (index_t h = 0; h < H; ++h) {
      const T* ds = g.data() + (b * H + h) * Lq * Lk;
      const T* pzb = pz + (b * H + h) * Lq * Lk;
      ops::gemm<T>(ctx, ops::Trans::N, ops::Trans::N, Lq, dh, Lk, scale, ds, Lk, a.k + b * a.k_batch + h * dh,
                   a.k_row, T(0.0f), dq + b * a.q_batch + h * dh, a.q_row);
      ops::gemm<T>(ctx, ops::Trans::T, ops::Trans::N, Lk, dh, Lq, scale, ds, Lk, a.q + b * a.q_batch + h * dh,
                   a.q_row, T(0.0f), dk + b * a.k_batch + h * dh, a.k_row);
      ops::gemm<T>(ctx, ops::Trans::T, ops::Trans::N, Lk, dh, Lq, T(1.0f), pzb, Lk, dout + b * o_batch + h * dh,
                   o_row, T(0.0f), dv + b * a.v_batch + h * dh, a.v_row);
    }
}

}  // namespace longseq::attention

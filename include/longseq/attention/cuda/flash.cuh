// Fused flash attention on the GPU: the forward streams key tiles through shared memory with an online
// softmax in fp32 and saves only the log-sum-exp per query; the backward recomputes the probabilities from it.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/dtype.hpp"
#include "../../core/rng.hpp"
#include "../flash.hpp"

namespace longseq::attention {

namespace cuda_flash {

// Work split shared by the kernels. A block of 4 warps owns `rows` rows (queries in the forward and dQ
// kernels, keys in the dK/dV kernel), each warp `rows_per_warp` of them; the other side streams through
// shared memory in tiles of 32, one entry per lane. A lane computes the scores of its tile entry against
// the warp's rows (dot products over the whole head), then owns head_dim / 32 columns of the accumulators,
// receiving each tile entry's weight by warp shuffle. All storage in shared memory is fp32.
template <int HD>
struct Tile {
  static_assert(HD == 32 || HD == 64 || HD == 128, "flash attention (CUDA): head_dim must be 32, 64 or 128");
  static constexpr int warps = 4;
  static constexpr int threads = warps * 32;
  static constexpr int rows_per_warp = HD == 128 ? 2 : 4;  // keeps shared memory under the 48 KiB static limit
  static constexpr int rows = warps * rows_per_warp;
  static constexpr int cols = 32;
  static constexpr int per_lane = HD / 32;
  // Row stride of streamed tiles: lane c reading element (c, d) hits bank (c + d) mod 32, no conflicts.
  static constexpr int pad = HD + 1;
};

template <class T>
__device__ inline float load(const T& x) {
  return float(x);
}

__device__ inline index_t imin(index_t a, index_t b) { return a < b ? a : b; }
__device__ inline index_t imax(index_t a, index_t b) { return a > b ? a : b; }

// MaskSpec::allowed and MaskSpec::padded, for kernels (key_padding is a device pointer here).
__device__ inline bool visible(const MaskSpec& m, index_t b, index_t qpos, index_t k) {
  if (m.causal && k > qpos) return false;
  if (m.window > 0) {
    const index_t bq = qpos / m.window, bk = k / m.window;
    if (bk < bq - m.look_back) return false;
    if (!m.causal && bk > bq + m.look_forward) return false;
  }
  return m.key_padding == nullptr || m.key_padding[b * m.key_padding_stride + k] == 0;
}

// MaskSpec::key_range: keys [lo, hi) that queries at positions [p0, p1] might see.
__device__ inline void key_range(const MaskSpec& m, index_t p0, index_t p1, index_t len_k, index_t& lo,
                                 index_t& hi) {
  lo = 0;
  hi = len_k;
  if (m.causal) hi = imin(hi, p1 + 1);
  if (m.window > 0) {
    lo = imax(lo, (p0 / m.window - m.look_back) * m.window);
    if (!m.causal) hi = imin(hi, (p1 / m.window + m.look_forward + 1) * m.window);
  }
  lo = imin(lo, len_k);
  hi = imax(hi, 0);
}

// The dropout multiplier (0 or 1/(1-p)) of probability element e = ((b * heads + h) * len_q + i) * len_k + j,
// drawn exactly as the host flash kernel draws it.
struct Dropout {
  float p, keep_scale;
  std::uint64_t seed, stream;
  __device__ float factor(std::uint64_t e) const {
    const Philox::u32x4 r = Philox::generate(seed, stream, e / 4);
    return Philox::to_unit(r.v[e % 4]) >= p ? keep_scale : 0.0f;
  }
};

template <class T, int HD>
__global__ void __launch_bounds__(Tile<HD>::threads)
    forward_kernel(FlashArgs<T> a, float scale, Dropout drop, T* o, index_t o_batch, index_t o_row, float* lse) {
  using Tl = Tile<HD>;
  constexpr int R = Tl::rows_per_warp, P = Tl::per_lane, C = Tl::cols;
  __shared__ float qs[Tl::rows][HD];
  __shared__ float ks[C][Tl::pad];
  __shared__ float vs[C][Tl::pad];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const index_t bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const index_t Lq = a.len_q, Lk = a.len_k, i0 = index_t(blockIdx.x) * Tl::rows;
  const T* q = a.q + b * a.q_batch + h * HD;
  const T* k = a.k + b * a.k_batch + h * HD;
  const T* v = a.v + b * a.v_batch + h * HD;

  for (int idx = threadIdx.x; idx < Tl::rows * HD; idx += Tl::threads) {
    const int r = idx / HD, d = idx % HD;
    const index_t i = i0 + r;
    qs[r][d] = i < Lq ? load(q[i * a.q_row + d]) : 0.0f;
  }
  float acc[R][P], m[R], l[R];
  #pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
    #pragma unroll
    for (int t = 0; t < P; ++t) acc[r][t] = 0.0f;
  }
  index_t klo, khi;
  key_range(a.mask, i0 + a.mask.q_offset, imin(i0 + Tl::rows, Lq) - 1 + a.mask.q_offset, Lk, klo, khi);

  for (index_t j0 = klo; j0 < khi; j0 += C) {
    __syncthreads();  // the previous tile is consumed (and the query rows are stored, on the first pass)
    for (int idx = threadIdx.x; idx < C * HD; idx += Tl::threads) {
      const int c = idx / HD, d = idx % HD;
      const index_t j = j0 + c;
      ks[c][d] = j < khi ? load(k[j * a.k_row + d]) : 0.0f;
      vs[c][d] = j < khi ? load(v[j * a.v_row + d]) : 0.0f;
    }
    __syncthreads();
    const index_t j = j0 + lane;
    #pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = warp * R + r;
      const index_t i = i0 + row;
      float s = -INFINITY;
      if (i < Lq && j < khi && visible(a.mask, b, i + a.mask.q_offset, j)) {
        float dot = 0.0f;
        for (int d = 0; d < HD; ++d) dot += qs[row][d] * ks[lane][d];
        s = dot * scale;
      }
      // Online softmax: m and l are the same in every lane of the warp, so the branch is uniform.
      const float m_new = fmaxf(m[r], cuda::warp_max(s));
      if (m_new == -INFINITY) continue;  // nothing visible yet in this row
      const float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
      float p = s == -INFINITY ? 0.0f : expf(s - m_new);
      l[r] = l[r] * alpha + cuda::warp_sum(p);  // the normalizer excludes dropout, as on the host
      m[r] = m_new;
      if (drop.p > 0.0f && p != 0.0f) p *= drop.factor(std::uint64_t((bh * Lq + i) * Lk + j));
      #pragma unroll
      for (int t = 0; t < P; ++t) acc[r][t] *= alpha;
      for (int c = 0; c < C; ++c) {
        const float pc = __shfl_sync(0xffffffffu, p, c);
        #pragma unroll
        for (int t = 0; t < P; ++t) acc[r][t] += pc * vs[c][lane + 32 * t];
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < R; ++r) {
    const index_t i = i0 + warp * R + r;
    if (i >= Lq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    T* out = o + b * o_batch + i * o_row + h * HD;
    #pragma unroll
    for (int t = 0; t < P; ++t) out[lane + 32 * t] = T(acc[r][t] * inv);
    if (lane == 0) lse[bh * Lq + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// delta[bh * Lq + i] = do_i . o_i in fp32 (equals sum_j P_ij dP_ij, dropout included in o).
template <class T>
struct RowDelta {
  const T *o, *dout;
  index_t heads, len_q, head_dim, o_batch, o_row;
  float* delta;
  __device__ void operator()(index_t row) const {
    const index_t bh = row / len_q, i = row % len_q, b = bh / heads, h = bh % heads;
    const index_t off = b * o_batch + i * o_row + h * head_dim;
    float s = 0.0f;
    for (index_t d = 0; d < head_dim; ++d) s += load(dout[off + d]) * load(o[off + d]);
    delta[row] = s;
  }
};

// dS_ij = Pd_ij dPd_ij - P_ij delta_i with P = exp(scale q.k - lse), Pd = P Z (Z the dropout multiplier)
// and dPd = do_i . v_j; zero where masked or where the query sees no key. Returns dS, sets pz = Pd.
__device__ inline float score_grad(float qk, float dpd, float lse_i, float delta_i, float scale, bool ok,
                                   const Dropout& drop, std::uint64_t e, float& pz) {
  if (!ok || lse_i == -INFINITY) {
    pz = 0.0f;
    return 0.0f;
  }
  const float p = expf(qk * scale - lse_i);
  const float z = drop.p > 0.0f ? drop.factor(e) : 1.0f;
  pz = p * z;
  return pz * dpd - p * delta_i;
}

// dQ for a tile of query rows (the forward's split): dq_i = scale * sum_j dS_ij k_j.
template <class T, int HD>
__global__ void __launch_bounds__(Tile<HD>::threads)
    dq_kernel(FlashArgs<T> a, float scale, Dropout drop, const T* dout, index_t o_batch, index_t o_row,
              const float* lse, const float* delta, T* dq) {
  using Tl = Tile<HD>;
  constexpr int R = Tl::rows_per_warp, P = Tl::per_lane, C = Tl::cols;
  __shared__ float qs[Tl::rows][HD];
  __shared__ float gs[Tl::rows][HD];
  __shared__ float ks[C][Tl::pad];
  __shared__ float vs[C][Tl::pad];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const index_t bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const index_t Lq = a.len_q, Lk = a.len_k, i0 = index_t(blockIdx.x) * Tl::rows;
  const T* q = a.q + b * a.q_batch + h * HD;
  const T* k = a.k + b * a.k_batch + h * HD;
  const T* v = a.v + b * a.v_batch + h * HD;
  const T* g = dout + b * o_batch + h * HD;

  for (int idx = threadIdx.x; idx < Tl::rows * HD; idx += Tl::threads) {
    const int r = idx / HD, d = idx % HD;
    const index_t i = i0 + r;
    qs[r][d] = i < Lq ? load(q[i * a.q_row + d]) : 0.0f;
    gs[r][d] = i < Lq ? load(g[i * o_row + d]) : 0.0f;
  }
  float acc[R][P], lse_r[R], delta_r[R];
  #pragma unroll
  for (int r = 0; r < R; ++r) {
    const index_t i = i0 + warp * R + r;
    lse_r[r] = i < Lq ? lse[bh * Lq + i] : -INFINITY;
    delta_r[r] = i < Lq ? delta[bh * Lq + i] : 0.0f;
    #pragma unroll
    for (int t = 0; t < P; ++t) acc[r][t] = 0.0f;
  }
  index_t klo, khi;
  key_range(a.mask, i0 + a.mask.q_offset, imin(i0 + Tl::rows, Lq) - 1 + a.mask.q_offset, Lk, klo, khi);

  for (index_t j0 = klo; j0 < khi; j0 += C) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < C * HD; idx += Tl::threads) {
      const int c = idx / HD, d = idx % HD;
      const index_t j = j0 + c;
      ks[c][d] = j < khi ? load(k[j * a.k_row + d]) : 0.0f;
      vs[c][d] = j < khi ? load(v[j * a.v_row + d]) : 0.0f;
    }
    __syncthreads();
    const index_t j = j0 + lane;
    #pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = warp * R + r;
      const index_t i = i0 + row;
      const bool ok = i < Lq && j < khi && visible(a.mask, b, i + a.mask.q_offset, j);
      float qk = 0.0f, dpd = 0.0f;
      if (ok)
        for (int d = 0; d < HD; ++d) {
          qk += qs[row][d] * ks[lane][d];
          dpd += gs[row][d] * vs[lane][d];
        }
      float pz;
      const float ds = score_grad(qk, dpd, lse_r[r], delta_r[r], scale, ok, drop,
                                  std::uint64_t((bh * Lq + i) * Lk + j), pz);
      for (int c = 0; c < C; ++c) {
        const float dsc = __shfl_sync(0xffffffffu, ds, c);
        #pragma unroll
        for (int t = 0; t < P; ++t) acc[r][t] += dsc * ks[c][lane + 32 * t];
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < R; ++r) {
    const index_t i = i0 + warp * R + r;
    if (i >= Lq) continue;
    T* out = dq + b * a.q_batch + i * a.q_row + h * HD;
    #pragma unroll
    for (int t = 0; t < P; ++t) out[lane + 32 * t] = T(acc[r][t] * scale);
  }
}

// dK and dV for a tile of key rows, streaming over query tiles (lanes are queries):
// dv_j = sum_i Pd_ij do_i, dk_j = scale * sum_i dS_ij q_i.
template <class T, int HD>
__global__ void __launch_bounds__(Tile<HD>::threads)
    dkv_kernel(FlashArgs<T> a, float scale, Dropout drop, const T* dout, index_t o_batch, index_t o_row,
               const float* lse, const float* delta, T* dk, T* dv) {
  using Tl = Tile<HD>;
  constexpr int R = Tl::rows_per_warp, P = Tl::per_lane, C = Tl::cols;
  __shared__ float ks[Tl::rows][HD];
  __shared__ float vs[Tl::rows][HD];
  __shared__ float qs[C][Tl::pad];
  __shared__ float gs[C][Tl::pad];
  __shared__ float lse_s[C], delta_s[C];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const index_t bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const index_t Lq = a.len_q, Lk = a.len_k, j0 = index_t(blockIdx.x) * Tl::rows;
  const index_t j_last = imin(j0 + Tl::rows, Lk) - 1;
  const T* q = a.q + b * a.q_batch + h * HD;
  const T* k = a.k + b * a.k_batch + h * HD;
  const T* v = a.v + b * a.v_batch + h * HD;
  const T* g = dout + b * o_batch + h * HD;

  for (int idx = threadIdx.x; idx < Tl::rows * HD; idx += Tl::threads) {
    const int r = idx / HD, d = idx % HD;
    const index_t j = j0 + r;
    ks[r][d] = j < Lk ? load(k[j * a.k_row + d]) : 0.0f;
    vs[r][d] = j < Lk ? load(v[j * a.v_row + d]) : 0.0f;
  }
  float gk[R][P], gv[R][P];
  #pragma unroll
  for (int r = 0; r < R; ++r)
    #pragma unroll
    for (int t = 0; t < P; ++t) gk[r][t] = gv[r][t] = 0.0f;

  for (index_t i0 = 0; i0 < Lq; i0 += C) {
    // Skip query tiles that see none of this block's keys (the same test for the whole block).
    index_t lo, hi;
    key_range(a.mask, i0 + a.mask.q_offset, imin(i0 + C, Lq) - 1 + a.mask.q_offset, Lk, lo, hi);
    if (hi <= j0 || lo > j_last) continue;
    __syncthreads();
    for (int idx = threadIdx.x; idx < C * HD; idx += Tl::threads) {
      const int c = idx / HD, d = idx % HD;
      const index_t i = i0 + c;
      qs[c][d] = i < Lq ? load(q[i * a.q_row + d]) : 0.0f;
      gs[c][d] = i < Lq ? load(g[i * o_row + d]) : 0.0f;
    }
    if (threadIdx.x < C) {
      const index_t i = i0 + threadIdx.x;
      lse_s[threadIdx.x] = i < Lq ? lse[bh * Lq + i] : -INFINITY;
      delta_s[threadIdx.x] = i < Lq ? delta[bh * Lq + i] : 0.0f;
    }
    __syncthreads();
    const index_t i = i0 + lane;
    #pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = warp * R + r;
      const index_t j = j0 + row;
      const bool ok = i < Lq && j < Lk && visible(a.mask, b, i + a.mask.q_offset, j);
      float qk = 0.0f, dpd = 0.0f;
      if (ok)
        for (int d = 0; d < HD; ++d) {
          qk += qs[lane][d] * ks[row][d];
          dpd += gs[lane][d] * vs[row][d];
        }
      float pz;
      const float ds = score_grad(qk, dpd, lse_s[lane], delta_s[lane], scale, ok, drop,
                                  std::uint64_t((bh * Lq + i) * Lk + j), pz);
      for (int c = 0; c < C; ++c) {
        const float pc = __shfl_sync(0xffffffffu, pz, c), dsc = __shfl_sync(0xffffffffu, ds, c);
        #pragma unroll
        for (int t = 0; t < P; ++t) {
          gv[r][t] += pc * gs[c][lane + 32 * t];
          gk[r][t] += dsc * qs[c][lane + 32 * t];
        }
      }
    }
  }
  #pragma unroll
  for (int r = 0; r < R; ++r) {
    const index_t j = j0 + warp * R + r;
    if (j >= Lk) continue;
    T* ok_ = dk + b * a.k_batch + j * a.k_row + h * HD;
    T* ov = dv + b * a.v_batch + j * a.v_row + h * HD;
    #pragma unroll
    for (int t = 0; t < P; ++t) {
      ok_[lane + 32 * t] = T(gk[r][t] * scale);
      ov[lane + 32 * t] = T(gv[r][t]);
    }
  }
}

template <class T>
void check_args(const FlashArgs<T>& a, const char* fn) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bf16>,
                "flash attention (CUDA): T must be float, half or bf16");
  LONGSEQ_CHECK(a.head_dim >= 1 && a.head_dim <= 128, fn, " (CUDA): head_dim ", a.head_dim,
                " is not supported; expected 1 to 128 (32, 64 and 128 run as they are, others padded)");
  LONGSEQ_CHECK(a.batch >= 0 && a.heads > 0 && a.len_q >= 0 && a.len_k >= 0, fn,
                " (CUDA): sizes batch=", a.batch, ", heads=", a.heads, ", len_q=", a.len_q, ", len_k=", a.len_k,
                " must be non-negative (heads positive)");
  LONGSEQ_CHECK(a.batch * a.heads <= 65535, fn, " (CUDA): batch * heads = ", a.batch * a.heads,
                " exceeds the grid's 65535 limit");
  LONGSEQ_CHECK(a.dropout >= 0.0 && a.dropout < 1.0, fn, " (CUDA): dropout ", a.dropout, " must be in [0, 1)");
  LONGSEQ_CHECK(a.mask.window >= 0 && a.mask.look_back >= 0 && a.mask.look_forward >= 0 && a.mask.q_offset >= 0,
                fn, " (CUDA): window, look_back, look_forward and q_offset must be >= 0");
  LONGSEQ_CHECK(a.q_row >= a.heads * a.head_dim && a.k_row >= a.heads * a.head_dim &&
                    a.v_row >= a.heads * a.head_dim,
                fn, " (CUDA): row strides (q ", a.q_row, ", k ", a.k_row, ", v ", a.v_row,
                ") must be >= heads * head_dim = ", a.heads * a.head_dim);
}

template <class T>
Dropout dropout_of(const FlashArgs<T>& a) {
  return {float(a.dropout), float(a.dropout > 0 ? 1.0 / (1.0 - a.dropout) : 1.0), a.seed, a.stream};
}

// Calls f(std::integral_constant<int, HD>) for the runtime head dim: the one place it becomes a type.
template <class F>
void dispatch_head_dim(index_t head_dim, F&& f) {
  switch (head_dim) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 128: f(std::integral_constant<int, 128>{}); break;
    default: LONGSEQ_FAIL("flash attention (CUDA): head_dim ", head_dim, " is not supported; expected 32, 64 or 128");
  }
}

// The tile width a head is run at: 32, 64 or 128; a narrower head is zero-padded up to it (zero columns
// change neither the scores nor the softmax, and the scale stays that of the real head_dim).
inline index_t tile_head_dim(index_t head_dim) { return head_dim <= 32 ? 32 : head_dim <= 64 ? 64 : 128; }

// dst (batch, len, heads, P), contiguous, from rows of heads * hd values (strides batch, row); columns
// d >= hd of each head are zero.
template <class T>
struct PadHeads {
  const T* src;
  index_t batch_stride, row_stride, len, heads, hd, P;
  T* dst;
  __device__ void operator()(index_t i) const {
    const index_t d = i % P, r = i / P, h = r % heads, l = (r / heads) % len, b = r / heads / len;
    dst[i] = d < hd ? src[b * batch_stride + l * row_stride + h * hd + d] : T(0.0f);
  }
};
// The inverse: the first hd columns of each head of src (batch, len, heads, P) into rows with strides.
template <class T>
struct CropHeads {
  const T* src;
  index_t batch_stride, row_stride, len, heads, hd, P;
  T* dst;
  __device__ void operator()(index_t i) const {  // i < batch * len * heads * hd
    const index_t d = i % hd, r = i / hd, h = r % heads, l = (r / heads) % len, b = r / heads / len;
    dst[b * batch_stride + l * row_stride + h * hd + d] = src[((b * len + l) * heads + h) * P + d];
  }
};

// Zero-padded copies of q, k and v and the arguments that describe them (head_dim P, contiguous rows).
template <class T>
struct Padded {
  index_t hd, P;  // the real head_dim and the tile's
  longseq::cuda::Scratch<T> q, k, v;
  FlashArgs<T> a;
  Padded(Context<device::cuda>& ctx, const FlashArgs<T>& in)
      : hd(in.head_dim),
        P(tile_head_dim(in.head_dim)),
        q(ctx.scratch<T>(std::size_t(in.batch * in.len_q * in.heads * P))),
        k(ctx.scratch<T>(std::size_t(in.batch * in.len_k * in.heads * P))),
        v(ctx.scratch<T>(std::size_t(in.batch * in.len_k * in.heads * P))),
        a(in) {
    a.head_dim = P;
    a.q = pad(ctx, in.q, in.q_batch, in.q_row, in.len_q, q.data());
    a.k = pad(ctx, in.k, in.k_batch, in.k_row, in.len_k, k.data());
    a.v = pad(ctx, in.v, in.v_batch, in.v_row, in.len_k, v.data());
    a.q_batch = in.len_q * in.heads * P;
    a.k_batch = a.v_batch = in.len_k * in.heads * P;
    a.q_row = a.k_row = a.v_row = in.heads * P;
  }
  // src rows (strides batch_stride, row_stride) of `len` positions -> dst (batch, len, heads, P).
  T* pad(Context<device::cuda>& ctx, const T* src, index_t batch_stride, index_t row_stride, index_t len, T* dst) const {
    longseq::cuda::for_each(ctx.stream(), a.batch * len * a.heads * P,
                            PadHeads<T>{src, batch_stride, row_stride, len, a.heads, hd, P, dst}, "flash_pad_heads");
    return dst;
  }
  // src (batch, len, heads, P) -> dst rows with strides.
  void crop(Context<device::cuda>& ctx, const T* src, index_t batch_stride, index_t row_stride, index_t len, T* dst) const {
    longseq::cuda::for_each(ctx.stream(), a.batch * len * a.heads * hd,
                            CropHeads<T>{src, batch_stride, row_stride, len, a.heads, hd, P, dst}, "flash_crop_heads");
  }
};

// A backward on zero-padded heads: pads o and do, runs backward(ctx, padded args, o, its strides, lse, do,
// dq, dk, dv) on scratch of the tile's head size and crops the gradients into dq, dk, dv (strides of q, k, v).
// Both the SIMT and the tensor-core backward use it for head sizes their tiles lack.
template <class T, class Backward>
void backward_padded(Context<device::cuda>& ctx, const FlashArgs<T>& a, const T* o, index_t o_batch, index_t o_row,
                     const float* lse, const T* dout, T* dq, T* dk, T* dv, Backward&& backward) {
  const Padded<T> p(ctx, a);
  const std::size_t nq = std::size_t(a.batch * a.len_q * a.heads * p.P), nk = std::size_t(a.batch * a.len_k * a.heads * p.P);
  auto op = ctx.scratch<T>(nq), dop = ctx.scratch<T>(nq), dqp = ctx.scratch<T>(nq);
  auto dkp = ctx.scratch<T>(nk), dvp = ctx.scratch<T>(nk);
  p.pad(ctx, o, o_batch, o_row, a.len_q, op.data());
  p.pad(ctx, dout, o_batch, o_row, a.len_q, dop.data());
  backward(ctx, p.a, op.data(), p.a.q_batch, p.a.q_row, lse, dop.data(), dqp.data(), dkp.data(), dvp.data());
  p.crop(ctx, dqp.data(), a.q_batch, a.q_row, a.len_q, dq);
  p.crop(ctx, dkp.data(), a.k_batch, a.k_row, a.len_k, dk);
  p.crop(ctx, dvp.data(), a.v_batch, a.v_row, a.len_k, dv);
}

inline dim3 grid_of(index_t len, int rows, index_t batch_heads) {
  return dim3(unsigned((len + rows - 1) / rows), unsigned(batch_heads));
}

}  // namespace cuda_flash

// The host flash_forward on the GPU in fp32 SIMT code (the reference path; flash_forward below picks it or the
// tensor-core kernels). Every pointer (q, k, v in `a`, a.mask.key_padding, o, lse) is a device pointer; lse
// (B, heads, len_q) is fp32 for every T (the host's T* for T = float). block_q/block_k are ignored: the tiles
// are fixed per head dim (see cuda_flash::Tile). Launch: grid (ceil(len_q / rows), batch * heads), 128
// threads, static shared memory only.
template <class T>
void flash_forward_simt(Context<device::cuda>& ctx, const FlashArgs<T>& a, T* o, index_t o_batch, index_t o_row,
                        float* lse) {
  cuda_flash::check_args(a, "flash_forward");
  if (a.batch == 0 || a.len_q == 0) return;
  if (cuda_flash::tile_head_dim(a.head_dim) != a.head_dim) {  // run zero-padded heads, then crop the output
    const cuda_flash::Padded<T> p(ctx, a);
    auto op = ctx.scratch<T>(std::size_t(a.batch * a.len_q * a.heads * p.P));
    flash_forward_simt(ctx, p.a, op.data(), p.a.q_batch, p.a.q_row, lse);
    p.crop(ctx, op.data(), o_batch, o_row, a.len_q, o);
    return;
  }
  const float scale = float(a.scale);
  const auto drop = cuda_flash::dropout_of(a);
  cuda_flash::dispatch_head_dim(a.head_dim, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    using Tl = cuda_flash::Tile<HD>;
    cuda_flash::forward_kernel<T, HD><<<cuda_flash::grid_of(a.len_q, Tl::rows, a.batch * a.heads), Tl::threads, 0,
                                         ctx.stream()>>>(a, scale, drop, o, o_batch, o_row, lse);
    LONGSEQ_CUDA_LAUNCH_CHECK("flash_forward");
  });
}

// The host flash_backward on the GPU in fp32 SIMT code: writes dq, dk, dv (strides of q, k, v) from do
// (strides of o), o and the forward's fp32 lse. Three launches: delta = rowsum(do * o) into fp32 scratch, then
// dQ over query tiles and dK/dV over key tiles (each recomputes its probability tiles; no atomics, deterministic).
template <class T>
void flash_backward_simt(Context<device::cuda>& ctx, const FlashArgs<T>& a, const T* o, index_t o_batch,
                         index_t o_row, const float* lse, const T* dout, T* dq, T* dk, T* dv) {
  cuda_flash::check_args(a, "flash_backward");
  if (a.batch == 0) return;
  if (cuda_flash::tile_head_dim(a.head_dim) != a.head_dim)  // zero-padded heads
    return cuda_flash::backward_padded(ctx, a, o, o_batch, o_row, lse, dout, dq, dk, dv,
                                       [](auto&&... args) { flash_backward_simt(args...); });
  const index_t BH = a.batch * a.heads;
  auto delta = ctx.scratch<float>(std::size_t(BH * a.len_q));
  cuda::for_each(ctx.stream(), BH * a.len_q,
                 cuda_flash::RowDelta<T>{o, dout, a.heads, a.len_q, a.head_dim, o_batch, o_row, delta.data()},
                 "flash_backward_delta");
  const float scale = float(a.scale);
  const auto drop = cuda_flash::dropout_of(a);
  cuda_flash::dispatch_head_dim(a.head_dim, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    using Tl = cuda_flash::Tile<HD>;
    if (a.len_q > 0) {
      cuda_flash::dq_kernel<T, HD><<<cuda_flash::grid_of(a.len_q, Tl::rows, BH), Tl::threads, 0, ctx.stream()>>>(
          a, scale, drop, dout, o_batch, o_row, lse, delta.data(), dq);
      LONGSEQ_CUDA_LAUNCH_CHECK("flash_backward_dq");
    }
    if (a.len_k > 0) {
      cuda_flash::dkv_kernel<T, HD><<<cuda_flash::grid_of(a.len_k, Tl::rows, BH), Tl::threads, 0, ctx.stream()>>>(
          a, scale, drop, dout, o_batch, o_row, lse, delta.data(), dk, dv);
      LONGSEQ_CUDA_LAUNCH_CHECK("flash_backward_dkv");
    }
  });
}

// The tensor-core kernels (flash_mma.cuh), declared here for the dispatch below.
template <class T>
bool use_tensor_cores(Context<device::cuda>& ctx, const FlashArgs<T>& a);
template <class T>
void flash_forward_mma(Context<device::cuda>& ctx, const FlashArgs<T>& a, T* o, index_t o_batch, index_t o_row,
                       float* lse);
template <class T>
void flash_backward_mma(Context<device::cuda>& ctx, const FlashArgs<T>& a, const T* o, index_t o_batch,
                        index_t o_row, const float* lse, const T* dout, T* dq, T* dk, T* dv);

// flash_forward / flash_backward on the GPU: half and bf16 on a device of compute capability 8.0 or newer
// run on the tensor cores (use_tensor_cores), everything else on the fp32 SIMT kernels above.
template <class T>
void flash_forward(Context<device::cuda>& ctx, const FlashArgs<T>& a, T* o, index_t o_batch, index_t o_row,
                   float* lse) {
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bf16>) {
    if (use_tensor_cores(ctx, a)) return flash_forward_mma(ctx, a, o, o_batch, o_row, lse);
  }
  flash_forward_simt(ctx, a, o, o_batch, o_row, lse);
}
template <class T>
void flash_backward(Context<device::cuda>& ctx, const FlashArgs<T>& a, const T* o, index_t o_batch, index_t o_row,
                    const float* lse, const T* dout, T* dq, T* dk, T* dv) {
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bf16>) {
    if (use_tensor_cores(ctx, a)) return flash_backward_mma(ctx, a, o, o_batch, o_row, lse, dout, dq, dk, dv);
  }
  flash_backward_simt(ctx, a, o, o_batch, o_row, lse, dout, dq, dk, dv);
}

}  // namespace longseq::attention

#include "flash_mma.cuh"

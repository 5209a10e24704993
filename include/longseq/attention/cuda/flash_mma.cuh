// Flash attention on the tensor cores for half and bf16 (sm_80+): the forward and the FlashAttention-2
// backward with every product (q k^T, P v, do v^T, dS k, P^T do, dS^T q) as 16 x 16 x 16 WMMA tiles with fp32
// accumulators; online softmax, masks and dropout in fp32 on shared-memory score tiles. Included by flash.cuh,
// whose flash_forward / flash_backward pick these kernels (see use_tensor_cores) or the fp32 SIMT ones.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <type_traits>
#include <vector>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "flash.cuh"
#include "mma_tile.cuh"

namespace longseq::attention {

namespace flash_mma {

using mma_tile::Acc;
using mma_tile::col_major;
using mma_tile::row_major;

// Work split, the same for the three kernels. A block of 4 warps owns `rows` = 64 rows (queries in the
// forward and dQ kernels, keys in the dK/dV kernel), 16 per warp, and streams the other side through shared
// memory in tiles of `cols` rows. Each warp computes its 16 x cols score tile with tensor cores, stores it in
// fp32 to its own slice of shared memory for the element-wise step (softmax or dS, one row at a time, lanes
// across columns), rounds the result to T, and multiplies it into its accumulators, which stay in registers.
// cols is 32 at head_dim 128 so that the dK/dV kernel's shared memory (about 80 KiB) fits the 99 KiB a block
// may have on sm_86/89; sm_80 and sm_90 allow more.
template <int HD>
struct Tile {
  static_assert(HD == 32 || HD == 64 || HD == 128,
                "flash attention (tensor cores): head_dim tiles are 32, 64 or 128 (others are zero-padded)");
  static constexpr int warps = 4;
  static constexpr int threads = 32 * warps;
  static constexpr int rows = mma_tile::edge * warps;
  static constexpr int cols = HD == 128 ? 32 : 64;
  static constexpr int kd = HD / mma_tile::edge;    // fragment blocks along the head
  static constexpr int kc = cols / mma_tile::edge;  // fragment blocks along a streamed tile
  static_assert(cols % 32 == 0, "a streamed tile gives every lane the same number of columns");
  // Row strides, padded by 16 bytes so that the rows of a fragment start in different banks; multiples of
  // 16 bytes, as WMMA's loads and stores require.
  static constexpr int ld = HD + 8;     // q, k, v, do tiles (elements)
  static constexpr int ldc = cols + 8;  // a warp's P or dS tile (elements)
  static constexpr int ldf = cols + 4;  // a warp's fp32 score tile (floats)
};

// Bytes of dynamic shared memory per block; the kernels take the pieces in the order listed.
template <int HD>
struct ForwardSmem {  // q (rows), k and v (cols), scores (fp32), P, per-row factors
  using Tl = Tile<HD>;
  static constexpr std::size_t bytes =
      mma_tile::aligned_bytes(2u * Tl::rows * Tl::ld) + 2 * mma_tile::aligned_bytes(2u * Tl::cols * Tl::ld) +
      mma_tile::aligned_bytes(4u * Tl::rows * Tl::ldf) + mma_tile::aligned_bytes(2u * Tl::rows * Tl::ldc) +
      mma_tile::aligned_bytes(4u * Tl::rows);
};
template <int HD>
struct DqSmem {  // q and do (rows), k and v (cols), scores and dP (fp32), dS
  using Tl = Tile<HD>;
  static constexpr std::size_t bytes = 2 * mma_tile::aligned_bytes(2u * Tl::rows * Tl::ld) +
                                       2 * mma_tile::aligned_bytes(2u * Tl::cols * Tl::ld) +
                                       2 * mma_tile::aligned_bytes(4u * Tl::rows * Tl::ldf) +
                                       mma_tile::aligned_bytes(2u * Tl::rows * Tl::ldc);
};
template <int HD>
struct DkvSmem {  // k and v (rows), q and do (cols), scores^T and dP^T (fp32), P^T and dS^T, lse and delta
  using Tl = Tile<HD>;
  static constexpr std::size_t bytes = 2 * mma_tile::aligned_bytes(2u * Tl::rows * Tl::ld) +
                                       2 * mma_tile::aligned_bytes(2u * Tl::cols * Tl::ld) +
                                       2 * mma_tile::aligned_bytes(4u * Tl::rows * Tl::ldf) +
                                       2 * mma_tile::aligned_bytes(2u * Tl::rows * Tl::ldc) +
                                       2 * mma_tile::aligned_bytes(4u * Tl::cols);
};

// Every kernel fits the 99 KiB of shared memory a block may opt into on sm_86/89 (sm_80: 163 KiB, sm_90: 227).
template <int HD>
inline constexpr bool fits_smem = ForwardSmem<HD>::bytes <= 99 * 1024 && DqSmem<HD>::bytes <= 99 * 1024 &&
                                  DkvSmem<HD>::bytes <= 99 * 1024;
static_assert(fits_smem<32> && fits_smem<64> && fits_smem<128>,
              "flash attention (tensor cores): a kernel's shared memory exceeds 99 KiB; shrink Tile::cols");

// One flat grid dimension (row tile fastest, so the blocks of one head run together and share its k, v in
// L2): batch * heads may go past gridDim.y's 65535.
struct BlockIndex {
  index_t tile, bh, b, h;
  __device__ BlockIndex(index_t tiles, index_t heads)
      : tile(index_t(blockIdx.x) % tiles), bh(index_t(blockIdx.x) / tiles), b(bh / heads), h(bh % heads) {}
};

template <class E, class T>
__device__ inline const E* head_of(const T* base, index_t b, index_t batch_stride, index_t h, int hd) {
  return reinterpret_cast<const E*>(base) + b * batch_stride + h * hd;
}

template <class T, int HD>
__global__ void __launch_bounds__(Tile<HD>::threads)
    forward_kernel(FlashArgs<T> a, float scale, cuda_flash::Dropout drop, T* o, index_t o_batch, index_t o_row,
                   float* lse, index_t tiles) {
#if LONGSEQ_MMA_TILE_ARCH
  using E = mma_tile::element_t<T>;
  using Tl = Tile<HD>;
  constexpr int R = Tl::rows, C = Tl::cols, ld = Tl::ld, ldc = Tl::ldc, ldf = Tl::ldf;
  extern __shared__ __align__(128) unsigned char flash_mma_smem[];
  mma_tile::Carve cut{flash_mma_smem};
  E* qs = cut.take<E>(R * ld);
  E* ks = cut.take<E>(C * ld);
  E* vs = cut.take<E>(C * ld);
  float* ss = cut.take<float>(R * ldf);
  E* ps = cut.take<E>(R * ldc);
  float* fs = cut.take<float>(R);
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const BlockIndex at(tiles, a.heads);
  const index_t Lq = a.len_q, Lk = a.len_k, i0 = at.tile * R, iw = i0 + 16 * warp;  // first row: block, warp
  const E* q = head_of<E>(a.q, at.b, a.q_batch, at.h, HD);
  const E* k = head_of<E>(a.k, at.b, a.k_batch, at.h, HD);
  const E* v = head_of<E>(a.v, at.b, a.v_batch, at.h, HD);
  const E* qw = qs + 16 * warp * ld;  // the warp's rows
  float* sw = ss + 16 * warp * ldf;
  E* pw = ps + 16 * warp * ldc;
  float* fw = fs + 16 * warp;

  mma_tile::load_rows<R, HD>(qs, ld, q, a.q_row, i0, Lq);
  Acc rows, acc[Tl::kd];
  mma_tile::row_index(rows, sw, ldf);
  mma_tile::zero(acc);
  float m = -INFINITY, l = 0.0f;  // lane r < 16: running max and sum of the warp's row r
  index_t klo, khi;
  cuda_flash::key_range(a.mask, i0 + a.mask.q_offset, cuda_flash::imin(i0 + R, Lq) - 1 + a.mask.q_offset, Lk, klo,
                        khi);
  for (index_t j0 = klo; j0 < khi; j0 += C) {
    __syncthreads();  // every warp is done with the previous k, v (and, the first time, q is stored)
    mma_tile::load_rows<C, HD>(ks, ld, k, a.k_row, j0, khi);
    mma_tile::load_rows<C, HD>(vs, ld, v, a.v_row, j0, khi);
    __syncthreads();
    Acc s[Tl::kc];
    mma_tile::zero(s);
    mma_tile::warp_gemm<Tl::kd, Tl::kc, row_major, col_major>(s, qw, ld, ks, ld);  // q k^T: k read as k^T
    mma_tile::store(sw, ldf, s);
    __syncwarp();
    // Online softmax of the warp's rows. m_old, mx and so m_new are the same in every lane, so the branch
    // is uniform; lane r keeps row r's max and sum and hands the rescaling factor to the others in fw.
    for (int r = 0; r < 16; ++r) {
      const index_t i = iw + r;
      float x[C / 32], mx = -INFINITY;
#pragma unroll
      for (int t = 0; t < C / 32; ++t) {
        const int c = lane + 32 * t;
        const index_t j = j0 + c;
        const bool ok = i < Lq && j < khi && cuda_flash::visible(a.mask, at.b, i + a.mask.q_offset, j);
        x[t] = ok ? sw[r * ldf + c] * scale : -INFINITY;
        mx = fmaxf(mx, x[t]);
      }
      mx = cuda::warp_max(mx);
      const float m_old = __shfl_sync(0xffffffffu, m, r), m_new = fmaxf(m_old, mx);
      float alpha = 1.0f, sum = 0.0f;
      if (m_new == -INFINITY) {  // nothing visible yet in this row: P is 0 and the (zero) output stays
#pragma unroll
        for (int t = 0; t < C / 32; ++t) pw[r * ldc + lane + 32 * t] = mma_tile::to_element<E>(0.0f);
      } else {
        alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
#pragma unroll
        for (int t = 0; t < C / 32; ++t) {
          const int c = lane + 32 * t;
          float p = x[t] == -INFINITY ? 0.0f : expf(x[t] - m_new);
          sum += p;  // the normalizer excludes dropout, as on the host
          if (drop.p > 0.0f && p != 0.0f) p *= drop.factor(std::uint64_t((at.bh * Lq + i) * Lk + j0 + c));
          pw[r * ldc + c] = mma_tile::to_element<E>(p);
        }
        sum = cuda::warp_sum(sum);
      }
      if (lane == r) {
        m = m_new;
        l = l * alpha + sum;
        fw[r] = alpha;
      }
    }
    __syncwarp();
    mma_tile::scale_rows(acc, rows, fw);
    mma_tile::warp_gemm<Tl::kc, Tl::kd, row_major, row_major>(acc, pw, ldc, vs, ld);  // += P v
  }
  __syncwarp();
  if (lane < 16) fw[lane] = l > 0.0f ? 1.0f / l : 0.0f;
  __syncwarp();
  mma_tile::scale_rows(acc, rows, fw);
  mma_tile::write_rows<T>(acc, sw, o + at.b * o_batch + iw * o_row + at.h * HD, o_row, Lq - iw, 1.0f);
  if (lane < 16 && iw + lane < Lq) lse[at.bh * Lq + iw + lane] = l > 0.0f ? m + logf(l) : -INFINITY;
#else
  __trap();  // never launched: use_tensor_cores() requires kernels built for sm_80 or newer
#endif
}

// dQ for the block's 64 query rows, streaming key tiles: S = q k^T and dP = do v^T per tile, dS from them
// (cuda_flash::score_grad, shared with the SIMT kernels), dq += dS k; dq is scaled once at the end.
template <class T, int HD>
__global__ void __launch_bounds__(Tile<HD>::threads)
    dq_kernel(FlashArgs<T> a, float scale, cuda_flash::Dropout drop, const T* dout, index_t o_batch, index_t o_row,
              const float* lse, const float* delta, T* dq, index_t tiles) {
#if LONGSEQ_MMA_TILE_ARCH
  using E = mma_tile::element_t<T>;
  using Tl = Tile<HD>;
  constexpr int R = Tl::rows, C = Tl::cols, ld = Tl::ld, ldc = Tl::ldc, ldf = Tl::ldf;
  extern __shared__ __align__(128) unsigned char flash_mma_smem[];
  mma_tile::Carve cut{flash_mma_smem};
  E* qs = cut.take<E>(R * ld);
  E* gs = cut.take<E>(R * ld);
  E* ks = cut.take<E>(C * ld);
  E* vs = cut.take<E>(C * ld);
  float* ss = cut.take<float>(R * ldf);
  float* dps = cut.take<float>(R * ldf);
  E* dss = cut.take<E>(R * ldc);
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const BlockIndex at(tiles, a.heads);
  const index_t Lq = a.len_q, Lk = a.len_k, i0 = at.tile * R, iw = i0 + 16 * warp;
  const E* q = head_of<E>(a.q, at.b, a.q_batch, at.h, HD);
  const E* k = head_of<E>(a.k, at.b, a.k_batch, at.h, HD);
  const E* v = head_of<E>(a.v, at.b, a.v_batch, at.h, HD);
  const E* g = head_of<E>(dout, at.b, o_batch, at.h, HD);
  const E* qw = qs + 16 * warp * ld;
  const E* gw = gs + 16 * warp * ld;
  float* sw = ss + 16 * warp * ldf;
  float* dpw = dps + 16 * warp * ldf;
  E* dsw = dss + 16 * warp * ldc;

  mma_tile::load_rows<R, HD>(qs, ld, q, a.q_row, i0, Lq);
  mma_tile::load_rows<R, HD>(gs, ld, g, o_row, i0, Lq);
  // Lane r < 16 holds row r's lse and delta; a row past the end sees nothing (lse -inf: dS is 0).
  const bool mine = lane < 16 && iw + lane < Lq;
  const float lse_mine = mine ? lse[at.bh * Lq + iw + lane] : -INFINITY;
  const float delta_mine = mine ? delta[at.bh * Lq + iw + lane] : 0.0f;
  Acc acc[Tl::kd];
  mma_tile::zero(acc);
  index_t klo, khi;
  cuda_flash::key_range(a.mask, i0 + a.mask.q_offset, cuda_flash::imin(i0 + R, Lq) - 1 + a.mask.q_offset, Lk, klo,
                        khi);
  for (index_t j0 = klo; j0 < khi; j0 += C) {
    __syncthreads();
    mma_tile::load_rows<C, HD>(ks, ld, k, a.k_row, j0, khi);
    mma_tile::load_rows<C, HD>(vs, ld, v, a.v_row, j0, khi);
    __syncthreads();
    Acc s[Tl::kc], dp[Tl::kc];
    mma_tile::zero(s);
    mma_tile::zero(dp);
    mma_tile::warp_gemm<Tl::kd, Tl::kc, row_major, col_major>(s, qw, ld, ks, ld);   // q k^T
    mma_tile::warp_gemm<Tl::kd, Tl::kc, row_major, col_major>(dp, gw, ld, vs, ld);  // do v^T
    mma_tile::store(sw, ldf, s);
    mma_tile::store(dpw, ldf, dp);
    __syncwarp();
    for (int r = 0; r < 16; ++r) {
      const index_t i = iw + r;
      const float lse_i = __shfl_sync(0xffffffffu, lse_mine, r), delta_i = __shfl_sync(0xffffffffu, delta_mine, r);
#pragma unroll
      for (int t = 0; t < C / 32; ++t) {
        const int c = lane + 32 * t;
        const index_t j = j0 + c;
        const bool ok = i < Lq && j < khi && cuda_flash::visible(a.mask, at.b, i + a.mask.q_offset, j);
        float pz;
        const float ds = cuda_flash::score_grad(sw[r * ldf + c], dpw[r * ldf + c], lse_i, delta_i, scale, ok, drop,
                                                std::uint64_t((at.bh * Lq + i) * Lk + j), pz);
        dsw[r * ldc + c] = mma_tile::to_element<E>(ds);
      }
    }
    __syncwarp();
    mma_tile::warp_gemm<Tl::kc, Tl::kd, row_major, row_major>(acc, dsw, ldc, ks, ld);  // += dS k
  }
  __syncwarp();
  mma_tile::write_rows<T>(acc, sw, dq + at.b * a.q_batch + iw * a.q_row + at.h * HD, a.q_row, Lq - iw, scale);
#else
  __trap();
#endif
}

// dK and dV for the block's 64 key rows, streaming query tiles: S^T = k q^T and dP^T = v do^T per tile, then
// dv += Pd^T do and dk += dS^T q (Pd: P with the dropout multiplier); dk is scaled once at the end.
template <class T, int HD>
__global__ void __launch_bounds__(Tile<HD>::threads)
    dkv_kernel(FlashArgs<T> a, float scale, cuda_flash::Dropout drop, const T* dout, index_t o_batch, index_t o_row,
               const float* lse, const float* delta, T* dk, T* dv, index_t tiles) {
#if LONGSEQ_MMA_TILE_ARCH
  using E = mma_tile::element_t<T>;
  using Tl = Tile<HD>;
  constexpr int R = Tl::rows, C = Tl::cols, ld = Tl::ld, ldc = Tl::ldc, ldf = Tl::ldf;
  extern __shared__ __align__(128) unsigned char flash_mma_smem[];
  mma_tile::Carve cut{flash_mma_smem};
  E* ks = cut.take<E>(R * ld);
  E* vs = cut.take<E>(R * ld);
  E* qs = cut.take<E>(C * ld);
  E* gs = cut.take<E>(C * ld);
  float* ss = cut.take<float>(R * ldf);
  float* dps = cut.take<float>(R * ldf);
  E* pzs = cut.take<E>(R * ldc);
  E* dss = cut.take<E>(R * ldc);
  float* lse_s = cut.take<float>(C);
  float* delta_s = cut.take<float>(C);
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
  const BlockIndex at(tiles, a.heads);
  const index_t Lq = a.len_q, Lk = a.len_k, j0 = at.tile * R, jw = j0 + 16 * warp;
  const index_t j_last = cuda_flash::imin(j0 + R, Lk) - 1;
  const E* q = head_of<E>(a.q, at.b, a.q_batch, at.h, HD);
  const E* k = head_of<E>(a.k, at.b, a.k_batch, at.h, HD);
  const E* v = head_of<E>(a.v, at.b, a.v_batch, at.h, HD);
  const E* g = head_of<E>(dout, at.b, o_batch, at.h, HD);
  const E* kw = ks + 16 * warp * ld;
  const E* vw = vs + 16 * warp * ld;
  float* sw = ss + 16 * warp * ldf;
  float* dpw = dps + 16 * warp * ldf;
  E* pzw = pzs + 16 * warp * ldc;
  E* dsw = dss + 16 * warp * ldc;

  mma_tile::load_rows<R, HD>(ks, ld, k, a.k_row, j0, Lk);
  mma_tile::load_rows<R, HD>(vs, ld, v, a.v_row, j0, Lk);
  Acc gk[Tl::kd], gv[Tl::kd];
  mma_tile::zero(gk);
  mma_tile::zero(gv);
  for (index_t i0 = 0; i0 < Lq; i0 += C) {
    // Skip query tiles that see none of the block's keys (the same test in every thread of the block).
    index_t lo, hi;
    cuda_flash::key_range(a.mask, i0 + a.mask.q_offset, cuda_flash::imin(i0 + C, Lq) - 1 + a.mask.q_offset, Lk, lo,
                          hi);
    if (hi <= j0 || lo > j_last) continue;
    __syncthreads();  // the previous query tile is consumed (and, the first time, k and v are stored)
    mma_tile::load_rows<C, HD>(qs, ld, q, a.q_row, i0, Lq);
    mma_tile::load_rows<C, HD>(gs, ld, g, o_row, i0, Lq);
    for (int c = int(threadIdx.x); c < C; c += Tl::threads) {
      const index_t i = i0 + c;
      lse_s[c] = i < Lq ? lse[at.bh * Lq + i] : -INFINITY;
      delta_s[c] = i < Lq ? delta[at.bh * Lq + i] : 0.0f;
    }
    __syncthreads();
    Acc s[Tl::kc], dp[Tl::kc];
    mma_tile::zero(s);
    mma_tile::zero(dp);
    mma_tile::warp_gemm<Tl::kd, Tl::kc, row_major, col_major>(s, kw, ld, qs, ld);   // k q^T
    mma_tile::warp_gemm<Tl::kd, Tl::kc, row_major, col_major>(dp, vw, ld, gs, ld);  // v do^T
    mma_tile::store(sw, ldf, s);
    mma_tile::store(dpw, ldf, dp);
    __syncwarp();
    for (int r = 0; r < 16; ++r) {  // row r: key jw + r; columns: queries i0 + c
      const index_t j = jw + r;
#pragma unroll
      for (int t = 0; t < C / 32; ++t) {
        const int c = lane + 32 * t;
        const index_t i = i0 + c;
        const bool ok = i < Lq && j < Lk && cuda_flash::visible(a.mask, at.b, i + a.mask.q_offset, j);
        float pz;
        const float ds = cuda_flash::score_grad(sw[r * ldf + c], dpw[r * ldf + c], lse_s[c], delta_s[c], scale, ok,
                                                drop, std::uint64_t((at.bh * Lq + i) * Lk + j), pz);
        pzw[r * ldc + c] = mma_tile::to_element<E>(pz);
        dsw[r * ldc + c] = mma_tile::to_element<E>(ds);
      }
    }
    __syncwarp();
    mma_tile::warp_gemm<Tl::kc, Tl::kd, row_major, row_major>(gv, pzw, ldc, gs, ld);  // += Pd^T do
    mma_tile::warp_gemm<Tl::kc, Tl::kd, row_major, row_major>(gk, dsw, ldc, qs, ld);  // += dS^T q
  }
  __syncwarp();
  mma_tile::write_rows<T>(gk, sw, dk + at.b * a.k_batch + jw * a.k_row + at.h * HD, a.k_row, Lk - jw, scale);
  mma_tile::write_rows<T>(gv, sw, dv + at.b * a.v_batch + jw * a.v_row + at.h * HD, a.v_row, Lk - jw, 1.0f);
#else
  __trap();
#endif
}

// The checks of the SIMT path without its gridDim.y limit (these kernels use one flat grid dimension).
template <class T>
void check_args(const FlashArgs<T>& a, const char* fn) {
  static_assert(mma_tile::has_element<T>, "flash attention (tensor cores): T must be half or bf16");
  LONGSEQ_CHECK(a.head_dim >= 1 && a.head_dim <= 128, fn, ": head_dim ", a.head_dim,
                " is not supported; expected 1 to 128 (32, 64 and 128 run as they are, others zero-padded)");
  LONGSEQ_CHECK(a.batch >= 0 && a.heads > 0 && a.len_q >= 0 && a.len_k >= 0, fn, ": sizes batch=", a.batch,
                ", heads=", a.heads, ", len_q=", a.len_q, ", len_k=", a.len_k,
                " must be non-negative (heads positive)");
  LONGSEQ_CHECK(a.dropout >= 0.0 && a.dropout < 1.0, fn, ": dropout ", a.dropout, " must be in [0, 1)");
  LONGSEQ_CHECK(a.mask.window >= 0 && a.mask.look_back >= 0 && a.mask.look_forward >= 0 && a.mask.q_offset >= 0,
                fn, ": window, look_back, look_forward and q_offset must be >= 0");
  LONGSEQ_CHECK(a.q_row >= a.heads * a.head_dim && a.k_row >= a.heads * a.head_dim &&
                    a.v_row >= a.heads * a.head_dim,
                fn, ": row strides (q ", a.q_row, ", k ", a.k_row, ", v ", a.v_row, ") must be >= heads * head_dim = ",
                a.heads * a.head_dim);
}

// Launches `kernel` over tiles x batch * heads blocks with `smem` bytes of dynamic shared memory (above the
// 48 KiB default, so the limit is raised for the kernel first).
template <class Kernel, class... Args>
void launch(Context<device::cuda>& ctx, Kernel* kernel, int threads, index_t tiles, index_t batch_heads,
            std::size_t smem, const char* name, const Args&... args) {
  const index_t blocks = tiles * batch_heads;
  if (blocks == 0) return;
  LONGSEQ_CHECK(blocks <= index_t(0x7fffffff), name, ": ", tiles, " row tiles x ", batch_heads,
                " (batch * heads) = ", blocks, " blocks exceed the grid's 2^31 - 1 limit");
  ctx.activate();
  LONGSEQ_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<unsigned(blocks), threads, smem, ctx.stream()>>>(args...);
  LONGSEQ_CUDA_LAUNCH_CHECK(name);
}

inline index_t tiles_of(index_t len, int rows) { return (len + rows - 1) / rows; }

// Whether device `ordinal` can run these kernels: compute capability 8.0 or newer, and kernel code built for
// sm_80 or newer (a binary built only for older architectures would run the trapping bodies through JIT).
inline bool probe_device(int ordinal) {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ordinal) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (major < 8) return false;
  cuda::DeviceGuard on(ordinal);
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, forward_kernel<half, 32>) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.ptxVersion >= 80;
}

// probe_device, asked once per device and remembered for the process.
inline bool device_supported(int ordinal) {
  static std::mutex mu;
  static std::vector<signed char> known;  // -1: not asked yet
  std::lock_guard<std::mutex> lock(mu);
  if (ordinal < 0) return false;
  if (std::size_t(ordinal) >= known.size()) known.resize(std::size_t(ordinal) + 1, -1);
  if (known[std::size_t(ordinal)] < 0) known[std::size_t(ordinal)] = probe_device(ordinal) ? 1 : 0;
  return known[std::size_t(ordinal)] == 1;
}

// LONGSEQ_FLASH_SIMT set to anything but "" or "0" keeps every call on the fp32 SIMT kernels (for comparing
// the two paths); read at each call, so a program or test may switch it.
inline bool simt_forced() {
  const char* s = std::getenv("LONGSEQ_FLASH_SIMT");
  return s != nullptr && s[0] != '\0' && !(s[0] == '0' && s[1] == '\0');
}

}  // namespace flash_mma

// Whether flash_forward / flash_backward on this context run the tensor-core kernels: T is half or bf16,
// head_dim is at most 128, the device qualifies (flash_mma::device_supported) and LONGSEQ_FLASH_SIMT is unset.
template <class T>
bool use_tensor_cores(Context<device::cuda>& ctx, const FlashArgs<T>& a) {
  if constexpr (!mma_tile::has_element<T>) {
    (void)ctx;
    (void)a;
    return false;
  } else {
    return a.head_dim >= 1 && a.head_dim <= 128 && !flash_mma::simt_forced() &&
           flash_mma::device_supported(ctx.device());
  }
}

// flash_forward on the tensor cores (same contract; the device must qualify, see use_tensor_cores). Launch:
// ceil(len_q / 64) x batch * heads blocks in one grid dimension, 128 threads, dynamic shared memory (about
// 50 KiB at head_dim 128, 55 KiB at 64).
template <class T>
void flash_forward_mma(Context<device::cuda>& ctx, const FlashArgs<T>& a, T* o, index_t o_batch, index_t o_row,
                       float* lse) {
  flash_mma::check_args(a, "flash_forward (tensor cores)");
  if (a.batch == 0 || a.len_q == 0) return;
  if (cuda_flash::tile_head_dim(a.head_dim) != a.head_dim) {  // zero-padded heads, then crop the output
    const cuda_flash::Padded<T> p(ctx, a);
    auto op = ctx.scratch<T>(std::size_t(a.batch * a.len_q * a.heads * p.P));
    flash_forward_mma(ctx, p.a, op.data(), p.a.q_batch, p.a.q_row, lse);
    p.crop(ctx, op.data(), o_batch, o_row, a.len_q, o);
    return;
  }
  const float scale = float(a.scale);
  const auto drop = cuda_flash::dropout_of(a);
  cuda_flash::dispatch_head_dim(a.head_dim, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    using Tl = flash_mma::Tile<HD>;
    const index_t tiles = flash_mma::tiles_of(a.len_q, Tl::rows);
    flash_mma::launch(ctx, flash_mma::forward_kernel<T, HD>, Tl::threads, tiles, a.batch * a.heads,
                      flash_mma::ForwardSmem<HD>::bytes, "flash_forward (tensor cores)", a, scale, drop, o, o_batch,
                      o_row, lse, tiles);
  });
}

// flash_backward on the tensor cores: delta = rowsum(do * o), then a dQ pass over query tiles and a dK/dV pass
// over key tiles, each recomputing P from the saved lse. dQ has its own pass rather than fp32 atomicAdds from
// the dK/dV pass: it costs the two score products again (7 tile products instead of 5), but every gradient is
// written once, in T, with no fp32 buffer or conversion pass, and the result is deterministic, as on the SIMT
// path and the host.
template <class T>
void flash_backward_mma(Context<device::cuda>& ctx, const FlashArgs<T>& a, const T* o, index_t o_batch,
                        index_t o_row, const float* lse, const T* dout, T* dq, T* dk, T* dv) {
  flash_mma::check_args(a, "flash_backward (tensor cores)");
  if (a.batch == 0) return;
  if (cuda_flash::tile_head_dim(a.head_dim) != a.head_dim)  // zero-padded heads
    return cuda_flash::backward_padded(ctx, a, o, o_batch, o_row, lse, dout, dq, dk, dv,
                                       [](auto&&... args) { flash_backward_mma(args...); });
  const index_t BH = a.batch * a.heads;
  auto delta = ctx.scratch<float>(std::size_t(BH * a.len_q));
  cuda::for_each(ctx.stream(), BH * a.len_q,
                 cuda_flash::RowDelta<T>{o, dout, a.heads, a.len_q, a.head_dim, o_batch, o_row, delta.data()},
                 "flash_backward_delta (tensor cores)");
  const float scale = float(a.scale);
  const auto drop = cuda_flash::dropout_of(a);
  cuda_flash::dispatch_head_dim(a.head_dim, [&](auto hd) {
    constexpr int HD = decltype(hd)::value;
    using Tl = flash_mma::Tile<HD>;
    const index_t q_tiles = flash_mma::tiles_of(a.len_q, Tl::rows), k_tiles = flash_mma::tiles_of(a.len_k, Tl::rows);
    const float* d = delta.data();
    flash_mma::launch(ctx, flash_mma::dq_kernel<T, HD>, Tl::threads, q_tiles, BH, flash_mma::DqSmem<HD>::bytes,
                      "flash_backward_dq (tensor cores)", a, scale, drop, dout, o_batch, o_row, lse, d, dq, q_tiles);
    flash_mma::launch(ctx, flash_mma::dkv_kernel<T, HD>, Tl::threads, k_tiles, BH, flash_mma::DkvSmem<HD>::bytes,
                      "flash_backward_dkv (tensor cores)", a, scale, drop, dout, o_batch, o_row, lse, d, dk, dv,
                      k_tiles);
  });
}

}  // namespace longseq::attention

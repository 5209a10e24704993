// Host attention without an L x L matrix: blocked online softmax forward saving the log-sum-exp per
// query, and a backward that recomputes each score block from it (FlashAttention-2 order of work).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <type_traits>
#include <vector>

#include "../core/context.hpp"
#include "../core/rng.hpp"
#include "../ops/fast_math.hpp"
#include "../ops/gemm.hpp"
#include "flash_kernels.hpp"
#include "mask.hpp"

namespace longseq::attention {

// Strided views of q, k, v, o for all heads: element (b, pos, h, c) of X sits at
// X + b * X_batch + pos * X_row + h * head_dim + c. The projections' (B, L, heads * head_dim) output
// is used in place (X_row = heads * head_dim), so no per-head copies are needed.
template <class T>
struct FlashArgs {
  index_t batch = 0, heads = 0, len_q = 0, len_k = 0, head_dim = 0;
  const T* q = nullptr;
  index_t q_batch = 0, q_row = 0;
  const T* k = nullptr;
  index_t k_batch = 0, k_row = 0;
  const T* v = nullptr;
  index_t v_batch = 0, v_row = 0;
  double scale = 1.0;  // usually 1 / sqrt(head_dim)
  MaskSpec mask;
  // Dropout on the attention probabilities; the keep decision for element (b, h, i, j) is
  // Philox(seed, stream, e / 4)[e % 4] >= p with e = ((b * heads + h) * len_q + i) * len_k + j.
  double dropout = 0.0;
  std::uint64_t seed = 0, stream = 0;
  // Tile sizes. One layer (d 128, 4 heads, L 1024, B 16, float, fwd+bwd, 1 thread, shared 2-core host):
  // 32: 2.5-2.7 s, 64: 2.0-2.2 s, 128: 1.8-2.0 s, 256: 1.5-1.9 s, 512: 1.3-1.5 s (noisy). Larger tiles
  // amortize BLAS call overhead; 256 keeps one float tile at 256 KiB.
  index_t block_q = 64, block_k = 64;
  // Keys per score tile of the float forward on the register-blocked path (whose query tile is 16 rows):
  // 1024 keys keep a row block's scores in L1/L2 and, up to L = 1024, make the online softmax one pass
  // (no rescaling, one max and one sum per row). The double path and the backward use block_q/block_k.
  index_t simd_forward_keys = 1024;
};

namespace detail {
// Float tiles go through the register-blocked products of flash_kernels.hpp (BLAS spent a third of its
// time packing these thin 256 x 256 x 32 products); double (the tests' reference) keeps ops::gemm.
template <class T>
inline constexpr bool simd_tiles = LONGSEQ_FLASH_SIMD && std::is_same_v<T, float>;
// Query rows per tile on that path: fewer rows keep the score tile in L1/L2 through the softmax passes.
// One head set (B 16, 4 heads, L 1024, head_dim 32, key tile 256, 1 thread, AVX-512, loaded host), fwd /
// bwd CPU ms: 256 rows 128 / 270, 128: 138 / 253, 64: 125 / 242, 32: 119 / 244 (BLAS tiles: 175 / 320).
inline constexpr index_t simd_query_rows = 64;
// The forward's tile on that path: 16 rows by FlashArgs::simd_forward_keys keys. At B 32, 4 heads,
// L 784, head_dim 16 (1 thread, loaded host), forward CPU ms with 256 keys: 64 rows 84.5, 32: 83.4,
// 16: 84.2, 8: 83.5; with the whole row (784 keys), 16 rows: 76.2. Head_dim 32 (B 16, L 1024): 1024 keys
// 16 rows 93.9, 32 rows 96.6; 512 keys 64 rows 97.0. The backward's tile (64 rows x block_k keys) moved
// by less than the noise (3 %) from 16 to 128 rows and 64 to 256 keys.
inline constexpr index_t simd_forward_rows = 16;

// Per-thread scratch of one call, carved from a single arena scope (no allocation once the arena has
// reached the run's largest call): thread t's slices start at base + t * bytes of one thread.
template <class T>
struct Slice {
  T* ptr;
  std::size_t n;
  T* data() const { return ptr; }
  T* begin() const { return ptr; }
  T* end() const { return ptr + n; }
  T& operator[](std::size_t i) const { return ptr[i]; }
};
struct Carver {
  std::byte* at;
  template <class T>
  Slice<T> take(std::size_t n) {
    Slice<T> s{reinterpret_cast<T*>(at), n};
    at += Arena<device::host>::bytes_for<T>(n);
    return s;
  }
};
template <class T>
std::size_t slice_bytes(std::initializer_list<std::size_t> sizes) {
  std::size_t b = 0;
  for (auto n : sizes) b += Arena<device::host>::bytes_for<T>(n);
  return b;
}

// Fork threads only when there are several heads and enough work to pay for the fork.
template <class T>
bool worth_parallel(const FlashArgs<T>& a) {
  return a.batch * a.heads > 1 && a.batch * a.heads * a.len_q * a.len_k * a.head_dim >= (index_t(1) << 18);
}
template <class T>
struct DropoutMask {
  double p;
  T scale;
  std::uint64_t seed, stream;
  bool active() const { return p > 0; }
  // Multiplier (0 or 1/(1-p)) of element e.
  T factor(std::uint64_t e) const {
    const auto r = Philox::generate(seed, stream, e / 4);
    return Philox::to_unit(r.v[e % 4]) >= float(p) ? scale : T(0);
  }
};
template <class T>
DropoutMask<T> dropout_of(const FlashArgs<T>& a) {
  return {a.dropout, T(a.dropout > 0 ? 1.0 / (1.0 - a.dropout) : 1.0), a.seed, a.stream};
}
// exp(x - m) over a row, in place, for m >= every x (the row maximum or the log-sum-exp); entries at -inf
// become exactly 0. Float uses the vectorizable ops::fast::exp_shifted (libm's expf took ~18% of a
// layer's time); double keeps std::exp, so the double-precision tests compare against the exact function.
inline void exp_row(float* x, index_t n, float m) {
  index_t c = 0;
#if LONGSEQ_FLASH_SIMD
  for (; c + kernels::width <= n; c += kernels::width)
    kernels::store(x + c, kernels::exp_shifted(kernels::load(x + c) - m));
#endif
  for (; c < n; ++c) x[c] = ops::fast::exp_shifted(x[c] - m);
}
inline void exp_row(double* x, index_t n, double m) {
  for (index_t c = 0; c < n; ++c) x[c] = std::exp(x[c] - m);
}
template <class T>
void exp_row(T* x, index_t n, T m) {
  for (index_t c = 0; c < n; ++c) x[c] = T(std::exp(double(x[c]) - double(m)));
}

// exp of one value at most 0 (a row's rescaling factor): the vector exp's scalar twin for float (not a
// libm call per row and key block), std::exp otherwise.
template <class T>
T exp_scalar(T x) {
  if constexpr (std::is_same_v<T, float>)
    return ops::fast::exp_shifted(x);
  else
    return T(std::exp(x));
}

// Row reductions with 8 independent partial results: the compiler vectorizes the lanes without
// reassociating (no -ffast-math needed) and the dependency chain is 8 times shorter.
template <class T>
T row_max(const T* x, index_t n) {
#if LONGSEQ_FLASH_SIMD
  if constexpr (simd_tiles<T>) return kernels::row_max(x, n);
#endif
  T part[8];
  for (auto& v : part) v = -std::numeric_limits<T>::infinity();
  index_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int j = 0; j < 8; ++j) part[j] = part[j] > x[c + j] ? part[j] : x[c + j];
  T m = -std::numeric_limits<T>::infinity();
  for (; c < n; ++c) m = m > x[c] ? m : x[c];
  for (T v : part) m = m > v ? m : v;
  return m;
}
template <class T>
T row_dot(const T* x, const T* y, index_t n) {
  T part[8] = {};
  index_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int j = 0; j < 8; ++j) part[j] += x[c + j] * y[c + j];
  T s = 0;
  for (; c < n; ++c) s += x[c] * y[c];
  for (T v : part) s += v;
  return s;
}
template <class T>
T row_sum(const T* x, index_t n) {
  T part[8] = {};
  index_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int j = 0; j < 8; ++j) part[j] += x[c + j];
  T s = 0;
  for (; c < n; ++c) s += x[c];
  for (T v : part) s += v;
  return s;
}

// exp_row followed by the row's sum, in one pass for float tiles.
template <class T>
T exp_row_sum(T* x, index_t n, T m) {
#if LONGSEQ_FLASH_SIMD
  if constexpr (simd_tiles<T>) return kernels::exp_shift_sum(x, n, m, [](float v) { return ops::fast::exp_shifted(v); });
#endif
  exp_row(x, n, m);
  return row_sum(x, n);
}

// Whether the mask hides any entry of the tile (queries p0 + [0, nq), keys k0 + [0, nk)) of batch b.
inline bool tile_has_mask(const MaskSpec& mask, index_t b, index_t p0, index_t nq, index_t k0, index_t nk) {
  bool any_pad = false;
  if (mask.key_padding != nullptr)
    for (index_t c = 0; c < nk && !any_pad; ++c) any_pad = mask.padded(b, k0 + c);
  return any_pad || !mask.tile_all_allowed(p0, p0 + nq - 1, k0, k0 + nk - 1);
}
// Sets the entries of a score tile that the mask hides to -inf. Returns false when nothing was hidden.
template <class T>
bool mask_tile(const MaskSpec& mask, index_t b, index_t p0, index_t nq, index_t k0, index_t nk, T* s) {
  if (!tile_has_mask(mask, b, p0, nq, k0, nk)) return false;
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  for (index_t r = 0; r < nq; ++r)
    for (index_t c = 0; c < nk; ++c)
      if (!mask.allowed(p0 + r, k0 + c) || mask.padded(b, k0 + c)) s[r * nk + c] = neg_inf;
  return true;
}
}  // namespace detail

// o (same strides as given) = softmax(scale q k^T + mask) v per head; lse (B, heads, len_q) gets
// m + log(sum) per query, or -inf for a query that sees no key (its output row is 0).
template <class T>
void flash_forward(Context<device::host>& ctx, const FlashArgs<T>& a, T* o, index_t o_batch, index_t o_row, T* lse) {
  const index_t H = a.heads, Lq = a.len_q, Lk = a.len_k, dh = a.head_dim;
  const index_t bq = std::max<index_t>(1, detail::simd_tiles<T> ? std::min(a.block_q, detail::simd_forward_rows)
                                                                : a.block_q);
  const index_t bk = std::max<index_t>(1, detail::simd_tiles<T> ? a.simd_forward_keys : a.block_k);
  const auto drop = detail::dropout_of(a);
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  // Per thread: the score tile, the output accumulator, running max and sum, and (float tiles) k^T of the
  // whole head (dh x Lk, row stride Lk), packed once per head and read by every query block from any key
  // (a block-local mask's key range need not start at a tile boundary).
  const auto n_s = std::size_t(bq * std::min(bk, Lk)), n_acc = std::size_t(bq * dh), n_row = std::size_t(bq),
             n_kt = detail::simd_tiles<T> ? std::size_t(Lk * dh) : 0;
  const std::size_t per_thread = detail::slice_bytes<T>({n_s, n_acc, n_row, n_row, n_kt});
  const int nt = detail::worth_parallel(a) ? std::max(1, ctx.threads) : 1;
  auto scratch = ctx.arena.scope(per_thread * std::size_t(nt));
  std::byte* base = scratch.take<std::byte>(per_thread * std::size_t(nt));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    detail::Carver cut{base + per_thread * std::size_t(ops::detail::thread_index())};
    const auto s = cut.take<T>(n_s), acc = cut.take<T>(n_acc), m = cut.take<T>(n_row), l = cut.take<T>(n_row),
               kt = cut.take<T>(n_kt);
#pragma omp for schedule(dynamic)
    for (index_t bh = 0; bh < a.batch * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      const T* q = a.q + b * a.q_batch + h * dh;
      const T* k = a.k + b * a.k_batch + h * dh;
      const T* v = a.v + b * a.v_batch + h * dh;
      T* out = o + b * o_batch + h * dh;
#if LONGSEQ_FLASH_SIMD
      if constexpr (detail::simd_tiles<T>) kernels::transpose(Lk, dh, k, a.k_row, kt.data());
#endif
      for (index_t i0 = 0; i0 < Lq; i0 += bq) {
        const index_t nq = std::min(bq, Lq - i0), p0 = i0 + a.mask.q_offset;
        std::fill(m.begin(), m.end(), neg_inf);
        std::fill(l.begin(), l.end(), T(0));
        std::fill(acc.begin(), acc.end(), T(0));
        const auto [klo, khi] = a.mask.key_range(p0, p0 + nq - 1, Lk);
        for (index_t j0 = klo; j0 < khi; j0 += bk) {
          const index_t nk = std::min(bk, khi - j0);
          if constexpr (detail::simd_tiles<T>) {
#if LONGSEQ_FLASH_SIMD
            kernels::gemm(nq, nk, dh, float(a.scale), q + i0 * a.q_row, a.q_row, 1, kt.data() + j0, Lk, s.data(),
                          nk, false);
#endif
          } else {
            ops::gemm(ctx, ops::Trans::N, ops::Trans::T, nq, nk, dh, T(a.scale), q + i0 * a.q_row, a.q_row,
                      k + j0 * a.k_row, a.k_row, T(0), s.data(), nk);
          }
          detail::mask_tile(a.mask, b, p0, nq, j0, nk, s.data());
          for (index_t r = 0; r < nq; ++r) {
            T* sr = s.data() + r * nk;
            const T mx = detail::row_max(sr, nk);
            const T m_new = std::max(m[r], mx);
            if (m_new == neg_inf) {  // nothing visible yet in this row
              std::fill(sr, sr + nk, T(0));
              continue;
            }
            const T alpha = m[r] == neg_inf ? T(0) : detail::exp_scalar(m[r] - m_new);
            const T sum = detail::exp_row_sum(sr, nk, m_new);
            if (drop.active()) {
              const auto e0 = std::uint64_t((bh * Lq + i0 + r) * Lk + j0);
              for (index_t c = 0; c < nk; ++c)
                if (sr[c] != T(0)) sr[c] *= drop.factor(e0 + std::uint64_t(c));
            }
            l[r] = l[r] * alpha + sum;
            m[r] = m_new;
            if (alpha != T(1))
              for (index_t c = 0; c < dh; ++c) acc[r * dh + c] *= alpha;
          }
          if constexpr (detail::simd_tiles<T>) {
#if LONGSEQ_FLASH_SIMD
            kernels::gemm(nq, dh, nk, 1.0f, s.data(), nk, 1, v + j0 * a.v_row, a.v_row, acc.data(), dh, true);
#endif
          } else {
            ops::gemm(ctx, ops::Trans::N, ops::Trans::N, nq, dh, nk, T(1), s.data(), nk, v + j0 * a.v_row, a.v_row,
                      T(1), acc.data(), dh);
          }
        }
        for (index_t r = 0; r < nq; ++r) {
          const T inv = l[r] > T(0) ? T(1) / l[r] : T(0);
          for (index_t c = 0; c < dh; ++c) out[(i0 + r) * o_row + c] = acc[r * dh + c] * inv;
          lse[bh * Lq + i0 + r] = l[r] > T(0) ? m[r] + T(std::log(l[r])) : neg_inf;
        }
      }
    }
  }
}

// Given do (same strides as o), writes dq, dk, dv (strides of q, k, v respectively). Nothing of size
// L x L is stored: each (query block, key block) score tile is recomputed from q, k and lse.
template <class T>
void flash_backward(Context<device::host>& ctx, const FlashArgs<T>& a, const T* o, index_t o_batch, index_t o_row,
                    const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  const index_t H = a.heads, Lq = a.len_q, Lk = a.len_k, dh = a.head_dim;
  const index_t bq = std::max<index_t>(1, detail::simd_tiles<T> ? std::min(a.block_q, detail::simd_query_rows)
                                                                : a.block_q);
  const index_t bk = std::max<index_t>(1, a.block_k);
  const auto drop = detail::dropout_of(a);
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  // Per thread: P, P with dropout, dP, the dk and dv accumulators of a key block, delta per query and
  // (float tiles) k^T and v^T of the current key block (dh x nk), for the score and dP products.
  const auto tile = static_cast<std::size_t>(bq * bk), kd = static_cast<std::size_t>(bk * dh),
             n_pd = drop.active() ? tile : 0, n_t = detail::simd_tiles<T> ? kd : 0;
  const std::size_t per_thread = detail::slice_bytes<T>({tile, n_pd, tile, kd, kd, std::size_t(Lq), n_t, n_t});
  const int nt = detail::worth_parallel(a) ? std::max(1, ctx.threads) : 1;
  auto scratch = ctx.arena.scope(per_thread * std::size_t(nt));
  std::byte* base = scratch.take<std::byte>(per_thread * std::size_t(nt));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    detail::Carver cut{base + per_thread * std::size_t(ops::detail::thread_index())};
    const auto p = cut.take<T>(tile), pd = cut.take<T>(n_pd), dp = cut.take<T>(tile), dkb = cut.take<T>(kd),
               dvb = cut.take<T>(kd), delta = cut.take<T>(std::size_t(Lq)), kt = cut.take<T>(n_t),
               vt = cut.take<T>(n_t);
#pragma omp for schedule(dynamic)
    for (index_t bh = 0; bh < a.batch * H; ++bh) {
      const index_t b = bh / H, h = bh % H;
      const T* q = a.q + b * a.q_batch + h * dh;
      const T* k = a.k + b * a.k_batch + h * dh;
      const T* v = a.v + b * a.v_batch + h * dh;
      const T* out = o + b * o_batch + h * dh;
      const T* gout = dout + b * o_batch + h * dh;
      T* gq = dq + b * a.q_batch + h * dh;
      T* gk = dk + b * a.k_batch + h * dh;
      T* gv = dv + b * a.v_batch + h * dh;
      const T* lrow = lse + bh * Lq;
      // delta_i = sum_j P_ij dP_ij = do_i . o_i (dropout included in o).
      for (index_t i = 0; i < Lq; ++i) {
        delta[i] = detail::row_dot(gout + i * o_row, out + i * o_row, dh);
        for (index_t c = 0; c < dh; ++c) gq[i * a.q_row + c] = T(0);
      }
      for (index_t j0 = 0; j0 < Lk; j0 += bk) {
        const index_t nk = std::min(bk, Lk - j0);
        std::fill(dkb.begin(), dkb.end(), T(0));
        std::fill(dvb.begin(), dvb.end(), T(0));
#if LONGSEQ_FLASH_SIMD
        if constexpr (detail::simd_tiles<T>) {
          kernels::transpose(nk, dh, k + j0 * a.k_row, a.k_row, kt.data());
          kernels::transpose(nk, dh, v + j0 * a.v_row, a.v_row, vt.data());
        }
#endif
        for (index_t i0 = 0; i0 < Lq; i0 += bq) {
          const index_t nq = std::min(bq, Lq - i0), p0 = i0 + a.mask.q_offset;
          const auto [klo, khi] = a.mask.key_range(p0, p0 + nq - 1, Lk);
          if (khi <= j0 || klo >= j0 + nk) continue;
          // P = exp(scale q k^T - lse), zero where masked or where the query sees no key. On the float
          // tile path a tile without hidden entries (so every row's lse is finite) takes the exp in the
          // product's epilogue, without a second pass over the tile.
          bool p_done = false;
          if constexpr (detail::simd_tiles<T>) {
#if LONGSEQ_FLASH_SIMD
            p_done = !detail::tile_has_mask(a.mask, b, p0, nq, j0, nk);
            if (p_done)
              kernels::gemm(nq, nk, dh, float(a.scale), q + i0 * a.q_row, a.q_row, 1, kt.data(), nk, p.data(), nk,
                            kernels::ExpShift{lrow + i0});
            else
              kernels::gemm(nq, nk, dh, float(a.scale), q + i0 * a.q_row, a.q_row, 1, kt.data(), nk, p.data(), nk,
                            false);
#endif
          } else {
            ops::gemm(ctx, ops::Trans::N, ops::Trans::T, nq, nk, dh, T(a.scale), q + i0 * a.q_row, a.q_row,
                      k + j0 * a.k_row, a.k_row, T(0), p.data(), nk);
          }
          if (!p_done) {
            detail::mask_tile(a.mask, b, p0, nq, j0, nk, p.data());
            for (index_t r = 0; r < nq; ++r) {
              T* pr = p.data() + r * nk;
              if (lrow[i0 + r] == neg_inf)
                std::fill(pr, pr + nk, T(0));
              else
                detail::exp_row(pr, nk, lrow[i0 + r]);
            }
          }
          // With dropout, Pd = P * Z (Z the 0 or 1/(1-p) multiplier) is what multiplied v.
          const T* pz = p.data();
          if (drop.active()) {
            for (index_t r = 0; r < nq; ++r) {
              const auto e0 = std::uint64_t((bh * Lq + i0 + r) * Lk + j0);
              for (index_t c = 0; c < nk; ++c) {
                const T x = p[r * nk + c];
                pd[r * nk + c] = x != T(0) ? x * drop.factor(e0 + std::uint64_t(c)) : T(0);
              }
            }
            pz = pd.data();
          }
          // dv_j += Pd^T do_i ; dPd = do_i v_j^T ; dS = P * (Z * dPd - delta) = Pd * dPd - P * delta (the
          // float tile path forms dS in the dP product's epilogue).
          if constexpr (detail::simd_tiles<T>) {
#if LONGSEQ_FLASH_SIMD
            kernels::gemm(nk, dh, nq, 1.0f, pz, 1, nk, gout + i0 * o_row, o_row, dvb.data(), dh, true);
            kernels::gemm(nq, nk, dh, 1.0f, gout + i0 * o_row, o_row, 1, vt.data(), nk, dp.data(), nk,
                          kernels::SoftmaxGrad{dp.data(), pz, p.data(), delta.data() + i0});
#endif
          } else {
            ops::gemm(ctx, ops::Trans::T, ops::Trans::N, nk, dh, nq, T(1), pz, nk, gout + i0 * o_row, o_row, T(1),
                      dvb.data(), dh);
            ops::gemm(ctx, ops::Trans::N, ops::Trans::T, nq, nk, dh, T(1), gout + i0 * o_row, o_row, v + j0 * a.v_row,
                      a.v_row, T(0), dp.data(), nk);
            for (index_t r = 0; r < nq; ++r) {
              const T d = delta[i0 + r];
              T* dr = dp.data() + r * nk;
              const T* pr = p.data() + r * nk;
              const T* zr = pz + r * nk;
              for (index_t c = 0; c < nk; ++c) dr[c] = zr[c] * dr[c] - pr[c] * d;
            }
          }
          if constexpr (detail::simd_tiles<T>) {
#if LONGSEQ_FLASH_SIMD
            kernels::gemm(nq, dh, nk, float(a.scale), dp.data(), nk, 1, k + j0 * a.k_row, a.k_row, gq + i0 * a.q_row,
                          a.q_row, true);
            kernels::gemm(nk, dh, nq, float(a.scale), dp.data(), 1, nk, q + i0 * a.q_row, a.q_row, dkb.data(), dh, true);
#endif
          } else {
            ops::gemm(ctx, ops::Trans::N, ops::Trans::N, nq, dh, nk, T(a.scale), dp.data(), nk, k + j0 * a.k_row,
                      a.k_row, T(1), gq + i0 * a.q_row, a.q_row);
            ops::gemm(ctx, ops::Trans::T, ops::Trans::N, nk, dh, nq, T(a.scale), dp.data(), nk, q + i0 * a.q_row,
                      a.q_row, T(1), dkb.data(), dh);
          }
        }
        for (index_t r = 0; r < nk; ++r)
          for (index_t c = 0; c < dh; ++c) {
            gk[(j0 + r) * a.k_row + c] = dkb[r * dh + c];
            gv[(j0 + r) * a.v_row + c] = dvb[r * dh + c];
          }
      }
    }
  }
}

}  // namespace longseq::attention

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host kernel is
#include "cuda/flash.cuh"
#endif

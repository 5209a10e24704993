// Register-blocked float products for the host flash tiles: C = alpha A B (+ C), B read row by row with
// vector loads, A broadcast one element at a time through any strides, nothing packed or copied.
#pragma once
#include <cstdint>

#include "../core/shape.hpp"
#include "../ops/fast_math.hpp"

// GCC vector extensions (GCC, Clang, and the host pass of nvcc; its device pass never runs host code).
// The vector width is that of the target the translation unit is compiled for: 16 floats with AVX-512,
// 8 with AVX/AVX2, 4 otherwise; build with LONGSEQ_NATIVE (-march=native) to get the wide ones. Under
// nvcc the width stops at 8: nvcc 12 crashed on the 64-byte vector types (-march=native, AVX-512).
#if defined(__GNUC__) && !defined(__CUDA_ARCH__) && !defined(LONGSEQ_NO_FLASH_SIMD)
#define LONGSEQ_FLASH_SIMD 1
#else
#define LONGSEQ_FLASH_SIMD 0
#endif

#if LONGSEQ_FLASH_SIMD
#if defined(__AVX512F__) && !defined(__CUDACC__)
#define LONGSEQ_FLASH_WIDTH_NS w16
#elif defined(__AVX__)
#define LONGSEQ_FLASH_WIDTH_NS w8
#else
#define LONGSEQ_FLASH_WIDTH_NS w4
#endif
namespace longseq::attention::kernels {
// Translation units built for different vector widths get differently named kernels (the linker must
// not pick one width's inline function for another's callers).
inline namespace LONGSEQ_FLASH_WIDTH_NS {

#if defined(__AVX512F__) && !defined(__CUDACC__)
inline constexpr int width = 16;
#elif defined(__AVX__)
inline constexpr int width = 8;
#else
inline constexpr int width = 4;
#endif
// aligned(4): the rows of q, k, v and the tiles are only float-aligned; may_alias: loads from float*.
typedef float vfloat __attribute__((vector_size(width * sizeof(float)), aligned(4), may_alias));

inline vfloat load(const float* p) { return *reinterpret_cast<const vfloat*>(p); }
inline void store(float* p, vfloat v) { *reinterpret_cast<vfloat*>(p) = v; }

// Widest block of C in vectors, and rows per block for a block nv vectors wide: the accumulators
// (rows * nv registers) plus nv loaded B vectors and one broadcast must fit the register file (32 vector
// registers with AVX-512, 16 below it). Narrow blocks take more rows so that each loaded B vector serves
// more FMAs (head_dim 32 is two AVX-512 vectors).
inline constexpr int max_vectors = width == 16 ? 4 : 2;
template <int NV>
inline constexpr int rows_for = width == 16 ? (NV <= 2 ? 8 : 4) : (NV == 1 ? 8 : 6);

// The row passes of the online softmax, a whole vector at a time. GCC vectorizes loops at 256 bits even
// on AVX-512 machines (its default preferred width), so these are written with the vector type.
typedef std::uint32_t vuint __attribute__((vector_size(width * sizeof(float)), may_alias));

// ops::fast::exp_shifted on a vector: the softmax's exp(s - max) with x <= 0 or -inf. Clamp, x = k ln2 + f
// (Cody-Waite), degree-7 polynomial; after the clamps k lies in [-127, 127], so 2^k is the rounding
// constant's bits shifted into the exponent field (0 for k = -127: exactly 0 for -inf and below about
// -87.68), with no overflow, underflow or NaN selects: 16 vector operations where the general exp took
// 25 (at head size 16 the exp costs as much as one of the tile products).
inline vfloat exp_shifted(vfloat x) {
  const vfloat lo = vfloat{} - 88.02969193111305f, hi = vfloat{} + 88.0f;  // lo = -127 ln 2
  vfloat c = x < lo ? lo : x;  // -inf too; a NaN fails both compares and stays
  c = c > hi ? hi : c;
  const vfloat t = c * 1.44269504088896341f + 12582912.0f;
  const vfloat k = t - 12582912.0f;
  const vfloat p = ops::fast::detail::exp_poly(c, k);
  const vuint e = (reinterpret_cast<const vuint&>(t) << 23) + 0x3f800000u;
  return p * reinterpret_cast<const vfloat&>(e);
}

// What a product does with each finished value v = alpha (A B)(i, j) of C: Store writes it (plus C when
// accumulating); ExpShift writes exp(v - shift[i]) (the backward's P from the scores and the log-sum-exp,
// for tiles without masked entries); SoftmaxGrad writes z v - p delta[i] over C = dP (the backward's dS,
// z and p tiles laid out as C). Each gets the row index i and the place in C, in vectors or, for the
// columns after the last full vector, one float at a time.
struct Store {
  bool accumulate;
  void operator()(index_t, float* c, vfloat v) const { store(c, accumulate ? v + load(c) : v); }
  void operator()(index_t, float* c, float v) const { *c = accumulate ? v + *c : v; }
};
struct ExpShift {
  const float* shift;  // per row of C, finite
  void operator()(index_t i, float* c, vfloat v) const { store(c, exp_shifted(v - shift[i])); }
  void operator()(index_t i, float* c, float v) const { *c = ops::fast::exp_shifted(v - shift[i]); }
};
struct SoftmaxGrad {
  const float* c0;  // C's first element: z and p are read at the same offset from z0 and p0
  const float *z0, *p0, *delta;
  void operator()(index_t i, float* c, vfloat v) const {
    const auto at = c - c0;
    store(c, load(z0 + at) * v - load(p0 + at) * delta[i]);
  }
  void operator()(index_t i, float* c, float v) const {
    const auto at = c - c0;
    *c = z0[at] * v - p0[at] * delta[i];
  }
};

// One MR x (NV * width) block of C (rows row0 + [0, MR)) over the whole reduction K, held in registers.
template <int MR, int NV, class Epi>
inline void block(index_t K, float alpha, const float* a, index_t a_row, index_t a_k, const float* b, index_t ldb,
                  float* c, index_t ldc, const Epi& epi, index_t row0) {
  vfloat acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = vfloat{};
  for (index_t k = 0; k < K; ++k) {
    vfloat bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b + k * ldb + v * width);
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i * a_row + k * a_k];
      for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) epi(row0 + i, c + i * ldc + v * width, alpha * acc[i][v]);
}

// All M rows of one column strip NV vectors wide: full MR-row blocks, then the leftover rows one
// smaller instantiation at a time.
template <int NV, int MR = rows_for<NV>, class Epi>
inline void strip(index_t M, index_t K, float alpha, const float* a, index_t a_row, index_t a_k, const float* b,
                  index_t ldb, float* c, index_t ldc, const Epi& epi, index_t row0 = 0) {
  index_t i = 0;
  for (; i + MR <= M; i += MR)
    block<MR, NV>(K, alpha, a + i * a_row, a_row, a_k, b, ldb, c + i * ldc, ldc, epi, row0 + i);
  if constexpr (MR > 1) {
    if (i < M)
      strip<NV, MR / 2>(M - i, K, alpha, a + i * a_row, a_row, a_k, b, ldb, c + i * ldc, ldc, epi, row0 + i);
  }
}

// Columns left over after the vector strips (fewer than width), plain loops.
template <class Epi>
inline void scalar_columns(index_t M, index_t N, index_t K, float alpha, const float* a, index_t a_row, index_t a_k,
                           const float* b, index_t ldb, float* c, index_t ldc, const Epi& epi) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      float s = 0;
      for (index_t k = 0; k < K; ++k) s += a[i * a_row + k * a_k] * b[k * ldb + j];
      epi(i, c + i * ldc + j, alpha * s);
    }
}

// C (M x N, row stride ldc) <- epi(alpha * A B). A(i, k) = a[i * a_row + k * a_k], so a transposed A is
// a_row = 1; B (K x N) has row stride ldb and unit column stride. Strips of max_vectors vectors go first
// (the B strip, K x 64 floats with AVX-512, stays in L1 across the rows); any head dimension or tile width
// works, the tail with narrower strips and finally scalar columns.
template <class Epi>
inline void gemm(index_t M, index_t N, index_t K, float alpha, const float* a, index_t a_row, index_t a_k,
                 const float* b, index_t ldb, float* c, index_t ldc, const Epi& epi) {
  constexpr index_t wide = index_t(max_vectors) * width;
  index_t j = 0;
  for (; j + wide <= N; j += wide) strip<max_vectors>(M, K, alpha, a, a_row, a_k, b + j, ldb, c + j, ldc, epi);
  const index_t nv = (N - j) / width;
  if constexpr (max_vectors > 3) {
    if (nv == 3) strip<3>(M, K, alpha, a, a_row, a_k, b + j, ldb, c + j, ldc, epi);
  }
  if constexpr (max_vectors > 2) {
    if (nv == 2) strip<2>(M, K, alpha, a, a_row, a_k, b + j, ldb, c + j, ldc, epi);
  }
  if (nv == 1) strip<1>(M, K, alpha, a, a_row, a_k, b + j, ldb, c + j, ldc, epi);
  j += nv * width;
  if (j < N) scalar_columns(M, N - j, K, alpha, a, a_row, a_k, b + j, ldb, c + j, ldc, epi);
}
// C = alpha A B, plus C when accumulate.
inline void gemm(index_t M, index_t N, index_t K, float alpha, const float* a, index_t a_row, index_t a_k,
                 const float* b, index_t ldb, float* c, index_t ldc, bool accumulate) {
  gemm(M, N, K, alpha, a, a_row, a_k, b, ldb, c, ldc, Store{accumulate});
}

// Horizontal max and sum as trees (halves, quarters, ...): a chain of width - 1 scalar operations with
// lane extracts cost about a tenth of a forward row pass at head size 16.
inline float hmax(vfloat v) {
  float t[width];
  store(t, v);
  for (int w = width / 2; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) t[i] = t[i] > t[i + w] ? t[i] : t[i + w];
  return t[0];
}
inline float hsum(vfloat v) {
  float t[width];
  store(t, v);
  for (int w = width / 2; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) t[i] += t[i + w];
  return t[0];
}

// max over x[0, n).
inline float row_max(const float* x, index_t n) {
  vfloat m = vfloat{} - __builtin_inff();
  index_t c = 0;
  for (; c + width <= n; c += width) {
    const vfloat v = load(x + c);
    m = v > m ? v : m;
  }
  float r = hmax(m);
  for (; c < n; ++c) r = x[c] > r ? x[c] : r;
  return r;
}

// x = exp(x - shift) over x[0, n), in place, for shift >= every x; returns the sum of the new values.
// Scalar tail through the scalar function of the same algorithm (scalar_exp).
template <class ScalarExp>
inline float exp_shift_sum(float* x, index_t n, float shift, ScalarExp scalar_exp) {
  vfloat s = vfloat{};
  index_t c = 0;
  for (; c + width <= n; c += width) {
    const vfloat e = exp_shifted(load(x + c) - shift);
    store(x + c, e);
    s += e;
  }
  float r = hsum(s);
  for (; c < n; ++c) r += (x[c] = scalar_exp(x[c] - shift));
  return r;
}

// dst (cols x rows, row stride rows) = src^T for src (rows x cols, row stride ld): a key or value block
// turned so that the score products read it along keys.
// The inner loop writes contiguously (strided stores cost more than strided loads).
inline void transpose(index_t rows, index_t cols, const float* src, index_t ld, float* dst) {
  for (index_t c = 0; c < cols; ++c)
    for (index_t r = 0; r < rows; ++r) dst[c * rows + r] = src[r * ld + c];
}

}  // namespace LONGSEQ_FLASH_WIDTH_NS
}  // namespace longseq::attention::kernels
#endif

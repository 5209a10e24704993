// Warp-level tensor-core tile maths on shared memory: 16 x 16 x 16 WMMA products of half or bf16 with fp32
// accumulators (sm_80 and newer), addressed by 16 x 16 blocks of row- or column-major tiles.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstddef>
#include <type_traits>

#include "../../core/dtype.hpp"
#include "../../core/shape.hpp"

// Device code that names bf16 fragments compiles only for sm_80 and newer (the host pass sees all of them).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define LONGSEQ_MMA_TILE_ARCH 1
#else
#define LONGSEQ_MMA_TILE_ARCH 0
#endif

namespace longseq::attention::mma_tile {

namespace wmma = nvcuda::wmma;
using wmma::col_major;
using wmma::row_major;

inline constexpr int edge = 16;  // every fragment is 16 x 16 (x 16 deep)

// The CUDA element type WMMA takes for a storage type; both have the same bits, so device pointers are
// reinterpreted, never converted.
template <class T>
struct Element;
template <>
struct Element<half> {
  using type = __half;
};
template <>
struct Element<bf16> {
  using type = __nv_bfloat16;
};
template <class T>
using element_t = typename Element<T>::type;
template <class T>
inline constexpr bool has_element = std::is_same_v<T, half> || std::is_same_v<T, bf16>;

// Round to nearest even, as the storage types' own float constructors do.
template <class E>
__device__ inline E to_element(float x) {
  if constexpr (std::is_same_v<E, __half>)
    return __float2half_rn(x);
  else
    return __float2bfloat16_rn(x);
}

using Acc = wmma::fragment<wmma::accumulator, edge, edge, edge, float>;
template <class E, class Layout>
using FragA = wmma::fragment<wmma::matrix_a, edge, edge, edge, E, Layout>;
template <class E, class Layout>
using FragB = wmma::fragment<wmma::matrix_b, edge, edge, edge, E, Layout>;

// First element of 16 x 16 block (rb, cb) of a matrix with leading dimension ld: row-major element (r, c)
// sits at base[r * ld + c], column-major at base[c * ld + r]. WMMA wants the result 32-byte aligned, which
// holds when base is and ld is a multiple of 16 bytes.
template <class Layout, class E>
__device__ inline E* block(E* base, int ld, int rb, int cb) {
  if constexpr (std::is_same_v<Layout, row_major>)
    return base + (std::ptrdiff_t(rb) * ld + cb) * edge;
  else
    return base + (std::ptrdiff_t(cb) * ld + rb) * edge;
}

template <int N>
__device__ inline void zero(Acc (&acc)[N]) {
#pragma unroll
  for (int n = 0; n < N; ++n) wmma::fill_fragment(acc[n], 0.0f);
}

// acc[n] += A * B over a 16 x (16 K) strip of A and the (16 K) x (16 N) matrix B, for the calling warp.
// k runs outside: each A fragment is loaded once and only one is live (the accumulators are live anyway).
template <int K, int N, class LayoutA, class LayoutB, class E>
__device__ inline void warp_gemm(Acc (&acc)[N], const E* a, int lda, const E* b, int ldb) {
#if LONGSEQ_MMA_TILE_ARCH
#pragma unroll
  for (int k = 0; k < K; ++k) {
    FragA<E, LayoutA> fa;
    wmma::load_matrix_sync(fa, block<LayoutA>(a, lda, 0, k), unsigned(lda));
#pragma unroll
    for (int n = 0; n < N; ++n) {
      FragB<E, LayoutB> fb;
      wmma::load_matrix_sync(fb, block<LayoutB>(b, ldb, k, n), unsigned(ldb));
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
  }
#endif
}

// acc[n] -> the 16 x (16 N) row-major float strip at dst (leading dimension ld).
template <int N>
__device__ inline void store(float* dst, int ld, const Acc (&acc)[N]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
    wmma::store_matrix_sync(block<row_major>(dst, ld, 0, n), acc[n], unsigned(ld), wmma::mem_row_major);
}

// The row of every element an accumulator fragment holds. The element-to-thread mapping of a fragment is
// unspecified but fixed for its type, so loading a matrix whose entry (r, c) is r tells each thread the
// rows of its elements; row-wise factors (online-softmax rescaling, 1 / l) can then be applied in registers.
// scratch: 16 x ld floats of the warp's own shared memory, 32-byte aligned, free for the call.
__device__ inline void row_index(Acc& rows, float* scratch, int ld) {
  const int lane = int(threadIdx.x & 31);
  for (int e = lane; e < edge * edge; e += 32) scratch[(e / edge) * ld + e % edge] = float(e / edge);
  __syncwarp();
  wmma::load_matrix_sync(rows, scratch, unsigned(ld), wmma::mem_row_major);
  __syncwarp();
}

// acc[n](r, c) *= factor[r] for the warp's 16 rows (factor in shared memory, written before a __syncwarp).
template <int N>
__device__ inline void scale_rows(Acc (&acc)[N], const Acc& rows, const float* factor) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int t = 0; t < acc[n].num_elements; ++t) acc[n].x[t] *= factor[int(rows.x[t])];
}

// Writes the warp's 16 x (16 N) accumulator strip, times `mult`, to rows of dst (row r at dst + r * row_stride,
// columns contiguous), converting to T; rows >= valid_rows are left alone. stage: 16 x 16 floats of the
// warp's shared memory (32-byte aligned), reused for every block.
template <class T, int N>
__device__ inline void write_rows(const Acc (&acc)[N], float* stage, T* dst, index_t row_stride, index_t valid_rows,
                                  float mult) {
  const int lane = int(threadIdx.x & 31);
#pragma unroll
  for (int n = 0; n < N; ++n) {
    wmma::store_matrix_sync(stage, acc[n], edge, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < edge * edge; e += 32) {
      const int r = e / edge, c = e % edge;
      if (r < valid_rows) dst[r * row_stride + n * edge + c] = T(stage[e] * mult);
    }
    __syncwarp();
  }
}

// Cooperative copy of rows [r0, r0 + R) (HD contiguous elements each, row r at src + r * row_stride) into a
// shared R x ld tile; rows at or past `end` are zero, so partial tiles need no special case in the products.
template <int R, int HD, class E>
__device__ inline void load_rows(E* dst, int ld, const E* src, index_t row_stride, index_t r0, index_t end) {
  for (int idx = int(threadIdx.x); idx < R * HD; idx += int(blockDim.x)) {
    const int r = idx / HD, d = idx % HD;
    const index_t i = r0 + r;
    dst[r * ld + d] = i < end ? src[i * row_stride + d] : to_element<E>(0.0f);
  }
}

// Shared memory carved in 128-byte aligned pieces, the same way on the host (sizing the launch) and in the
// kernel (taking the pieces in the same order).
__host__ __device__ constexpr std::size_t aligned_bytes(std::size_t bytes) { return (bytes + 127) / 128 * 128; }
struct Carve {
  unsigned char* at;
  template <class X>
  __device__ X* take(std::size_t n) {
    X* p = reinterpret_cast<X*>(at);
    at += aligned_bytes(n * sizeof(X));
    return p;
  }
};

}  // namespace longseq::attention::mma_tile

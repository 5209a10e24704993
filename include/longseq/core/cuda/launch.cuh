// Launch helpers shared by the CUDA kernels: grid sizing, a grid-stride element-wise kernel over a functor,
// warp reductions (shuffles); block reductions are in block_reduce.cuh.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "../shape.hpp"
#include "check.cuh"

namespace longseq::cuda {

inline constexpr int block_threads = 256;

// Enough blocks to cover n elements, capped: the grid-stride loop handles the rest.
inline unsigned grid_for(index_t n, int threads = block_threads) {
  index_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  return unsigned(blocks);
}

// Calls f(i) for every i < n. F is a plain functor struct with a __device__ operator()(index_t) const,
// so users of the headers need no extended-lambda flag.
template <class F>
__global__ void for_each_kernel(index_t n, F f) {
  for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    f(i);
}

template <class F>
void for_each(cudaStream_t stream, index_t n, const F& f, const char* name) {
  if (n <= 0) return;
  for_each_kernel<<<grid_for(n), block_threads, 0, stream>>>(n, f);
  LONGSEQ_CUDA_LAUNCH_CHECK(name);
}

template <class A>
__device__ inline A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A>
__device__ inline A warp_max(A v) {
  for (int o = 16; o > 0; o >>= 1) {
    A w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

// Threads per block for a row of `cols` elements: a power of two between 32 and 1024.
inline int row_threads(index_t cols) {
  int t = 32;
  while (t < 1024 && t < cols) t *= 2;
  return t;
}

// One block per row (rows strided over at most 2^20 blocks), up to 256 threads along the row.
struct RowLaunch {
  unsigned blocks;
  int threads;
};
inline RowLaunch row_launch(index_t rows, index_t cols) {
  index_t blocks = rows < (index_t(1) << 20) ? rows : (index_t(1) << 20);
  int threads = row_threads(cols);
  return {unsigned(blocks), threads < 256 ? threads : 256};
}

// Calls f(std::integral_constant<int, threads>{}) for a row_launch thread count (32, 64, 128 or 256), so
// that row kernels can be instantiated for the block size their block reductions are built for.
template <class F>
void with_row_threads(int threads, F&& f) {
  switch (threads) {
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 128: f(std::integral_constant<int, 128>{}); break;
    default: f(std::integral_constant<int, 256>{}); break;
  }
}

}  // namespace longseq::cuda

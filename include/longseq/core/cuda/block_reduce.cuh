// Block-wide sum and max for the row kernels, on cub::BlockReduce. Kept out of launch.cuh because CUB
// brings the toolkit's global `cuda` namespace, which makes an unqualified `cuda::` ambiguous in code that
// says `using namespace longseq`.
#pragma once
#include <cub/block/block_reduce.cuh>

#include "launch.cuh"

namespace longseq::cuda {

// Block-wide reductions over a block of exactly Threads threads (a compile-time size, as cub::BlockReduce
// needs), returning the result to every thread. cub::BlockReduce combines in a fixed order for a fixed
// block size, so results are run-to-run deterministic. One BlockReduceStorage serves several reductions in
// a row: the trailing barrier makes it safe to reuse right after.
template <class A, int Threads>
struct BlockReduceStorage {
  typename cub::BlockReduce<A, Threads>::TempStorage temp;
  A result;
};

// The comparison of warp_max: keeps the first operand unless the second compares greater.
struct MaxOf {
  template <class A>
  __device__ A operator()(const A& a, const A& b) const {
    return b > a ? b : a;
  }
};
struct SumOf {
  template <class A>
  __device__ A operator()(const A& a, const A& b) const {
    return a + b;
  }
};

template <int Threads, class A, class Op>
__device__ inline A block_reduce(A v, BlockReduceStorage<A, Threads>& shared, Op op) {
  A r = cub::BlockReduce<A, Threads>(shared.temp).Reduce(v, op);
  if (threadIdx.x == 0) shared.result = r;
  __syncthreads();
  r = shared.result;
  __syncthreads();
  return r;
}
template <int Threads, class A>
__device__ inline A block_sum(A v, BlockReduceStorage<A, Threads>& shared) {
  return block_reduce(v, shared, SumOf{});
}
template <int Threads, class A>
__device__ inline A block_max(A v, BlockReduceStorage<A, Threads>& shared) {
  return block_reduce(v, shared, MaxOf{});
}

}  // namespace longseq::cuda

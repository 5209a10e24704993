// CUDA ops of nn::Embedding: the row gather, and a deterministic scatter-add backward. The backward sorts
// the (id, position) pairs with a stable CUB radix sort and lets one thread per (run of equal ids,
// feature) add that run's dy rows in position order: the same additions in the same order as the host
// loop, with no atomics. With half or bf16 storage a run is summed in float (accum_t) and rounded once.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>

#include "../../core/cuda/context.cuh"
#include "../../core/dtype.hpp"
#include "../../core/cuda/launch.cuh"

namespace longseq::nn::detail {

namespace embedding_cuda {

template <class T>
struct Gather {
  const std::int32_t* ids;
  const T* w;
  T* y;
  index_t vocab, h;
  __device__ void operator()(index_t e) const {
    const index_t i = e / h, k = e % h, id = ids[i];
    y[e] = id >= 0 && id < vocab ? w[id * h + k] : T(0);
  }
};

struct Iota {
  index_t* v;
  __device__ void operator()(index_t i) const { v[i] = i; }
};

// One thread per (sorted position i, feature k); the thread at the start of a run of equal ids adds the
// run's dy rows, in position order, to grad[id, k]. Runs are found by comparing neighbours, which keeps
// CUB to its radix sort (its scan and run-length kernels name cuda::std functors, which a translation
// unit saying `using namespace longseq` could not compile).
template <class T>
struct RunSum {
  const std::int32_t* keys;
  const index_t* pos;
  const T* dy;
  T* grad;
  index_t n, vocab, h, padding_idx;
  __device__ void operator()(index_t e) const {
    const index_t i = e / h, k = e % h;
    const index_t id = keys[i];
    if (i > 0 && keys[i - 1] == id) return;
    if (id == padding_idx || id < 0 || id >= vocab) return;
    using A = accum_t<T>;
    A acc = A(grad[id * h + k]);
    for (index_t j = i; j < n && keys[j] == id; ++j) acc += A(dy[pos[j] * h + k]);
    grad[id * h + k] = T(acc);
  }
};

}  // namespace embedding_cuda

template <class T>
void embedding_gather(Context<device::cuda>& ctx, TensorView<const std::int32_t, device::cuda> ids,
                      TensorView<const T, device::cuda> weight, TensorView<T, device::cuda> y) {
  const index_t vocab = weight.size(0), h = weight.size(1);
  longseq::cuda::for_each(ctx.stream(), ids.numel() * h,
                          embedding_cuda::Gather<T>{ids.data, weight.data, y.data, vocab, h}, "embedding_gather");
}

template <class T>
void embedding_scatter_add(Context<device::cuda>& ctx, TensorView<const std::int32_t, device::cuda> ids,
                           TensorView<const T, device::cuda> dy, TensorView<T, device::cuda> grad,
                           index_t padding_idx) {
  const index_t n = ids.numel(), vocab = grad.size(0), h = grad.size(1);
  if (n == 0) return;
  LONGSEQ_CHECK(n < (index_t(1) << 31), "Embedding: ", n, " ids in one batch, expected fewer than 2^31");
  const int ni = int(n);
  cudaStream_t st = ctx.stream();
  auto pos_in = ctx.scratch<index_t>(std::size_t(n));
  auto pos = ctx.scratch<index_t>(std::size_t(n));
  auto keys = ctx.scratch<std::int32_t>(std::size_t(n));
  longseq::cuda::for_each(st, n, embedding_cuda::Iota{pos_in.data()}, "embedding_scatter_add iota");
  std::size_t temp_bytes = 0;
  LONGSEQ_CUDA_CHECK(::cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids.data, keys.data(), pos_in.data(),
                                                       pos.data(), ni, 0, 32, st));
  auto temp = ctx.scratch<unsigned char>(temp_bytes);
  // Stable: equal ids keep their positions in increasing order.
  LONGSEQ_CUDA_CHECK(::cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, ids.data, keys.data(), pos_in.data(),
                                                       pos.data(), ni, 0, 32, st));
  longseq::cuda::for_each(st, n * h,
                          embedding_cuda::RunSum<T>{keys.data(), pos.data(), dy.data, grad.data, n, vocab, h,
                                                    padding_idx},
                          "embedding_scatter_add");
}

}  // namespace longseq::nn::detail

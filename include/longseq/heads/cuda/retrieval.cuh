// CUDA ops of heads::RetrievalHead: the pair features [u, v, u - v, u * v] and their backward, one thread
// per (pair, channel).
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"

namespace longseq::heads::detail {

namespace retrieval_cuda {

template <class T>
struct Forward {
  const T* pooled;
  T* feats;
  index_t b, h;
  __device__ void operator()(index_t e) const {
    const index_t i = e / h, k = e % h;
    const T u = pooled[i * h + k], v = pooled[(b + i) * h + k];
    T* f = feats + i * 4 * h;
    f[k] = u;
    f[h + k] = v;
    f[2 * h + k] = u - v;
    f[3 * h + k] = u * v;
  }
};

template <class T>
struct Backward {
  const T* pooled;
  const T* g;
  T* dpooled;
  index_t b, h;
  __device__ void operator()(index_t e) const {
    const index_t i = e / h, k = e % h;
    const T u = pooled[i * h + k], v = pooled[(b + i) * h + k];
    const T* gi = g + i * 4 * h;
    dpooled[i * h + k] = gi[k] + gi[2 * h + k] + gi[3 * h + k] * v;
    dpooled[(b + i) * h + k] = gi[h + k] - gi[2 * h + k] + gi[3 * h + k] * u;
  }
};

}  // namespace retrieval_cuda

template <class T>
void pair_features_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> pooled,
                           TensorView<T, device::cuda> feats) {
  const index_t b = feats.size(0), h = pooled.size(1);
  longseq::cuda::for_each(ctx.stream(), b * h, retrieval_cuda::Forward<T>{pooled.data, feats.data, b, h},
                          "pair_features_forward");
}

template <class T>
void pair_features_backward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> pooled,
                            TensorView<const T, device::cuda> dfeats, TensorView<T, device::cuda> dpooled) {
  const index_t b = dfeats.size(0), h = pooled.size(1);
  longseq::cuda::for_each(ctx.stream(), b * h,
                          retrieval_cuda::Backward<T>{pooled.data, dfeats.data, dpooled.data, b, h},
                          "pair_features_backward");
}

}  // namespace longseq::heads::detail

// CUDA ops of nn::Pool: one thread per (sequence, channel) walks the valid positions in order (the host's
// order, so mean pooling sums identically in double); the backward writes each dx element once. Half and
// bf16 storage compare and average through float or double, never in the narrow type.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../core/cuda/context.cuh"
#include "../../core/dtype.hpp"
#include "../../core/cuda/launch.cuh"

namespace longseq::nn::detail {

namespace pool_cuda {

struct Lengths {
  const std::int32_t* lengths;  // null: all l
  std::int32_t* used;
  index_t l;
  __device__ void operator()(index_t i) const {
    index_t n = lengths ? index_t(lengths[i]) : l;
    used[i] = std::int32_t(n < 1 ? 1 : (n > l ? l : n));
  }
};

template <class T>
struct Forward {
  PoolMode mode;
  const T* x;
  const std::int32_t* used;
  T* y;
  std::int32_t* argmax;
  index_t l, h;
  __device__ void operator()(index_t e) const {
    const index_t i = e / h, c = e % h, n = used[i];
    const T* xb = x + i * l * h;
    if (mode == PoolMode::mean) {
      double acc = 0;
      for (index_t t = 0; t < n; ++t) acc += double(xb[t * h + c]);
      y[e] = T(acc / double(n));
    } else if (mode == PoolMode::max) {
      using A = accum_t<T>;
      index_t best = 0;
      A top = A(xb[c]);
      for (index_t t = 1; t < n; ++t)
        if (A(xb[t * h + c]) > top) {
          best = t;
          top = A(xb[t * h + c]);
        }
      y[e] = xb[best * h + c];
      argmax[e] = std::int32_t(best);
    } else {
      y[e] = xb[(n - 1) * h + c];
    }
  }
};

// One thread per dx element (b, t, c).
template <class T>
struct Backward {
  PoolMode mode;
  const std::int32_t* used;
  const std::int32_t* argmax;
  const T* dy;
  T* dx;
  index_t l, h;
  __device__ void operator()(index_t e) const {
    const index_t c = e % h, t = (e / h) % l, i = e / (l * h), n = used[i];
    const T g = dy[i * h + c];
    T v = T(0);
    if (mode == PoolMode::mean) {
      if (t < n) v = T(double(g) / double(n));
    } else if (mode == PoolMode::max) {
      if (t == index_t(argmax[i * h + c])) v = g;
    } else if (t == n - 1) {
      v = g;
    }
    dx[e] = v;
  }
};

}  // namespace pool_cuda

inline void pool_lengths(Context<device::cuda>& ctx, TensorView<const std::int32_t, device::cuda> lengths, index_t l,
                         TensorView<std::int32_t, device::cuda> used) {
  longseq::cuda::for_each(ctx.stream(), used.numel(), pool_cuda::Lengths{lengths.data, used.data, l}, "pool_lengths");
}

template <class T>
void pool_forward(Context<device::cuda>& ctx, PoolMode mode, TensorView<const T, device::cuda> x,
                  TensorView<const std::int32_t, device::cuda> used, TensorView<T, device::cuda> y,
                  TensorView<std::int32_t, device::cuda> argmax) {
  const index_t b = x.size(0), l = x.size(1), h = x.size(2);
  longseq::cuda::for_each(ctx.stream(), b * h, pool_cuda::Forward<T>{mode, x.data, used.data, y.data, argmax.data, l, h},
                          "pool_forward");
}

template <class T>
void pool_backward(Context<device::cuda>& ctx, PoolMode mode, TensorView<const std::int32_t, device::cuda> used,
                   TensorView<const std::int32_t, device::cuda> argmax, TensorView<const T, device::cuda> dy,
                   TensorView<T, device::cuda> dx) {
  const index_t l = dx.size(1), h = dx.size(2);
  longseq::cuda::for_each(ctx.stream(), dx.numel(),
                          pool_cuda::Backward<T>{mode, used.data, argmax.data, dy.data, dx.data, l, h},
                          "pool_backward");
}

}  // namespace longseq::nn::detail

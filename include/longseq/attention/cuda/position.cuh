// The sinusoidal position code on the GPU: add_sinusoidal's device overload, one thread per element. The code
// is computed in double as on the host (attention::sinusoid) and added in accum_t<T> (float for half and bf16,
// rounded once), so a float model adds what the host adds.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/dtype.hpp"

namespace longseq::attention::detail {

namespace position_cuda {

template <class T>
struct AddSinusoidal {
  const T* x;
  T* y;
  index_t len, dim;
  double base;
  __device__ void operator()(index_t e) const {
    const index_t c = e % dim, l = (e / dim) % len;
    using A = accum_t<T>;
    y[e] = T(A(x[e]) + A(sinusoid(l, c, dim, base)));
  }
};

}  // namespace position_cuda

// y = x + pe on the device; x and y may alias (each element is read, then written, by one thread).
template <class T>
void add_sinusoidal(Context<device::cuda>& ctx, TensorView<const T, device::cuda> x, TensorView<T, device::cuda> y,
                    double base) {
  longseq::cuda::for_each(ctx.stream(), y.numel(),
                          position_cuda::AddSinusoidal<T>{x.data, y.data, x.size(1), x.size(2), base},
                          "add_sinusoidal");
}

}  // namespace longseq::attention::detail

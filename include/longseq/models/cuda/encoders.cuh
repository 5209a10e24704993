// CUDA op of the encoders: the fixed sinusoidal position code added to (B, L, H), one thread per element,
// computed in double as on the host (added in float for half and bf16 storage).
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"

namespace longseq::models::detail {

namespace encoders_cuda {

template <class T>
struct AddSinusoidal {
  T* y;
  index_t l, h;
  __device__ void operator()(index_t e) const {
    const index_t i = e % h, t = (e / h) % l;
    const double freq = pow(10000.0, -double(i - i % 2) / double(h));
    using A = accum_t<T>;  // half and bf16 add in float, rounding once
    const A pe = A(i % 2 == 0 ? sin(double(t) * freq) : cos(double(t) * freq));
    y[e] = T(A(y[e]) + pe);
  }
};

}  // namespace encoders_cuda

template <class T>
void add_sinusoidal(Context<device::cuda>& ctx, TensorView<T, device::cuda> y) {
  longseq::cuda::for_each(ctx.stream(), y.numel(), encoders_cuda::AddSinusoidal<T>{y.data, y.size(1), y.size(2)},
                          "add_sinusoidal");
}

}  // namespace longseq::models::detail

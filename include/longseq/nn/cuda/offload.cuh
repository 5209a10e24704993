// nn::Transfer<device::cuda>: how nn::Offload moves flat buffers to and from a CUDA device. Copies run on
// the device context's stream and are complete (synchronized) when they return, because the host reads or
// overwrites its side right after.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/memory.cuh"
#include "../offload.hpp"

namespace longseq::nn {

template <>
struct Transfer<device::cuda> {
  template <class U>
  static void upload(Context<device::cuda>& ctx, const U* src, U* dst, index_t n) {
    if (n == 0) return;
    LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, std::size_t(n) * sizeof(U), cudaMemcpyHostToDevice, ctx.stream()));
    ctx.synchronize();
  }
  template <class U>
  static void download(Context<device::cuda>& ctx, const U* src, U* dst, index_t n) {
    if (n == 0) return;
    LONGSEQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, std::size_t(n) * sizeof(U), cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
  }
  template <class U>
  static void zero(Context<device::cuda>& ctx, U* dst, index_t n) {
    if (n == 0) return;
    LONGSEQ_CUDA_CHECK(cudaMemsetAsync(dst, 0, std::size_t(n) * sizeof(U), ctx.stream()));
  }
  static void select(int ordinal) {
    if (ordinal < 0) return;
    const int n = cuda::device_count();
    LONGSEQ_CHECK(ordinal < n, "nn::Offload: CUDA device ordinal ", ordinal, " is out of range: ", n,
                  " device(s) present");
    LONGSEQ_CUDA_CHECK(cudaSetDevice(ordinal));
  }
};

}  // namespace longseq::nn

// The CUDA copies of train::Staging: a bucket of a device store to page-locked host memory and back. Plain
// cudaMemcpy on the legacy default stream, which waits for the work queued on the model's (blocking) stream,
// so the backward that wrote the gradients has finished when a bucket is read.
#pragma once
#include <cuda_runtime.h>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/pinned.cuh"
#include "../../core/device.hpp"
#include "../../core/shape.hpp"

namespace longseq::train::detail {

template <class T>
void stage_to_host(device::cuda, const T* src, T* dst, index_t n) {
  LONGSEQ_CUDA_CHECK(cudaMemcpy(dst, src, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToHost));
}
template <class T>
void stage_from_host(device::cuda, const T* src, T* dst, index_t n) {
  LONGSEQ_CUDA_CHECK(cudaMemcpy(dst, src, std::size_t(n) * sizeof(T), cudaMemcpyHostToDevice));
}

// Page-locked, grown on demand (a bucket's size at most; the copies are synchronous, so nothing reads it
// when it grows).
template <class T>
class StagingBuffer<T, device::cuda> {
 public:
  T* reserve(index_t n) { return static_cast<T*>(bytes_.reserve(std::size_t(n) * sizeof(T))); }

 private:
  longseq::cuda::PinnedBytes bytes_;
};

}  // namespace longseq::train::detail

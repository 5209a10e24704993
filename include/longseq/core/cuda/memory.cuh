// CUDA memory: the device::cuda allocation policy and host<->device tensor copies.
#pragma once
#include <cstddef>
#include <type_traits>

#include "../device.hpp"
#include "../tensor.hpp"
#include "check.cuh"

namespace longseq::device {

inline void* cuda::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // an out-of-memory error is not sticky: clear it so the caller may retry smaller
    LONGSEQ_FAIL("cudaMalloc of ", bytes, " bytes failed: ", cudaGetErrorName(e), " (",
                 cudaGetErrorString(e), ")");
  }
  return p;
}

inline void cuda::deallocate(void* p) noexcept {
  if (p) cudaFree(p);  // destructors must not throw; a failing free means the context is already broken
}

inline void cuda::zero(void* p, std::size_t bytes) {
  if (bytes) LONGSEQ_CUDA_CHECK(cudaMemset(p, 0, bytes));
}

}  // namespace longseq::device

namespace longseq {

// Copies between a contiguous host view and a contiguous device view of the same shape. Both are
// synchronous with respect to all device work: the whole device is synchronized first, so a result
// written by a kernel on any stream is complete, and the copy has landed when the call returns.
template <class T>
void copy_to_device(TensorView<const T, device::host> src, TensorView<T, device::cuda> dst) {
  LONGSEQ_CHECK(src.shape == dst.shape, "copy_to_device: host shape ", src.shape, " differs from device shape ",
                dst.shape);
  expect_contiguous(src, "src");
  expect_contiguous(dst, "dst");
  if (src.numel() == 0) return;
  LONGSEQ_CUDA_CHECK(cudaDeviceSynchronize());
  LONGSEQ_CUDA_CHECK(cudaMemcpy(dst.data, src.data, std::size_t(src.numel()) * sizeof(T), cudaMemcpyHostToDevice));
  LONGSEQ_CUDA_CHECK(cudaDeviceSynchronize());
}

template <class T>
void copy_to_host(TensorView<const T, device::cuda> src, TensorView<T, device::host> dst) {
  LONGSEQ_CHECK(src.shape == dst.shape, "copy_to_host: device shape ", src.shape, " differs from host shape ",
                dst.shape);
  expect_contiguous(src, "src");
  expect_contiguous(dst, "dst");
  if (src.numel() == 0) return;
  LONGSEQ_CUDA_CHECK(cudaDeviceSynchronize());
  LONGSEQ_CUDA_CHECK(cudaMemcpy(dst.data, src.data, std::size_t(src.numel()) * sizeof(T), cudaMemcpyDeviceToHost));
}

// New device tensor holding a copy of a host view (or tensor).
template <class T>
Tensor<std::remove_const_t<T>, device::cuda> to_device(TensorView<T, device::host> h) {
  using U = std::remove_const_t<T>;
  Tensor<U, device::cuda> d(h.shape);
  copy_to_device<U>(TensorView<const U, device::host>(h), d.view());
  return d;
}
template <class T>
Tensor<T, device::cuda> to_device(const Tensor<T, device::host>& h) {
  return to_device(h.view());
}

// New host tensor holding a copy of a device view (or tensor).
template <class T>
Tensor<std::remove_const_t<T>, device::host> to_host(TensorView<T, device::cuda> d) {
  using U = std::remove_const_t<T>;
  Tensor<U, device::host> h(d.shape);
  copy_to_host<U>(TensorView<const U, device::cuda>(d), h.view());
  return h;
}
template <class T>
Tensor<T, device::host> to_host(const Tensor<T, device::cuda>& d) {
  return to_host(d.view());
}

}  // namespace longseq

// The CUDA execution context: one stream, a cuBLAS handle bound to it, a cache of cuFFT plans, stream-ordered
// scratch memory, the workspace arena, the random seed and the mode. Owns and destroys all of them.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>

#include "../context.hpp"
#include "check.cuh"
#include "memory.cuh"

namespace longseq {

namespace cuda {

// Number of visible CUDA devices; 0 when there is none or the driver is unusable.
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

// Temporary device storage freed in stream order when it goes out of scope. The pool keeps freed blocks
// (see Context's constructor), so after the first step no call reaches cudaMalloc.
template <class T>
class Scratch {
 public:
  Scratch(std::size_t n, cudaStream_t s) : n_(n), stream_(s) {
    if (n) LONGSEQ_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&data_), n * sizeof(T), s));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    if (data_) cudaFreeAsync(data_, stream_);
  }
  T* data() const { return data_; }
  std::size_t size() const { return n_; }

 private:
  T* data_ = nullptr;
  std::size_t n_ = 0;
  cudaStream_t stream_ = nullptr;
};

}  // namespace cuda

template <>
struct Context<device::cuda> {
  using device_type = device::cuda;
  Arena<device::cuda> arena;
  std::uint64_t seed = 0;  // keys every Philox draw made through this context (dropout, masking)
  bool training = true;    // dropout and batch statistics are active only while training

  // Binds to device `ordinal` (the current one when negative) and creates the stream. The stream is a blocking
  // one, so it stays ordered with plain cudaMemcpy calls on the legacy default stream.
  explicit Context(int ordinal = -1) {
    LONGSEQ_CHECK(cuda::device_count() > 0, "no CUDA device is present");
    if (ordinal >= 0) LONGSEQ_CUDA_CHECK(cudaSetDevice(ordinal));
    LONGSEQ_CUDA_CHECK(cudaGetDevice(&device_));
    LONGSEQ_CUDA_CHECK(cudaStreamCreate(&stream_));
    // Keep freed scratch blocks in the pool instead of returning them at every synchronization.
    cudaMemPool_t pool;
    LONGSEQ_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
    std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();
    LONGSEQ_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() {
    // Errors cannot be thrown from here; finish outstanding work, then release in reverse order.
    cudaStreamSynchronize(stream_);
    for (auto& [key, plan] : plans_) cufftDestroy(plan);
    if (cublas_) cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

  // Created on first use and bound to this context's stream.
  cublasHandle_t cublas() {
    if (!cublas_) {
      LONGSEQ_CUBLAS_CHECK(cublasCreate(&cublas_));
      LONGSEQ_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    }
    return cublas_;
  }

  // A 1-D plan of `batch` contiguous transforms of length n, built once per (type, n, batch) and bound
  // to this context's stream.
  cufftHandle fft_plan(cufftType type, index_t n, index_t batch) {
    LONGSEQ_CHECK(n > 0 && batch > 0 && n <= std::numeric_limits<int>::max() &&
                      batch <= std::numeric_limits<int>::max(),
                  "cuFFT plan of length ", n, " and batch ", batch, " is out of range (each must be in [1, 2^31))");
    auto key = std::make_tuple(int(type), n, batch);
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    cufftHandle plan;
    LONGSEQ_CUFFT_CHECK(cufftPlan1d(&plan, int(n), type, int(batch)));
    cufftResult bound = cufftSetStream(plan, stream_);
    if (bound != CUFFT_SUCCESS) {
      cufftDestroy(plan);
      LONGSEQ_CUFFT_CHECK(bound);
    }
    plans_.emplace(key, plan);
    return plan;
  }
  std::size_t fft_plan_count() const { return plans_.size(); }

  template <class T>
  cuda::Scratch<T> scratch(std::size_t n) {
    return cuda::Scratch<T>(n, stream_);
  }

  void synchronize() { LONGSEQ_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::map<std::tuple<int, index_t, index_t>, cufftHandle> plans_;
};

using CudaContext = Context<device::cuda>;

}  // namespace longseq

// The CUDA execution context: one device, one stream, a cuBLAS handle bound to it, a bounded cache of cuFFT plans
// sharing one work area, stream-ordered scratch memory, the workspace arena, the random seed and the mode. Owns and destroys all of them.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>

#include "../context.hpp"
#include "../lru_cache.hpp"
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

// Makes `ordinal` the calling thread's current device for the guard's lifetime, then restores the previous one.
// Allocations (cudaMalloc, device::cuda::allocate) land on the current device, so code that allocates for a
// context bound to another ordinal holds one of these.
class DeviceGuard {
 public:
  explicit DeviceGuard(int ordinal) {
    LONGSEQ_CUDA_CHECK(cudaGetDevice(&previous_));
    if (ordinal >= 0 && ordinal != previous_) LONGSEQ_CUDA_CHECK(cudaSetDevice(ordinal));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace cuda

template <>
struct Context<device::cuda> {
  using device_type = device::cuda;
  Arena<device::cuda> arena;
  std::uint64_t seed = 0;  // keys every Philox draw made through this context (dropout, masking)
  bool training = true;    // dropout and batch statistics are active only while training

  // Plans kept by default; each holds some device memory besides the shared work area.
  static constexpr std::size_t default_plan_capacity = 32;

  // Binds to device `ordinal` (the current one when negative) and creates the stream. The stream is a blocking
  // one, so it stays ordered with plain cudaMemcpy calls on the legacy default stream.
  explicit Context(int ordinal = -1)
      : plans_(default_plan_capacity, [this](const PlanKey&, cufftHandle& p) { destroy_plan(p); }) {
    const int n = cuda::device_count();
    LONGSEQ_CHECK(n > 0, "no CUDA device is present");
    LONGSEQ_CHECK(ordinal < n, "CUDA device ordinal ", ordinal, " is out of range: ", n, " device(s) present");
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
    // Errors cannot be thrown from here; finish outstanding work, then release in reverse order, on this
    // context's device, leaving the caller's current device as it was.
    int previous = -1;
    cudaGetDevice(&previous);
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    plans_.clear();
    if (work_) cudaFree(work_);
    if (cublas_) cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
    if (previous >= 0) cudaSetDevice(previous);
  }

  int device() const { return device_; }
  // Makes this context's device current for the calling thread (a no-op when it already is). Every kernel
  // launch, cuBLAS and cuFFT call goes through stream(), so they all run on the context's own device even
  // when another thread or context switched the current device (a rank bound to --gpu 1, say).
  void activate() const {
    int cur = -1;
    LONGSEQ_CUDA_CHECK(cudaGetDevice(&cur));
    if (cur != device_) LONGSEQ_CUDA_CHECK(cudaSetDevice(device_));
  }
  cudaStream_t stream() const {
    activate();
    return stream_;
  }

  // Created on first use and bound to this context's stream.
  cublasHandle_t cublas() {
    activate();
    if (!cublas_) {
      LONGSEQ_CUBLAS_CHECK(cublasCreate(&cublas_));
      LONGSEQ_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    }
    return cublas_;
  }

  // A 1-D plan of `batch` contiguous transforms of length n, built once per (type, n, batch) and bound to this
  // context's stream. Plans are made with cufftMakePlanMany64 (so n * batch may pass 2^31 elements) and without
  // their own work area: all of them share one, grown to the largest plan's need and never past
  // fft_work_limit(). At most plan_capacity() plans are kept; the least recently used one is destroyed first.
  cufftHandle fft_plan(cufftType type, index_t n, index_t batch) {
    LONGSEQ_CHECK(n > 0 && batch > 0, "cuFFT plan of length ", n, " and batch ", batch,
                  " is out of range (each must be >= 1)");
    activate();
    const PlanKey key{int(type), n, batch};
    if (cufftHandle* p = plans_.find(key)) return *p;
    cufftHandle plan;
    LONGSEQ_CUFFT_CHECK(cufftCreate(&plan));
    std::size_t need = 0;
    long long len = n;
    cufftResult r = cufftSetAutoAllocation(plan, 0);
    if (r == CUFFT_SUCCESS)
      r = cufftMakePlanMany64(plan, 1, &len, nullptr, 1, 0, nullptr, 1, 0, type, (long long)batch, &need);
    if (r == CUFFT_SUCCESS) r = cufftSetStream(plan, stream_);
    if (r != CUFFT_SUCCESS) {
      cufftDestroy(plan);
      LONGSEQ_CUFFT_CHECK(r);
    }
    if (need > work_bytes_) {
      if (need > work_limit_) {
        cufftDestroy(plan);
        LONGSEQ_FAIL("cuFFT plan of length ", n, " and batch ", batch, " needs a work area of ", need,
                     " bytes, more than the context's fft_work_limit of ", work_limit_,
                     " bytes (raise it with set_fft_work_limit, or transform fewer rows at once)");
      }
      try {
        grow_work_area(need);
      } catch (...) {
        cufftDestroy(plan);
        throw;
      }
    }
    if (work_bytes_ > 0) {
      r = cufftSetWorkArea(plan, work_);
      if (r != CUFFT_SUCCESS) {
        cufftDestroy(plan);
        LONGSEQ_CUFFT_CHECK(r);
      }
    }
    return plans_.insert(key, plan);
  }
  std::size_t fft_plan_count() const { return plans_.size(); }
  std::size_t plan_capacity() const { return plans_.capacity(); }
  // At least 4: one op may hold three plans at once (fft_conv's input, kernel and inverse transforms).
  void set_plan_capacity(std::size_t c) {
    LONGSEQ_CHECK(c >= 4, "Context: plan capacity must be >= 4 (one FFT convolution uses 3 plans), got ", c);
    activate();
    plans_.set_capacity(c);
  }
  // Bytes of the shared cuFFT work area now, and the most it may grow to.
  std::size_t fft_work_bytes() const { return work_bytes_; }
  std::size_t fft_work_limit() const { return work_limit_; }
  void set_fft_work_limit(std::size_t bytes) { work_limit_ = bytes; }

  template <class T>
  cuda::Scratch<T> scratch(std::size_t n) {
    activate();
    return cuda::Scratch<T>(n, stream_);
  }

  void synchronize() { LONGSEQ_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  using PlanKey = std::tuple<int, index_t, index_t>;

  void destroy_plan(cufftHandle p) noexcept {
    // A plan may still be in flight on the stream: finish it before its resources go.
    cudaStreamSynchronize(stream_);
    cufftDestroy(p);
  }
  // Replaces the work area by a larger one and points every cached plan at it. Plans run in stream order,
  // so the old area may go once the stream has finished with it.
  void grow_work_area(std::size_t bytes) {
    void* fresh = nullptr;
    LONGSEQ_CUDA_CHECK(cudaMalloc(&fresh, bytes));
    LONGSEQ_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (work_) cudaFree(work_);
    work_ = fresh;
    work_bytes_ = bytes;
    plans_.for_each([&](const PlanKey&, cufftHandle& p) { LONGSEQ_CUFFT_CHECK(cufftSetWorkArea(p, work_)); });
  }

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* work_ = nullptr;
  std::size_t work_bytes_ = 0;
  std::size_t work_limit_ = std::size_t(4) << 30;  // 4 GiB: far above what the paper's lengths need
  LruCache<PlanKey, cufftHandle> plans_;
};

using CudaContext = Context<device::cuda>;

}  // namespace longseq

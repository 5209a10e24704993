// CUDA error checks: runtime, cuBLAS and cuFFT calls and kernel launches throw longseq::Error naming the call.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cufft.h>

#include "../error.hpp"

namespace longseq::cuda {

inline const char* cufft_error_string(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cuFFT error";
  }
}

}  // namespace longseq::cuda

// Each macro evaluates `call` once; on failure it throws with the call's text, the library's name for
// the error and the file:line of the macro use (through longseq::Error's source location).
#define LONGSEQ_CUDA_CHECK(call)                                                                     \
  do {                                                                                               \
    cudaError_t longseq_cuda_err_ = (call);                                                          \
    if (longseq_cuda_err_ != cudaSuccess)                                                            \
      throw ::longseq::Error(::longseq::detail::concat("CUDA call '", #call, "' failed: ",           \
                                                       cudaGetErrorName(longseq_cuda_err_), " (",    \
                                                       cudaGetErrorString(longseq_cuda_err_), ")")); \
  } while (0)

#define LONGSEQ_CUBLAS_CHECK(call)                                                                   \
  do {                                                                                               \
    cublasStatus_t longseq_cublas_st_ = (call);                                                      \
    if (longseq_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                 \
      throw ::longseq::Error(::longseq::detail::concat("cuBLAS call '", #call, "' failed: ",         \
                                                       cublasGetStatusString(longseq_cublas_st_)));  \
  } while (0)

#define LONGSEQ_CUFFT_CHECK(call)                                                                    \
  do {                                                                                               \
    cufftResult longseq_cufft_res_ = (call);                                                         \
    if (longseq_cufft_res_ != CUFFT_SUCCESS)                                                         \
      throw ::longseq::Error(::longseq::detail::concat(                                              \
          "cuFFT call '", #call, "' failed: ", ::longseq::cuda::cufft_error_string(longseq_cufft_res_))); \
  } while (0)

// After every kernel launch: reports bad launch configurations at once (the error is consumed, so a
// later unrelated check does not see it). Faults inside the kernel surface at the next synchronizing call,
// unless LONGSEQ_CUDA_SYNC_CHECKS is defined: then every launch is followed by a device synchronization so
// that the failing kernel is named (slow; for debugging).
#if defined(LONGSEQ_CUDA_SYNC_CHECKS)
#define LONGSEQ_CUDA_SYNC_AFTER_LAUNCH_(kernel_name)                                                 \
  do {                                                                                               \
    cudaError_t longseq_sync_err_ = cudaDeviceSynchronize();                                         \
    if (longseq_sync_err_ != cudaSuccess)                                                            \
      throw ::longseq::Error(::longseq::detail::concat("CUDA kernel '", kernel_name, "' failed: ",    \
                                                       cudaGetErrorName(longseq_sync_err_), " (",    \
                                                       cudaGetErrorString(longseq_sync_err_), ")")); \
  } while (0)
#else
#define LONGSEQ_CUDA_SYNC_AFTER_LAUNCH_(kernel_name) \
  do {                                               \
  } while (0)
#endif

#define LONGSEQ_CUDA_LAUNCH_CHECK(kernel_name)                                                       \
  do {                                                                                               \
    cudaError_t longseq_launch_err_ = cudaGetLastError();                                            \
    if (longseq_launch_err_ != cudaSuccess)                                                          \
      throw ::longseq::Error(::longseq::detail::concat("CUDA launch of '", kernel_name, "' failed: ", \
                                                       cudaGetErrorName(longseq_launch_err_), " (",  \
                                                       cudaGetErrorString(longseq_launch_err_), ")")); \
    LONGSEQ_CUDA_SYNC_AFTER_LAUNCH_(kernel_name);                                                    \
  } while (0)

// The trainers' run-time set-up: checks of the --device / --gpu / --precision options (a clear error when the
// binary or the machine cannot; dispatch.hpp turns them into types), and the BLAS thread count.
#pragma once
#include <cblas.h>

#include <cstdlib>
#include <string>

#include <longseq/core/error.hpp>
#if defined(__CUDACC__)
#include <longseq/core/cuda/context.cuh>
#endif

namespace examples {

// The host layers parallelize with OpenMP and call BLAS inside those loops; a threaded OpenBLAS there
// oversubscribes the cores (a tiny Fashion-MNIST run took 468 s instead of 7 s on 2 cores). Unless the
// user chose a count (OPENBLAS_NUM_THREADS), BLAS runs on the calling thread.
inline void single_threaded_blas() {
#if defined(OPENBLAS_CONFIG_H)
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) openblas_set_num_threads(1);
#endif
}

// --device cuda needs a binary compiled by nvcc (LONGSEQ_CUDA=ON) and a visible device; says which is missing.
inline void check_device(const std::string& device, [[maybe_unused]] int gpu) {
  if (device != "cuda") return;
#if defined(__CUDACC__)
  const int n = longseq::cuda::device_count();
  LONGSEQ_CHECK(n > 0, "--device cuda: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
  LONGSEQ_CHECK(gpu < n, "--gpu ", gpu, ": only ", n, " CUDA device(s) are visible");
#else
  LONGSEQ_FAIL("--device cuda: this binary was built without CUDA; configure with -DLONGSEQ_CUDA=ON (needs nvcc) "
               "and rebuild, or use --device host");
#endif
}

// Narrow storage is a GPU feature: on the host every layer computes in the parameters' type.
inline void check_precision(const std::string& device, const std::string& precision) {
  LONGSEQ_CHECK(precision == "fp32" || device == "cuda", "--precision ", precision,
                " needs --device cuda (the host runs in fp32)");
}

// The initial dynamic loss scale: the flag when given (>= 0; 0 is off), else 2^16 for fp16, whose narrow
// exponent range needs it, and off for fp32 and bf16.
inline double initial_loss_scale(double flag, const std::string& precision) {
  if (flag >= 0) return flag;
  return precision == "fp16" ? 65536.0 : 0.0;
}

inline constexpr const char* precision_help =
    "storage of the model on the GPU: fp32, bf16 (every model; SSM kernels and FFTs stay fp32) or fp16 "
    "(Transformers); AdamW keeps fp32 master weights for bf16 and fp16";
inline constexpr const char* loss_scale_help =
    "initial dynamic loss scale, a power of two (0: off; default 65536 with --precision fp16, off otherwise)";

inline constexpr const char* device_help =
    "host, or cuda: the whole model (encoder, blocks, head), its parameters and AdamW live on the GPU; batches are "
    "staged from the host";

}  // namespace examples

// Execution context handed to every forward/backward: the device policy's resources, the workspace
// arena, the random seed and the mode. The CUDA specialization lives in core/cuda/context.cuh.
#pragma once
#include <cstdint>

#include "arena.hpp"
#include "device.hpp"
#include "fftw_plans.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace longseq {

template <class D>
struct Context;

template <>
struct Context<device::host> {
  using device_type = device::host;
  Arena<device::host> arena;
  std::uint64_t seed = 0;  // keys every Philox draw made through this context (dropout, masking)
  bool training = true;    // dropout and batch statistics are active only while training
  int threads = default_threads();
  FftwPlans fftw;          // FFT plans made on first use and reused by every later call

  static int default_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
  }
  void synchronize() {}
};

using HostContext = Context<device::host>;

}  // namespace longseq

// Device policies: tag types selecting where memory lives and which kernels run.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#include "error.hpp"

namespace longseq::device {

// The host policy: OpenMP threads, BLAS for products, FFTW for transforms.
struct host {
  static constexpr const char* name = "host";
  static constexpr bool is_gpu = false;
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    // 256-byte alignment matches the arena's slice alignment and cudaMalloc's guarantee.
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    LONGSEQ_CHECK(p != nullptr, "host allocation of ", bytes, " bytes failed");
    return p;
  }
  static void deallocate(void* p) noexcept { std::free(p); }
  static void zero(void* p, std::size_t bytes) {
    if (bytes) std::memset(p, 0, bytes);
  }
};

// The CUDA policy: memory and kernels on the current CUDA device; see core/cuda/*.cuh.
struct cuda {
  static constexpr const char* name = "cuda";
  static constexpr bool is_gpu = true;
  static void* allocate(std::size_t bytes);
  static void deallocate(void* p) noexcept;
  static void zero(void* p, std::size_t bytes);  // ordered with the legacy default stream
};

}  // namespace longseq::device

namespace longseq {

template <class D>
concept DevicePolicy = requires(std::size_t n, void* p) {
  { D::name } -> std::convertible_to<const char*>;
  { D::is_gpu } -> std::convertible_to<bool>;
  { D::allocate(n) } -> std::same_as<void*>;
  D::deallocate(p);
  D::zero(p, n);
};

}  // namespace longseq

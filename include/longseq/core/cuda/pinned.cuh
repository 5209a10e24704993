// Page-locked host memory, grown on demand: the host side of asynchronous and full-speed copies (the batch
// stage's slots, train::Staging's buckets). Growing frees the old block, so the caller grows it only when no
// copy still reads it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "check.cuh"

namespace longseq::cuda {

class PinnedBytes {
 public:
  PinnedBytes() = default;
  PinnedBytes(const PinnedBytes&) = delete;
  PinnedBytes& operator=(const PinnedBytes&) = delete;
  ~PinnedBytes() {
    if (p_) cudaFreeHost(p_);
  }
  void* reserve(std::size_t bytes) {
    if (bytes > cap_) {
      if (p_) LONGSEQ_CUDA_CHECK(cudaFreeHost(p_));
      p_ = nullptr;
      cap_ = 0;
      LONGSEQ_CUDA_CHECK(cudaMallocHost(&p_, bytes));
      cap_ = bytes;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  std::size_t cap_ = 0;
};

}  // namespace longseq::cuda

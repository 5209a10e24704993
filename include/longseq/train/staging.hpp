// train::Staging: collectives for a device store through a communicator that works on host memory (MPI
// without CUDA support): the buffer is copied to the host one bucket at a time, reduced or broadcast there
// (half and bf16 in float), and copied back. train::fit uses it to all-reduce a CUDA store's gradients and
// to broadcast its parameters with MpiCommunicator. The bucket logic is the same on every policy; on the host
// the copies are plain copies, which is how the host tests run it.
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../core/dtype.hpp"
#include "../core/parameters.hpp"
#include "distributed.hpp"

namespace longseq::train {

namespace detail {
// Store memory -> staging buffer, and back. CUDA versions in train/cuda/staging.cuh.
template <class T>
void stage_to_host(device::host, const T* src, T* dst, index_t n) {
  std::copy_n(src, n, dst);
}
template <class T>
void stage_from_host(device::host, const T* src, T* dst, index_t n) {
  std::copy_n(src, n, dst);
}
// The host buffer a bucket is staged in: ordinary memory here; page-locked for a CUDA store
// (train/cuda/staging.cuh), so the copies run at the bus's speed without a driver bounce buffer.
template <class T, class D>
class StagingBuffer {
 public:
  T* reserve(index_t n) {
    v_.resize(std::size_t(n));
    return v_.data();
  }

 private:
  std::vector<T> v_;
};
}  // namespace detail
}  // namespace longseq::train

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)
#include "cuda/staging.cuh"
#endif

namespace longseq::train {

// Whether a communicator's collectives take host memory (MPI, SingleProcess, test doubles) rather than device
// memory (NcclCommunicator says so with `static constexpr bool device_memory = true`).
template <class C>
inline constexpr bool host_memory_collectives = !requires { requires C::device_memory; };

template <class T, class D>
class Staging {
 public:
  using A = accum_t<T>;  // what the communicator reduces: float for half and bf16
  static constexpr index_t default_bucket = index_t(1) << 22;

  explicit Staging(index_t bucket = default_bucket) : bucket_(bucket) {
    LONGSEQ_CHECK(bucket > 0, "Staging: bucket = ", bucket, " elements, expected > 0");
  }
  index_t bucket() const { return bucket_; }
  index_t buckets_sent() const { return sent_; }

  // Sums data[0, n) (in D's memory) over ranks, bucket by bucket.
  template <Communicator C>
  void allreduce_sum(C& c, T* data, index_t n) {
    each_bucket(data, n, [&](A* p, index_t m) { c.allreduce_sum(p, m); });
  }
  // Every rank gets root's data[0, n).
  template <Communicator C>
  void broadcast(C& c, T* data, index_t n, int root) {
    each_bucket(data, n, [&](A* p, index_t m) { c.broadcast(p, m, root); });
  }

 private:
  template <class F>
  void each_bucket(T* data, index_t n, F&& collective) {
    for (index_t b = 0; b < n; b += bucket_) {
      const index_t m = std::min(bucket_, n - b);
      T* raw = raw_.reserve(m);
      detail::stage_to_host(D{}, data + b, raw, m);
      if constexpr (std::is_same_v<A, T>) {
        collective(raw, m);
      } else {
        wide_.resize(std::size_t(m));
        for (index_t i = 0; i < m; ++i) wide_[std::size_t(i)] = A(raw[i]);
        collective(wide_.data(), m);
        for (index_t i = 0; i < m; ++i) raw[i] = T(wide_[std::size_t(i)]);
      }
      detail::stage_from_host(D{}, raw, data + b, m);
      ++sent_;
    }
  }

  index_t bucket_;
  index_t sent_ = 0;
  detail::StagingBuffer<T, D> raw_;
  std::vector<A> wide_;
};

// A device store's gradients summed over ranks, and rank 0's parameters on every rank, through host memory.
// (Host stores use allreduce_gradients / broadcast_parameters in distributed.hpp directly.)
template <Communicator C, class T, class D>
  requires(D::is_gpu && host_memory_collectives<C>)
void allreduce_gradients(C& c, ParamStore<T, D>& store, Staging<T, D>& staging) {
  auto g = store.grads();
  staging.allreduce_sum(c, g.data, g.numel());
}
template <Communicator C, class T, class D>
  requires(D::is_gpu && host_memory_collectives<C>)
void broadcast_parameters(C& c, ParamStore<T, D>& store, Staging<T, D>& staging) {
  auto v = store.values();
  staging.broadcast(c, v.data, v.numel(), 0);
}

}  // namespace longseq::train

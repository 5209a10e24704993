// Owning, move-only storage for n elements of T on device D (uninitialized on the device, zeroed on host).
#pragma once
#include <cstddef>
#include <cstring>
#include <utility>

#include "device.hpp"

namespace longseq {

template <class T, class D = device::host>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t n) : n_(n) {
    data_ = static_cast<T*>(D::allocate(n * sizeof(T)));
    if constexpr (!D::is_gpu)
      if (n) std::memset(static_cast<void*>(data_), 0, n * sizeof(T));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~Buffer() { release(); }

  T* data() const { return data_; }
  std::size_t size() const { return n_; }

 private:
  void release() noexcept {
    if (data_) D::deallocate(data_);
    data_ = nullptr;
    n_ = 0;
  }
  T* data_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace longseq

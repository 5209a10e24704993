// Workspace arena: a first pass counts the bytes every request needs, then one allocation is carved.
#pragma once
#include <cstddef>

#include "buffer.hpp"
#include "tensor.hpp"

namespace longseq {

template <class D = device::host>
class Arena {
 public:
  static constexpr std::size_t alignment = 256;  // keeps every slice aligned for vector loads and cuBLAS

  // Counting mode: take() records sizes and returns views with null data.
  void begin_count() { counting_ = true; offset_ = 0; peak_ = 0; }
  // Allocates the peak counted so far (growing only) and switches to carving mode.
  void allocate() {
    if (peak_ > buf_.size()) buf_ = Buffer<std::byte, D>(peak_);
    counting_ = false;
    offset_ = 0;
  }
  // Starts carving from the beginning again (the previous slices become invalid).
  void reset() { offset_ = 0; }
  std::size_t mark() const { return offset_; }
  void release_to(std::size_t mark) { offset_ = mark; }

  template <class T>
  TensorView<T, D> take(Shape s) {
    std::size_t bytes = (std::size_t(s.numel()) * sizeof(T) + alignment - 1) / alignment * alignment;
    std::size_t at = offset_;
    offset_ += bytes;
    if (offset_ > peak_) peak_ = offset_;
    if (counting_) return TensorView<T, D>(nullptr, s);
    LONGSEQ_CHECK(offset_ <= buf_.size(), "workspace arena exhausted: request of ", bytes,
                  " bytes for shape ", s, " at offset ", at, " exceeds the ", buf_.size(),
                  " bytes counted; count the workspace before carving");
    return TensorView<T, D>(reinterpret_cast<T*>(buf_.data() + at), s);
  }
  bool counting() const { return counting_; }
  std::size_t capacity() const { return buf_.size(); }
  std::size_t peak() const { return peak_; }

 private:
  Buffer<std::byte, D> buf_;
  std::size_t offset_ = 0, peak_ = 0;
  bool counting_ = false;
};

}  // namespace longseq

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
  // Bytes one slice of n values of T occupies (rounded up to the slice alignment).
  template <class T>
  static constexpr std::size_t bytes_for(std::size_t n) {
    return (n * sizeof(T) + alignment - 1) / alignment * alignment;
  }

  // Scratch of one op call: room for `bytes` past the current offset, handed back when the scope ends.
  // The buffer grows only while nothing is carved (growing moves it), so an op opens its scope before
  // anything else takes from the arena; after the largest call of a run no call allocates (the first
  // touch of the pages is paid once, not per call). Works in either mode: a scope always carves.
  class Scope {
   public:
    Scope(Arena& a, std::size_t bytes) : a_(a), mark_(a.offset_), end_(a.offset_ + bytes) {
      if (end_ > a.buf_.size()) {
        LONGSEQ_CHECK(a.offset_ == 0, "workspace arena: a scratch scope of ", bytes, " bytes needs the buffer to ",
                      "grow from ", a.buf_.size(), " bytes while ", a.offset_,
                      " bytes are carved (growing would move them); open the scope before other slices");
        a.buf_ = Buffer<std::byte, D>(end_);
      }
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() { a_.offset_ = mark_; }
    // n values of T, aligned to Arena::alignment; the scope's size must have counted them (bytes_for).
    template <class T>
    T* take(std::size_t n) {
      const std::size_t b = bytes_for<T>(n);
      LONGSEQ_CHECK(a_.offset_ + b <= end_, "workspace scope exhausted: ", b, " bytes requested at offset ",
                    a_.offset_, " of a scope ending at ", end_);
      T* p = reinterpret_cast<T*>(a_.buf_.data() + a_.offset_);
      a_.offset_ += b;
      if (a_.offset_ > a_.peak_) a_.peak_ = a_.offset_;
      return p;
    }

   private:
    Arena& a_;
    std::size_t mark_, end_;
  };
  Scope scope(std::size_t bytes) { return Scope(*this, bytes); }

  bool counting() const { return counting_; }
  std::size_t capacity() const { return buf_.size(); }
  std::size_t peak() const { return peak_; }

 private:
  Buffer<std::byte, D> buf_;
  std::size_t offset_ = 0, peak_ = 0;
  bool counting_ = false;
};

}  // namespace longseq

// Workspace arena: a first pass counts the bytes every request needs, then one allocation is carved.
#pragma once
#include <atomic>
#include <cstddef>
#include <thread>

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
  // One context may be shared by threads that run ops at once (the FFT plan cache allows it): the first
  // thread to open a scope owns the arena until its last scope ends, and a scope opened meanwhile by
  // another thread gets a buffer of its own (an allocation per call, only in that concurrent case).
  class Scope {
   public:
    Scope(Arena& a, std::size_t bytes) : a_(a), shared_(a.claim()) {
      if (!shared_) {
        own_ = Buffer<std::byte, D>(bytes);
        end_ = bytes;
        return;
      }
      mark_ = a.offset_;
      end_ = a.offset_ + bytes;
      if (end_ > a.buf_.size()) {
        // A throwing constructor runs no destructor: hand the claim back before any throw.
        const bool carved = a.offset_ != 0;
        if (carved) a.release_claim();
        LONGSEQ_CHECK(!carved, "workspace arena: a scratch scope of ", bytes, " bytes needs the buffer to ",
                      "grow from ", a.buf_.size(), " bytes while ", a.offset_,
                      " bytes are carved (growing would move them); open the scope before other slices");
        try {
          a.buf_ = Buffer<std::byte, D>(end_);
        } catch (...) {
          a.release_claim();
          throw;
        }
      }
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() {
      if (!shared_) return;
      a_.offset_ = mark_;
      a_.release_claim();
    }
    // n values of T, aligned to Arena::alignment; the scope's size must have counted them (bytes_for).
    template <class T>
    T* take(std::size_t n) {
      const std::size_t b = bytes_for<T>(n);
      std::size_t& at = shared_ ? a_.offset_ : own_offset_;
      LONGSEQ_CHECK(at + b <= end_, "workspace scope exhausted: ", b, " bytes requested at offset ", at,
                    " of a scope ending at ", end_);
      std::byte* base = shared_ ? a_.buf_.data() : own_.data();
      T* p = reinterpret_cast<T*>(base + at);
      at += b;
      if (shared_ && a_.offset_ > a_.peak_) a_.peak_ = a_.offset_;
      return p;
    }

   private:
    Arena& a_;
    bool shared_;
    std::size_t mark_ = 0, end_ = 0, own_offset_ = 0;
    Buffer<std::byte, D> own_;  // only when another thread owns the arena
  };
  Scope scope(std::size_t bytes) { return Scope(*this, bytes); }

  Arena() = default;
  // Moving is for an arena no scope is open on (a context being moved); the owner is not carried over.
  Arena(Arena&& o) noexcept
      : buf_(std::move(o.buf_)), offset_(o.offset_), peak_(o.peak_), counting_(o.counting_) {}
  Arena& operator=(Arena&& o) noexcept {
    buf_ = std::move(o.buf_);
    offset_ = o.offset_;
    peak_ = o.peak_;
    counting_ = o.counting_;
    return *this;
  }

  bool counting() const { return counting_; }
  std::size_t capacity() const { return buf_.size(); }
  std::size_t peak() const { return peak_; }

 private:
  // Scope ownership: the owning thread's id and how many of its scopes are open (only it changes depth_).
  bool claim() {
    const std::thread::id me = std::this_thread::get_id();
    std::thread::id current{};
    if (owner_.compare_exchange_strong(current, me)) {
      depth_ = 1;
      return true;
    }
    if (current != me) return false;
    ++depth_;
    return true;
  }
  void release_claim() {
    if (--depth_ == 0) owner_.store(std::thread::id{});
  }

  Buffer<std::byte, D> buf_;
  std::size_t offset_ = 0, peak_ = 0;
  bool counting_ = false;
  std::atomic<std::thread::id> owner_{};
  int depth_ = 0;
};

}  // namespace longseq

// Non-owning tensor views (pointer, shape, strides) and owning tensors built on Buffer.
#pragma once
#include <string_view>
#include <type_traits>

#include "buffer.hpp"
#include "device.hpp"
#include "dtype.hpp"
#include "shape.hpp"

namespace longseq {

template <class T, class D = device::host>
struct TensorView {
  using value_type = T;
  using device_type = D;

  T* data = nullptr;
  Shape shape;
  Shape strides;  // in elements

  TensorView() = default;
  TensorView(T* p, Shape s) : data(p), shape(s), strides(contiguous_strides(s)) {}
  TensorView(T* p, Shape s, Shape st) : data(p), shape(s), strides(st) {}
  // A view of T converts to a view of const T.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  TensorView(const TensorView<U, D>& o) : data(o.data), shape(o.shape), strides(o.strides) {}

  int rank() const { return shape.rank; }
  index_t numel() const { return shape.numel(); }
  index_t size(int i) const { return shape.dim(i); }
  bool empty() const { return numel() == 0; }
  bool is_contiguous() const { return strides == contiguous_strides(shape); }

  // Element access for host code and tests; bounds are the caller's job in hot loops.
  template <class... I>
  T& operator()(I... idx) const {
    static_assert(!D::is_gpu || sizeof...(I) == 0, "element access is host-only");
    index_t off = 0;
    int k = 0;
    ((off += index_t(idx) * strides.dims[k++]), ...);
    return data[off];
  }
  T& operator[](index_t i) const { return data[i]; }

  // Same memory, new shape; requires a contiguous view.
  TensorView reshape(Shape s) const {
    LONGSEQ_CHECK(is_contiguous(), "reshape of a non-contiguous view ", shape);
    LONGSEQ_CHECK(s.numel() == numel(), "cannot reshape ", shape, " to ", s);
    return TensorView(data, s);
  }
  // Sub-tensor at index i of the leading dimension.
  TensorView select(index_t i) const {
    LONGSEQ_CHECK(rank() >= 1 && i >= 0 && i < shape[0], "index ", i, " out of range for ", shape);
    Shape s, st;
    s.rank = st.rank = rank() - 1;
    for (int k = 1; k < rank(); ++k) { s.dims[k - 1] = shape[k]; st.dims[k - 1] = strides[k]; }
    return TensorView(data + i * strides[0], s, st);
  }
  // Rows [begin, end) of the leading dimension.
  TensorView slice(index_t begin, index_t end) const {
    LONGSEQ_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape[0], "slice [", begin, ", ",
                  end, ") out of range for ", shape);
    TensorView v = *this;
    v.data = data + begin * strides[0];
    v.shape.dims[0] = end - begin;
    return v;
  }
};

// Shape checks with messages naming the tensor and the caller's file and line.
template <class T, class D>
void expect_shape(const TensorView<T, D>& t, const Shape& want, std::string_view name,
                  std::source_location loc = std::source_location::current()) {
  if (!(t.shape == want))
    throw Error(detail::concat("tensor '", name, "' has shape ", t.shape, ", expected ", want), loc);
}
template <class T, class D>
void expect_rank(const TensorView<T, D>& t, int rank, std::string_view name,
                 std::source_location loc = std::source_location::current()) {
  if (t.rank() != rank)
    throw Error(detail::concat("tensor '", name, "' has rank ", t.rank(), " (shape ", t.shape,
                               "), expected rank ", rank), loc);
}
template <class T, class D>
void expect_contiguous(const TensorView<T, D>& t, std::string_view name,
                       std::source_location loc = std::source_location::current()) {
  if (!t.is_contiguous())
    throw Error(detail::concat("tensor '", name, "' with shape ", t.shape, " must be contiguous"), loc);
}

// An owning tensor: a Buffer plus a contiguous view of it.
template <class T, class D = device::host>
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape s) : buf_(std::size_t(s.numel())), shape_(s) {}
  Tensor(Shape s, T fill) : Tensor(s) {
    static_assert(!D::is_gpu, "fill-constructor is host-only; use ops::fill on the device");
    for (index_t i = 0; i < s.numel(); ++i) buf_.data()[i] = fill;
  }
  TensorView<T, D> view() { return {buf_.data(), shape_}; }
  TensorView<const T, D> view() const { return {buf_.data(), shape_}; }
  operator TensorView<T, D>() { return view(); }
  operator TensorView<const T, D>() const { return view(); }
  T* data() { return buf_.data(); }
  const T* data() const { return buf_.data(); }
  const Shape& shape() const { return shape_; }
  index_t numel() const { return shape_.numel(); }
  index_t size(int i) const { return shape_.dim(i); }
  template <class... I>
  T& operator()(I... idx) { return view()(idx...); }
  template <class... I>
  const T& operator()(I... idx) const { return view()(idx...); }
  T& operator[](index_t i) { return buf_.data()[i]; }
  const T& operator[](index_t i) const { return buf_.data()[i]; }
  // Reallocates only when the element count grows.
  void resize(Shape s) {
    if (std::size_t(s.numel()) > buf_.size()) buf_ = Buffer<T, D>(std::size_t(s.numel()));
    shape_ = s;
  }

 private:
  Buffer<T, D> buf_;
  Shape shape_;
};

}  // namespace longseq

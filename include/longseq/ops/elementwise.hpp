// Elementwise host ops: fill, copy (with conversion), add, axpy, scale, mul, bias add and the (B,L,H) <-> (B,H,L) transpose.
#pragma once
#include <algorithm>
#include <type_traits>

#include "common.hpp"

namespace longseq::ops {

namespace detail {

// Applies f(i) for i < n, on several threads when n is large.
template <class F>
void for_each_index(const Context<device::host>& ctx, index_t n, F f) {
  int nt = threads_for(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t i = 0; i < n; ++i) f(i);
}

template <class T, class U>
void check_same(const TensorView<T>& a, const TensorView<U>& b, std::string_view an, std::string_view bn) {
  expect_contiguous(a, an);
  expect_contiguous(b, bn);
  expect_same_shape(b, a.shape, bn, an);
}

}  // namespace detail

// y[i] = value; y contiguous.
template <class T>
void fill(Context<device::host>& ctx, TensorView<T> y, std::type_identity_t<T> value) {
  expect_contiguous(y, "y");
  detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = value; });
}

// y = x, converting element types (through float for half/bf16). x may have any strides (for example
// a slice or a permuted view); y must be contiguous and of the same shape.
template <class T, class U>
void copy(Context<device::host>& ctx, TensorView<const U> x, TensorView<T> y) {
  expect_contiguous(y, "y");
  detail::expect_same_shape(y, x.shape, "y", "x");
  using V = std::conditional_t<std::is_same_v<U, half> || std::is_same_v<U, bf16>, float, U>;
  if (x.is_contiguous()) {
    detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = T(V(x.data[i])); });
    return;
  }
  int rank = x.rank();
  detail::for_each_index(ctx, y.numel(), [&](index_t i) {
    index_t off = 0, rest = i;
    for (int d = rank - 1; d >= 0; --d) {
      off += (rest % x.shape.dims[d]) * x.strides.dims[d];
      rest /= x.shape.dims[d];
    }
    y.data[i] = T(V(x.data[off]));
  });
}
template <class T>
void copy(Context<device::host>& ctx, TensorView<T> x, TensorView<T> y) {
  copy<T, T>(ctx, TensorView<const T>(x), y);
}

// y = a + b (y may alias a or b).
template <class T>
void add(Context<device::host>& ctx, detail::In<T> a, detail::In<T> b, TensorView<T> y) {
  using W = accum_t<T>;
  detail::check_same(a, b, "a", "b");
  detail::check_same(a, y, "a", "y");
  detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = T(W(a.data[i]) + W(b.data[i])); });
}

// y += x.
template <class T>
void add_inplace(Context<device::host>& ctx, TensorView<T> y, detail::In<T> x) {
  using W = accum_t<T>;
  detail::check_same(x, y, "x", "y");
  detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = T(W(y.data[i]) + W(x.data[i])); });
}

// y += alpha * x.
template <class T>
void axpy(Context<device::host>& ctx, accum_t<T> alpha, detail::In<T> x, TensorView<T> y) {
  using W = accum_t<T>;
  detail::check_same(x, y, "x", "y");
  detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = T(W(y.data[i]) + alpha * W(x.data[i])); });
}

// y *= alpha, in place.
template <class T>
void scale(Context<device::host>& ctx, TensorView<T> y, accum_t<T> alpha) {
  using W = accum_t<T>;
  expect_contiguous(y, "y");
  detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = T(alpha * W(y.data[i])); });
}

// y = a * b elementwise (y may alias a or b).
template <class T>
void mul(Context<device::host>& ctx, detail::In<T> a, detail::In<T> b, TensorView<T> y) {
  using W = accum_t<T>;
  detail::check_same(a, b, "a", "b");
  detail::check_same(a, y, "a", "y");
  detail::for_each_index(ctx, y.numel(), [&](index_t i) { y.data[i] = T(W(a.data[i]) * W(b.data[i])); });
}

// Gradients of y = a * b: da = dy * b, db = dy * a (both written; a null view is skipped).
template <class T>
void mul_backward(Context<device::host>& ctx, detail::In<T> a, detail::In<T> b, detail::In<T> dy, TensorView<T> da,
                  TensorView<T> db) {
  using W = accum_t<T>;
  detail::check_same(a, b, "a", "b");
  detail::check_same(a, dy, "a", "dy");
  if (da.data != nullptr) detail::check_same(a, da, "a", "da");
  if (db.data != nullptr) detail::check_same(a, db, "a", "db");
  detail::for_each_index(ctx, a.numel(), [&](index_t i) {
    W g = W(dy.data[i]), av = W(a.data[i]), bv = W(b.data[i]);
    if (da.data != nullptr) da.data[i] = T(g * bv);
    if (db.data != nullptr) db.data[i] = T(g * av);
  });
}

// y (..., H) += bias (H) on every row (the bias gradient is ops::sum_rows of dy).
template <class T>
void add_bias(Context<device::host>& ctx, TensorView<T> y, detail::In<T> bias) {
  using W = accum_t<T>;
  expect_contiguous(y, "y");
  expect_contiguous(bias, "bias");
  LONGSEQ_CHECK(y.rank() >= 1, "add_bias: tensor 'y' has shape ", y.shape, ", expected rank >= 1 (..., H)");
  index_t H = y.size(-1), rows = detail::leading_rows(y.shape);
  expect_shape(bias, Shape{H}, "bias");
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r)
    for (index_t h = 0; h < H; ++h) y.data[r * H + h] = T(W(y.data[r * H + h]) + W(bias.data[h]));
}

namespace detail {

// Calls f(b, l0, l1, h0, h1) on the tile12 x tile12 tiles of B matrices (L, H), in parallel over batch x
// tiles: the passes that read (B, L, H) and write (B, H, L) or back touch one tile of each side at a time,
// so both stay in cache (a whole row of the strided side would not).
inline constexpr index_t tile12 = 32;
template <class F>
void for_each_tile12(const Context<device::host>& ctx, index_t B, index_t L, index_t H, F f) {
  constexpr index_t tile = tile12;
  index_t tl = (L + tile - 1) / tile, th = (H + tile - 1) / tile;
  int nt = threads_for(ctx, B * L * H);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2) if (nt > 1)
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < tl * th; ++t) {
      index_t l0 = (t / th) * tile, h0 = (t % th) * tile;
      f(b, l0, std::min(L, l0 + tile), h0, std::min(H, h0 + tile));
    }
}

}  // namespace detail

// y[b, j, i] = x[b, i, j]: x (B, L, H) -> y (B, H, L) and, called again, back. Its own backward:
// the gradient of a transpose is the transpose of the gradient. Tiled so both sides stay in cache;
// within a tile the inner loop runs along the written rows (strided stores with a stride of a whole
// row, often a multiple of 4 KiB, keep evicting each other from the cache: 5x slower measured).
template <class T>
void transpose12(Context<device::host>& ctx, detail::In<T> x, TensorView<T> y) {
  expect_rank(x, 3, "x");
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  index_t B = x.shape[0], L = x.shape[1], H = x.shape[2];
  expect_shape(y, Shape{B, H, L}, "y");
  LONGSEQ_CHECK(x.data != y.data || x.numel() == 0, "transpose12: tensors 'x' and 'y' must not alias");
  detail::for_each_tile12(ctx, B, L, H, [&](index_t b, index_t l0, index_t l1, index_t h0, index_t h1) {
    const T* xb = x.data + b * L * H;
    T* yb = y.data + b * L * H;
    for (index_t h = h0; h < h1; ++h)
      for (index_t l = l0; l < l1; ++l) yb[h * L + l] = xb[l * H + h];
  });
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/elementwise.cuh"
#endif

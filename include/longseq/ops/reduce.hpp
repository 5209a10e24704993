// Reductions: sum over leading rows (bias gradients), and mean / max with argmax over one axis, with backwards.
#pragma once
#include <cstdint>
#include <limits>
#include <type_traits>

#include "common.hpp"

namespace longseq::ops {

// y (H) = sum over all rows of x (..., H); y is overwritten, or added to with accumulate = true (as for
// a bias gradient). The order of summation does not depend on the number of threads.
template <class T>
void sum_rows(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x, TensorView<T> y,
              bool accumulate = false) {
  using W = accum_t<T>;
  expect_contiguous(x, "x");
  expect_contiguous(y, "y");
  LONGSEQ_CHECK(x.rank() >= 1, "sum_rows: tensor 'x' has shape ", x.shape, ", expected rank >= 1 (..., H)");
  index_t H = x.size(-1), rows = detail::leading_rows(x.shape);
  expect_shape(y, Shape{H}, "y");
  detail::sum_over_rows<W>(
      ctx, rows, H,
      [&](index_t r, W* acc) {
        const T* xr = x.data + r * H;
        for (index_t h = 0; h < H; ++h) acc[h] += W(xr[h]);
      },
      [&](const W* s) {
        for (index_t h = 0; h < H; ++h) y.data[h] = T((accumulate ? W(y.data[h]) : W(0)) + s[h]);
      });
}

namespace detail {

// x seen as (outer, n, inner) around `axis`; y must have x's shape without that axis (or with it
// kept as 1).
struct AxisSplit {
  index_t outer = 1, n = 1, inner = 1;
};

// Shared by the host and CUDA reductions: only shapes are read.
template <class T, class U, class D>
AxisSplit split_axis(const TensorView<T, D>& x, const TensorView<U, D>& y, int axis, std::string_view xname,
                     std::string_view yname) {
  expect_contiguous(x, xname);
  expect_contiguous(y, yname);
  int a = axis < 0 ? axis + x.rank() : axis;
  LONGSEQ_CHECK(a >= 0 && a < x.rank(), "reduce: axis ", axis, " is out of range for tensor '", xname,
                "' of shape ", x.shape);
  AxisSplit s;
  Shape dropped, kept = x.shape;
  for (int i = 0; i < x.rank(); ++i) {
    if (i < a) s.outer *= x.shape[i];
    if (i > a) s.inner *= x.shape[i];
    if (i != a) dropped.dims[dropped.rank++] = x.shape[i];
  }
  s.n = x.shape[a];
  kept.dims[a] = 1;
  LONGSEQ_CHECK(y.shape == dropped || y.shape == kept, "reduce: tensor '", yname, "' has shape ", y.shape,
                ", expected ", dropped, " or ", kept, " (tensor '", xname, "' ", x.shape, " reduced over axis ",
                axis, ")");
  return s;
}

}  // namespace detail

// y = mean of x over `axis` (negative counts from the back).
template <class T>
void mean_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x, TensorView<T> y, int axis) {
  using W = accum_t<T>;
  auto s = detail::split_axis(x, y, axis, "x", "y");
  LONGSEQ_CHECK(s.n > 0, "mean: tensor 'x' has shape ", x.shape, "; axis ", axis, " is empty");
  int nt = detail::threads_for(ctx, x.numel());
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t o = 0; o < s.outer; ++o)
    for (index_t i = 0; i < s.inner; ++i) {
      W acc = 0;
      for (index_t j = 0; j < s.n; ++j) acc += W(x.data[(o * s.n + j) * s.inner + i]);
      y.data[o * s.inner + i] = T(acc / W(s.n));
    }
}

// dx = dy / n broadcast along `axis` (written).
template <class T>
void mean_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx,
                   int axis) {
  using W = accum_t<T>;
  auto s = detail::split_axis(dx, dy, axis, "dx", "dy");
  int nt = detail::threads_for(ctx, dx.numel());
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t o = 0; o < s.outer; ++o)
    for (index_t j = 0; j < s.n; ++j)
      for (index_t i = 0; i < s.inner; ++i)
        dx.data[(o * s.n + j) * s.inner + i] = T(W(dy.data[o * s.inner + i]) / W(s.n));
}

// y = max of x over `axis`, argmax = the index along the axis of the first maximum (NaN counts as the
// maximum, as in PyTorch). argmax has y's shape.
template <class T>
void max_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x, TensorView<T> y,
                 TensorView<std::int64_t> argmax, int axis) {
  using W = accum_t<T>;
  auto s = detail::split_axis(x, y, axis, "x", "y");
  expect_contiguous(argmax, "argmax");
  detail::expect_same_shape(argmax, y.shape, "argmax", "y");
  LONGSEQ_CHECK(s.n > 0, "max: tensor 'x' has shape ", x.shape, "; axis ", axis, " is empty");
  int nt = detail::threads_for(ctx, x.numel());
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t o = 0; o < s.outer; ++o)
    for (index_t i = 0; i < s.inner; ++i) {
      index_t best = 0;
      W bv = W(x.data[o * s.n * s.inner + i]);
      for (index_t j = 1; j < s.n && bv == bv; ++j) {
        W v = W(x.data[(o * s.n + j) * s.inner + i]);
        if (v > bv || v != v) { bv = v; best = j; }
      }
      y.data[o * s.inner + i] = T(bv);
      argmax.data[o * s.inner + i] = best;
    }
}

// dx = dy at the saved argmax along `axis`, 0 elsewhere (written).
template <class T>
void max_backward(Context<device::host>& ctx, TensorView<const std::int64_t> argmax,
                  std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx, int axis) {
  auto s = detail::split_axis(dx, dy, axis, "dx", "dy");
  expect_contiguous(argmax, "argmax");
  detail::expect_same_shape(argmax, dy.shape, "argmax", "dy");
  for (index_t i = 0; i < argmax.numel(); ++i)
    LONGSEQ_CHECK(argmax.data[i] >= 0 && argmax.data[i] < s.n, "max_backward: tensor 'argmax' holds ",
                  argmax.data[i], " at element ", i, ", expected an index in [0, ", s.n, ")");
  int nt = detail::threads_for(ctx, dx.numel());
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t o = 0; o < s.outer; ++o)
    for (index_t i = 0; i < s.inner; ++i) {
      std::int64_t k = argmax.data[o * s.inner + i];
      for (index_t j = 0; j < s.n; ++j)
        dx.data[(o * s.n + j) * s.inner + i] = j == k ? dy.data[o * s.inner + i] : T(0);
    }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/reduce.cuh"
#endif

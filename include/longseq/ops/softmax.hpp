// Softmax and log-softmax over the last axis (max-shifted for stability), and cross-entropy on logits.
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <type_traits>

#include "common.hpp"

namespace longseq::ops {

namespace detail {

template <class T, class U>
index_t check_rows(const TensorView<const T>& x, const TensorView<U>& y, std::string_view xname,
                   std::string_view yname) {
  expect_contiguous(x, xname);
  expect_contiguous(y, yname);
  LONGSEQ_CHECK(x.rank() >= 1, "tensor '", xname, "' has shape ", x.shape, ", expected rank >= 1 (..., C)");
  expect_same_shape(y, x.shape, yname, xname);
  return x.size(-1);
}

// Row maximum and log(sum(exp(x - max))) in the accumulator type; logsumexp = mx + ls. Callers form
// (x - mx) - ls rather than x - logsumexp, which would lose digits when |x| is large.
template <class T, class W = accum_t<T>>
void row_max_ls(const T* x, index_t C, W& mx, W& ls) {
  mx = -std::numeric_limits<W>::infinity();
  for (index_t c = 0; c < C; ++c) mx = std::max(mx, W(x[c]));
  W s = 0;
  for (index_t c = 0; c < C; ++c) s += std::exp(W(x[c]) - mx);
  ls = std::log(s);
}

}  // namespace detail

// y = softmax(x) over the last axis; x, y (..., C). Rows of all -inf give NaN, as in PyTorch.
template <class T>
void softmax_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x, TensorView<T> y) {
  static_assert(Real<T>, "softmax: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t C = detail::check_rows(x, y, "x", "y"), rows = detail::leading_rows(x.shape);
  int nt = detail::threads_for(ctx, rows * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.data + r * C;
    T* yr = y.data + r * C;
    W mx = -std::numeric_limits<W>::infinity(), s = 0;
    for (index_t c = 0; c < C; ++c) mx = std::max(mx, W(xr[c]));
    for (index_t c = 0; c < C; ++c) s += std::exp(W(xr[c]) - mx);
    W inv = W(1) / s;
    for (index_t c = 0; c < C; ++c) yr[c] = T(std::exp(W(xr[c]) - mx) * inv);
  }
}

// From the saved output: dx = y * (dy - sum(dy * y)) per row; dx written (may alias dy).
template <class T>
void softmax_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> y,
                      std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx) {
  static_assert(Real<T>, "softmax: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t C = detail::check_rows(y, dx, "y", "dx"), rows = detail::leading_rows(y.shape);
  expect_contiguous(dy, "dy");
  detail::expect_same_shape(dy, y.shape, "dy", "y");
  int nt = detail::threads_for(ctx, rows * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T *yr = y.data + r * C, *gr = dy.data + r * C;
    T* dr = dx.data + r * C;
    W dot = 0;
    for (index_t c = 0; c < C; ++c) dot += W(gr[c]) * W(yr[c]);
    for (index_t c = 0; c < C; ++c) dr[c] = T(W(yr[c]) * (W(gr[c]) - dot));
  }
}

// y = x - logsumexp(x) over the last axis.
template <class T>
void log_softmax_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x,
                         TensorView<T> y) {
  static_assert(Real<T>, "log_softmax: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t C = detail::check_rows(x, y, "x", "y"), rows = detail::leading_rows(x.shape);
  int nt = detail::threads_for(ctx, rows * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    W mx, ls;
    detail::row_max_ls(x.data + r * C, C, mx, ls);
    for (index_t c = 0; c < C; ++c) y.data[r * C + c] = T((W(x.data[r * C + c]) - mx) - ls);
  }
}

// From the saved output: dx = dy - exp(y) * sum(dy) per row; dx written (may alias dy).
template <class T>
void log_softmax_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> y,
                          std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx) {
  static_assert(Real<T>, "log_softmax: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t C = detail::check_rows(y, dx, "y", "dx"), rows = detail::leading_rows(y.shape);
  expect_contiguous(dy, "dy");
  detail::expect_same_shape(dy, y.shape, "dy", "y");
  int nt = detail::threads_for(ctx, rows * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T *yr = y.data + r * C, *gr = dy.data + r * C;
    T* dr = dx.data + r * C;
    W s = 0;
    for (index_t c = 0; c < C; ++c) s += W(gr[c]);
    for (index_t c = 0; c < C; ++c) dr[c] = T(W(gr[c]) - std::exp(W(yr[c])) * s);
  }
}

namespace detail {
template <class T, class I>
index_t check_cross_entropy(const TensorView<const T>& logits, const TensorView<const I>& targets,
                            const Shape& lse_shape) {
  expect_contiguous(logits, "logits");
  expect_contiguous(targets, "targets");
  LONGSEQ_CHECK(logits.rank() >= 2, "cross_entropy: tensor 'logits' has shape ", logits.shape,
                ", expected rank >= 2 (..., C)");
  index_t rows = leading_rows(logits.shape);
  LONGSEQ_CHECK(targets.numel() == rows, "cross_entropy: tensor 'targets' has shape ", targets.shape, " (",
                targets.numel(), " elements), expected one target per row of tensor 'logits' ", logits.shape,
                " (", rows, ")");
  LONGSEQ_CHECK(lse_shape.numel() == rows, "cross_entropy: tensor 'lse' has shape ", lse_shape,
                ", expected ", rows, " elements (one per row of 'logits')");
  return rows;
}

template <class I>
void check_target(I t, index_t row, index_t C, I ignore_index) {
  if (t != ignore_index)
    LONGSEQ_CHECK(t >= 0 && index_t(t) < C, "cross_entropy: tensor 'targets' holds ", index_t(t), " at row ", row,
                  ", expected a class in [0, ", C, ") or the ignore index ", index_t(ignore_index));
}
}  // namespace detail

// Mean over non-ignored rows of -log softmax(logits)[target]: logits (..., C), targets (...) with one
// integer class per row (rows whose target equals ignore_index do not count), lse (rows) receives each
// row's log-sum-exp for the backward. Returns 0 when every row is ignored.
template <class T, std::integral I>
accum_t<T> cross_entropy_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> logits,
                                 TensorView<const I> targets, TensorView<T> lse, I ignore_index = I(-100)) {
  static_assert(Real<T>, "cross_entropy: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t rows = detail::check_cross_entropy(logits, targets, lse.shape), C = logits.size(-1);
  expect_contiguous(lse, "lse");
  for (index_t r = 0; r < rows; ++r) detail::check_target(targets.data[r], r, C, ignore_index);
  double total = 0;
  index_t count = 0;
  int nt = detail::threads_for(ctx, rows * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1) reduction(+ : total, count)
  for (index_t r = 0; r < rows; ++r) {
    W mx, ls;
    detail::row_max_ls(logits.data + r * C, C, mx, ls);
    lse.data[r] = T(mx + ls);
    I t = targets.data[r];
    if (t == ignore_index) continue;
    total += double(ls - (W(logits.data[r * C + index_t(t)]) - mx));
    ++count;
  }
  return count == 0 ? W(0) : W(total / double(count));
}

// dlogits = dloss / count * (softmax(logits) - onehot(target)) on counted rows, 0 on ignored ones;
// dlogits written. lse is what cross_entropy_forward saved.
template <class T, std::integral I>
void cross_entropy_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> logits,
                            TensorView<const I> targets, std::type_identity_t<TensorView<const T>> lse,
                            accum_t<T> dloss, TensorView<T> dlogits, I ignore_index = I(-100)) {
  static_assert(Real<T>, "cross_entropy: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t rows = detail::check_cross_entropy(logits, targets, lse.shape), C = logits.size(-1);
  expect_contiguous(dlogits, "dlogits");
  detail::expect_same_shape(dlogits, logits.shape, "dlogits", "logits");
  index_t count = 0;
  for (index_t r = 0; r < rows; ++r) {
    detail::check_target(targets.data[r], r, C, ignore_index);
    count += targets.data[r] != ignore_index;
  }
  W scale = count == 0 ? W(0) : dloss / W(count);
  int nt = detail::threads_for(ctx, rows * C);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    T* dr = dlogits.data + r * C;
    I t = targets.data[r];
    if (t == ignore_index) {
      std::fill(dr, dr + C, T(0));
      continue;
    }
    W l = W(lse.data[r]);
    for (index_t c = 0; c < C; ++c)
      dr[c] = T(scale * (std::exp(W(logits.data[r * C + c]) - l) - (c == index_t(t) ? W(1) : W(0))));
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/softmax.cuh"
#endif

// Layer normalization and RMS normalization over the last axis, with backwards that save mean/rstd.
#pragma once
#include <cmath>
#include <type_traits>

#include "common.hpp"

namespace longseq::ops {

namespace detail {

template <class T, class U>
index_t check_norm(const TensorView<const T>& x, const TensorView<const T>& gamma, const TensorView<U>& y,
                   std::string_view yname) {
  expect_contiguous(x, "x");
  expect_contiguous(y, yname);
  expect_contiguous(gamma, "gamma");
  LONGSEQ_CHECK(x.rank() >= 1, "norm: tensor 'x' has shape ", x.shape, ", expected rank >= 1 (..., H)");
  index_t H = x.size(-1);
  expect_shape(gamma, Shape{H}, "gamma");
  expect_same_shape(y, x.shape, yname, "x");
  return H;
}

template <class S>
void check_stat(const TensorView<S>& s, index_t rows, std::string_view name) {
  expect_contiguous(s, name);
  LONGSEQ_CHECK(s.numel() == rows, "norm: tensor '", name, "' has shape ", s.shape, " (", s.numel(),
                " elements), expected one value per row of 'x' (", rows, ")");
}

}  // namespace detail

// y = (x - mean) * rstd * gamma + beta per row of x (..., H), rstd = 1 / sqrt(var + eps) with the biased
// variance. mean and rstd (one per row, any shape with that many elements) are saved in the accumulator
// type (float for half/bf16) for the backward.
template <class T>
void layernorm_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x,
                       std::type_identity_t<TensorView<const T>> gamma,
                       std::type_identity_t<TensorView<const T>> beta, TensorView<T> y,
                       TensorView<accum_t<T>> mean, TensorView<accum_t<T>> rstd, accum_t<T> eps) {
  static_assert(Real<T>, "layernorm: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t H = detail::check_norm(x, gamma, y, "y"), rows = detail::leading_rows(x.shape);
  expect_contiguous(beta, "beta");
  expect_shape(beta, Shape{H}, "beta");
  detail::check_stat(mean, rows, "mean");
  detail::check_stat(rstd, rows, "rstd");
  LONGSEQ_CHECK(eps >= W(0), "layernorm: eps ", eps, " must be non-negative");
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.data + r * H;
    T* yr = y.data + r * H;
    // Two passes: the mean first, then squared deviations (no cancellation as in E[x^2] - E[x]^2).
    W m = 0;
    for (index_t h = 0; h < H; ++h) m += W(xr[h]);
    m /= W(H);
    W v = 0;
    for (index_t h = 0; h < H; ++h) v += (W(xr[h]) - m) * (W(xr[h]) - m);
    W rs = W(1) / std::sqrt(v / W(H) + eps);
    mean.data[r] = m;
    rstd.data[r] = rs;
    for (index_t h = 0; h < H; ++h) yr[h] = T((W(xr[h]) - m) * rs * W(gamma.data[h]) + W(beta.data[h]));
  }
}

// With xhat = (x - mean) * rstd and g = dy * gamma:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (written; may alias dy),
//   dgamma += sum over rows of dy * xhat, dbeta += sum over rows of dy   (accumulated).
template <class T>
void layernorm_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x,
                        std::type_identity_t<TensorView<const T>> gamma,
                        std::type_identity_t<TensorView<const accum_t<T>>> mean,
                        std::type_identity_t<TensorView<const accum_t<T>>> rstd,
                        std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx, TensorView<T> dgamma,
                        TensorView<T> dbeta) {
  static_assert(Real<T>, "layernorm: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t H = detail::check_norm(x, gamma, dx, "dx"), rows = detail::leading_rows(x.shape);
  expect_contiguous(dy, "dy");
  detail::expect_same_shape(dy, x.shape, "dy", "x");
  detail::check_stat(mean, rows, "mean");
  detail::check_stat(rstd, rows, "rstd");
  expect_shape(dgamma, Shape{H}, "dgamma");
  expect_shape(dbeta, Shape{H}, "dbeta");
  expect_contiguous(dgamma, "dgamma");
  expect_contiguous(dbeta, "dbeta");
  // Parameter gradients first: dx may alias dy.
  detail::sum_over_rows<W>(
      ctx, rows, 2 * H,
      [&](index_t r, W* acc) {
        const T *xr = x.data + r * H, *gr = dy.data + r * H;
        W m = mean.data[r], rs = rstd.data[r];
        for (index_t h = 0; h < H; ++h) {
          acc[h] += W(gr[h]) * (W(xr[h]) - m) * rs;
          acc[H + h] += W(gr[h]);
        }
      },
      [&](const W* sums) {
        for (index_t h = 0; h < H; ++h) {
          dgamma.data[h] = T(W(dgamma.data[h]) + sums[h]);
          dbeta.data[h] = T(W(dbeta.data[h]) + sums[H + h]);
        }
      });
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T *xr = x.data + r * H, *gr = dy.data + r * H;
    T* dr = dx.data + r * H;
    W m = mean.data[r], rs = rstd.data[r], sg = 0, sgx = 0;
    for (index_t h = 0; h < H; ++h) {
      W g = W(gr[h]) * W(gamma.data[h]);
      sg += g;
      sgx += g * (W(xr[h]) - m) * rs;
    }
    sg /= W(H);
    sgx /= W(H);
    for (index_t h = 0; h < H; ++h) {
      W g = W(gr[h]) * W(gamma.data[h]), xh = (W(xr[h]) - m) * rs;
      dr[h] = T(rs * (g - sg - xh * sgx));
    }
  }
}

// y = x * rstd * gamma, rstd = 1 / sqrt(mean(x^2) + eps) per row of x (..., H); rstd saved per row.
template <class T>
void rmsnorm_forward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x,
                     std::type_identity_t<TensorView<const T>> gamma, TensorView<T> y, TensorView<accum_t<T>> rstd,
                     accum_t<T> eps) {
  static_assert(Real<T>, "rmsnorm: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t H = detail::check_norm(x, gamma, y, "y"), rows = detail::leading_rows(x.shape);
  detail::check_stat(rstd, rows, "rstd");
  LONGSEQ_CHECK(eps >= W(0), "rmsnorm: eps ", eps, " must be non-negative");
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.data + r * H;
    T* yr = y.data + r * H;
    W ss = 0;
    for (index_t h = 0; h < H; ++h) ss += W(xr[h]) * W(xr[h]);
    W rs = W(1) / std::sqrt(ss / W(H) + eps);
    rstd.data[r] = rs;
    for (index_t h = 0; h < H; ++h) yr[h] = T(W(xr[h]) * rs * W(gamma.data[h]));
  }
}

// With xhat = x * rstd and g = dy * gamma: dx = rstd * (g - xhat * mean(g * xhat)) (written; may alias
// dy), dgamma += sum over rows of dy * xhat (accumulated).
template <class T>
void rmsnorm_backward(Context<device::host>& ctx, std::type_identity_t<TensorView<const T>> x,
                      std::type_identity_t<TensorView<const T>> gamma,
                      std::type_identity_t<TensorView<const accum_t<T>>> rstd,
                      std::type_identity_t<TensorView<const T>> dy, TensorView<T> dx, TensorView<T> dgamma) {
  static_assert(Real<T>, "rmsnorm: T must be float, double, half or bf16");
  using W = accum_t<T>;
  index_t H = detail::check_norm(x, gamma, dx, "dx"), rows = detail::leading_rows(x.shape);
  expect_contiguous(dy, "dy");
  detail::expect_same_shape(dy, x.shape, "dy", "x");
  detail::check_stat(rstd, rows, "rstd");
  expect_shape(dgamma, Shape{H}, "dgamma");
  expect_contiguous(dgamma, "dgamma");
  detail::sum_over_rows<W>(
      ctx, rows, H,
      [&](index_t r, W* acc) {
        const T *xr = x.data + r * H, *gr = dy.data + r * H;
        W rs = rstd.data[r];
        for (index_t h = 0; h < H; ++h) acc[h] += W(gr[h]) * W(xr[h]) * rs;
      },
      [&](const W* sums) {
        for (index_t h = 0; h < H; ++h) dgamma.data[h] = T(W(dgamma.data[h]) + sums[h]);
      });
  int nt = detail::threads_for(ctx, rows * H);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (index_t r = 0; r < rows; ++r) {
    const T *xr = x.data + r * H, *gr = dy.data + r * H;
    T* dr = dx.data + r * H;
    W rs = rstd.data[r], sgx = 0;
    for (index_t h = 0; h < H; ++h) sgx += W(gr[h]) * W(gamma.data[h]) * W(xr[h]) * rs;
    sgx /= W(H);
    for (index_t h = 0; h < H; ++h) dr[h] = T(rs * (W(gr[h]) * W(gamma.data[h]) - W(xr[h]) * rs * sgx));
  }
}

}  // namespace longseq::ops

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads, visible wherever the host op is
#include "cuda/norm.cuh"
#endif

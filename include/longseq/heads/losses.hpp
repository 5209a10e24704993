// Losses with explicit forward/backward: softmax cross-entropy with an ignore id, masked L1 and mean
// squared error, on either device policy. Each reduces to a mean over the counted rows; backward writes
// d(scale * loss). The host and CUDA versions share the templates below and differ only in the
// *_forward / *_backward ops they call (the CUDA ones are in heads/cuda/losses.cuh). A forward leaves its
// statistics in a BatchStats<D>: on the device they stay there (the backward reads the count in place), so a
// loop that passes its own BatchStats reads them only when it logs; the forward returning LossStats reads them
// at once.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../core/context.hpp"
#include "../core/tensor.hpp"
#include "stats.hpp"

namespace longseq::heads {

inline constexpr std::int32_t ignore_index = -100;

namespace detail {

// Host ops of the losses. Statistics are summed in row order in double.

// prob = softmax(logits) per row (double); the loss and argmax hits over rows whose target is not ignored.
template <class T>
void cross_entropy_forward(Context<device::host>&, TensorView<const T> logits, TensorView<const std::int32_t> target,
                           TensorView<double> prob, TensorView<std::int32_t> saved_target,
                           BatchStats<device::host>& out) {
  const index_t n = logits.size(0), c = logits.size(1);
  LossStats st;
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    const std::int32_t y = target[i];
    LONGSEQ_CHECK(y == ignore_index || (y >= 0 && y < c), "CrossEntropy: tensor 'target' holds ", y, " at row ", i,
                  ", expected a class in [0, ", c, ") or ", ignore_index, " (ignored)");
    saved_target[i] = y;
    const T* z = logits.data + i * c;
    double* p = prob.data + i * c;
    double mx = double(z[0]);
    index_t arg = 0;
    for (index_t k = 1; k < c; ++k)
      if (double(z[k]) > mx) { mx = double(z[k]); arg = k; }
    double sum = 0;
    for (index_t k = 0; k < c; ++k) sum += (p[k] = std::exp(double(z[k]) - mx));
    for (index_t k = 0; k < c; ++k) p[k] /= sum;
    if (y == ignore_index) continue;
    total += -(double(z[y]) - mx - std::log(sum));
    st.count += 1;
    st.correct += arg == y ? 1 : 0;
  }
  st.loss = st.count > 0 ? total / st.count : 0.0;
  out.value = st;
}

template <class T>
void cross_entropy_backward(Context<device::host>&, TensorView<const double> prob,
                            TensorView<const std::int32_t> target, const BatchStats<device::host>& stats,
                            TensorView<T> dlogits, double scale) {
  const index_t n = prob.size(0), c = prob.size(1);
  const double count = stats.value.count;
  const double f = count > 0 ? scale / count : 0.0;
  for (index_t i = 0; i < n; ++i) {
    T* d = dlogits.data + i * c;
    const double* p = prob.data + i * c;
    const std::int32_t y = target[i];
    if (y == ignore_index) { std::fill_n(d, c, T(0)); continue; }
    for (index_t k = 0; k < c; ++k) d[k] = T(f * (p[k] - (k == y ? 1.0 : 0.0)));
  }
}

template <class T>
void masked_l1_forward(Context<device::host>&, TensorView<const T> pred, TensorView<const T> target,
                       TensorView<const std::uint8_t> mask, TensorView<double> sign, BatchStats<device::host>& out) {
  const index_t n = pred.numel();
  LossStats st;
  double total = 0;
  for (index_t i = 0; i < n; ++i) {
    if (!mask[i]) { sign[i] = 0; continue; }
    const double d = double(pred[i]) - double(target[i]);
    sign[i] = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
    total += std::abs(d);
    st.count += 1;
    st.abs_err += std::abs(d);
    st.sq_err += d * d;
    st.target_sum += double(target[i]);
    st.target_sq += double(target[i]) * double(target[i]);
  }
  st.loss = st.count > 0 ? total / st.count : 0.0;
  out.value = st;
}

template <class T>
void masked_l1_backward(Context<device::host>&, TensorView<const double> sign, const BatchStats<device::host>& stats,
                        TensorView<T> dpred, double scale) {
  const double count = stats.value.count;
  const double f = count > 0 ? scale / count : 0.0;
  for (index_t i = 0; i < sign.numel(); ++i) dpred[i] = T(f * sign[i]);
}

template <class T>
void mse_forward(Context<device::host>&, TensorView<const T> pred, TensorView<const T> target, TensorView<double> diff,
                 BatchStats<device::host>& out) {
  const index_t n = pred.numel();
  LossStats st;
  for (index_t i = 0; i < n; ++i) {
    const double d = double(pred[i]) - double(target[i]);
    diff[i] = d;
    st.sq_err += d * d;
    st.abs_err += std::abs(d);
    st.target_sum += double(target[i]);
    st.target_sq += double(target[i]) * double(target[i]);
  }
  st.count = double(n);
  st.loss = n > 0 ? st.sq_err / double(n) : 0.0;
  out.value = st;
}

template <class T>
void mse_backward(Context<device::host>&, TensorView<const double> diff, TensorView<T> dpred, double scale) {
  const index_t n = diff.numel();
  for (index_t i = 0; i < n; ++i) dpred[i] = T(scale * 2.0 * diff[i] / double(n));
}

}  // namespace detail
}  // namespace longseq::heads

#if LONGSEQ_WITH_CUDA && defined(__CUDACC__)  // CUDA overloads of the loss ops
#include "cuda/losses.cuh"
#endif

namespace longseq::heads {

// Softmax cross-entropy over the last axis of logits (N, C) with integer targets (N); rows whose
// target is ignore_index carry no loss. loss = mean over counted rows of -log softmax(z)[y].
// A device target outside [0, C) is counted as ignored (the device cannot throw; the host does).
template <class T, class D = device::host>
struct CrossEntropy {
  struct Saved {
    Tensor<double, D> prob;          // (N, C) softmax
    Tensor<std::int32_t, D> target;  // (N)
    BatchStats<D> stats;             // this batch's statistics; the backward divides by their count
  };

  // The statistics stay in s.stats (and a copy in `out`, when that is another BatchStats): nothing is read back.
  static void forward(Context<D>& ctx, TensorView<const T, D> logits, TensorView<const std::int32_t, D> target,
                      Saved& s, BatchStats<D>& out) {
    expect_rank(logits, 2, "logits");
    expect_contiguous(logits, "logits");
    const index_t n = logits.size(0), c = logits.size(1);
    expect_shape(target, Shape{n}, "target");
    expect_contiguous(target, "target");
    s.prob.resize(Shape{n, c});
    s.target.resize(Shape{n});
    detail::cross_entropy_forward<T>(ctx, logits, target, s.prob.view(), s.target.view(), s.stats);
    if (&out != &s.stats) out.copy_from(ctx, s.stats);
  }
  static LossStats forward(Context<D>& ctx, TensorView<const T, D> logits, TensorView<const std::int32_t, D> target,
                           Saved& s) {
    forward(ctx, logits, target, s, s.stats);
    return s.stats.read(ctx);
  }
  // dlogits = scale * (softmax - onehot) / count on counted rows, 0 on ignored rows.
  static void backward(Context<D>& ctx, const Saved& s, TensorView<T, D> dlogits, double scale = 1.0) {
    expect_shape(dlogits, s.prob.shape(), "dlogits");
    expect_contiguous(dlogits, "dlogits");
    detail::cross_entropy_backward<T>(ctx, s.prob.view(), s.target.view(), s.stats, dlogits, scale);
  }
};

// Mean absolute error over the rows where mask != 0: loss = sum_i m_i |p_i - t_i| / sum_i m_i.
template <class T, class D = device::host>
struct MaskedL1 {
  struct Saved {
    Tensor<double, D> sign;  // (N) sign(p - t) on masked rows, 0 elsewhere
    BatchStats<D> stats;
  };
  static void forward(Context<D>& ctx, TensorView<const T, D> pred, TensorView<const T, D> target,
                      TensorView<const std::uint8_t, D> mask, Saved& s, BatchStats<D>& out) {
    const index_t n = pred.numel();
    LONGSEQ_CHECK(target.numel() == n && mask.numel() == n, "MaskedL1: tensors 'pred' ", pred.shape, ", 'target' ",
                  target.shape, " and 'mask' ", mask.shape, " must have the same number of elements");
    expect_contiguous(pred, "pred");
    expect_contiguous(target, "target");
    expect_contiguous(mask, "mask");
    s.sign.resize(Shape{n});
    detail::masked_l1_forward<T>(ctx, pred, target, mask, s.sign.view(), s.stats);
    if (&out != &s.stats) out.copy_from(ctx, s.stats);
  }
  static LossStats forward(Context<D>& ctx, TensorView<const T, D> pred, TensorView<const T, D> target,
                           TensorView<const std::uint8_t, D> mask, Saved& s) {
    forward(ctx, pred, target, mask, s, s.stats);
    return s.stats.read(ctx);
  }
  static void backward(Context<D>& ctx, const Saved& s, TensorView<T, D> dpred, double scale = 1.0) {
    LONGSEQ_CHECK(dpred.numel() == s.sign.numel(), "MaskedL1: tensor 'dpred' has shape ", dpred.shape, ", expected ",
                  s.sign.numel(), " elements");
    expect_contiguous(dpred, "dpred");
    detail::masked_l1_backward<T>(ctx, s.sign.view(), s.stats, dpred, scale);
  }
};

// Mean squared error over all elements of (N, K): loss = sum (p - t)^2 / (N K).
template <class T, class D = device::host>
struct MeanSquaredError {
  struct Saved {
    Tensor<double, D> diff;
    BatchStats<D> stats;
  };
  static void forward(Context<D>& ctx, TensorView<const T, D> pred, TensorView<const T, D> target, Saved& s,
                      BatchStats<D>& out) {
    expect_shape(target, pred.shape, "target");
    expect_contiguous(pred, "pred");
    expect_contiguous(target, "target");
    s.diff.resize(Shape{pred.numel()});
    detail::mse_forward<T>(ctx, pred, target, s.diff.view(), s.stats);
    if (&out != &s.stats) out.copy_from(ctx, s.stats);
  }
  static LossStats forward(Context<D>& ctx, TensorView<const T, D> pred, TensorView<const T, D> target, Saved& s) {
    forward(ctx, pred, target, s, s.stats);
    return s.stats.read(ctx);
  }
  static void backward(Context<D>& ctx, const Saved& s, TensorView<T, D> dpred, double scale = 1.0) {
    LONGSEQ_CHECK(dpred.numel() == s.diff.numel(), "MeanSquaredError: tensor 'dpred' has shape ", dpred.shape,
                  ", expected ", s.diff.numel(), " elements");
    expect_contiguous(dpred, "dpred");
    detail::mse_backward<T>(ctx, s.diff.view(), dpred, scale);
  }
};

}  // namespace longseq::heads

// Losses with explicit forward/backward: softmax cross-entropy with an ignore id, masked L1 and mean
// squared error. Each reduces to a mean over the counted rows; backward writes d(scale * loss).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/context.hpp"
#include "../core/tensor.hpp"

namespace longseq::heads {

// Running sums a loss reports for one batch; merged across batches for epoch metrics.
struct LossStats {
  double loss = 0;      // mean over `count`
  double count = 0;     // rows (positions or examples) that carried loss
  double correct = 0;   // argmax hits (classification losses)
  double abs_err = 0;   // sum |pred - target| (regression losses)
  double sq_err = 0;    // sum (pred - target)^2
  double target_sum = 0, target_sq = 0;  // for R^2
  void merge(const LossStats& o) {
    const double n = count + o.count;
    loss = n > 0 ? (loss * count + o.loss * o.count) / n : 0.0;
    count = n;
    correct += o.correct;
    abs_err += o.abs_err;
    sq_err += o.sq_err;
    target_sum += o.target_sum;
    target_sq += o.target_sq;
  }
  double accuracy() const { return count > 0 ? correct / count : 0.0; }
  double r2() const {
    if (count <= 0) return 0.0;
    const double mean = target_sum / count, ss_tot = target_sq - count * mean * mean;
    return ss_tot > 0 ? 1.0 - sq_err / ss_tot : 0.0;
  }
};

inline constexpr std::int32_t ignore_index = -100;

// Softmax cross-entropy over the last axis of logits (N, C) with integer targets (N); rows whose
// target is ignore_index carry no loss. loss = mean over counted rows of -log softmax(z)[y].
template <class T>
struct CrossEntropy {
  struct Saved {
    Tensor<double> prob;         // (N, C) softmax
    Tensor<std::int32_t> target;  // (N)
    double count = 0;
  };

  static LossStats forward(TensorView<const T> logits, TensorView<const std::int32_t> target, Saved& s) {
    expect_rank(logits, 2, "logits");
    expect_contiguous(logits, "logits");
    const index_t n = logits.size(0), c = logits.size(1);
    expect_shape(target, Shape{n}, "target");
    s.prob.resize(Shape{n, c});
    s.target.resize(Shape{n});
    LossStats st;
    double total = 0;
    for (index_t i = 0; i < n; ++i) {
      const std::int32_t y = target[i];
      LONGSEQ_CHECK(y == ignore_index || (y >= 0 && y < c), "CrossEntropy: tensor 'target' holds ", y, " at row ", i,
                    ", expected a class in [0, ", c, ") or ", ignore_index, " (ignored)");
      s.target[i] = y;
      const T* z = logits.data + i * c;
      double* p = s.prob.data() + i * c;
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
    s.count = st.count;
    st.loss = st.count > 0 ? total / st.count : 0.0;
    return st;
  }
  // dlogits = scale * (softmax - onehot) / count on counted rows, 0 on ignored rows.
  static void backward(const Saved& s, TensorView<T> dlogits, double scale = 1.0) {
    expect_shape(dlogits, s.prob.shape(), "dlogits");
    const index_t n = s.prob.size(0), c = s.prob.size(1);
    const double f = s.count > 0 ? scale / s.count : 0.0;
    for (index_t i = 0; i < n; ++i) {
      T* d = dlogits.data + i * c;
      const double* p = s.prob.data() + i * c;
      const std::int32_t y = s.target[i];
      if (y == ignore_index) { std::fill_n(d, c, T(0)); continue; }
      for (index_t k = 0; k < c; ++k) d[k] = T(f * (p[k] - (k == y ? 1.0 : 0.0)));
    }
  }
};

// Mean absolute error over the rows where mask != 0: loss = sum_i m_i |p_i - t_i| / sum_i m_i.
template <class T>
struct MaskedL1 {
  struct Saved {
    Tensor<double> sign;  // (N) sign(p - t) on masked rows, 0 elsewhere
    double count = 0;
  };
  static LossStats forward(TensorView<const T> pred, TensorView<const T> target, TensorView<const std::uint8_t> mask,
                           Saved& s) {
    const index_t n = pred.numel();
    LONGSEQ_CHECK(target.numel() == n && mask.numel() == n, "MaskedL1: tensors 'pred' ", pred.shape, ", 'target' ",
                  target.shape, " and 'mask' ", mask.shape, " must have the same number of elements");
    s.sign.resize(Shape{n});
    LossStats st;
    double total = 0;
    for (index_t i = 0; i < n; ++i) {
      if (!mask[i]) { s.sign[i] = 0; continue; }
      const double d = double(pred[i]) - double(target[i]);
      s.sign[i] = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
      total += std::abs(d);
      st.count += 1;
      st.abs_err += std::abs(d);
      st.sq_err += d * d;
      st.target_sum += double(target[i]);
      st.target_sq += double(target[i]) * double(target[i]);
    }
    s.count = st.count;
    st.loss = st.count > 0 ? total / st.count : 0.0;
    return st;
  }
  static void backward(const Saved& s, TensorView<T> dpred, double scale = 1.0) {
    LONGSEQ_CHECK(dpred.numel() == s.sign.numel(), "MaskedL1: tensor 'dpred' has shape ", dpred.shape, ", expected ",
                  s.sign.numel(), " elements");
    const double f = s.count > 0 ? scale / s.count : 0.0;
    for (index_t i = 0; i < s.sign.numel(); ++i) dpred[i] = T(f * s.sign[i]);
  }
};

// Mean squared error over all elements of (N, K): loss = sum (p - t)^2 / (N K).
template <class T>
struct MeanSquaredError {
  struct Saved {
    Tensor<double> diff;
  };
  static LossStats forward(TensorView<const T> pred, TensorView<const T> target, Saved& s) {
    expect_shape(target, pred.shape, "target");
    const index_t n = pred.numel();
    s.diff.resize(Shape{n});
    LossStats st;
    for (index_t i = 0; i < n; ++i) {
      const double d = double(pred[i]) - double(target[i]);
      s.diff[i] = d;
      st.sq_err += d * d;
      st.abs_err += std::abs(d);
      st.target_sum += double(target[i]);
      st.target_sq += double(target[i]) * double(target[i]);
    }
    st.count = double(n);
    st.loss = n > 0 ? st.sq_err / double(n) : 0.0;
    return st;
  }
  static void backward(const Saved& s, TensorView<T> dpred, double scale = 1.0) {
    const index_t n = s.diff.numel();
    LONGSEQ_CHECK(dpred.numel() == n, "MeanSquaredError: tensor 'dpred' has shape ", dpred.shape, ", expected ", n,
                  " elements");
    for (index_t i = 0; i < n; ++i) dpred[i] = T(scale * 2.0 * s.diff[i] / double(n));
  }
};

}  // namespace longseq::heads

// CUDA ops of the losses (heads/losses.hpp): one thread per row computes that row's terms in the host's
// order, then each statistic is summed by one block in a fixed order (no atomics), so a loss is the same on
// every run. The totals become the batch's LossStats in its BatchStats device buffer (heads/cuda/stats.cuh);
// nothing is copied back here, and the backward divides by the count where it lies.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../../core/cuda/block_reduce.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "stats.cuh"

namespace longseq::heads::detail {

namespace loss_cuda {

inline constexpr int sum_threads = 256;

// totals[j] = sum over rows i < n of terms[i * k + j]; one block per statistic j.
template <int Threads>
__global__ void column_totals_kernel(const double* terms, index_t n, int k, double* totals) {
  __shared__ longseq::cuda::BlockReduceStorage<double, Threads> shared;
  const int j = int(blockIdx.x);
  double acc = 0;
  for (index_t i = threadIdx.x; i < n; i += Threads) acc += terms[i * k + j];
  const double s = longseq::cuda::block_sum<Threads>(acc, shared);
  if (threadIdx.x == 0) totals[j] = s;
}

// Which loss the column sums belong to, and so how they become LossStats slots.
enum class TotalsOf { cross_entropy, masked_l1, mse };

// One thread: the column sums of one loss written as its batch's LossStats (see the host ops for the same
// formulas). The division is __ddiv_rn so that no contraction changes it against the host's.
template <TotalsOf Kind>
__global__ void stats_from_totals_kernel(const double* sums, double n, double* out) {
  double v[stat_slots] = {0, 0, 0, 0, 0, 0, 0};
  if constexpr (Kind == TotalsOf::cross_entropy) {  // sums: loss, counted, correct
    v[slot_count] = sums[1];
    v[slot_correct] = sums[2];
    v[slot_loss] = sums[1] > 0 ? __ddiv_rn(sums[0], sums[1]) : 0.0;
  } else if constexpr (Kind == TotalsOf::masked_l1) {  // sums: |d|, counted, d^2, t, t^2
    v[slot_abs_err] = sums[0];
    v[slot_count] = sums[1];
    v[slot_sq_err] = sums[2];
    v[slot_target_sum] = sums[3];
    v[slot_target_sq] = sums[4];
    v[slot_loss] = sums[1] > 0 ? __ddiv_rn(sums[0], sums[1]) : 0.0;
  } else {  // mse; sums: d^2, |d|, t, t^2 over n elements
    v[slot_sq_err] = sums[0];
    v[slot_abs_err] = sums[1];
    v[slot_target_sum] = sums[2];
    v[slot_target_sq] = sums[3];
    v[slot_count] = n;
    v[slot_loss] = n > 0 ? __ddiv_rn(sums[0], n) : 0.0;
  }
  for (int j = 0; j < stat_slots; ++j) out[j] = v[j];
}

// Sums the k columns of terms (n, k) on the device into the batch's statistics; no copy back.
template <TotalsOf Kind>
void write_stats(Context<device::cuda>& ctx, const double* terms, index_t n, int k, BatchStats<device::cuda>& out) {
  auto sums = ctx.scratch<double>(std::size_t(k));
  column_totals_kernel<sum_threads><<<unsigned(k), sum_threads, 0, ctx.stream()>>>(terms, n, k, sums.data());
  LONGSEQ_CUDA_LAUNCH_CHECK("loss totals");
  stats_from_totals_kernel<Kind><<<1, 1, 0, ctx.stream()>>>(sums.data(), double(n), out.slots());
  LONGSEQ_CUDA_LAUNCH_CHECK("loss statistics");
}

// Per row: softmax into prob, and terms (loss, counted, correct). An out-of-range target counts as ignored.
template <class T>
struct CeRow {
  const T* z;
  const std::int32_t* target;
  double* prob;
  std::int32_t* saved_target;
  double* terms;
  index_t c;
  __device__ void operator()(index_t i) const {
    std::int32_t y = target[i];
    if (y != ignore_index && (y < 0 || y >= c)) y = ignore_index;
    saved_target[i] = y;
    const T* zi = z + i * c;
    double* p = prob + i * c;
    double mx = double(zi[0]);
    index_t arg = 0;
    for (index_t k = 1; k < c; ++k)
      if (double(zi[k]) > mx) { mx = double(zi[k]); arg = k; }
    double sum = 0;
    for (index_t k = 0; k < c; ++k) sum += (p[k] = exp(double(zi[k]) - mx));
    for (index_t k = 0; k < c; ++k) p[k] /= sum;
    double* t = terms + i * 3;
    if (y == ignore_index) { t[0] = t[1] = t[2] = 0; return; }
    t[0] = -(double(zi[y]) - mx - log(sum));
    t[1] = 1;
    t[2] = arg == y ? 1 : 0;
  }
};

// The backward's factor scale / count, with the count read on the device (0 rows: no gradient).
__device__ inline double per_count(double scale, const double* count) {
  const double c = *count;
  return c > 0 ? scale / c : 0.0;
}

template <class T>
struct CeGrad {
  const double* prob;
  const std::int32_t* target;
  T* d;
  index_t c;
  double scale;
  const double* count;
  __device__ void operator()(index_t e) const {
    const double f = per_count(scale, count);
    const index_t i = e / c, k = e % c;
    const std::int32_t y = target[i];
    d[e] = y == ignore_index ? T(0) : T(f * (prob[e] - (k == y ? 1.0 : 0.0)));
  }
};

// Per row of masked L1: sign, and terms (|d|, counted, d^2, t, t^2).
template <class T>
struct L1Row {
  const T* pred;
  const T* target;
  const std::uint8_t* mask;
  double* sign;
  double* terms;
  __device__ void operator()(index_t i) const {
    double* t = terms + i * 5;
    if (!mask[i]) {
      sign[i] = 0;
      t[0] = t[1] = t[2] = t[3] = t[4] = 0;
      return;
    }
    const double d = double(pred[i]) - double(target[i]), y = double(target[i]);
    sign[i] = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
    t[0] = fabs(d);
    t[1] = 1;
    t[2] = d * d;
    t[3] = y;
    t[4] = y * y;
  }
};

template <class T>
struct ScaledDouble {  // d[i] = f * src[i]
  const double* src;
  T* d;
  double f;
  __device__ void operator()(index_t i) const { d[i] = T(f * src[i]); }
};

template <class T>
struct PerCountDouble {  // d[i] = scale / count * src[i]
  const double* src;
  T* d;
  double scale;
  const double* count;
  __device__ void operator()(index_t i) const { d[i] = T(per_count(scale, count) * src[i]); }
};

// Per element of MSE: diff, and terms (d^2, |d|, t, t^2).
template <class T>
struct MseRow {
  const T* pred;
  const T* target;
  double* diff;
  double* terms;
  __device__ void operator()(index_t i) const {
    const double d = double(pred[i]) - double(target[i]), y = double(target[i]);
    diff[i] = d;
    double* t = terms + i * 4;
    t[0] = d * d;
    t[1] = fabs(d);
    t[2] = y;
    t[3] = y * y;
  }
};

}  // namespace loss_cuda

template <class T>
void cross_entropy_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> logits,
                           TensorView<const std::int32_t, device::cuda> target, TensorView<double, device::cuda> prob,
                           TensorView<std::int32_t, device::cuda> saved_target, BatchStats<device::cuda>& out) {
  const index_t n = logits.size(0), c = logits.size(1);
  auto terms = ctx.scratch<double>(std::size_t(n * 3));
  longseq::cuda::for_each(ctx.stream(), n,
                          loss_cuda::CeRow<T>{logits.data, target.data, prob.data, saved_target.data, terms.data(), c},
                          "cross_entropy_forward");
  loss_cuda::write_stats<loss_cuda::TotalsOf::cross_entropy>(ctx, terms.data(), n, 3, out);
}

template <class T>
void cross_entropy_backward(Context<device::cuda>& ctx, TensorView<const double, device::cuda> prob,
                            TensorView<const std::int32_t, device::cuda> target,
                            const BatchStats<device::cuda>& stats, TensorView<T, device::cuda> dlogits, double scale) {
  const index_t c = prob.size(1);
  longseq::cuda::for_each(ctx.stream(), prob.numel(),
                          loss_cuda::CeGrad<T>{prob.data, target.data, dlogits.data, c, scale, stats.count_ptr()},
                          "cross_entropy_backward");
}

template <class T>
void masked_l1_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> pred,
                       TensorView<const T, device::cuda> target, TensorView<const std::uint8_t, device::cuda> mask,
                       TensorView<double, device::cuda> sign, BatchStats<device::cuda>& out) {
  const index_t n = pred.numel();
  auto terms = ctx.scratch<double>(std::size_t(n * 5));
  longseq::cuda::for_each(ctx.stream(), n,
                          loss_cuda::L1Row<T>{pred.data, target.data, mask.data, sign.data, terms.data()},
                          "masked_l1_forward");
  loss_cuda::write_stats<loss_cuda::TotalsOf::masked_l1>(ctx, terms.data(), n, 5, out);
}

template <class T>
void masked_l1_backward(Context<device::cuda>& ctx, TensorView<const double, device::cuda> sign,
                        const BatchStats<device::cuda>& stats, TensorView<T, device::cuda> dpred, double scale) {
  longseq::cuda::for_each(ctx.stream(), sign.numel(),
                          loss_cuda::PerCountDouble<T>{sign.data, dpred.data, scale, stats.count_ptr()},
                          "masked_l1_backward");
}

template <class T>
void mse_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> pred,
                 TensorView<const T, device::cuda> target, TensorView<double, device::cuda> diff,
                 BatchStats<device::cuda>& out) {
  const index_t n = pred.numel();
  auto terms = ctx.scratch<double>(std::size_t(n * 4));
  longseq::cuda::for_each(ctx.stream(), n, loss_cuda::MseRow<T>{pred.data, target.data, diff.data, terms.data()},
                          "mse_forward");
  loss_cuda::write_stats<loss_cuda::TotalsOf::mse>(ctx, terms.data(), n, 4, out);
}

template <class T>
void mse_backward(Context<device::cuda>& ctx, TensorView<const double, device::cuda> diff,
                  TensorView<T, device::cuda> dpred, double scale) {
  const index_t n = diff.numel();
  longseq::cuda::for_each(ctx.stream(), n, loss_cuda::ScaledDouble<T>{diff.data, dpred.data, n > 0 ? scale * 2.0 / double(n) : 0.0},
                          "mse_backward");
}

}  // namespace longseq::heads::detail

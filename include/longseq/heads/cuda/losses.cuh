// CUDA ops of the losses (heads/losses.hpp): one thread per row computes that row's terms in the host's
// order, then each statistic is summed by one block in a fixed order (no atomics), so a loss is the same on
// every run. The few totals are copied back on the context's stream for the returned LossStats.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "../../core/cuda/block_reduce.cuh"
#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"

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

// Sums the k columns of terms (n, k) on the device and returns them on the host (one small copy).
inline std::vector<double> column_totals(Context<device::cuda>& ctx, const double* terms, index_t n, int k) {
  auto dev = ctx.scratch<double>(std::size_t(k));
  column_totals_kernel<sum_threads><<<unsigned(k), sum_threads, 0, ctx.stream()>>>(terms, n, k, dev.data());
  LONGSEQ_CUDA_LAUNCH_CHECK("loss totals");
  std::vector<double> out(std::size_t(k), 0.0);
  LONGSEQ_CUDA_CHECK(
      cudaMemcpyAsync(out.data(), dev.data(), std::size_t(k) * sizeof(double), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  return out;
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

template <class T>
struct CeGrad {
  const double* prob;
  const std::int32_t* target;
  T* d;
  index_t c;
  double f;
  __device__ void operator()(index_t e) const {
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
LossStats cross_entropy_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> logits,
                                TensorView<const std::int32_t, device::cuda> target,
                                TensorView<double, device::cuda> prob,
                                TensorView<std::int32_t, device::cuda> saved_target) {
  const index_t n = logits.size(0), c = logits.size(1);
  auto terms = ctx.scratch<double>(std::size_t(n * 3));
  longseq::cuda::for_each(ctx.stream(), n,
                          loss_cuda::CeRow<T>{logits.data, target.data, prob.data, saved_target.data, terms.data(), c},
                          "cross_entropy_forward");
  const auto tot = loss_cuda::column_totals(ctx, terms.data(), n, 3);
  LossStats st;
  st.count = tot[1];
  st.correct = tot[2];
  st.loss = st.count > 0 ? tot[0] / st.count : 0.0;
  return st;
}

template <class T>
void cross_entropy_backward(Context<device::cuda>& ctx, TensorView<const double, device::cuda> prob,
                            TensorView<const std::int32_t, device::cuda> target, double count,
                            TensorView<T, device::cuda> dlogits, double scale) {
  const index_t c = prob.size(1);
  const double f = count > 0 ? scale / count : 0.0;
  longseq::cuda::for_each(ctx.stream(), prob.numel(), loss_cuda::CeGrad<T>{prob.data, target.data, dlogits.data, c, f},
                          "cross_entropy_backward");
}

template <class T>
LossStats masked_l1_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> pred,
                            TensorView<const T, device::cuda> target,
                            TensorView<const std::uint8_t, device::cuda> mask, TensorView<double, device::cuda> sign) {
  const index_t n = pred.numel();
  auto terms = ctx.scratch<double>(std::size_t(n * 5));
  longseq::cuda::for_each(ctx.stream(), n,
                          loss_cuda::L1Row<T>{pred.data, target.data, mask.data, sign.data, terms.data()},
                          "masked_l1_forward");
  const auto tot = loss_cuda::column_totals(ctx, terms.data(), n, 5);
  LossStats st;
  st.abs_err = tot[0];
  st.count = tot[1];
  st.sq_err = tot[2];
  st.target_sum = tot[3];
  st.target_sq = tot[4];
  st.loss = st.count > 0 ? tot[0] / st.count : 0.0;
  return st;
}

template <class T>
void masked_l1_backward(Context<device::cuda>& ctx, TensorView<const double, device::cuda> sign, double count,
                        TensorView<T, device::cuda> dpred, double scale) {
  const double f = count > 0 ? scale / count : 0.0;
  longseq::cuda::for_each(ctx.stream(), sign.numel(), loss_cuda::ScaledDouble<T>{sign.data, dpred.data, f},
                          "masked_l1_backward");
}

template <class T>
LossStats mse_forward(Context<device::cuda>& ctx, TensorView<const T, device::cuda> pred,
                      TensorView<const T, device::cuda> target, TensorView<double, device::cuda> diff) {
  const index_t n = pred.numel();
  auto terms = ctx.scratch<double>(std::size_t(n * 4));
  longseq::cuda::for_each(ctx.stream(), n, loss_cuda::MseRow<T>{pred.data, target.data, diff.data, terms.data()},
                          "mse_forward");
  const auto tot = loss_cuda::column_totals(ctx, terms.data(), n, 4);
  LossStats st;
  st.sq_err = tot[0];
  st.abs_err = tot[1];
  st.target_sum = tot[2];
  st.target_sq = tot[3];
  st.count = double(n);
  st.loss = n > 0 ? st.sq_err / double(n) : 0.0;
  return st;
}

template <class T>
void mse_backward(Context<device::cuda>& ctx, TensorView<const double, device::cuda> diff,
                  TensorView<T, device::cuda> dpred, double scale) {
  const index_t n = diff.numel();
  longseq::cuda::for_each(ctx.stream(), n, loss_cuda::ScaledDouble<T>{diff.data, dpred.data, n > 0 ? scale * 2.0 / double(n) : 0.0},
                          "mse_backward");
}

}  // namespace longseq::heads::detail

// nn::BatchNorm on the GPU: per-channel statistics over all B*L positions with deterministic column sums
// (partial sums per row chunk, then per channel in chunk order; no atomics), in double like the host layer.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../batch_norm.hpp"

namespace longseq::nn {

namespace batch_norm_cuda {

inline constexpr int cols = 32, lanes = 8;  // a block: 32 channels x 8 row lanes

// partial[chunk, c] = sum over the chunk's rows r of f(r, c).
template <class F>
__global__ void column_partials(index_t n, index_t h, index_t rows_per_chunk, F f, double* partial) {
  __shared__ double tile[lanes][cols + 1];
  const index_t c = index_t(blockIdx.x) * cols + threadIdx.x;
  const index_t r0 = index_t(blockIdx.y) * rows_per_chunk;
  const index_t r1 = r0 + rows_per_chunk < n ? r0 + rows_per_chunk : n;
  double acc = 0;
  if (c < h)
    for (index_t r = r0 + threadIdx.y; r < r1; r += lanes) acc += f(r, c);
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < h) {
    double s = 0;
    for (int k = 0; k < lanes; ++k) s += tile[k][threadIdx.x];
    partial[index_t(blockIdx.y) * h + c] = s;
  }
}

struct SumChunks {
  const double* partial;
  index_t chunks, h;
  double* out;
  __device__ void operator()(index_t c) const {
    double s = 0;
    for (index_t k = 0; k < chunks; ++k) s += partial[k * h + c];
    out[c] = s;
  }
};

// out[c] = sum over rows r < n of f(r, c), the same result on every run.
template <class F>
void column_sums(Context<device::cuda>& ctx, index_t n, index_t h, const F& f, double* out, const char* name) {
  const index_t chunks = std::clamp<index_t>(n / 1024, 1, 256);
  const index_t per = (n + chunks - 1) / chunks;
  auto partial = ctx.scratch<double>(std::size_t(chunks * h));
  dim3 grid(unsigned((h + cols - 1) / cols), unsigned(chunks)), block(cols, lanes);
  column_partials<F><<<grid, block, 0, ctx.stream()>>>(n, h, per, f, partial.data());
  LONGSEQ_CUDA_LAUNCH_CHECK(name);
  longseq::cuda::for_each(ctx.stream(), h, SumChunks{partial.data(), chunks, h, out}, name);
}

template <class T>
struct Value {
  const T* x;
  index_t h;
  __device__ double operator()(index_t r, index_t c) const { return double(x[r * h + c]); }
};
template <class T>
struct Centered {  // (x - mean)^2
  const T* x;
  const double* mean;
  index_t h;
  __device__ double operator()(index_t r, index_t c) const {
    const double d = double(x[r * h + c]) - mean[c];
    return d * d;
  }
};
template <class T>
struct Product {  // dy * xhat
  const T* a;
  const T* b;
  index_t h;
  __device__ double operator()(index_t r, index_t c) const { return double(a[r * h + c]) * double(b[r * h + c]); }
};

// Per channel: mean and rstd from the sums (training, also updating the running statistics with the
// unbiased variance) or from the running statistics (evaluation).
template <class T>
struct Stats {
  double* mean;           // in: sum of x (training); out: mean
  const double* sq;       // sum of (x - mean)^2 (training)
  double* rstd;
  T *running_mean, *running_var;
  index_t n;
  double eps, momentum;
  bool training;
  __device__ void operator()(index_t c) const {
    double m, var;
    if (training) {
      m = mean[c];
      var = sq[c] / double(n);
      const double unbiased = sq[c] / double(n - 1);
      running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * m);
      running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * unbiased);
    } else {
      m = double(running_mean[c]);
      var = double(running_var[c]);
    }
    mean[c] = m;
    rstd[c] = 1.0 / sqrt(var + eps);
  }
};
struct Divide {
  double* v;
  double d;
  __device__ void operator()(index_t c) const { v[c] /= d; }
};

template <class T>
struct Normalize {
  const T *x, *gamma, *beta;
  const double *mean, *rstd;
  T *xhat, *y;
  index_t h;
  __device__ void operator()(index_t i) const {
    const index_t c = i % h;
    const double xh = (double(x[i]) - mean[c]) * rstd[c];
    xhat[i] = T(xh);
    y[i] = T(xh * double(gamma[c]) + double(beta[c]));
  }
};

template <class T>
struct AddGrads {
  const double *sum_g, *sum_gx;
  T *dgamma, *dbeta;
  __device__ void operator()(index_t c) const {
    dgamma[c] = T(dgamma[c] + T(sum_gx[c]));  // rounded, then added: as the host layer
    dbeta[c] = T(dbeta[c] + T(sum_g[c]));
  }
};

template <class T>
struct InputGrad {
  const T *dy, *xhat, *gamma;
  const double *rstd, *sum_g, *sum_gx;
  index_t n, h;
  bool batch_stats;
  T* dx;
  __device__ void operator()(index_t i) const {
    const index_t c = i % h;
    const double d = double(dy[i]), g = double(gamma[c]) * rstd[c];
    dx[i] = batch_stats ? T(g * (d - sum_g[c] / double(n) - double(xhat[i]) * sum_gx[c] / double(n))) : T(g * d);
  }
};

}  // namespace batch_norm_cuda

template <class T>
void batch_norm_forward(Context<device::cuda>& ctx, BatchNorm<T, device::cuda>& bn, TensorView<const T, device::cuda> x,
                        TensorView<T, device::cuda> y, typename BatchNorm<T, device::cuda>::Saved& s) {
  namespace k = batch_norm_cuda;
  const index_t n = leading_rows(x), h = bn.cfg.dim;
  auto mean = ctx.scratch<double>(std::size_t(h)), sq = ctx.scratch<double>(std::size_t(h));
  if (ctx.training) {  // two passes, as on the host: the mean, then the centered squares
    k::column_sums(ctx, n, h, k::Value<T>{x.data, h}, mean.data(), "nn::batch_norm_sum");
    longseq::cuda::for_each(ctx.stream(), h, k::Divide{mean.data(), double(n)}, "nn::batch_norm_mean");
    k::column_sums(ctx, n, h, k::Centered<T>{x.data, mean.data(), h}, sq.data(), "nn::batch_norm_var");
  }
  longseq::cuda::for_each(ctx.stream(), h,
                          k::Stats<T>{mean.data(), sq.data(), s.rstd.data(), bn.running_mean.value.data,
                                      bn.running_var.value.data, n, bn.cfg.eps, bn.cfg.momentum, ctx.training},
                          "nn::batch_norm_stats");
  longseq::cuda::for_each(ctx.stream(), n * h,
                          k::Normalize<T>{x.data, bn.weight.value.data, bn.bias.value.data, mean.data(), s.rstd.data(),
                                          s.xhat.data(), y.data, h},
                          "nn::batch_norm_normalize");
}

template <class T>
void batch_norm_backward(Context<device::cuda>& ctx, BatchNorm<T, device::cuda>& bn,
                         typename BatchNorm<T, device::cuda>::Saved& s, TensorView<const T, device::cuda> dy,
                         TensorView<T, device::cuda> dx) {
  namespace k = batch_norm_cuda;
  const index_t h = bn.cfg.dim, n = s.xhat.numel() / h;
  auto sum_g = ctx.scratch<double>(std::size_t(h)), sum_gx = ctx.scratch<double>(std::size_t(h));
  k::column_sums(ctx, n, h, k::Value<T>{dy.data, h}, sum_g.data(), "nn::batch_norm_sum_dy");
  k::column_sums(ctx, n, h, k::Product<T>{dy.data, s.xhat.data(), h}, sum_gx.data(), "nn::batch_norm_sum_dy_xhat");
  longseq::cuda::for_each(ctx.stream(), h, k::AddGrads<T>{sum_g.data(), sum_gx.data(), bn.weight.grad.data, bn.bias.grad.data},
                          "nn::batch_norm_param_grads");
  longseq::cuda::for_each(ctx.stream(), n * h,
                          k::InputGrad<T>{dy.data, s.xhat.data(), bn.weight.value.data, s.rstd.data(), sum_g.data(),
                                          sum_gx.data(), n, h, s.batch_stats, dx.data},
                          "nn::batch_norm_input_grad");
}

}  // namespace longseq::nn

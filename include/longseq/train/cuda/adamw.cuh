// AdamW on CUDA: one fused kernel over the store's flat buffer. Each entry's group (a byte per element, set
// once) indexes a per-update table of lr and decay passed by value; the bias corrections and the step count
// live on the device, so an update skipped by the device (UpdateGate::skip) leaves t unchanged without the
// host knowing. Same arithmetic as the host loop (double, moments rounded to their type before use).
#pragma once
#include <cuda_runtime.h>

#include <vector>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/cuda/memory.cuh"
#include "../adamw.hpp"

namespace longseq::train {

namespace cuda_detail {

// One thread: t += 1 unless skipped, then the bias corrections for this t.
__global__ inline void adamw_prepare_kernel(double* tstate, const int* skip, double beta1, double beta2) {
  if (skip && *skip) return;
  const double t = tstate[0] + 1.0;
  tstate[0] = t;
  tstate[1] = 1.0 - pow(beta1, t);
  tstate[2] = sqrt(1.0 - pow(beta2, t));
}

template <class T, class S, bool Master>
__global__ void adamw_step_kernel(T* __restrict__ p, float* __restrict__ master, const T* __restrict__ g,
                                  S* __restrict__ m, S* __restrict__ v, const std::uint8_t* __restrict__ group,
                                  index_t n, detail::GroupTable tab, double beta1, double beta2, double eps,
                                  const double* __restrict__ tstate, const double* grad_factor, const int* skip) {
  if (skip && *skip) return;
  const double bc1 = tstate[1], sqrt_bc2 = tstate[2];
  const double factor = grad_factor ? *grad_factor : 1.0;
  for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    const int k = group[i];
    if (k >= param_group_count) continue;  // padding between tensors stays zero
    const double lr = tab.lr[k], wd = tab.wd[k];
    double pi = Master ? double(master[i]) : double(float(p[i]));
    if constexpr (std::is_same_v<T, double>) pi = Master ? pi : p[i];
    double gi = double(float(g[i]));
    if constexpr (std::is_same_v<T, double>) gi = g[i];
    gi *= factor;
    pi *= 1.0 - lr * wd;
    const S mi = S(beta1 * double(m[i]) + (1.0 - beta1) * gi);
    const S vi = S(beta2 * double(v[i]) + (1.0 - beta2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    pi -= (lr / bc1) * double(mi) / (sqrt(double(vi)) / sqrt_bc2 + eps);
    if constexpr (Master) {
      master[i] = float(pi);
      p[i] = T(float(pi));
    } else {
      p[i] = T(pi);
    }
  }
}

template <class T>
struct ToFloat {
  const T* in;
  float* out;
  __device__ void operator()(index_t i) const { out[i] = float(in[i]); }
};

}  // namespace cuda_detail

template <class T, class D>
void AdamW<T, D>::device_setup() {
  static_assert(std::is_same_v<D, device::cuda>, "AdamW: the fused device update is written for device::cuda");
  const index_t n = store_->values().numel();
  std::vector<std::uint8_t> groups(std::size_t(n), static_cast<std::uint8_t>(param_group_count));
  for (const auto& e : store_->entries())
    if (!e.param->buffer)  // running statistics are not optimized
      std::fill(groups.begin() + e.offset, groups.begin() + e.offset + e.param->shape.numel(),
                std::uint8_t(e.param->group));
  group_ = Tensor<std::uint8_t, D>(Shape{n});
  if (n) LONGSEQ_CUDA_CHECK(cudaMemcpy(group_.data(), groups.data(), std::size_t(n), cudaMemcpyHostToDevice));
  tstate_ = Tensor<double, D>(Shape{3});
  const double init[3] = {0.0, 0.0, 0.0};
  LONGSEQ_CUDA_CHECK(cudaMemcpy(tstate_.data(), init, sizeof(init), cudaMemcpyHostToDevice));
}

template <class T, class D>
void AdamW<T, D>::device_step(double lr_scale, UpdateGate gate) {
  const index_t n = store_->values().numel();
  cudaStream_t s = cudaStreamLegacy;  // ordered with the store's plain copies and every blocking stream
  cuda_detail::adamw_prepare_kernel<<<1, 1, 0, s>>>(tstate_.data(), gate.skip, cfg_.beta1, cfg_.beta2);
  LONGSEQ_CUDA_LAUNCH_CHECK("adamw_prepare");
  if (n == 0) return;
  float* master = nullptr;
  if constexpr (has_master) master = master_.data();
  cuda_detail::adamw_step_kernel<T, state_type, has_master><<<cuda::grid_for(n), cuda::block_threads, 0, s>>>(
      store_->values().data, master, store_->grads().data, m_.data(), v_.data(), group_.data(), n, table(lr_scale),
      cfg_.beta1, cfg_.beta2, cfg_.eps, tstate_.data(), gate.grad_factor, gate.skip);
  LONGSEQ_CUDA_LAUNCH_CHECK("adamw_step");
}

template <class T, class D>
void AdamW<T, D>::device_load_masters() {
  if constexpr (has_master) {
    const index_t n = store_->values().numel();
    cuda::for_each(cudaStreamLegacy, n, cuda_detail::ToFloat<T>{store_->values().data, master_.data()},
                   "adamw_load_masters");
  }
}

template <class T, class D>
index_t AdamW<T, D>::device_steps() const {
  double t = 0;
  LONGSEQ_CUDA_CHECK(cudaMemcpy(&t, tstate_.data(), sizeof(double), cudaMemcpyDeviceToHost));
  return index_t(t);
}

template <class T, class D>
void AdamW<T, D>::device_set_steps(index_t t) {
  const double tt = double(t);
  LONGSEQ_CUDA_CHECK(cudaMemcpy(tstate_.data(), &tt, sizeof(double), cudaMemcpyHostToDevice));
}

}  // namespace longseq::train

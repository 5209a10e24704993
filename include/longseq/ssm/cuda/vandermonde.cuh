// CUDA Vandermonde kernels for diagonal SSMs: K[c,h,l] = scale Re sum_m coef[c,h,m] exp(l log_z[h,m]) and its
// backward, fused so that no (H, M, L) intermediate is written to global memory. Inputs are device arrays
// of interleaved (re, im) pairs in float, double or bf16; sums accumulate in accum_t<T> (float for float and
// bf16, double for double).
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "../../core/cuda/check.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/dtype.hpp"
#include "../../core/shape.hpp"

namespace longseq::ssm::cuda {

namespace detail {

template <class A>
struct Cx {
  A re, im;
};

template <class A>
__device__ inline Cx<A> cexp_scaled(Cx<A> z, A t) {  // exp(t z)
  A m = exp(t * z.re), s, c;
  if constexpr (sizeof(A) == 4) {
    sincosf(t * z.im, &s, &c);
  } else {
    sincos(t * z.im, &s, &c);
  }
  return {m * c, m * s};
}

// Modes are staged through shared memory in tiles of this many.
inline constexpr int mode_tile = 128;
// Launch caps: gridDim.y is at most 65535 on every device; the backward strides (h, m) over at most 2^20 blocks.
inline constexpr index_t max_grid_y = 65535;
inline constexpr index_t max_blocks = index_t(1) << 20;

// One thread per (h, l): loops over the modes of channel h for every kernel channel c (C <= 2). The
// channels are strided over gridDim.y (at most 65535), so any H fits the launch.
template <class T>
__global__ void vandermonde_forward_kernel(const T* coef, const T* log_z, index_t C, index_t H, index_t M, index_t L,
                                           accum_t<T> scale, T* K) {
  using A = accum_t<T>;
  __shared__ Cx<A> s_lz[mode_tile];
  __shared__ Cx<A> s_co[2][mode_tile];
  index_t l = index_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (index_t h = blockIdx.y; h < H; h += gridDim.y) {
    A acc[2] = {A(0), A(0)};
    for (index_t m0 = 0; m0 < M; m0 += mode_tile) {
      index_t tile = M - m0 < mode_tile ? M - m0 : mode_tile;
      __syncthreads();
      for (index_t i = threadIdx.x; i < tile; i += blockDim.x) {
        index_t m = m0 + i;
        s_lz[i] = {A(log_z[2 * (h * M + m)]), A(log_z[2 * (h * M + m) + 1])};
        for (index_t c = 0; c < C; ++c)
          s_co[c][i] = {A(coef[2 * ((c * H + h) * M + m)]), A(coef[2 * ((c * H + h) * M + m) + 1])};
      }
      __syncthreads();
      if (l < L)
        for (index_t i = 0; i < tile; ++i) {
          Cx<A> p = cexp_scaled(s_lz[i], A(l));
          for (index_t c = 0; c < C; ++c) acc[c] += s_co[c][i].re * p.re - s_co[c][i].im * p.im;
        }
    }
    if (l < L)
      for (index_t c = 0; c < C; ++c) K[(c * H + h) * L + l] = T(scale * acc[c]);
  }
}

// One block per (h, m), the pairs strided over the grid: sums over l of dK conj(z^l) and l dK conj(z^l) for each
// c, reduced across the block.
template <class T>
__global__ void vandermonde_backward_kernel(const T* coef, const T* log_z, const T* dK, index_t C, index_t H, index_t M,
                                            index_t L, accum_t<T> scale, T* g_coef, T* g_log_z) {
  using A = accum_t<T>;
  __shared__ A red[8][32];
  for (index_t hm = blockIdx.x; hm < H * M; hm += gridDim.x) {
    index_t h = hm / M, m = hm % M;
    Cx<A> lz = {A(log_z[2 * hm]), A(log_z[2 * hm + 1])};
    A s0r[2] = {0, 0}, s0i[2] = {0, 0}, s1r[2] = {0, 0}, s1i[2] = {0, 0};
    for (index_t l = threadIdx.x; l < L; l += blockDim.x) {
      Cx<A> p = cexp_scaled(lz, A(l));
      for (index_t c = 0; c < C; ++c) {
        A g = A(dK[(c * H + h) * L + l]);
        // g * conj(p)
        s0r[c] += g * p.re;
        s0i[c] -= g * p.im;
        s1r[c] += A(l) * g * p.re;
        s1i[c] -= A(l) * g * p.im;
      }
    }
    A vals[8] = {s0r[0], s0i[0], s1r[0], s1i[0], s0r[1], s0i[1], s1r[1], s1i[1]};
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    for (int k = 0; k < 8; ++k) {
      A v = longseq::cuda::warp_sum(vals[k]);
      if (lane == 0) red[k][warp] = v;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      A tot[8];
      for (int k = 0; k < 8; ++k) {
        tot[k] = 0;
        for (int w = 0; w < nwarps; ++w) tot[k] += red[k][w];
      }
      A gzr = 0, gzi = 0;
      for (index_t c = 0; c < C; ++c) {
        index_t i = (c * H + h) * M + m;
        g_coef[2 * i] = T(scale * tot[4 * c]);
        g_coef[2 * i + 1] = T(scale * tot[4 * c + 1]);
        // conj(coef) * s1
        A cr = A(coef[2 * i]), ci = -A(coef[2 * i + 1]), ar = tot[4 * c + 2], ai = tot[4 * c + 3];
        gzr += scale * (cr * ar - ci * ai);
        gzi += scale * (cr * ai + ci * ar);
      }
      g_log_z[2 * hm] = T(gzr);
      g_log_z[2 * hm + 1] = T(gzi);
    }
    __syncthreads();  // red is reused by the next (h, m)
  }
}

// Launch sizes against the current device's limits, with the kernel's name in the error.
inline void check_launch(dim3 grid, unsigned threads, std::size_t shared, const char* name) {
  int dev = 0, gx = 0, gy = 0, tb = 0, sm = 0;
  LONGSEQ_CUDA_CHECK(cudaGetDevice(&dev));
  LONGSEQ_CUDA_CHECK(cudaDeviceGetAttribute(&gx, cudaDevAttrMaxGridDimX, dev));
  LONGSEQ_CUDA_CHECK(cudaDeviceGetAttribute(&gy, cudaDevAttrMaxGridDimY, dev));
  LONGSEQ_CUDA_CHECK(cudaDeviceGetAttribute(&tb, cudaDevAttrMaxThreadsPerBlock, dev));
  LONGSEQ_CUDA_CHECK(cudaDeviceGetAttribute(&sm, cudaDevAttrMaxSharedMemoryPerBlock, dev));
  LONGSEQ_CHECK(grid.x >= 1 && grid.x <= unsigned(gx) && grid.y >= 1 && grid.y <= unsigned(gy) && threads <= unsigned(tb) &&
                    shared <= std::size_t(sm),
                name, ": launch of grid (", grid.x, ", ", grid.y, ") x ", threads, " threads with ", shared,
                " bytes of shared memory exceeds the device's limits (grid x <= ", gx, ", y <= ", gy, ", threads <= ", tb,
                ", shared <= ", sm, ")");
}

}  // namespace detail

// K (C, H, L) from coef (C, H, M, 2) and log_z (H, M, 2), all device pointers; C is 1 or 2. T is float, double
// or bf16 (storage; the sums run in accum_t<T>).
template <class T>
void vandermonde_forward(cudaStream_t stream, const T* coef, const T* log_z, index_t C, index_t H, index_t M, index_t L,
                         accum_t<T> scale, T* K) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "cuda::vandermonde_forward: T must be float, double or bf16");
  LONGSEQ_CHECK(C == 1 || C == 2, "cuda::vandermonde_forward: C = ", C, ", expected 1 or 2");
  if (H * L == 0) return;
  // x covers L (2^31 - 1 blocks of 256 allow any index_t length in practice); y strides over the channels.
  dim3 grid(unsigned((L + 255) / 256), unsigned(H < detail::max_grid_y ? H : detail::max_grid_y));
  detail::check_launch(grid, 256, sizeof(detail::Cx<accum_t<T>>) * 3 * detail::mode_tile,
                       "ssm::cuda::vandermonde_forward");
  detail::vandermonde_forward_kernel<T><<<grid, 256, 0, stream>>>(coef, log_z, C, H, M, L, scale, K);
  LONGSEQ_CUDA_LAUNCH_CHECK("ssm::vandermonde_forward_kernel");
}

// Gradients (dLoss/dRe, dLoss/dIm interleaved) of coef (C, H, M, 2) and log_z (H, M, 2), written.
template <class T>
void vandermonde_backward(cudaStream_t stream, const T* coef, const T* log_z, const T* dK, index_t C, index_t H,
                          index_t M, index_t L, accum_t<T> scale, T* g_coef, T* g_log_z) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "cuda::vandermonde_backward: T must be float, double or bf16");
  LONGSEQ_CHECK(C == 1 || C == 2, "cuda::vandermonde_backward: C = ", C, ", expected 1 or 2");
  if (H * M == 0) return;
  dim3 grid(unsigned(H * M < detail::max_blocks ? H * M : detail::max_blocks));
  detail::check_launch(grid, 256, sizeof(accum_t<T>) * 8 * 32, "ssm::cuda::vandermonde_backward");
  detail::vandermonde_backward_kernel<T><<<grid, 256, 0, stream>>>(coef, log_z, dK, C, H, M, L, scale, g_coef, g_log_z);
  LONGSEQ_CUDA_LAUNCH_CHECK("ssm::vandermonde_backward_kernel");
}

}  // namespace longseq::ssm::cuda

// SSMConv's pointwise tail on the device, fused: z = y + D[h] u and a = gelu(z), read in the convolution's
// (B, H, L) layout and written in the activations' (B, L, H) layout (the transpose rides on a shared-memory
// tile), and its backward with a deterministic two-pass reduction for dD (per-tile row sums, then a sum over
// tiles; no atomics). float, double or bf16 storage; arithmetic and the dD sums in accum_t<T>.
#pragma once
#include <cuda_runtime.h>

#include <type_traits>

#include "../../core/cuda/context.cuh"
#include "../../core/cuda/launch.cuh"
#include "../../core/dtype.hpp"
#include "../../core/tensor.hpp"
#include "../../ops/cuda/activation.cuh"

namespace longseq::ssm::cuda {

namespace skip_gelu_detail {

// A block covers a 32 x 32 tile of (l, h) for one batch row b, with 32 x 8 threads. Each kernel is a sequence
// of phases separated by __syncthreads(); a phase is a host-and-device function of the block and thread
// indices and the block's shared tiles, so the same code can be stepped through on the host.
inline constexpr int tdim = 32, trows = 8;

template <class A>
using Tile = A[tdim][tdim + 1];  // [h - h0][l - l0], padded against bank conflicts

struct Block {
  index_t b, l0, h0;
  int tx, ty;
};

// Reads along l: tile[h][l] = y + D[h] u.
template <class T>
LONGSEQ_HD void forward_load(const Block& k, const T* y, const T* u, const T* D, index_t H, index_t L,
                             Tile<accum_t<T>>& tile) {
  using A = accum_t<T>;
  for (int j = k.ty; j < tdim; j += trows) {
    index_t h = k.h0 + j, l = k.l0 + k.tx;
    if (h < H && l < L) {
      index_t i = (k.b * H + h) * L + l;
      tile[j][k.tx] = A(y[i]) + A(D[h]) * A(u[i]);
    }
  }
}

// Writes along h: z and a = gelu(z), the gelu taken of the stored z as the unfused path does.
template <class T, class Act>
LONGSEQ_HD void forward_store(const Block& k, index_t H, index_t L, const Act& act, const Tile<accum_t<T>>& tile,
                              T* z, T* a) {
  using A = accum_t<T>;
  for (int j = k.ty; j < tdim; j += trows) {
    index_t l = k.l0 + j, h = k.h0 + k.tx;
    if (h < H && l < L) {
      T zt = T(tile[k.tx][j]);
      index_t o = (k.b * L + l) * H + h;
      z[o] = zt;
      a[o] = T(act.f(A(zt)));
    }
  }
}

// Reads along h: tile[h][l] = da gelu'(z) (zero outside the tensor).
template <class T, class Act>
LONGSEQ_HD void backward_load(const Block& k, const T* z, const T* da, index_t H, index_t L, const Act& act,
                              Tile<accum_t<T>>& tile) {
  using A = accum_t<T>;
  for (int j = k.ty; j < tdim; j += trows) {
    index_t l = k.l0 + j, h = k.h0 + k.tx;
    A gz = A(0);
    if (h < H && l < L) {
      index_t o = (k.b * L + l) * H + h;
      gz = A(da[o]) * act.df(A(z[o]));
    }
    tile[k.tx][j] = gz;
  }
}

// Writes along l: dy and du = D[h] dy; prod[h][l] = dy u (zero outside the tensor).
template <class T>
LONGSEQ_HD void backward_store(const Block& k, const T* u, const T* D, index_t H, index_t L,
                               const Tile<accum_t<T>>& tile, Tile<accum_t<T>>& prod, T* dy, T* du) {
  using A = accum_t<T>;
  for (int j = k.ty; j < tdim; j += trows) {
    index_t h = k.h0 + j, l = k.l0 + k.tx;
    A pr = A(0);
    if (h < H && l < L) {
      index_t i = (k.b * H + h) * L + l;
      A g = tile[j][k.tx];
      dy[i] = T(g);
      du[i] = T(A(D[h]) * g);
      pr = g * A(u[i]);
    }
    prod[j][k.tx] = pr;
  }
}

// The first tdim threads each sum one row of prod in a fixed order: partial[h, p] for this block's p.
template <class A>
LONGSEQ_HD void backward_reduce(const Block& k, index_t H, index_t P, index_t p, const Tile<A>& prod, A* partial) {
  int t = k.tx + tdim * k.ty;
  if (t >= tdim || k.h0 + t >= H) return;
  A acc = A(0);
  for (int l = 0; l < tdim; ++l) acc += prod[t][l];
  partial[(k.h0 + t) * P + p] = acc;
}

template <class T>
__global__ void forward_kernel(const T* y, const T* u, const T* D, index_t H, index_t L,
                               ops::cuda_detail::GeluAct act, T* z, T* a) {
  __shared__ Tile<accum_t<T>> tile;
  Block k{index_t(blockIdx.z), index_t(blockIdx.x) * tdim, index_t(blockIdx.y) * tdim, int(threadIdx.x),
          int(threadIdx.y)};
  forward_load(k, y, u, D, H, L, tile);
  __syncthreads();
  forward_store(k, H, L, act, tile, z, a);
}

// partial (H, P) with P = B * gridDim.x, p = b * gridDim.x + blockIdx.x, summed over p afterwards (no atomics,
// so runs are bitwise reproducible).
template <class T>
__global__ void backward_kernel(const T* z, const T* da, const T* u, const T* D, index_t H, index_t L,
                                ops::cuda_detail::GeluAct act, T* dy, T* du, accum_t<T>* partial) {
  __shared__ Tile<accum_t<T>> tile, prod;
  Block k{index_t(blockIdx.z), index_t(blockIdx.x) * tdim, index_t(blockIdx.y) * tdim, int(threadIdx.x),
          int(threadIdx.y)};
  index_t P = index_t(gridDim.z) * gridDim.x, p = index_t(blockIdx.z) * gridDim.x + blockIdx.x;
  backward_load(k, z, da, H, L, act, tile);
  __syncthreads();
  backward_store(k, u, D, H, L, tile, prod, dy, du);
  __syncthreads();
  backward_reduce(k, H, P, p, prod, partial);
}

template <class T>
struct SumPartials {
  using A = accum_t<T>;
  const A* partial;
  index_t P;
  T* dD;
  LONGSEQ_HD void operator()(index_t h) const {
    A acc = A(0);
    for (index_t p = 0; p < P; ++p) acc += partial[h * P + p];
    dD[h] = T(A(dD[h]) + acc);
  }
};

struct Dims {
  index_t B, H, L;
};

template <class T>
Dims check_conv_layout(const TensorView<const T, device::cuda>& u, const TensorView<const T, device::cuda>& D,
                       const char* fn) {
  expect_rank(u, 3, "u");
  Dims d{u.size(0), u.size(1), u.size(2)};
  expect_shape(D, Shape{d.H}, "D");
  LONGSEQ_CHECK(d.B <= 65535, fn, ": tensor 'u' has shape ", u.shape, ", expected at most 65535 batch rows");
  LONGSEQ_CHECK((d.H + tdim - 1) / tdim <= 65535, fn, ": tensor 'u' has shape ", u.shape,
                ", expected at most ", 65535 * tdim, " channels");
  expect_contiguous(u, "u");
  expect_contiguous(D, "D");
  return d;
}

inline dim3 tile_grid(const Dims& d) {
  return dim3(unsigned((d.L + tdim - 1) / tdim), unsigned((d.H + tdim - 1) / tdim), unsigned(d.B));
}

}  // namespace skip_gelu_detail

// z = y + D[h] u and a = gelu(z): y, u (B, H, L) (the convolution's layout), D (H); z, a (B, L, H) written.
template <class T>
void skip_gelu_forward(Context<device::cuda>& ctx, ops::cuda_detail::CudaIn<T> y, ops::cuda_detail::CudaIn<T> u,
                       ops::cuda_detail::CudaIn<T> D, TensorView<T, device::cuda> z, TensorView<T, device::cuda> a,
                       ops::Gelu kind = ops::Gelu::exact) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "skip_gelu_forward: T must be float, double or bf16");
  auto d = skip_gelu_detail::check_conv_layout<T>(u, D, "skip_gelu_forward");
  expect_shape(y, u.shape, "y");
  expect_shape(z, Shape{d.B, d.L, d.H}, "z");
  expect_shape(a, Shape{d.B, d.L, d.H}, "a");
  expect_contiguous(y, "y");
  expect_contiguous(z, "z");
  expect_contiguous(a, "a");
  if (u.numel() == 0) return;
  skip_gelu_detail::forward_kernel<T>
      <<<skip_gelu_detail::tile_grid(d), dim3(skip_gelu_detail::tdim, skip_gelu_detail::trows), 0, ctx.stream()>>>(
          y.data, u.data, D.data, d.H, d.L, ops::cuda_detail::GeluAct{kind}, z.data, a.data);
  LONGSEQ_CUDA_LAUNCH_CHECK("ssm::skip_gelu_forward_kernel");
}

// Backward of skip_gelu_forward from z (B, L, H) and da (B, L, H): dy = da gelu'(z) and du = D[h] dy, both
// (B, H, L) and written; dD (H) accumulated (+= sum over b, l of dy u).
template <class T>
void skip_gelu_backward(Context<device::cuda>& ctx, ops::cuda_detail::CudaIn<T> z, ops::cuda_detail::CudaIn<T> da,
                        ops::cuda_detail::CudaIn<T> u, ops::cuda_detail::CudaIn<T> D, TensorView<T, device::cuda> dy,
                        TensorView<T, device::cuda> du, TensorView<T, device::cuda> dD,
                        ops::Gelu kind = ops::Gelu::exact) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, bf16>,
                "skip_gelu_backward: T must be float, double or bf16");
  using A = accum_t<T>;
  auto d = skip_gelu_detail::check_conv_layout<T>(u, D, "skip_gelu_backward");
  expect_shape(z, Shape{d.B, d.L, d.H}, "z");
  expect_shape(da, Shape{d.B, d.L, d.H}, "da");
  expect_shape(dy, u.shape, "dy");
  expect_shape(du, u.shape, "du");
  expect_shape(dD, D.shape, "dD");
  expect_contiguous(z, "z");
  expect_contiguous(da, "da");
  expect_contiguous(dy, "dy");
  expect_contiguous(du, "du");
  expect_contiguous(dD, "dD");
  if (u.numel() == 0) return;
  dim3 grid = skip_gelu_detail::tile_grid(d);
  index_t P = index_t(grid.x) * grid.z;
  auto partial = ctx.scratch<A>(std::size_t(d.H * P));
  skip_gelu_detail::backward_kernel<T>
      <<<grid, dim3(skip_gelu_detail::tdim, skip_gelu_detail::trows), 0, ctx.stream()>>>(
          z.data, da.data, u.data, D.data, d.H, d.L, ops::cuda_detail::GeluAct{kind}, dy.data, du.data,
          partial.data());
  LONGSEQ_CUDA_LAUNCH_CHECK("ssm::skip_gelu_backward_kernel");
  longseq::cuda::for_each(ctx.stream(), d.H, skip_gelu_detail::SumPartials<T>{partial.data(), P, dD.data},
                          "ssm::skip_gelu_sum_dD");
}

}  // namespace longseq::ssm::cuda

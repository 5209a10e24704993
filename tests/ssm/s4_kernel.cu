// GPU test: the device S4 kernel (generating function, then cuFFT's inverse real FFT) and its backward agree
// with the host S4 kernel.
#include <doctest/doctest.h>

#include <vector>

#include <longseq/core/context.hpp>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <longseq/ssm/s4.hpp>
#include <longseq/ssm/cuda/s4_kernel.cuh>

#include "cuda_test_util.cuh"

using namespace longseq;

namespace {

template <class T>
void compare_kernel(index_t H, index_t N, index_t Lk, index_t L, index_t channels, index_t n_ssm, double tol) {
  ParamStore<double> store;
  auto s4 = test::make_s4(H, N, Lk, channels, n_ssm, store);
  HostContext hctx;
  Tensor<double> K(Shape{channels, H, L}), dK(Shape{channels, H, L});
  ssm::S4<double>::Saved sv;
  s4.kernel_forward(hctx, L, K.view(), sv);
  Rng rng(4);
  for (index_t i = 0; i < dK.numel(); ++i) dK[i] = rng.normal();
  for (index_t i = 0; i < store.grads().numel(); ++i) store.grads()[i] = 0;
  s4.kernel_backward(hctx, sv, dK.view());

  CudaContext ctx;
  test::S4Inputs<T> in(s4);
  auto dt = to_device(in.dt), lam = to_device(in.lambda), P = to_device(in.P), B = to_device(in.B),
       C = to_device(in.C);
  Tensor<T, device::cuda> Kd(Shape{channels, H, L});
  ssm::cuda::s4_kernel_forward<T>(ctx, dt, lam, P, B, C, Lk, Kd);
  CHECK(test::rel_diff(std::vector<double>(K.data(), K.data() + K.numel()), Kd) <= tol);
  auto ddK = to_device(test::copy_as<T>(dK.view()));
  test::S4Grads<T> g(s4);
  ssm::cuda::s4_kernel_backward<T>(ctx, dt, lam, P, B, C, Lk, ddK, g.dt, g.lambda, g.P, g.B, g.C);
  test::check_s4_grads(s4, g, tol);
}

}  // namespace

TEST_CASE("CUDA S4 kernel and its backward match the host S4 kernel") {
  compare_kernel<double>(4, 16, 64, 50, 2, 2, 1e-9);  // truncated, even l_max (z = -1 node), shared copies
  compare_kernel<double>(3, 8, 45, 45, 1, 0, 1e-9);   // full length, odd l_max
  compare_kernel<float>(4, 16, 128, 100, 1, 1, 1e-3);
}

TEST_CASE("CUDA S4 kernel rejects a kernel longer than the length C was corrected for") {
  CudaContext ctx;
  using V = TensorView<const float, device::cuda>;
  using W = TensorView<float, device::cuda>;
  CHECK_THROWS_WITH_AS(ssm::cuda::s4_kernel_forward<float>(ctx, V(nullptr, Shape{4}), V(nullptr, Shape{2, 8, 2}),
                                                           V(nullptr, Shape{2, 8, 2}), V(nullptr, Shape{2, 8, 2}),
                                                           V(nullptr, Shape{1, 4, 8, 2}), 64,
                                                           W(nullptr, Shape{1, 4, 65})),
                       doctest::Contains("tensor 'K' has shape (1, 4, 65), expected (1, 4, L) with 1 <= L <= Lk = 64"),
                       Error);
}

// FFT convolutions through a context whose plan cache is at its smallest (4 plans, least recently used
// dropped first) and whose plans share one growing work area: every length still gives the host op's numbers,
// including lengths met again after their plans were evicted.
#include <doctest/doctest.h>

#include <longseq/ops/cuda/fft_conv.cuh>
#include <longseq/ops/fft_conv.hpp>

#include "ops/cuda_helpers.cuh"

using namespace longseq;
using namespace longseq::test;

TEST_CASE("cuda fft_conv with a 4-plan cache and a shared work area matches the host op for every length") {
  Context<device::cuda> ctx;
  ctx.set_plan_capacity(4);
  Context<device::host> hctx;
  std::size_t work = 0;
  const index_t N = 2, C = 3;
  for (index_t L : {16, 37, 300, 1000, 37, 4099, 16, 300}) {
    CAPTURE(L);
    auto u = random_tensor<float>(Shape{N, C, L}, 21 + std::uint64_t(L));
    auto k = random_tensor<float>(Shape{C, L}, 22, -0.5, 0.5);
    auto dy = random_tensor<float>(Shape{N, C, L}, 23);
    Tensor<float> y(Shape{N, C, L}), du(Shape{N, C, L}), dk(Shape{C, L});
    ops::fft_conv_forward<float>(hctx, u.view(), k.view(), y.view(), ops::ConvMode::causal);
    ops::fft_conv_backward<float>(hctx, u.view(), k.view(), dy.view(), du.view(), dk.view(), ops::ConvMode::causal);

    auto gu = to_device(u), gk = to_device(k), gdy = to_device(dy);
    Tensor<float, device::cuda> gy(Shape{N, C, L}), gdu(Shape{N, C, L}), gdk(Shape{C, L});
    LONGSEQ_CUDA_CHECK(cudaMemset(gdk.data(), 0, std::size_t(C * L) * sizeof(float)));
    ops::fft_conv_forward<float>(ctx, gu.view(), gk.view(), gy.view(), ops::ConvMode::causal);
    ops::fft_conv_backward<float>(ctx, gu.view(), gk.view(), gdy.view(), gdu.view(), gdk.view(), ops::ConvMode::causal);
    ctx.synchronize();
    const double tol = 1e-5 * double(L);
    CHECK(max_rel_error(to_host(gy), as_double(y)) < tol);
    CHECK(max_rel_error(to_host(gdu), as_double(du)) < tol);
    CHECK(max_rel_error(to_host(gdk), as_double(dk)) < tol * double(N));
    CHECK(ctx.fft_plan_count() <= 4);
    CHECK(ctx.fft_work_bytes() >= work);  // one area, grown to the largest need, never shrunk
    work = ctx.fft_work_bytes();
  }
}

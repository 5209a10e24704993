// GPU test: the fused skip + GELU tail of SSMConv (with its layout change) agrees with the host ops.
#include <doctest/doctest.h>

#include <vector>

#include <longseq/core/context.hpp>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <longseq/ops/activation.hpp>
#include <longseq/ssm/cuda/skip_gelu.cuh>

#include "cuda_test_util.cuh"

using namespace longseq;

namespace {

struct TailRef {
  index_t B, H, L;
  Tensor<double> y, u, D, dD0, da;  // inputs: y, u (B, H, L), D (H), dD's starting value, da (B, L, H)
  Tensor<double> z, a, dy, du, dD;  // expected outputs
};

TailRef make_ref(index_t B, index_t H, index_t L, ops::Gelu kind, std::uint64_t seed) {
  TailRef r{B, H, L, Tensor<double>(Shape{B, H, L}), Tensor<double>(Shape{B, H, L}), Tensor<double>(Shape{H}),
            Tensor<double>(Shape{H}), Tensor<double>(Shape{B, L, H}), Tensor<double>(Shape{B, L, H}),
            Tensor<double>(Shape{B, L, H}), Tensor<double>(Shape{B, H, L}), Tensor<double>(Shape{B, H, L}),
            Tensor<double>(Shape{H})};
  Rng rng(seed);
  for (index_t i = 0; i < r.y.numel(); ++i) r.y[i] = rng.normal();
  for (index_t i = 0; i < r.u.numel(); ++i) r.u[i] = rng.normal();
  for (index_t h = 0; h < H; ++h) {
    r.D[h] = rng.normal();
    r.dD0[h] = rng.normal();
  }
  for (index_t i = 0; i < r.da.numel(); ++i) r.da[i] = rng.normal();
  for (index_t b = 0; b < B; ++b)
    for (index_t l = 0; l < L; ++l)
      for (index_t h = 0; h < H; ++h) r.z(b, l, h) = r.y(b, h, l) + r.D[h] * r.u(b, h, l);
  HostContext ctx;
  ops::gelu_forward<double>(ctx, r.z.view(), r.a.view(), kind);
  Tensor<double> dz(Shape{B, L, H});
  ops::gelu_backward<double>(ctx, r.z.view(), r.da.view(), dz.view(), kind);
  for (index_t h = 0; h < H; ++h) r.dD[h] = r.dD0[h];
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t l = 0; l < L; ++l) {
        r.dy(b, h, l) = dz(b, l, h);
        r.du(b, h, l) = r.D[h] * dz(b, l, h);
        r.dD[h] += dz(b, l, h) * r.u(b, h, l);
      }
  return r;
}

template <class T>
Tensor<T, device::cuda> dev(const Tensor<double>& x) {
  Tensor<T> t(x.shape());
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(x[i]);
  return to_device(t);
}

template <class T>
double rel_err(const Tensor<double>& want, const Tensor<T, device::cuda>& got) {
  auto h = to_host(got.view());
  double m = 0, e = 0;
  for (index_t i = 0; i < want.numel(); ++i) {
    m = std::max(m, std::abs(want[i]));
    e = std::max(e, std::abs(want[i] - double(h[i])));
  }
  return m > 0 ? e / m : e;
}

template <class T>
void compare(index_t B, index_t H, index_t L, ops::Gelu kind, double tol) {
  auto r = make_ref(B, H, L, kind, 100 + std::uint64_t(B * H * L));
  CudaContext ctx;
  auto y = dev<T>(r.y), u = dev<T>(r.u), D = dev<T>(r.D), da = dev<T>(r.da), dD = dev<T>(r.dD0);
  Tensor<T, device::cuda> z(Shape{B, L, H}), a(Shape{B, L, H}), dy(Shape{B, H, L}), du(Shape{B, H, L});
  ssm::cuda::skip_gelu_forward<T>(ctx, y, u, D, z, a, kind);
  ssm::cuda::skip_gelu_backward<T>(ctx, z, da, u, D, dy, du, dD, kind);
  CHECK(rel_err(r.z, z) <= tol);
  CHECK(rel_err(r.a, a) <= tol);
  CHECK(rel_err(r.dy, dy) <= tol);
  CHECK(rel_err(r.du, du) <= tol);
  CHECK(rel_err(r.dD, dD) <= tol);
}

}  // namespace

TEST_CASE("CUDA fused skip + GELU tail and its backward match the host ops") {
  compare<double>(3, 37, 70, ops::Gelu::exact, 1e-12);
  compare<double>(2, 64, 32, ops::Gelu::tanh, 1e-12);
  compare<double>(1, 1, 1, ops::Gelu::exact, 1e-12);
  compare<float>(3, 37, 70, ops::Gelu::exact, 3e-5);
  compare<float>(2, 33, 129, ops::Gelu::tanh, 3e-5);
}

TEST_CASE("CUDA fused skip + GELU tail with bf16 storage matches the float path") {
  index_t B = 2, H = 40, L = 75;
  auto r = make_ref(B, H, L, ops::Gelu::exact, 77);
  auto f32 = [](const Tensor<double>& x) {
    Tensor<float> t(x.shape());
    for (index_t i = 0; i < t.numel(); ++i) t[i] = float(x[i]);
    return t;
  };
  CudaContext ctx;
  auto y = f32(r.y), u = f32(r.u), D = f32(r.D), da = f32(r.da), dD0 = f32(r.dD0);
  // The float run sees the bf16-rounded inputs, so the two differ only by the rounding of what is stored.
  auto fy = to_device(test::bf16_rounded(y)), fu = to_device(test::bf16_rounded(u)),
       fD = to_device(test::bf16_rounded(D)), fda = to_device(test::bf16_rounded(da)),
       fdD = to_device(test::bf16_rounded(dD0));
  auto by = to_device(test::to_bf16(y)), bu = to_device(test::to_bf16(u)), bD = to_device(test::to_bf16(D)),
       bda = to_device(test::to_bf16(da)), bdD = to_device(test::to_bf16(dD0));
  Tensor<float, device::cuda> fz(Shape{B, L, H}), fa(Shape{B, L, H}), fdy(Shape{B, H, L}), fdu(Shape{B, H, L});
  Tensor<bf16, device::cuda> bz(Shape{B, L, H}), ba(Shape{B, L, H}), bdy(Shape{B, H, L}), bdu(Shape{B, H, L});
  ssm::cuda::skip_gelu_forward<float>(ctx, fy, fu, fD, fz, fa);
  ssm::cuda::skip_gelu_forward<bf16>(ctx, by, bu, bD, bz, ba);
  CHECK(test::rel_diff(fz, bz) <= 1e-2);
  CHECK(test::rel_diff(fa, ba) <= 1e-2);
  // Both backward runs start from the bf16 run's z, so that they see the same values.
  Tensor<float, device::cuda> zf(Shape{B, L, H});
  {
    auto hz = to_host(bz.view());
    Tensor<float> t(hz.shape());
    for (index_t i = 0; i < t.numel(); ++i) t[i] = float(hz[i]);
    zf = to_device(t);
  }
  ssm::cuda::skip_gelu_backward<float>(ctx, zf, fda, fu, fD, fdy, fdu, fdD);
  ssm::cuda::skip_gelu_backward<bf16>(ctx, bz, bda, bu, bD, bdy, bdu, bdD);
  CHECK(test::rel_diff(fdy, bdy) <= 1e-2);
  CHECK(test::rel_diff(fdu, bdu) <= 1e-2);
  CHECK(test::rel_diff(fdD, bdD) <= 1e-2);
}

TEST_CASE("CUDA fused skip + GELU tail rejects bad shapes") {
  CudaContext ctx;
  using V = TensorView<const float, device::cuda>;
  using W = TensorView<float, device::cuda>;
  CHECK_THROWS_WITH_AS(ssm::cuda::skip_gelu_forward<float>(ctx, V(nullptr, Shape{2, 4, 8}), V(nullptr, Shape{2, 4, 8}),
                                                           V(nullptr, Shape{4}), W(nullptr, Shape{2, 4, 8}),
                                                           W(nullptr, Shape{2, 8, 4})),
                       doctest::Contains("tensor 'z' has shape (2, 4, 8), expected (2, 8, 4)"), Error);
  CHECK_THROWS_WITH_AS(ssm::cuda::skip_gelu_backward<float>(ctx, V(nullptr, Shape{2, 8, 4}), V(nullptr, Shape{2, 8, 4}),
                                                            V(nullptr, Shape{2, 4, 8}), V(nullptr, Shape{5}),
                                                            W(nullptr, Shape{2, 4, 8}), W(nullptr, Shape{2, 4, 8}),
                                                            W(nullptr, Shape{4})),
                       doctest::Contains("tensor 'D' has shape (5), expected (4)"), Error);
}

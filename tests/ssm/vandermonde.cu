// GPU test: the fused CUDA Vandermonde kernels agree with the host vandermonde_forward/backward.
#include <doctest/doctest.h>

#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <longseq/ssm/cuda/vandermonde.cuh>
#include <longseq/ssm/vandermonde.hpp>

#include "cuda_test_util.cuh"

using namespace longseq;

namespace {

template <class T>
void compare(index_t C, index_t H, index_t M, index_t L, double tol) {
  ssm::DiagonalForm<T> d;
  d.resize(C, H, M);
  d.scale = T(2);
  Rng rng(7);
  for (auto& z : d.log_z) z = {T(-std::exp(rng.normal() - 3)), T(rng.normal())};
  for (auto& c : d.coef) c = {T(rng.normal()), T(rng.normal())};
  Tensor<T> K(Shape{C, H, L}), dK(Shape{C, H, L});
  ssm::vandermonde_forward(d, K.view());
  for (index_t i = 0; i < dK.numel(); ++i) dK[i] = T(rng.normal());
  std::vector<std::complex<T>> gc, gz;
  ssm::vandermonde_backward(d, TensorView<const T>(dK.view()), gc, gz);

  Tensor<T> hcoef(Shape{C, H, M, 2}), hlz(Shape{H, M, 2});
  std::copy(reinterpret_cast<T*>(d.coef.data()), reinterpret_cast<T*>(d.coef.data()) + hcoef.numel(), hcoef.data());
  std::copy(reinterpret_cast<T*>(d.log_z.data()), reinterpret_cast<T*>(d.log_z.data()) + hlz.numel(), hlz.data());
  auto dcoef = to_device(hcoef);
  auto dlz = to_device(hlz);
  auto ddK = to_device(dK);
  Tensor<T, device::cuda> dKout(Shape{C, H, L}), dgc(Shape{C, H, M, 2}), dgz(Shape{H, M, 2});
  ssm::cuda::vandermonde_forward<T>(nullptr, dcoef.data(), dlz.data(), C, H, M, L, d.scale, dKout.data());
  ssm::cuda::vandermonde_backward<T>(nullptr, dcoef.data(), dlz.data(), ddK.data(), C, H, M, L, d.scale, dgc.data(),
                                     dgz.data());
  auto Kg = to_host(dKout.view());
  auto gcg = to_host(dgc.view());
  auto gzg = to_host(dgz.view());
  double mk = 0, ek = 0;
  for (index_t i = 0; i < K.numel(); ++i) {
    mk = std::max(mk, double(std::abs(K[i])));
    ek = std::max(ek, double(std::abs(K[i] - Kg[i])));
  }
  CHECK(ek <= tol * mk);
  double mg = 0, eg = 0;
  for (std::size_t i = 0; i < gc.size(); ++i) {
    mg = std::max(mg, double(std::abs(gc[i])));
    eg = std::max(eg, double(std::abs(gc[i] - std::complex<T>(gcg[2 * i], gcg[2 * i + 1]))));
  }
  CHECK(eg <= tol * mg);
  double mz = 0, ez = 0;
  for (std::size_t i = 0; i < gz.size(); ++i) {
    mz = std::max(mz, double(std::abs(gz[i])));
    ez = std::max(ez, double(std::abs(gz[i] - std::complex<T>(gzg[2 * i], gzg[2 * i + 1]))));
  }
  CHECK(ez <= tol * mz);
}

}  // namespace

TEST_CASE("CUDA Vandermonde kernel and backward match the host") {
  compare<double>(2, 3, 130, 300, 1e-10);
  compare<float>(1, 4, 64, 1024, 2e-3);
  CHECK_THROWS_WITH_AS(ssm::cuda::vandermonde_forward<float>(nullptr, nullptr, nullptr, 3, 1, 1, 1, 1.f, nullptr),
                       doctest::Contains("C = 3, expected 1 or 2"), Error);
}

// gridDim.y holds at most 65535 channels: past that the forward strides over them, the backward over (h, m).
TEST_CASE("CUDA Vandermonde kernel and backward for H past 65535 channels and L = 65536") {
  compare<float>(2, 70001, 2, 9, 2e-3);
  compare<float>(1, 2, 3, 65536, 2e-3);
  compare<double>(1, 65536 + 7, 1, 300, 1e-10);
}

TEST_CASE("CUDA Vandermonde kernel and backward with bf16 storage match the float path") {
  index_t C = 2, H = 3, M = 40, L = 500;
  Rng rng(19);
  Tensor<float> coef(Shape{C, H, M, 2}), lz(Shape{H, M, 2}), dK(Shape{C, H, L});
  for (index_t i = 0; i < coef.numel(); ++i) coef[i] = float(rng.normal());
  for (index_t i = 0; i < H * M; ++i) {
    lz[2 * i] = float(-std::exp(rng.normal() - 3));
    lz[2 * i + 1] = float(rng.normal());
  }
  for (index_t i = 0; i < dK.numel(); ++i) dK[i] = float(rng.normal());
  // The float run sees the bf16-rounded inputs, so the two differ only by the rounding of the outputs.
  auto fc = to_device(test::bf16_rounded(coef)), fz = to_device(test::bf16_rounded(lz)),
       fd = to_device(test::bf16_rounded(dK));
  auto bc = to_device(test::to_bf16(coef)), bz = to_device(test::to_bf16(lz)), bd = to_device(test::to_bf16(dK));
  Tensor<float, device::cuda> fK(Shape{C, H, L}), fgc(Shape{C, H, M, 2}), fgz(Shape{H, M, 2});
  Tensor<bf16, device::cuda> bK(Shape{C, H, L}), bgc(Shape{C, H, M, 2}), bgz(Shape{H, M, 2});
  ssm::cuda::vandermonde_forward<float>(nullptr, fc.data(), fz.data(), C, H, M, L, 2.f, fK.data());
  ssm::cuda::vandermonde_backward<float>(nullptr, fc.data(), fz.data(), fd.data(), C, H, M, L, 2.f, fgc.data(),
                                         fgz.data());
  ssm::cuda::vandermonde_forward<bf16>(nullptr, bc.data(), bz.data(), C, H, M, L, 2.f, bK.data());
  ssm::cuda::vandermonde_backward<bf16>(nullptr, bc.data(), bz.data(), bd.data(), C, H, M, L, 2.f, bgc.data(),
                                        bgz.data());
  CHECK(test::rel_diff(fK, bK) <= 1e-2);
  CHECK(test::rel_diff(fgc, bgc) <= 1e-2);
  CHECK(test::rel_diff(fgz, bgz) <= 1e-2);
}

// GPU test: the CUDA Cauchy sums and their backward agree with a double host loop and its finite differences,
// and the device S4 generating function and its backward agree with the host S4 kernel.
#include <doctest/doctest.h>

#include <complex>
#include <vector>

#include <longseq/core/context.hpp>
#include <longseq/core/cuda/context.cuh>
#include <longseq/core/cuda/memory.cuh>
#include <longseq/core/rng.hpp>
#include <longseq/ops/fft.hpp>
#include <longseq/ssm/cuda/cauchy.cuh>
#include <longseq/ssm/cuda/s4_kernel.cuh>
#include <longseq/ssm/s4.hpp>

#include "cuda_test_util.cuh"

using namespace longseq;
using Cd = std::complex<double>;

namespace {

// A Cauchy problem in double: interleaved v (Q, H, M, 2), w (H, M, 2), g (H, K, 2).
struct CauchyCase {
  index_t Q, H, M, K;
  std::vector<double> v, w, g;
};

CauchyCase make_case(index_t Q, index_t H, index_t M, index_t K, std::uint64_t seed) {
  CauchyCase c{Q, H, M, K, {}, {}, {}};
  Rng rng(seed);
  for (index_t i = 0; i < Q * H * M; ++i) {
    c.v.push_back(rng.normal());
    c.v.push_back(rng.normal());
  }
  for (index_t i = 0; i < H * M; ++i) {
    c.w.push_back(-std::exp(rng.normal() - 1));  // stable poles
    c.w.push_back(3 * rng.normal());
  }
  for (index_t i = 0; i < H * K; ++i) {
    c.g.push_back(0.5 * std::abs(rng.normal()));  // nodes in the right half plane, away from the poles
    c.g.push_back(3 * rng.normal());
  }
  return c;
}

Cd at(const std::vector<double>& a, index_t i) { return {a[2 * i], a[2 * i + 1]}; }

// The sums by a plain loop in double.
std::vector<double> cauchy_ref(const CauchyCase& c) {
  std::vector<double> S(static_cast<std::size_t>(2 * c.Q * c.H * c.K));
  for (index_t q = 0; q < c.Q; ++q)
    for (index_t h = 0; h < c.H; ++h)
      for (index_t k = 0; k < c.K; ++k) {
        Cd acc = 0, g = at(c.g, h * c.K + k);
        for (index_t n = 0; n < c.M; ++n) {
          Cd v = at(c.v, (q * c.H + h) * c.M + n), w = at(c.w, h * c.M + n);
          acc += v / (g - w) + std::conj(v) / (g - std::conj(w));
        }
        S[2 * ((q * c.H + h) * c.K + k)] = acc.real();
        S[2 * ((q * c.H + h) * c.K + k) + 1] = acc.imag();
      }
  return S;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central differences of <dS, S(v, w, g)> with respect to every real component of x (one of c's arrays).
std::vector<double> numeric_grad(CauchyCase& c, std::vector<double>& x, const std::vector<double>& dS) {
  const double eps = 1e-6;
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    double x0 = x[i];
    x[i] = x0 + eps;
    double fp = dot(dS, cauchy_ref(c));
    x[i] = x0 - eps;
    double fm = dot(dS, cauchy_ref(c));
    x[i] = x0;
    out[i] = (fp - fm) / (2 * eps);
  }
  return out;
}

template <class T>
Tensor<T> host_tensor(const std::vector<double>& a, Shape s) {
  Tensor<T> t(s);
  REQUIRE(index_t(a.size()) == t.numel());
  for (index_t i = 0; i < t.numel(); ++i) t[i] = T(a[std::size_t(i)]);
  return t;
}

template <class T>
void compare_cauchy(index_t Q, index_t H, index_t M, index_t K, double tol) {
  CauchyCase c = make_case(Q, H, M, K, 11 + std::uint64_t(Q));
  auto S = cauchy_ref(c);
  std::vector<double> dS(S.size());
  Rng rng(5);
  for (auto& x : dS) x = rng.normal();
  auto gv = numeric_grad(c, c.v, dS);
  auto gw = numeric_grad(c, c.w, dS);
  auto gg = numeric_grad(c, c.g, dS);

  CudaContext ctx;
  auto v = to_device(host_tensor<T>(c.v, Shape{Q, H, M, 2}));
  auto w = to_device(host_tensor<T>(c.w, Shape{H, M, 2}));
  auto g = to_device(host_tensor<T>(c.g, Shape{H, K, 2}));
  auto ddS = to_device(host_tensor<T>(dS, Shape{Q, H, K, 2}));
  Tensor<T, device::cuda> Sd(Shape{Q, H, K, 2}), dv(Shape{Q, H, M, 2}), dw(Shape{H, M, 2}), dg(Shape{H, K, 2});
  ssm::cuda::cauchy_forward<T>(ctx, v, w, g, Sd);
  ssm::cuda::cauchy_backward<T>(ctx, v, w, g, ddS, dv, dw, dg);
  CHECK(test::rel_diff(S, Sd) <= tol);
  CHECK(test::rel_diff(gv, dv) <= tol);
  CHECK(test::rel_diff(gw, dw) <= tol);
  CHECK(test::rel_diff(gg, dg) <= tol);
}

template <class T>
void compare_s4(index_t H, index_t N, index_t Lk, index_t channels, index_t n_ssm, double tol) {
  ParamStore<double> store;
  auto s4 = test::make_s4(H, N, Lk, channels, n_ssm, store);
  index_t bins = ops::rfft_bins(Lk), rows = channels * H;
  HostContext hctx;
  Tensor<double> K(Shape{channels, H, Lk});
  ssm::S4<double>::Saved sv;
  s4.kernel_forward(hctx, Lk, K.view(), sv);
  Tensor<Cd> spec(Shape{rows, bins});
  ops::rfft_forward<double>(hctx, TensorView<const double>(K.data(), Shape{rows, Lk}), spec.view());
  std::vector<double> khat_ref(static_cast<std::size_t>(2 * rows * bins));
  for (index_t i = 0; i < rows * bins; ++i) {
    khat_ref[2 * i] = spec[i].real();
    khat_ref[2 * i + 1] = spec[i].imag();
  }
  CudaContext ctx;
  test::S4Inputs<T> in(s4);
  auto dt = to_device(in.dt), lam = to_device(in.lambda), P = to_device(in.P), B = to_device(in.B),
       C = to_device(in.C);
  Tensor<T, device::cuda> khat(Shape{channels, H, bins, 2});
  ssm::cuda::s4_khat_forward<T>(ctx, dt, lam, P, B, C, Lk, khat);
  CHECK(test::rel_diff(khat_ref, khat) <= tol);

  // Backward: the host S4's parameter gradients against the device's, chained to the same parameters.
  Tensor<double> dK(Shape{channels, H, Lk});
  Rng rng(8);
  for (index_t i = 0; i < dK.numel(); ++i) dK[i] = rng.normal();
  for (index_t i = 0; i < store.grads().numel(); ++i) store.grads()[i] = 0;
  s4.kernel_backward(hctx, sv, dK.view());
  Tensor<Cd> gspec(Shape{rows, bins});
  ops::irfft_backward<double>(hctx, TensorView<const double>(dK.data(), Shape{rows, Lk}), gspec.view());
  std::vector<double> dkhat(static_cast<std::size_t>(2 * rows * bins));
  for (index_t i = 0; i < rows * bins; ++i) {
    dkhat[2 * i] = gspec[i].real();
    dkhat[2 * i + 1] = gspec[i].imag();
  }
  auto d_dkhat = to_device(host_tensor<T>(dkhat, Shape{channels, H, bins, 2}));
  test::S4Grads<T> g(s4);
  ssm::cuda::s4_khat_backward<T>(ctx, dt, lam, P, B, C, Lk, d_dkhat, g.dt, g.lambda, g.P, g.B, g.C);
  test::check_s4_grads(s4, g, tol);
}

}  // namespace

TEST_CASE("CUDA Cauchy sums and their backward match a double host loop and finite differences") {
  compare_cauchy<double>(3, 2, 70, 9, 1e-6);
  compare_cauchy<double>(6, 3, 5, 200, 1e-6);
  compare_cauchy<float>(4, 2, 33, 50, 2e-3);
}

TEST_CASE("CUDA S4 generating function and its backward match the host S4 kernel") {
  compare_s4<double>(4, 16, 64, 2, 2, 1e-8);  // even length: includes the z = -1 node
  compare_s4<double>(3, 8, 45, 1, 0, 1e-8);   // odd length, one copy per channel
  compare_s4<float>(4, 16, 64, 1, 1, 1e-3);
}

TEST_CASE("CUDA Cauchy and S4 entry points reject bad shapes before touching the device") {
  CudaContext ctx;
  using V = TensorView<const float, device::cuda>;
  using W = TensorView<float, device::cuda>;
  CHECK_THROWS_WITH_AS(ssm::cuda::cauchy_forward<float>(ctx, V(nullptr, Shape{9, 1, 1, 2}), V(nullptr, Shape{1, 1, 2}),
                                                        V(nullptr, Shape{1, 4, 2}), W(nullptr, Shape{9, 1, 4, 2})),
                       doctest::Contains("expected (Q, H, M, 2) with 1 <= Q <= 8"), Error);
  CHECK_THROWS_WITH_AS(ssm::cuda::cauchy_forward<float>(ctx, V(nullptr, Shape{2, 3, 4, 2}), V(nullptr, Shape{3, 5, 2}),
                                                        V(nullptr, Shape{3, 4, 2}), W(nullptr, Shape{2, 3, 4, 2})),
                       doctest::Contains("tensor 'w' has shape (3, 5, 2), expected (3, 4, 2)"), Error);
  CHECK_THROWS_WITH_AS(ssm::cuda::s4_khat_forward<float>(ctx, V(nullptr, Shape{4}), V(nullptr, Shape{2, 8, 2}),
                                                         V(nullptr, Shape{2, 8, 2}), V(nullptr, Shape{2, 8, 2}),
                                                         V(nullptr, Shape{1, 4, 8, 2}), 64,
                                                         W(nullptr, Shape{1, 4, 32, 2})),
                       doctest::Contains("tensor 'Khat' has shape (1, 4, 32, 2), expected (1, 4, 33, 2)"), Error);
  CHECK_THROWS_WITH_AS(ssm::cuda::s4_khat_forward<float>(ctx, V(nullptr, Shape{4}), V(nullptr, Shape{3, 8, 2}),
                                                         V(nullptr, Shape{3, 8, 2}), V(nullptr, Shape{3, 8, 2}),
                                                         V(nullptr, Shape{1, 4, 8, 2}), 64,
                                                         W(nullptr, Shape{1, 4, 33, 2})),
                       doctest::Contains("with S dividing H = 4"), Error);
}

TEST_CASE("CUDA Cauchy sums and S4 generating function with bf16 storage match the float path") {
  CudaContext ctx;
  index_t Q = 4, H = 3, M = 24, K = 40;
  CauchyCase c = make_case(Q, H, M, K, 31);
  std::vector<double> dS(static_cast<std::size_t>(2 * Q * H * K));
  Rng rng(6);
  for (auto& x : dS) x = rng.normal();
  auto fv = host_tensor<float>(c.v, Shape{Q, H, M, 2}), fw = host_tensor<float>(c.w, Shape{H, M, 2}),
       fg = host_tensor<float>(c.g, Shape{H, K, 2}), fdS = host_tensor<float>(dS, Shape{Q, H, K, 2});
  // The float run sees the bf16-rounded inputs, so the two differ only by the rounding of the outputs.
  auto v = to_device(test::bf16_rounded(fv)), w = to_device(test::bf16_rounded(fw)),
       g = to_device(test::bf16_rounded(fg)), d = to_device(test::bf16_rounded(fdS));
  auto bv = to_device(test::to_bf16(fv)), bw = to_device(test::to_bf16(fw)), bg = to_device(test::to_bf16(fg)),
       bd = to_device(test::to_bf16(fdS));
  Tensor<float, device::cuda> S(Shape{Q, H, K, 2}), dv(Shape{Q, H, M, 2}), dw(Shape{H, M, 2}), dg(Shape{H, K, 2});
  Tensor<bf16, device::cuda> bS(Shape{Q, H, K, 2}), bdv(Shape{Q, H, M, 2}), bdw(Shape{H, M, 2}), bdg(Shape{H, K, 2});
  ssm::cuda::cauchy_forward<float>(ctx, v, w, g, S);
  ssm::cuda::cauchy_backward<float>(ctx, v, w, g, d, dv, dw, dg);
  ssm::cuda::cauchy_forward<bf16>(ctx, bv, bw, bg, bS);
  ssm::cuda::cauchy_backward<bf16>(ctx, bv, bw, bg, bd, bdv, bdw, bdg);
  CHECK(test::rel_diff(S, bS) <= 1e-2);
  CHECK(test::rel_diff(dv, bdv) <= 1e-2);
  CHECK(test::rel_diff(dw, bdw) <= 1e-2);
  CHECK(test::rel_diff(dg, bdg) <= 1e-2);

  ParamStore<double> store;
  index_t Hs = 4, Lk = 64, Ch = 2;
  auto s4 = test::make_s4(Hs, 16, Lk, Ch, 2, store);
  index_t Ss = s4.S, Ms = s4.M, bins = ops::rfft_bins(Lk);
  test::S4Inputs<float> in(s4);
  Tensor<float> dkhat(Shape{Ch, Hs, bins, 2});
  for (index_t i = 0; i < dkhat.numel(); ++i) dkhat[i] = float(rng.normal());
  const Tensor<float>&dt = in.dt, &lam = in.lambda, &P = in.P, &B = in.B, &C = in.C;
  auto f_dt = to_device(test::bf16_rounded(dt)), f_lam = to_device(test::bf16_rounded(lam)),
       f_P = to_device(test::bf16_rounded(P)), f_B = to_device(test::bf16_rounded(B)),
       f_C = to_device(test::bf16_rounded(C)), f_dk = to_device(test::bf16_rounded(dkhat));
  auto b_dt = to_device(test::to_bf16(dt)), b_lam = to_device(test::to_bf16(lam)), b_P = to_device(test::to_bf16(P)),
       b_B = to_device(test::to_bf16(B)), b_C = to_device(test::to_bf16(C)), b_dk = to_device(test::to_bf16(dkhat));
  Tensor<float, device::cuda> fk(Shape{Ch, Hs, bins, 2}), fgdt(Shape{Hs}), fgl(Shape{Ss, Ms, 2}), fgP(Shape{Ss, Ms, 2}),
      fgB(Shape{Ss, Ms, 2}), fgC(Shape{Ch, Hs, Ms, 2});
  Tensor<bf16, device::cuda> bk(Shape{Ch, Hs, bins, 2}), bgdt(Shape{Hs}), bgl(Shape{Ss, Ms, 2}), bgP(Shape{Ss, Ms, 2}),
      bgB(Shape{Ss, Ms, 2}), bgC(Shape{Ch, Hs, Ms, 2});
  ssm::cuda::s4_khat_forward<float>(ctx, f_dt, f_lam, f_P, f_B, f_C, Lk, fk);
  ssm::cuda::s4_khat_backward<float>(ctx, f_dt, f_lam, f_P, f_B, f_C, Lk, f_dk, fgdt, fgl, fgP, fgB, fgC);
  ssm::cuda::s4_khat_forward<bf16>(ctx, b_dt, b_lam, b_P, b_B, b_C, Lk, bk);
  ssm::cuda::s4_khat_backward<bf16>(ctx, b_dt, b_lam, b_P, b_B, b_C, Lk, b_dk, bgdt, bgl, bgP, bgB, bgC);
  CHECK(test::rel_diff(fk, bk) <= 1e-2);
  CHECK(test::rel_diff(fgdt, bgdt) <= 1e-2);
  CHECK(test::rel_diff(fgl, bgl) <= 1e-2);
  CHECK(test::rel_diff(fgP, bgP) <= 1e-2);
  CHECK(test::rel_diff(fgB, bgB) <= 1e-2);
  CHECK(test::rel_diff(fgC, bgC) <= 1e-2);
}
